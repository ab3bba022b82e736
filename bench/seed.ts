// deno-lint-ignore-file no-console
/**
 * Seeds a running node with N records for the read benchmark, then waits until the node has
 * applied every one of them, so that a benchmark started afterwards measures a caught-up node.
 *
 * Records: pk = `user-<i>`, sk = `profile`, data ≈ 100 bytes of JSON, i in [0, N). They are sent
 * to `/records/put` in batches of `--batch` records, `--concurrency` requests in flight. The
 * highest offset acknowledged per partition is then passed as `after` (with `wait_ms`) to one
 * `/records/get` that reads one seeded key of every partition written: its 200 proves the node has
 * applied the last write of each partition (DESIGN §3, consistency token).
 *
 * Usage:
 *   deno run --allow-net=127.0.0.1 --allow-env bench/seed.ts \
 *     [--url http://127.0.0.1:8190] [--records 100000] [--batch 500] [--concurrency 4]
 *     [--partitions 16] [--timeout-s 300] [--catch-up-timeout-s 60]
 *     [--status-url http://127.0.0.1:8191/internal/status]
 * Each flag falls back to an env var: SEED_URL, SEED_RECORDS, SEED_BATCH, SEED_CONCURRENCY,
 * PARTITIONS (the node's own variable), SEED_TIMEOUT_S, SEED_CATCH_UP_TIMEOUT_S,
 * SEED_STATUS_URL. With a status URL, the records the node holds are counted afterwards
 * (`records_on_node`, with a warning on stderr when it is not N). Prints one JSON summary line
 * on stdout. Exits 1 on any non-200 answer or on timeout, and 3 when the node has not applied
 * the last acknowledged offsets within the catch-up timeout.
 *
 * @module
 */
import { partitionOf } from "../src/keys/mod.ts";
import { flag, intFlag } from "./_args.ts";

interface Options {
  readonly url: string;
  readonly records: number;
  readonly batch: number;
  readonly concurrency: number;
  readonly partitions: number;
  readonly timeoutS: number;
  readonly catchUpTimeoutS: number;
  readonly statusUrl: string | null;
}

function options(): Options {
  return {
    url: (flag("url") ?? Deno.env.get("SEED_URL") ?? "http://127.0.0.1:8190").replace(/\/$/, ""),
    records: intFlag("records", {
      env: "SEED_RECORDS",
      fallback: 100_000,
      min: 1,
      max: 100_000_000,
      what: "seed",
    }),
    // RECORDS_PER_REQUEST_MAX defaults to 1000.
    batch: intFlag("batch", {
      env: "SEED_BATCH",
      fallback: 500,
      min: 1,
      max: 100_000,
      what: "seed",
    }),
    concurrency: intFlag("concurrency", {
      env: "SEED_CONCURRENCY",
      fallback: 4,
      min: 1,
      max: 256,
      what: "seed",
    }),
    partitions: intFlag("partitions", {
      env: "PARTITIONS",
      fallback: 16,
      min: 1,
      max: 4096,
      what: "seed",
    }),
    timeoutS: intFlag("timeout-s", {
      env: "SEED_TIMEOUT_S",
      fallback: 300,
      min: 1,
      max: 86_400,
      what: "seed",
    }),
    catchUpTimeoutS: intFlag("catch-up-timeout-s", {
      env: "SEED_CATCH_UP_TIMEOUT_S",
      fallback: 60,
      min: 1,
      max: 86_400,
      what: "seed",
    }),
    statusUrl: flag("status-url") ?? Deno.env.get("SEED_STATUS_URL") ?? null,
  };
}

/** ≈100 bytes of JSON once serialized, stable per i so reruns write identical data. */
export function recordData(i: number): Record<string, unknown> {
  return {
    name: `User ${i}`,
    email: `user-${i}@example.com`,
    plan: i % 3 === 0 ? "pro" : "free",
    region: ["ams", "iad", "sin", "syd"][i % 4],
    n: i,
  };
}

async function post(url: string, body: string, signal: AbortSignal): Promise<unknown> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    signal,
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`Cannot seed: ${url} answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return JSON.parse(text);
}

async function seed(o: Options, signal: AbortSignal): Promise<Map<number, number>> {
  const maxOffsets = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < o.records) {
      const start = next;
      const end = Math.min(o.records, start + o.batch);
      next = end;
      const records = [];
      for (let i = start; i < end; i++) {
        records.push({ pk: `user-${i}`, sk: "profile", data: recordData(i) });
      }
      const answer = await post(`${o.url}/records/put`, JSON.stringify({ records }), signal) as {
        offsets: Record<string, number>;
      };
      for (const [p, offset] of Object.entries(answer.offsets)) {
        const partition = Number(p);
        if (partition >= o.partitions) {
          throw new Error(
            `Cannot seed: the node wrote to partition ${partition}; pass --partitions (PARTITIONS) as the node has it`,
          );
        }
        if ((maxOffsets.get(partition) ?? -1) < offset) maxOffsets.set(partition, offset);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return maxOffsets;
}

/** One seeded key per partition in `partitions` (the last one written there). */
function probeKeys(o: Options, partitions: ReadonlySet<number>): { pk: string; sk: string }[] {
  const found = new Map<number, string>();
  for (let i = o.records - 1; i >= 0 && found.size < partitions.size; i--) {
    const pk = `user-${i}`;
    const p = partitionOf(pk, o.partitions);
    if (partitions.has(p) && !found.has(p)) found.set(p, pk);
  }
  return [...found.values()].map((pk) => ({ pk, sk: "profile" }));
}

/** The node did not apply the acknowledged offsets in time (exit code 3). */
class NotCaughtUpError extends Error {}

async function waitCaughtUp(
  o: Options,
  maxOffsets: ReadonlyMap<number, number>,
  signal: AbortSignal,
): Promise<number> {
  const after = Object.fromEntries([...maxOffsets].map(([p, offset]) => [String(p), offset]));
  const keys = probeKeys(o, new Set(maxOffsets.keys()));
  const deadline = performance.now() + o.catchUpTimeoutS * 1000;
  let attempts = 0;
  while (true) {
    attempts++;
    const left = Math.round(deadline - performance.now());
    if (left <= 0) {
      throw new NotCaughtUpError(
        `Cannot confirm the seed: the node has not applied offsets ${
          JSON.stringify(after)
        } within ${o.catchUpTimeoutS} s of the last acknowledgement`,
      );
    }
    const body = JSON.stringify({ records: keys, after, wait_ms: Math.min(5000, left) });
    const response = await fetch(`${o.url}/records/get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal,
    });
    const text = await response.text();
    if (response.status === 504) continue; // not_caught_up within wait_ms: ask again.
    if (response.status !== 200) {
      throw new Error(`Cannot confirm the seed: /records/get answered ${response.status}: ${text}`);
    }
    const answer = JSON.parse(text) as { records: unknown[]; missing: unknown[] };
    if (answer.missing.length > 0) {
      throw new Error(`Cannot confirm the seed: caught up but missing ${text}`);
    }
    return attempts;
  }
}

/** Records the node holds, summed over its partitions (`/internal/status`). */
async function recordsOnNode(url: string, signal: AbortSignal): Promise<number> {
  const response = await fetch(url, { signal });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`Cannot read ${url}: ${response.status} ${text}`);
  const status = JSON.parse(text) as { partitions: Record<string, { records: number }> };
  return Object.values(status.partitions).reduce((sum, p) => sum + p.records, 0);
}

async function main(): Promise<void> {
  const o = options();
  const signal = AbortSignal.timeout(o.timeoutS * 1000);
  const started = performance.now();
  const maxOffsets = await seed(o, signal);
  const written = performance.now();
  const attempts = await waitCaughtUp(o, maxOffsets, signal);
  const done = performance.now();
  const onNode = o.statusUrl === null ? null : await recordsOnNode(o.statusUrl, signal);
  if (onNode !== null && onNode !== o.records) {
    console.error(
      `WARNING: the node holds ${onNode} records after catching up, not ${o.records}: ` +
        "acknowledged writes were not applied (or the DB was not fresh)",
    );
  }
  console.log(JSON.stringify({
    event: "seeded",
    records: o.records,
    batch: o.batch,
    concurrency: o.concurrency,
    partitions_written: maxOffsets.size,
    write_s: Number(((written - started) / 1000).toFixed(2)),
    records_per_s: Math.round(o.records / ((written - started) / 1000)),
    catch_up_s: Number(((done - written) / 1000).toFixed(2)),
    catch_up_attempts: attempts,
    records_on_node: onNode,
  }));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(error instanceof NotCaughtUpError ? 3 : 1);
  }
}
