// deno-lint-ignore-file no-console
/**
 * Catch-up watcher (bench/kafka.sh, bench/backup.sh): polls a starting node's
 * `/internal/status` and `/readyz` every `--interval-ms` until every partition's applied offset
 * reaches the given high watermarks, and reports when each stage was reached, in ms after the
 * node process was started (`--t0-ms`, wall clock ms since the epoch, taken by the script just
 * before it started the node).
 *
 * Stages: `status_ms` (the internal port answers), `assigned_ms` (every target partition is
 * listed in the status), `caught_up_ms` (every target partition's applied offset ≥ its high
 * watermark − 1), `ready_ms` (`/readyz` 200). Progress samples (applied messages over time) give
 * the apply rate between 10 % and 90 % of the backlog, free of start-up and tail effects.
 *
 * Usage:
 *   deno run --allow-net=127.0.0.1 --allow-read bench/catchup.ts \
 *     --status-url http://127.0.0.1:8191/internal/status --ready-url http://127.0.0.1:8190/readyz \
 *     --targets FILE --t0-ms <ms> [--interval-ms 100] [--timeout-s 300] [--secret S]
 * FILE is JSON with `high_watermarks` ({partition: next offset}), as bench/backlog.ts prints.
 * Prints one JSON line; exits 3 when the node did not catch up within the timeout.
 *
 * @module
 */
import { flag, required } from "./_args.ts";

interface PartitionStatus {
  readonly state: string;
  readonly offset: number;
}

async function getJson(url: string, secret: string | null): Promise<unknown> {
  const headers: Record<string, string> = secret === null
    ? {}
    : { authorization: `Bearer ${secret}` };
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${url}: ${response.status}`);
  return JSON.parse(text);
}

async function readyStatus(url: string): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await response.body?.cancel();
  return response.status;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const statusUrl = required("status-url", "watch");
  const readyUrl = required("ready-url", "watch");
  const t0 = Number(required("t0-ms", "watch"));
  const intervalMs = Number(flag("interval-ms") ?? 100);
  const timeoutMs = Number(flag("timeout-s") ?? 300) * 1000;
  const secret = flag("secret") ?? null;
  const targets = (JSON.parse(await Deno.readTextFile(required("targets", "watch"))) as {
    high_watermarks: Record<string, number>;
  }).high_watermarks;
  const total = Object.values(targets).reduce((a, b) => a + b, 0);
  const since = () => Date.now() - t0;
  let statusMs: number | null = null;
  let assignedMs: number | null = null;
  let caughtUpMs: number | null = null;
  let readyMs: number | null = null;
  let polls = 0;
  /** [ms since t0, messages applied] samples. */
  const progress: [number, number][] = [];
  while (since() < timeoutMs && (caughtUpMs === null || readyMs === null)) {
    polls++;
    try {
      const status = await getJson(statusUrl, secret) as {
        partitions: Record<string, PartitionStatus>;
      };
      statusMs ??= since();
      let listed = 0;
      let done = 0;
      let applied = 0;
      for (const [p, hw] of Object.entries(targets)) {
        const s = status.partitions[p];
        if (s === undefined) continue;
        listed++;
        applied += Math.min(hw, s.offset + 1);
        if (s.offset >= hw - 1) done++;
      }
      progress.push([since(), applied]);
      if (listed === Object.keys(targets).length) assignedMs ??= since();
      if (done === Object.keys(targets).length) caughtUpMs ??= since();
      if (readyMs === null && (await readyStatus(readyUrl)) === 200) readyMs = since();
    } catch {
      // Not listening yet.
    }
    await sleep(intervalMs);
  }
  // The time the applied count first reached a fraction of the backlog (linear between samples).
  const reached = (fraction: number): number | null => {
    const goal = fraction * total;
    for (let i = 0; i < progress.length; i++) {
      const [t, n] = progress[i]!;
      if (n >= goal) {
        if (i === 0) return t;
        const [pt, pn] = progress[i - 1]!;
        return n === pn ? t : pt + (t - pt) * (goal - pn) / (n - pn);
      }
    }
    return null;
  };
  const t10 = reached(0.1);
  const t90 = reached(0.9);
  const steady = t10 !== null && t90 !== null && t90 > t10
    ? 0.8 * total / ((t90 - t10) / 1000)
    : null;
  console.log(JSON.stringify({
    event: "catch_up",
    messages: total,
    polls,
    status_ms: statusMs,
    assigned_ms: assignedMs,
    caught_up_ms: caughtUpMs,
    ready_ms: readyMs,
    t10_ms: t10 === null ? null : Math.round(t10),
    t90_ms: t90 === null ? null : Math.round(t90),
    steady_messages_per_s: steady === null ? null : Math.round(steady),
    first_applied_ms: progress.find(([, n]) => n > 0)?.[0] ?? null,
  }));
  if (caughtUpMs === null) Deno.exit(3);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
