/**
 * Verification of LMDB files before the node maps them. lmdb-js does not always throw on a
 * damaged file: some damage (a bad meta page, a page number pointing outside the file) crashes
 * the whole process with SIGSEGV. So the walk runs in a child process (`verify_main.ts`): a
 * child that reports a problem, exits non-zero, dies by a signal or outlives its time bound
 * means the file is damaged, and the node itself never touched it.
 *
 * A partition file is walked whole (every record, through every branch and leaf page that holds
 * one), keys must be valid and ascending, the count must match LMDB's, and the content digest
 * recomputed from the records must equal the one in the meta, whose own checksum must hold: a
 * flipped byte inside a value is found too, not only broken page structure. The embedded log is
 * walked the same way (keys, offsets contiguous per partition); it has no digest.
 */
import { open } from "lmdb";
import {
  DIGEST_PATTERN,
  lmdbHeaderProblem,
  metaCheck,
  STORE_FORMAT,
  toHex,
} from "./partition_store.ts";
import { isRecordValue } from "./record_codec.ts";
import { RECORD_HASH_BYTES, xorRecordHash } from "./record_hash.ts";
import { compareBytes } from "./record_reads.ts";

/** What kind of file a verifier walks. */
export type VerifyKind = "partition" | "log";

/** The outcome of verifying one file. */
export interface VerifyResult {
  /** The file is usable. */
  readonly ok: boolean;
  /** Why not, when not. */
  readonly reason: string | null;
  /** Time the verification took, ms. */
  readonly ms: number;
}

/** Raised when the verifier process itself could not run (not a verdict on the file). */
export class VerifierUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VerifierUnavailableError";
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function walkProblem(kind: VerifyKind, path: string): string | null {
  const header = lmdbHeaderProblem(path);
  if (header !== null) return header;
  const env = open({ path, maxDbs: 8, readOnly: true });
  try {
    return kind === "partition" ? partitionProblem(env) : logProblem(env);
  } finally {
    env.close();
  }
}

type Env = ReturnType<typeof open>;

function partitionProblem(env: Env): string | null {
  const meta = env.openDB<unknown, string>({ name: "meta", encoding: "json" });
  const records = env.openDB<Uint8Array, Uint8Array>({
    name: "records",
    keyEncoding: "binary",
    encoding: "binary",
  });
  // A read-only open does not create named DBs: a missing one is `undefined`.
  if ((meta as unknown) === undefined) {
    // Created but never initialised (a crash inside the first open): nothing to lose.
    return records === undefined ? null : "it has records but no meta";
  }
  if ((records as unknown) === undefined) return "it has a meta but no records";
  const partition = meta.get("partition");
  const namespace = meta.get("namespace");
  const format = meta.get("format");
  const offset = meta.get("offset");
  const chain = meta.get("chain");
  const digest = meta.get("digest");
  if (partition === undefined && offset === undefined) {
    // Created but never initialised (a crash inside the first open): nothing to lose.
    return null;
  }
  if (
    typeof partition !== "number" || typeof namespace !== "string" || format !== STORE_FORMAT ||
    typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < -1 ||
    typeof chain !== "string" || !/^[0-9a-f]{64}$/.test(chain)
  ) {
    return "its meta is missing or malformed";
  }
  if (digest !== undefined) {
    if (typeof digest !== "string" || !DIGEST_PATTERN.test(digest)) {
      return "its meta digest is malformed";
    }
    if (meta.get("check") !== metaCheck(partition, namespace, format, offset, chain, digest)) {
      return "its meta checksum does not match its meta values";
    }
  }
  const computed = new Uint8Array(RECORD_HASH_BYTES);
  let previous: Uint8Array | null = null;
  let count = 0;
  for (const { key, value } of records.getRange({})) {
    const k = key as Uint8Array;
    const v = value as Uint8Array;
    if (previous !== null && compareBytes(previous, k) >= 0) {
      return `its record keys are out of order at record ${count}`;
    }
    if (k.length < 2 || 2 + ((k[0]! << 8) | k[1]!) > k.length) {
      return `record ${count} has a malformed key`;
    }
    try {
      strictUtf8.decode(k.subarray(2));
    } catch {
      return `record ${count} has a key that is not UTF-8`;
    }
    if (!isRecordValue(v)) return `record ${count} has a malformed value`;
    xorRecordHash(computed, k, v);
    previous = k.slice();
    count++;
  }
  const stored = (records.getStats() as { entryCount: number }).entryCount;
  if (stored !== count) return `LMDB counts ${stored} records but the walk found ${count}`;
  if (digest !== undefined && toHex(computed) !== digest) {
    return "its records do not match the content digest in its meta";
  }
  return null;
}

function logProblem(env: Env): string | null {
  const meta = env.openDB<unknown, string>({ name: "meta", encoding: "json" });
  const entries = env.openDB<Uint8Array, Uint8Array>({
    name: "entries",
    keyEncoding: "binary",
    encoding: "binary",
  });
  // A read-only open does not create named DBs: a missing one is `undefined`.
  if ((entries as unknown) === undefined) {
    return (meta as unknown) === undefined ? null : "it has a meta but no entries";
  }
  const partitions = (meta as unknown) === undefined ? undefined : meta.get("partitions");
  if (partitions !== undefined && (typeof partitions !== "number" || partitions < 1)) {
    return "its meta is malformed";
  }
  let partition = -1;
  let next = 0;
  let count = 0;
  for (const { key, value } of entries.getRange({})) {
    const k = key as Uint8Array;
    const v = value as Uint8Array;
    if (k.length !== 12) return `entry ${count} has a malformed key`;
    const view = new DataView(k.buffer, k.byteOffset, k.length);
    const p = view.getUint32(0, false);
    const offset = Number(view.getBigUint64(4, false));
    if (p !== partition) {
      if (p < partition) return `its entries are out of order at entry ${count}`;
      partition = p;
      next = offset;
    }
    if (offset !== next) return `partition ${p} skips from offset ${next} to ${offset}`;
    if (v.length < 8) return `entry ${count} (partition ${p}, offset ${offset}) is too short`;
    next = offset + 1;
    count++;
  }
  const stored = (entries.getStats() as { entryCount: number }).entryCount;
  if (stored !== count) return `LMDB counts ${stored} entries but the walk found ${count}`;
  return null;
}

/**
 * Walks `path` in this process and returns why it is damaged, or null. May crash the process on
 * some damage: call it only in a verifier child ({@linkcode verifyInChild}).
 */
export function verifyHere(kind: VerifyKind, path: string): string | null {
  try {
    return walkProblem(kind, path);
  } catch (error) {
    return `reading it failed: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Marker the child prints once its modules loaded: a failure before it is not about the file. */
export const VERIFIER_STARTED = "firescroll-verifier-started";

const SCRIPT = decodeURIComponent(new URL("./verify_main.ts", import.meta.url).pathname);
/** The child runs from the repository root, so it finds deno.json and node_modules. */
const REPO_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
/** Most output bytes read from a child (it prints two short lines). */
const OUTPUT_MAX = 64 * 1024;

async function readBounded(stream: ReadableStream<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    if (bytes < OUTPUT_MAX) chunks.push(chunk.subarray(0, OUTPUT_MAX - bytes));
    bytes += chunk.length;
  }
  const all = new Uint8Array(Math.min(bytes, OUTPUT_MAX));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

/**
 * Verifies `path` in a child Deno process that opens it read-only and walks it, killed after
 * `timeoutMs`. Throws {@linkcode VerifierUnavailableError} only when the child could not start
 * its work at all (so an environment problem never condemns good files).
 */
export async function verifyInChild(
  kind: VerifyKind,
  path: string,
  timeoutMs: number,
): Promise<VerifyResult> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    // lmdb-js is a Node-API addon (--allow-ffi) and reads its settings from the environment.
    args: ["run", "--allow-read", "--allow-ffi", "--allow-env", "--no-prompt", SCRIPT, kind, path],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, timeoutMs);
  const [stdout, stderr, status] = await Promise.all([
    readBounded(child.stdout),
    readBounded(child.stderr),
    child.status,
  ]).finally(() => clearTimeout(timer));
  const ms = Math.round(performance.now() - started);
  if (timedOut) {
    return { ok: false, reason: `verification took longer than ${timeoutMs} ms`, ms };
  }
  const began = stdout.includes(VERIFIER_STARTED);
  if (status.signal !== null) {
    return { ok: false, reason: `the verifier crashed on it (${status.signal})`, ms };
  }
  if (!began) {
    const last = stderr.trim().split("\n").slice(-3).join(" | ");
    throw new VerifierUnavailableError(
      `the file verifier could not run (exit ${status.code}): ${last}`,
    );
  }
  const line = stdout.trim().split("\n").pop() ?? "";
  let verdict: { ok?: unknown; reason?: unknown } = {};
  try {
    verdict = JSON.parse(line);
  } catch {
    // No verdict: judged by the exit code below.
  }
  if (status.code === 0 && verdict.ok === true) return { ok: true, reason: null, ms };
  const reason = typeof verdict.reason === "string"
    ? verdict.reason
    : `the verifier exited with code ${status.code}`;
  return { ok: false, reason, ms };
}

/**
 * Runs `work` over `items` with at most `concurrency` in flight (verifier children are whole
 * processes: a bound keeps a start on a small machine from forking one per partition at once).
 */
export async function boundedAll<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}
