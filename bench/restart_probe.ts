// deno-lint-ignore-file no-console
/**
 * The clients' view of hand-over restarts (bench/restart.sh): how long no request completes while
 * a node is replaced by a `TAKEOVER=1` successor, and how long writes pause.
 *
 * Readers: `--conns` keep-alive connections (one `Deno.HttpClient` each, HTTP/1.1), each sending a
 * one-key `/records/get` of a seeded key (`user-<i>`, sk `profile`, as bench/seed.ts writes them),
 * waiting for the answer, then `--interval-ms` before the next. Writers: `--writers` connections
 * doing sequential one-record puts (pk `probe-<w>`, sk `n-<i>`). No request is retried: an error,
 * a timeout, a non-200 answer or a read whose record is not the seeded one (bench/seed.ts's
 * `recordData`) is counted as failed. Every completion time is recorded.
 *
 * Runs until SIGINT/SIGTERM or `--duration-s`, then checks that every acknowledged write is
 * readable with its data, reads the restart windows from `--windows` (one line per restart:
 * `<start_ms> <end_ms>`, ms since the epoch, as bench/restart.sh writes them) and prints one JSON
 * line: per window the longest interval without a completed read (`gap_ms`, and `gap_began_at`,
 * unix ms, to set against the nodes' logs), without an
 * acknowledged write (`write_gap_ms`) and the failures in it; the same outside every window
 * (`baseline_*`); totals and failure messages.
 *
 * Usage:
 *   deno run --allow-net=127.0.0.1 --allow-read bench/restart_probe.ts --url http://127.0.0.1:28590 \
 *     --records 20000 --windows windows.txt [--conns 4] [--interval-ms 1] [--writers 1]
 *     [--duration-s 600] [--timeout-ms 15000]
 *
 * @module
 */
import { recordData } from "./seed.ts";
import { intFlag, required } from "./_args.ts";

/** Bounds on what is recorded: completion times per kind, and failure messages kept. */
const COMPLETIONS_MAX = 4_000_000;
const FAILURES_KEPT_MAX = 1000;
/** Records per verification read (RECORDS_PER_REQUEST_MAX defaults to 1000). */
const VERIFY_CHUNK = 500;

interface Options {
  readonly url: string;
  readonly records: number;
  readonly windows: string;
  readonly conns: number;
  readonly intervalMs: number;
  readonly writers: number;
  readonly durationS: number;
  readonly timeoutMs: number;
}

function options(): Options {
  const what = "probe restarts";
  return {
    url: required("url", what).replace(/\/$/, ""),
    records: intFlag("records", { fallback: 100_000, min: 1, max: 100_000_000, what }),
    windows: required("windows", what),
    conns: intFlag("conns", { fallback: 4, min: 1, max: 256, what }),
    intervalMs: intFlag("interval-ms", { fallback: 1, min: 0, max: 10_000, what }),
    writers: intFlag("writers", { fallback: 1, min: 0, max: 64, what }),
    durationS: intFlag("duration-s", { fallback: 600, min: 1, max: 86_400, what }),
    timeoutMs: intFlag("timeout-ms", { fallback: 15_000, min: 100, max: 600_000, what }),
  };
}

/** Milliseconds since the epoch, sub-millisecond. */
const nowMs = () => performance.timeOrigin + performance.now();

/** A failed request: when it ended and what the client saw. */
interface Failure {
  readonly at: number;
  readonly what: string;
}

/** What the probe saw (a window's failures are counted among the first kept ones). */
class Seen {
  readonly reads: number[] = [];
  readonly acks: number[] = [];
  readonly failures: Failure[] = [];
  readonly failureCounts = new Map<string, number>();
  sent = 0;

  fail(what: string): void {
    const at = nowMs();
    if (this.failures.length < FAILURES_KEPT_MAX) this.failures.push({ at, what });
    const kind = what.slice(0, 160);
    this.failureCounts.set(kind, (this.failureCounts.get(kind) ?? 0) + 1);
  }
}

/** An error with its causes (fetch's "fetch failed" says why in `cause`). */
function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" <- ");
}

async function post(
  client: Deno.HttpClient,
  url: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  const response = await fetch(url, {
    client,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, text: await response.text() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The longest interval between consecutive `times` (sorted) that overlaps [from, to]. */
function longestGap(times: readonly number[], from: number, to: number): number {
  return longestGapAt(times, from, to).gap;
}

/** {@linkcode longestGap} and the time (unix ms) it began, to set against the nodes' logs. */
function longestGapAt(
  times: readonly number[],
  from: number,
  to: number,
): { gap: number; at: number | null } {
  let longest = 0;
  let at: number | null = null;
  for (let i = 1; i < times.length; i++) {
    const a = times[i - 1]!;
    const b = times[i]!;
    if (b < from || a > to) continue;
    if (b - a > longest) {
      longest = b - a;
      at = a;
    }
  }
  return { gap: longest, at };
}

/** The longest interval between consecutive `times` that overlaps none of `windows`. */
function longestGapOutside(times: readonly number[], windows: readonly [number, number][]): number {
  let longest = 0;
  for (let i = 1; i < times.length; i++) {
    const a = times[i - 1]!;
    const b = times[i]!;
    if (windows.some(([from, to]) => !(b < from || a > to))) continue;
    longest = Math.max(longest, b - a);
  }
  return longest;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const o = options();
  const seen = new Seen();
  let running = true;
  const stop = () => running = false;
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const deadline = Date.now() + o.durationS * 1000;
  const offsets: Record<string, number> = {};
  const acked: { pk: string; sk: string; n: number }[] = [];

  const reader = async (c: number) => {
    const client = Deno.createHttpClient({ http2: false });
    // A fixed sequence per connection, so reruns read the same keys.
    let key = (c * 7919) % o.records;
    try {
      while (running && Date.now() < deadline) {
        key = (key + 104_729) % o.records;
        seen.sent++;
        try {
          const r = await post(client, `${o.url}/records/get`, {
            records: [{ pk: `user-${key}`, sk: "profile" }],
          }, o.timeoutMs);
          const records = r.status === 200
            ? (JSON.parse(r.text).records as { pk: string; data: unknown }[] | undefined)
            : undefined;
          if (r.status !== 200) seen.fail(`get ${r.status} ${r.text}`);
          else if (records?.length !== 1) seen.fail(`get missing user-${key}`);
          // What it read, not only that it read: during a hand-over the old process answers
          // from files the new one is already writing.
          else if (
            records[0]!.pk !== `user-${key}` ||
            JSON.stringify(records[0]!.data) !== JSON.stringify(recordData(key))
          ) seen.fail(`get wrong data for user-${key}`);
          else if (seen.reads.length < COMPLETIONS_MAX) seen.reads.push(nowMs());
        } catch (error) {
          seen.fail(`get ${describe(error)}`);
        }
        if (o.intervalMs > 0) await sleep(o.intervalMs);
      }
    } finally {
      client.close();
    }
  };

  const writer = async (w: number) => {
    const client = Deno.createHttpClient({ http2: false });
    const pk = `probe-${w}`;
    try {
      for (let n = 0; running && Date.now() < deadline && n < COMPLETIONS_MAX; n++) {
        seen.sent++;
        const sk = `n-${n}`;
        try {
          const r = await post(client, `${o.url}/records/put`, {
            records: [{ pk, sk, data: { n } }],
          }, o.timeoutMs);
          if (r.status !== 200) {
            seen.fail(`put ${r.status} ${r.text}`);
            continue;
          }
          seen.acks.push(nowMs());
          acked.push({ pk, sk, n });
          for (
            const [p, off] of Object.entries(JSON.parse(r.text).offsets as Record<string, number>)
          ) {
            offsets[p] = Math.max(offsets[p] ?? -1, off);
          }
        } catch (error) {
          seen.fail(`put ${describe(error)}`);
        }
      }
    } finally {
      client.close();
    }
  };

  const started = nowMs();
  await Promise.all([
    ...Array.from({ length: o.conns }, (_, c) => reader(c)),
    ...Array.from({ length: o.writers }, (_, w) => writer(w)),
  ]);
  const ended = nowMs();

  // Every acknowledged write, read back (waiting for the apply).
  let missing = 0;
  let wrong = 0;
  const verifier = Deno.createHttpClient({ http2: false });
  try {
    for (let start = 0; start < acked.length; start += VERIFY_CHUNK) {
      const chunk = acked.slice(start, start + VERIFY_CHUNK);
      const r = await post(verifier, `${o.url}/records/get`, {
        records: chunk.map(({ pk, sk }) => ({ pk, sk })),
        after: offsets,
        wait_ms: 10_000,
      }, 30_000);
      if (r.status !== 200) throw new Error(`Cannot verify the writes: ${r.status} ${r.text}`);
      const body = JSON.parse(r.text) as {
        records: { pk: string; sk: string; data: { n?: unknown } }[];
        missing: unknown[];
      };
      missing += body.missing.length;
      const got = new Map(body.records.map((rec) => [`${rec.pk}/${rec.sk}`, rec.data?.n]));
      for (const a of chunk) {
        if (got.has(`${a.pk}/${a.sk}`) && got.get(`${a.pk}/${a.sk}`) !== a.n) wrong++;
      }
    }
  } finally {
    verifier.close();
  }

  const windows: [number, number][] = (await Deno.readTextFile(o.windows)).split("\n")
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter((parts) => parts.length === 2 && parts.every(Number.isFinite))
    .map(([a, b]) => [a!, b!]);
  const reads = seen.reads.sort((a, b) => a - b);
  const acks = seen.acks.sort((a, b) => a - b);
  const seconds = (ended - started) / 1000;
  console.log(JSON.stringify({
    duration_s: round1(seconds),
    conns: o.conns,
    interval_ms: o.intervalMs,
    writers: o.writers,
    sent: seen.sent,
    reads_ok: reads.length,
    reads_per_s: Math.round(reads.length / seconds),
    writes_acked: acked.length,
    writes_missing: missing,
    writes_wrong: wrong,
    failed: [...seen.failureCounts.values()].reduce((a, b) => a + b, 0),
    failures: Object.fromEntries(seen.failureCounts),
    baseline_gap_ms: round1(longestGapOutside(reads, windows)),
    baseline_write_gap_ms: round1(longestGapOutside(acks, windows)),
    windows: windows.map(([from, to]) => ({
      start_ms: from,
      end_ms: to,
      gap_ms: round1(longestGap(reads, from, to)),
      gap_began_at: longestGapAt(reads, from, to).at,
      write_gap_ms: o.writers > 0 ? round1(longestGap(acks, from, to)) : null,
      failed: seen.failures.filter((f) => f.at >= from && f.at <= to).length,
    })),
  }));
}

if (import.meta.main) await main();
