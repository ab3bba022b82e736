/**
 * Starts real FireScroll node processes for integration tests: `deno run --allow-all main.ts`
 * with a chosen environment, ephemeral ports parsed from the node's JSON log lines, and a
 * temporary `DB_PATH`. Every process is killed in cleanup, and its stdout/stderr are always
 * drained, so a test never leaks a process, a pipe or a port.
 *
 * ```ts
 * await withNode({ env: { PARTITIONS: "4" } }, async (node) => {
 *   const put = await node.post("/records/put", { records: [{ pk: "a", sk: "b", data: 1 }] });
 * });
 * ```
 *
 * Responses are read with `readResult` and problems checked with `assertProblem` of the shared
 * tests/_helpers.ts, re-exported here.
 *
 * @module
 */
import { type HttpResult, readResult } from "../_helpers.ts";

export { assertProblem, type HttpResult, readResult } from "../_helpers.ts";

/** Root of the repository: the working directory of every node process. */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname;

/** Lines of a node's output kept for diagnostics (older lines are dropped). */
export const LOG_LINES_MAX = 2000;

/** Default bound on waiting for a node to listen and answer `/readyz` 200. */
export const READY_TIMEOUT_MS = 20_000;

/** Default bound on waiting for a node to exit after a signal. */
export const STOP_TIMEOUT_MS = 15_000;

/**
 * A free port from `from` on, below the ephemeral range: a node with serving threads needs a
 * fixed public port, which every thread binds (`API_PORT=0` would give each thread its own).
 */
export function fixedPort(from: number): number {
  for (let port = from; port < from + 50; port++) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error(`Cannot find a free port in ${from}..${from + 49}`);
}

/** Environment variables of the parent passed on to the node; everything else is dropped. */
const INHERITED_ENV = new Set([
  "PATH",
  "HOME",
  "USER",
  "LANG",
  "LC_ALL",
  "TMPDIR",
  "XDG_CACHE_HOME",
  "NO_COLOR",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
]);

/**
 * The environment a node starts with: the parent's toolchain variables (PATH, HOME, DENO_*) only,
 * so a FireScroll variable set in the developer's shell (KAFKA_SEEDS, API_TOKENS_*, …) never leaks
 * into a test node; then the defaults; then `env`, where `undefined` removes a default.
 */
export function nodeEnv(
  env: Readonly<Record<string, string | undefined>>,
  dbPath: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (INHERITED_ENV.has(key) || key.startsWith("DENO_")) out[key] = value;
  }
  Object.assign(out, {
    LISTEN_HOST: "127.0.0.1",
    API_PORT: "0",
    INTERNAL_PORT: "0",
    DB_PATH: dbPath,
  });
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  return out;
}

/** A bounded ring of output lines. */
export class LogRing {
  private readonly lines: string[] = [];
  private dropped = 0;

  constructor(private readonly max: number = LOG_LINES_MAX) {}

  /** Appends a line, dropping the oldest beyond the bound. */
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) {
      this.lines.shift();
      this.dropped++;
    }
  }

  /** The kept lines, oldest first. */
  get all(): readonly string[] {
    return this.lines;
  }

  /** The parsed JSON events among the kept lines (non-JSON lines are skipped). */
  events(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.lines) {
      const event = parseEvent(line);
      if (event !== null) out.push(event);
    }
    return out;
  }

  /** The last `n` lines as one string, for assertion messages. */
  tail(n = 60): string {
    const shown = this.lines.slice(-n);
    const skipped = this.dropped + this.lines.length - shown.length;
    return (skipped > 0 ? `… ${skipped} earlier lines\n` : "") + shown.join("\n");
  }
}

function parseEvent(line: string): Record<string, unknown> | null {
  if (!line.startsWith("{")) return null;
  try {
    const value = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** What {@linkcode spawnNode} starts. */
export interface SpawnOptions {
  /** Extra environment; `undefined` removes a default (LISTEN_HOST, API_PORT, …). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Data folder; a fresh temporary folder (removed on cleanup) when absent. */
  readonly dbPath?: string;
}

/** A node process that may or may not be listening yet. */
export interface SpawnedNode {
  readonly dbPath: string;
  /** Output lines (stdout and stderr, stderr prefixed with `stderr: `). */
  readonly logs: LogRing;
  /** Resolves with the exit code once the process ended and both pipes are drained. */
  readonly exited: Promise<number>;
  /** The process id. */
  readonly pid: number;
  /** Resolves with the first event named `event`, or null if the process ends first. */
  waitForEvent(event: string): Promise<Record<string, unknown> | null>;
  /** Sends `signal` if the process still runs. */
  signal(signal: Deno.Signal): void;
  /** Whether the process has exited. */
  readonly hasExited: boolean;
  /** Kills (SIGKILL) the process if it runs, waits for it, removes a temporary DB_PATH. */
  cleanup(): Promise<void>;
}

/** Node processes still running, killed when the test process exits whatever the reason. */
const live = new Set<Deno.ChildProcess>();
globalThis.addEventListener("unload", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** Spawns `deno run --allow-all main.ts` with the test environment; does not wait for anything. */
export async function spawnNode(options: SpawnOptions = {}): Promise<SpawnedNode> {
  const ownDir = options.dbPath === undefined;
  const dbPath = options.dbPath ?? await Deno.makeTempDir({ prefix: "firescroll_it_" });
  const logs = new LogRing();
  const listeners: { event: string; resolve: (e: Record<string, unknown> | null) => void }[] = [];
  const onLine = (line: string) => {
    logs.push(line);
    const event = parseEvent(line);
    if (event === null || listeners.length === 0) return;
    for (let i = listeners.length - 1; i >= 0; i--) {
      if (listeners[i]!.event === event.event) {
        listeners[i]!.resolve(event);
        listeners.splice(i, 1);
      }
    }
  };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts"],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: nodeEnv(options.env ?? {}, dbPath),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child);
  const drained = Promise.all([
    drainLines(child.stdout, onLine),
    drainLines(child.stderr, (line) => onLine(`stderr: ${line}`)),
  ]);
  let exitedFlag = false;
  const exited = (async () => {
    const status = await child.status;
    live.delete(child);
    await drained;
    exitedFlag = true;
    for (const listener of listeners.splice(0)) listener.resolve(null);
    return status.code;
  })();
  const signal = (sig: Deno.Signal) => {
    if (exitedFlag) return;
    try {
      child.kill(sig);
    } catch (error) {
      // The process may have exited between the check and the kill.
      if (!(error instanceof TypeError)) throw error;
    }
  };
  return {
    dbPath,
    logs,
    exited,
    pid: child.pid,
    get hasExited() {
      return exitedFlag;
    },
    waitForEvent(event) {
      for (const e of logs.events()) if (e.event === event) return Promise.resolve(e);
      if (exitedFlag) return Promise.resolve(null);
      return new Promise((resolve) => listeners.push({ event, resolve }));
    },
    signal,
    async cleanup() {
      signal("SIGKILL");
      await exited;
      if (ownDir) await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    },
  };
}

async function drainLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let newline = rest.indexOf("\n");
    while (newline >= 0) {
      onLine(rest.slice(0, newline));
      rest = rest.slice(newline + 1);
      newline = rest.indexOf("\n");
    }
  }
  if (rest !== "") onLine(rest);
}

/** What {@linkcode startNode} starts. */
export interface StartOptions extends SpawnOptions {
  /** Bound on reaching listening + `/readyz` 200; {@linkcode READY_TIMEOUT_MS} by default. */
  readonly readyTimeoutMs?: number;
  /**
   * PEM certificate(s) the helper's own HTTPS client trusts when the node serves TLS. Without it
   * `post`/`request` cannot reach a TLS node (rustls refuses a self-signed CA:TRUE certificate as
   * an end entity); readiness is then checked with `curl -k` instead.
   */
  readonly caCert?: string;
}

/** A running node. */
export interface TestNode {
  /** `http://<LISTEN_HOST>:<port>` (or `https://…` with TLS) of the public API. */
  readonly apiUrl: string;
  /** `http://<LISTEN_HOST>:<port>` of the internal port. */
  readonly internalUrl: string;
  readonly apiPort: number;
  readonly internalPort: number;
  readonly dbPath: string;
  /** Collected output lines (bounded ring). */
  readonly logs: LogRing;
  readonly pid: number;
  /** The node's `CLUSTER_SECRET`, if it was started with one. */
  readonly clusterSecret: string | undefined;
  /** POSTs `body` (JSON-encoded unless a string, bytes or a stream) to the public API. */
  post(path: string, body: unknown, headers?: HeadersInit): Promise<HttpResult>;
  /** A request with any method to the public API. */
  request(path: string, init?: RequestInit): Promise<HttpResult>;
  /** A GET to the internal port. */
  internal(path: string, headers?: HeadersInit): Promise<HttpResult>;
  /** Sends `signal` and resolves with the exit code; SIGKILLs and throws after the timeout. */
  stop(signal?: Deno.Signal, timeoutMs?: number): Promise<number>;
  /** SIGKILLs the process and waits for it. */
  kill(): Promise<void>;
  /** Kills the process if it still runs and removes a temporary DB_PATH. Idempotent. */
  cleanup(): Promise<void>;
}

/** An error carrying the node's recent output, so a failed start or stop explains itself. */
export class NodeProcessError extends Error {
  constructor(message: string, logs: LogRing) {
    super(`${message}\n--- node output ---\n${logs.tail()}`);
    this.name = "NodeProcessError";
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts a node and waits (bounded) until it listens on both ports and `/readyz` answers 200.
 * On failure the process is killed and the error carries its output.
 */
export async function startNode(options: StartOptions = {}): Promise<TestNode> {
  const spawned = await spawnNode(options);
  const timeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let client: Deno.HttpClient | undefined;
  try {
    const listening = await withTimeout(
      Promise.all([
        spawned.waitForEvent("api_listening"),
        spawned.waitForEvent("internal_listening"),
      ]),
      timeoutMs,
      "node to log api_listening and internal_listening",
    );
    const [api, internal] = listening;
    if (api === null || internal === null) {
      throw new Error(`Node exited with code ${await spawned.exited} before listening`);
    }
    const tls = api.tls === true;
    const apiPort = Number(api.port);
    const internalPort = Number(internal.port);
    // Cluster tests give each node its own loopback address, like machines of one region.
    const host = options.env?.LISTEN_HOST ?? "127.0.0.1";
    const apiUrl = `${tls ? "https" : "http"}://${host}:${apiPort}`;
    const internalUrl = `http://${host}:${internalPort}`;
    if (tls && options.caCert !== undefined) {
      client = Deno.createHttpClient({ caCerts: [options.caCert] });
    }
    const apiFetch = (path: string, init: RequestInit = {}) =>
      fetch(`${apiUrl}${path}`, client === undefined ? init : { ...init, client });
    const readyz = tls && client === undefined
      ? async () => {
        const r = await run("curl", [
          "-ks",
          "--max-time",
          "2",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `${apiUrl}/readyz`,
        ]);
        return Number(r.stdout);
      }
      : () =>
        apiFetch("/readyz", { signal: AbortSignal.timeout(2000) })
          .then(async (r) => (await r.body?.cancel(), r.status))
          .catch(() => 0);
    while (true) {
      if (spawned.hasExited) {
        throw new Error(`Node exited with code ${await spawned.exited} before /readyz was 200`);
      }
      const status = await readyz();
      if (status === 200) break;
      if (Date.now() > deadline) {
        throw new Error(`Timed out after ${timeoutMs} ms waiting for /readyz`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const kill = async () => {
      spawned.signal("SIGKILL");
      await spawned.exited;
    };
    const node: TestNode = {
      apiUrl,
      internalUrl,
      apiPort,
      internalPort,
      dbPath: spawned.dbPath,
      logs: spawned.logs,
      pid: spawned.pid,
      clusterSecret: options.env?.CLUSTER_SECRET,
      async post(path, body, headers = {}) {
        const h = new Headers(headers);
        let payload: BodyInit;
        if (
          typeof body === "string" || body instanceof Uint8Array || body instanceof ReadableStream
        ) {
          payload = body as BodyInit;
        } else {
          payload = JSON.stringify(body);
          if (!h.has("content-type")) h.set("content-type", "application/json");
        }
        return await readResult(
          await apiFetch(path, { method: "POST", body: payload, headers: h }),
        );
      },
      async request(path, init = {}) {
        return await readResult(await apiFetch(path, init));
      },
      async internal(path, headers = {}) {
        return await readResult(await fetch(`${internalUrl}${path}`, { headers }));
      },
      async stop(signal = "SIGTERM", stopTimeoutMs = STOP_TIMEOUT_MS) {
        spawned.signal(signal);
        try {
          return await withTimeout(spawned.exited, stopTimeoutMs, `node to exit on ${signal}`);
        } catch (error) {
          await kill();
          throw new NodeProcessError((error as Error).message, spawned.logs);
        }
      },
      kill,
      async cleanup() {
        client?.close();
        client = undefined;
        await spawned.cleanup();
      },
    };
    return node;
  } catch (error) {
    client?.close();
    await spawned.cleanup();
    if (error instanceof NodeProcessError) throw error;
    throw new NodeProcessError(`Cannot start node: ${(error as Error).message}`, spawned.logs);
  }
}

/**
 * Starts a node, runs `fn` with it and always cleans up (kill + temp dir removal). When `fn`
 * throws, the node's recent output is appended to the error message. A node that logged an
 * `internal_error` (what every 500 logs) fails the test even if `fn` passed: a 500 is a bug.
 */
export async function withNode<T>(
  options: StartOptions,
  fn: (node: TestNode) => Promise<T>,
): Promise<T> {
  const node = await startNode(options);
  try {
    const result = await fn(node);
    const errors = node.logs.all.filter((l) => l.includes('"event":"internal_error"'));
    if (errors.length > 0) {
      throw new Error(`The node answered 500 (internal_error) ${errors.length} time(s)`);
    }
    return result;
  } catch (error) {
    if (error instanceof Error && !(error instanceof NodeProcessError)) {
      error.message += `\n--- node output ---\n${node.logs.tail()}`;
    }
    throw error;
  } finally {
    await node.cleanup();
  }
}

/**
 * `t.step` for checks against `node`: a failing step's error carries the node's recent output,
 * since a failed step does not fail the enclosing {@linkcode withNode} callback.
 */
export function stepper(
  t: Deno.TestContext,
  node: TestNode,
): (name: string, fn: () => Promise<void> | void) => Promise<boolean> {
  return (name, fn) =>
    t.step(name, async () => {
      try {
        await fn();
      } catch (error) {
        if (error instanceof Error) {
          error.message += `\n--- node output ---\n${node.logs.tail(30)}`;
        }
        throw error;
      }
    });
}

/** `/internal/status` partitions: `{ "<p>": { state, offset, chain, records, digest } }`. */
export interface PartitionStatus {
  state: string;
  offset: number;
  chain: string;
  records: number;
  /** Content digest of the records (equal on replicas with equal records). */
  digest: string;
}

/** Reads `/internal/status` (with the node's cluster secret, if any) and returns its partitions. */
export async function partitionStatus(
  node: TestNode,
  secret: string | undefined = node.clusterSecret,
): Promise<Record<string, PartitionStatus>> {
  return (await nodeStatus(node, secret)).partitions;
}

/** A node's whole `/internal/status`: itself, its gossip view of the members, its partitions. */
export interface NodeStatus {
  node: { id: string };
  members: { id: string; state: string; serving: number[] }[];
  partitions: Record<string, PartitionStatus>;
}

/** Reads a node's `/internal/status`. */
export async function nodeStatus(
  node: TestNode,
  secret: string | undefined = node.clusterSecret,
): Promise<NodeStatus> {
  const result = await node.internal(
    "/internal/status",
    secret === undefined ? {} : { authorization: `Bearer ${secret}` },
  );
  if (result.status !== 200) {
    throw new Error(`Cannot read /internal/status: ${result.status} ${result.text}`);
  }
  return result.json;
}

/** Runs a command and returns its exit code and stdout (stderr is kept for error messages). */
export async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(cmd, {
    args,
    ...(options.env === undefined ? {} : { env: options.env }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
