/**
 * Structured logs: one JSON line per state change on stdout. Never called per request on hot
 * paths. Events below the process's level (`LOG_LEVEL`, set once at start with
 * {@linkcode setLogLevel}; `info` until then) are not written.
 */

/** Severity of a log event. */
export type Level = "debug" | "info" | "warn" | "error";

/** Every level, least severe first. */
export const LEVELS: readonly Level[] = ["debug", "info", "warn", "error"];

const RANK: Readonly<Record<Level, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

/** The least severe level written. One per thread: each serving thread sets its own. */
let threshold: number = RANK.info;

const encoder = new TextEncoder();

/** Writes events of `level` and above from now on (`LOG_LEVEL`); the default is `info`. */
export function setLogLevel(level: Level): void {
  const rank = RANK[level];
  if (rank === undefined) throw new TypeError(`Cannot set the log level: no level "${level}"`);
  threshold = rank;
}

/** Writes one event as a JSON line, unless `level` is below the log level. */
export function log(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  if (RANK[level] < threshold) return;
  const line = JSON.stringify({ ts: new Date().toISOString(), level, event, ...fields }) + "\n";
  const bytes = encoder.encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** The message of an unknown thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The fields every progress line carries: how far, how fast, how long still. */
export interface Progress {
  readonly done: number;
  readonly total: number;
  /** Units per second so far. */
  readonly per_second: number;
  /** Seconds left at that rate; null before anything was done. */
  readonly eta_sec: number | null;
}

/** {@linkcode Progress} of `done` of `total` units after `elapsedMs`. */
export function progress(done: number, total: number, elapsedMs: number): Progress {
  const rate = done / Math.max(0.001, elapsedMs / 1000);
  return {
    done,
    total,
    per_second: Math.round(rate),
    eta_sec: rate > 0 ? Math.round(Math.max(0, total - done) / rate) : null,
  };
}
