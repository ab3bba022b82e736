/**
 * The one shared test-helper module: seeded randomness, temporary folders, partition-store
 * fixtures, in-process nodes over the embedded log, and the public and internal API called
 * in-process (`handler(new Request(…))`, no sockets, no processes). Unit tests under `src/`,
 * fuzz tests and integration tests import it; node *processes* live in
 * `tests/integration/_node.ts`.
 *
 * ```ts
 * await withApi({ PARTITIONS: "4" }, async (api) => {
 *   const put = await api.request("POST", "/records/put", { records: [{ pk: "a", sk: "b", data: 1 }] });
 * });
 * ```
 *
 * @module
 */
import { type Forwarding, internalHandler, publicHandler } from "../src/api/mod.ts";
import { buildNode } from "../src/app.ts";
import { type Config, loadConfig } from "../src/config/mod.ts";
import { createMetrics } from "../src/metrics/mod.ts";
import { type Node, Reader, type SnapshotSource } from "../src/node/mod.ts";
import { type ListQuery, PartitionStore } from "../src/store/mod.ts";
import { watchHubFor } from "../src/watch/mod.ts";

// --- Documentation ---------------------------------------------------------------------------

/**
 * The lines of the section of `docs/<file>` that starts at the heading line beginning with
 * `heading` (e.g. `"## Errors"`), up to the next heading of any level. Fails when it is missing:
 * tests that hold a doc to the code read its tables through this.
 */
export async function docSection(file: string, heading: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(`../docs/${file}`, import.meta.url));
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.startsWith(heading));
  if (start < 0) throw new Error(`docs/${file} has no "${heading}" section`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith("#"));
  return lines.slice(start, end < 0 ? lines.length : end);
}

// --- Randomness ------------------------------------------------------------------------------

/** A deterministic source of numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: a small, fast, seeded PRNG, good enough to explore inputs; same seed, same run. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- Temporary folders -----------------------------------------------------------------------

/** Runs `body` with a fresh temporary folder, removed afterwards whatever happens. */
export async function withTempDir<T>(
  body: (dir: string) => Promise<T>,
  prefix = "firescroll_test_",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// --- Partition stores ------------------------------------------------------------------------

/** LMDB map size of test stores and test nodes. */
export const TEST_MAP_BYTES = 32 * 1024 * 1024;

/** A 64-hex-digit chain value standing for the chain after `offset`. */
export function chainOf(offset: number): string {
  return (offset + 1).toString(16).padStart(64, "0");
}

/** Opens (creating) the store of `partition` in `dir`. */
export function openStore(dir: string, partition: number, namespace = "test"): PartitionStore {
  return PartitionStore.open({ dir, namespace, partition, mapBytes: TEST_MAP_BYTES });
}

/** Opens (creating) partition 0 in `dir`, keeping its change log `retainMs` of log time. */
export function openLoggingStore(dir: string, retainMs: number): PartitionStore {
  return PartitionStore.open({
    dir,
    namespace: "test",
    partition: 0,
    mapBytes: TEST_MAP_BYTES,
    changesRetainMs: retainMs,
  });
}

/**
 * Applies one transaction per offset from the store's next offset up to `offset`, each putting
 * record `("pk", "k{offset}")`, so every offset changes the file.
 */
export async function writeUpTo(store: PartitionStore, offset: number): Promise<void> {
  for (let o = store.applied.offset + 1; o <= offset; o++) {
    await store.write((tx) => {
      tx.put("pk", `k${o}`, JSON.stringify({ offset: o }), o, 1000 + o, 1000 + o);
      return { offset: o, chain: chainOf(o) };
    });
  }
}

// --- In-process nodes ------------------------------------------------------------------------

/**
 * The config of a test node keeping its files in `dir`, with small partition maps: the
 * environment is exactly `env` (never the shell's, so no KAFKA_SEEDS: the log is embedded).
 */
export function testConfig(dir: string, env: Readonly<Record<string, string>> = {}): Config {
  return loadConfig({ DB_PATH: dir, LMDB_MAP_BYTES: String(TEST_MAP_BYTES), ...env });
}

/** What {@linkcode withInProcessNode} builds. */
export interface InProcessNodeOptions {
  /** Environment of the config (see {@linkcode testConfig}). */
  readonly env?: Readonly<Record<string, string>>;
  /** Data folder; a fresh temporary folder (removed afterwards) when absent. */
  readonly dir?: string;
  /** Where the node restores partitions from (null: nowhere). */
  readonly snapshots?: SnapshotSource | null;
}

/**
 * Runs `body` with a node over the embedded log in this process, built but not started (the test
 * drives `open`, `assigned`, … itself); stops it and removes a temporary folder afterwards.
 */
export async function withInProcessNode(
  options: InProcessNodeOptions,
  body: (node: Node, dir: string) => Promise<void>,
): Promise<void> {
  const root = options.dir ?? await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  const node = buildNode(testConfig(root, options.env), createMetrics(), options.snapshots ?? null);
  await Deno.mkdir(node.storeDir, { recursive: true });
  try {
    await body(node, root);
  } finally {
    await node.stop();
    if (options.dir === undefined) await Deno.remove(root, { recursive: true });
  }
}

// --- HTTP results ----------------------------------------------------------------------------

/** A response read whole: status, headers, the body text and its JSON (null if not JSON). */
export interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  // deno-lint-ignore no-explicit-any
  readonly json: any;
}

/** Reads a response whole, so no body is left open. */
export async function readResult(response: Response): Promise<HttpResult> {
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Asserts `result` is an RFC 9457 problem with `status` and the stable `code`. */
export function assertProblem(result: HttpResult, status: number, code: string): void {
  const where = `${result.status} ${result.text}`;
  if (result.status !== status) throw new Error(`Expected status ${status}, got ${where}`);
  const type = result.headers.get("content-type");
  if (type !== "application/problem+json") {
    throw new Error(`Expected content-type application/problem+json, got ${type}: ${where}`);
  }
  const p = result.json;
  if (
    p === null || p.code !== code || p.status !== status || typeof p.title !== "string" ||
    typeof p.detail !== "string" || p.type !== `https://firescroll.dev/problems/${code}`
  ) {
    throw new Error(`Expected a problem with code ${code}, got ${where}`);
  }
}

// --- The API in-process ----------------------------------------------------------------------

/** Bound on a test node becoming ready (every partition serving). */
export const IN_PROCESS_READY_TIMEOUT_MS = 10_000;

/** The embedded log's map size of an API test node (the smallest allowed, 16 MiB). */
const LOG_MAP_BYTES = String(16 * 1024 * 1024);

/** A request body: strings, bytes and streams are sent as they are, anything else as JSON. */
export type TestBody = string | Uint8Array | ReadableStream<Uint8Array> | unknown;

/** A started node with its public and internal handlers, called without sockets. */
export interface InProcessApi {
  readonly node: Node;
  /** The node's data folder (temporary, removed by `close`). */
  readonly dir: string;
  /** Calls the public handler; `body` undefined sends none. */
  request(
    method: string,
    path: string,
    body?: TestBody,
    headers?: HeadersInit,
  ): Promise<HttpResult>;
  /** Calls the internal handler. */
  internal(
    method: string,
    path: string,
    body?: TestBody,
    headers?: HeadersInit,
  ): Promise<HttpResult>;
  /** Calls the public handler and returns its response unread (a watch stream). */
  stream(
    method: string,
    path: string,
    body?: TestBody,
    headers?: HeadersInit,
  ): Promise<Response>;
  /** How many answers were 500 so far (each is a bug). */
  readonly serverErrors: number;
  /** Stops the node and removes its folder. Idempotent. */
  close(): Promise<void>;
}

function testRequest(
  method: string,
  path: string,
  body: TestBody | undefined,
  headers: HeadersInit,
): Request {
  const h = new Headers(headers);
  let payload: BodyInit | null = null;
  if (body === undefined) {
    payload = null;
  } else if (body instanceof ReadableStream) {
    // No content-length: the handler reads it as a chunked body.
    payload = body;
  } else {
    const bytes = typeof body === "string"
      ? new TextEncoder().encode(body)
      : body instanceof Uint8Array
      ? body
      : new TextEncoder().encode(JSON.stringify(body));
    payload = bytes as BodyInit;
    // As an HTTP client would send it: the handler's fast path reads a declared length.
    if (!h.has("content-length")) h.set("content-length", String(bytes.length));
    if (!h.has("content-type")) h.set("content-type", "application/json");
  }
  return new Request(`http://firescroll.test${path}`, { method, body: payload, headers: h });
}

/**
 * The one place tests build API handlers: a node over the embedded log in a temporary folder,
 * configured by `env` (env-var names, see {@linkcode testConfig}), started and ready, with its
 * public and internal handlers. Close it (or use {@linkcode withApi}).
 */
export async function inProcessApi(
  env: Readonly<Record<string, string>> = {},
  options: { readonly forwarding?: Readonly<Forwarding> } = {},
): Promise<InProcessApi> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_api_test_" });
  const config = testConfig(dir, {
    PARTITIONS: "4",
    EMBEDDED_LOG_MAP_BYTES: LOG_MAP_BYTES,
    ...env,
  });
  const node = buildNode(config, createMetrics(), null);
  // The watch streams, as src/app.ts wires them on a node without serving threads.
  const watch = watchHubFor(node, config, node.metrics);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    watch?.close();
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await node.open();
    node.consume();
    const deadline = Date.now() + IN_PROCESS_READY_TIMEOUT_MS;
    while (!node.ready) {
      if (Date.now() > deadline) {
        throw new Error(`Test node not ready after ${IN_PROCESS_READY_TIMEOUT_MS} ms`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } catch (error) {
    await close();
    throw error;
  }
  // One reader for both ports, as src/app.ts wires it (no peers: a single node).
  const reader = new Reader(node, null, { limits: config.limits, now: node.now });
  const publicApi = publicHandler(
    node,
    reader,
    options.forwarding === undefined ? { watch } : { forwarding: options.forwarding, watch },
  );
  const internalApi = internalHandler(node, { reader, watch });
  let serverErrors = 0;
  const call = async (
    handler: (request: Request) => Promise<Response>,
    request: Request,
  ): Promise<HttpResult> => {
    const result = await readResult(await handler(request));
    if (result.status === 500) serverErrors++;
    return result;
  };
  return {
    node,
    dir,
    request: (method, path, body, headers = {}) =>
      call(publicApi, testRequest(method, path, body, headers)),
    internal: (method, path, body, headers = {}) =>
      call(internalApi, testRequest(method, path, body, headers)),
    stream: (method, path, body, headers = {}) =>
      publicApi(testRequest(method, path, body, headers)),
    get serverErrors() {
      return serverErrors;
    },
    close,
  };
}

/**
 * Runs `fn` with an {@linkcode inProcessApi} and always closes it. An answer 500 fails the test
 * even if `fn` passed: a 500 is a bug.
 */
export async function withApi<T>(
  env: Readonly<Record<string, string>>,
  fn: (api: InProcessApi) => Promise<T>,
): Promise<T> {
  const api = await inProcessApi(env);
  try {
    const result = await fn(api);
    if (api.serverErrors > 0) {
      throw new Error(`The node answered 500 (internal_error) ${api.serverErrors} time(s)`);
    }
    return result;
  } finally {
    await api.close();
  }
}

/** A list of `pk`'s records (the first 100, no filter, 10,000 rows scanned at most), with `overrides`. */
export function listQuery(pk: string, overrides: Partial<ListQuery> = {}): ListQuery {
  return {
    pk,
    skPrefix: "",
    startAfter: null,
    endBefore: null,
    limit: 100,
    reverse: false,
    filter: null,
    stopOnFilter: false,
    scanMax: 10_000,
    ...overrides,
  };
}
