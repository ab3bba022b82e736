/**
 * `wait-ready`: polls the public `GET /readyz` (200 `{"status":"ready"}` once every partition the
 * node owns serves; 503 before) until it answers 200, or gives up after `--timeout-ms` with exit 4.
 * For scripts and container health checks: `fs wait-ready && fs put …`.
 *
 * @module
 */
import type { Client } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";
import type { Io } from "./output.ts";

/** How long `wait-ready` waits when `--timeout-ms` does not say. */
export const READY_TIMEOUT_MS = 60_000;

/** Bound on one poll: a node that accepts connections but does not answer is polled again. */
const POLL_TIMEOUT_MS = 2_000;

/** The time and the pause `wait-ready` uses (tests pass their own). */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * Polls until ready (prints the answer: `ready` pretty, the JSON with `json`) or throws exit 4
 * after `timeoutMs`, naming what the last poll saw (a 503, or the connection error).
 */
export async function waitReady(
  io: Io,
  json: boolean,
  client: Client,
  intervalMs: number,
  timeoutMs: number,
  clock: Clock = realClock,
): Promise<void> {
  const start = clock.now();
  const deadline = start + timeoutMs;
  let last = "no answer yet";
  while (true) {
    const pollMs = Math.max(1, Math.min(POLL_TIMEOUT_MS, deadline - clock.now()));
    try {
      const answer = await client.call("GET", "/readyz", null, pollMs);
      io.out(json ? answer.trim() + "\n" : `ready after ${clock.now() - start} ms\n`);
      return;
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      // Not ready is a 503 (`http_503`, its body is no problem); a node that is down or still
      // binding cannot be reached. Any other answer (a 404 from the internal port) will not change.
      if (error.exitCode !== EXIT.unreachable && !/^http_5/.test(error.code)) throw error;
      last = error.line.replace(/^error: /, "");
    }
    if (clock.now() + intervalMs > deadline) break;
    await clock.sleep(intervalMs);
  }
  throw new CliError(
    EXIT.unreachable,
    "timeout",
    `Cannot see ${client.base} ready within ${timeoutMs} ms (last: ${last})`,
  );
}
