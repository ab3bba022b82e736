// deno-lint-ignore-file no-console
/**
 * Propagation benchmark client (bench/kafka.sh): how long after a write is acknowledged by node
 * A does it become readable on node B, a replica in another replica group?
 *
 * Writes are started on a fixed schedule (`--rate` per second, open loop: a slow answer does not
 * delay the next write), `--count` in all, each a put of one new key (`prop-<run>-<i>`) to A.
 * When A acknowledges (t_ack), the client sends B a `/records/get` of that key with `after` =
 * the offsets A returned and `wait_ms`: B answers as soon as it has applied that offset
 * (DESIGN §3, consistency token), at t_visible. Propagation = t_visible − t_ack; it includes one
 * get round trip to B, whose cost when nothing has to be waited for is measured separately
 * (`--control` gets of an already-visible key, `control_*` in the output) and is the floor of
 * the measurement. Every answer is checked to hold the written value.
 *
 * Usage:
 *   deno run --allow-net=127.0.0.1 bench/propagation.ts --write-url http://127.0.0.1:8190 \
 *     --read-url http://127.0.0.1:8290 [--count 2000] [--rate 200] [--wait-ms 5000]
 *     [--warmup 200] [--in-flight-max 256] [--control 200] [--metrics-url B's /metrics]
 * The first `--warmup` writes (same schedule, same checks) are not counted: they warm up the JIT
 * and the connections of client and nodes.
 * With `--metrics-url` (B's internal /metrics), the mean of B's `firescroll_apply_lag_seconds`
 * (apply time − the log timestamp A set) over the run is reported too. Prints one JSON line.
 *
 * @module
 */
import { quantile } from "./write.ts";
import { flag, intFlag } from "./_args.ts";

async function post(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, json };
}

interface Histogram {
  readonly sum: number;
  readonly count: number;
  /** Cumulative count per bucket upper bound (`le`, seconds). */
  readonly buckets: Map<string, number>;
}

/** Sum, count and buckets of an unlabelled histogram in Prometheus text. */
async function histogram(url: string, name: string): Promise<Histogram> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
  const value = (suffix: string) => {
    const m = new RegExp(`^${name}_${suffix}(?:\\{\\})? (\\S+)$`, "m").exec(text);
    return m === null ? 0 : Number(m[1]);
  };
  const buckets = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, "gm"))) {
    buckets.set(m[1]!, Number(m[2]));
  }
  return { sum: value("sum"), count: value("count"), buckets };
}

/** Share of the observations between two scrapes at or under each bucket bound, in ms. */
function shares(h0: Histogram, h1: Histogram): Record<string, number> {
  const n = h1.count - h0.count;
  const out: Record<string, number> = {};
  if (n <= 0) return out;
  for (const [le, c1] of h1.buckets) {
    if (le === "+Inf" || Number(le) > 1) continue;
    const share = (c1 - (h0.buckets.get(le) ?? 0)) / n;
    out[`le_${Number(le) * 1000}ms`] = Number(share.toFixed(4));
  }
  return out;
}

function summary(values: number[]): Record<string, number | null> {
  const sorted = Float64Array.from(values).sort();
  const round = (n: number) => Number.isFinite(n) ? Number(n.toFixed(2)) : null;
  return {
    n: sorted.length,
    p50: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted.length === 0 ? NaN : sorted[sorted.length - 1]!),
    mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}

async function main(): Promise<void> {
  const writeUrl = (flag("write-url") ?? "http://127.0.0.1:8190").replace(/\/$/, "");
  const readUrl = (flag("read-url") ?? "http://127.0.0.1:8290").replace(/\/$/, "");
  const count = intFlag("count", {
    fallback: 2000,
    min: 1,
    max: 1_000_000,
    what: "measure propagation",
  });
  const rate = intFlag("rate", {
    fallback: 200,
    min: 1,
    max: 100_000,
    what: "measure propagation",
  });
  const waitMs = intFlag("wait-ms", {
    fallback: 5000,
    min: 1,
    max: 60_000,
    what: "measure propagation",
  });
  const inFlightMax = intFlag("in-flight-max", {
    fallback: 256,
    min: 1,
    max: 10_000,
    what: "measure propagation",
  });
  const controls = intFlag("control", {
    fallback: 200,
    min: 0,
    max: 100_000,
    what: "measure propagation",
  });
  const warmup = intFlag("warmup", {
    fallback: 200,
    min: 0,
    max: 1_000_000,
    what: "measure propagation",
  });
  const metricsUrl = flag("metrics-url") ?? null;
  const run = Date.now().toString(36);

  const ack: number[] = [];
  const propagation: number[] = [];
  const endToEnd: number[] = [];
  const errors: Record<string, number> = {};
  const error = (kind: string): void => {
    errors[kind] = (errors[kind] ?? 0) + 1;
  };
  let inFlight = 0;
  let skipped = 0;
  let lastVisible: { pk: string; after: Record<string, number> } | null = null;

  const one = async (i: number, measured: boolean): Promise<void> => {
    const pk = `prop-${run}-${i}`;
    const t0 = performance.now();
    const put = await post(`${writeUrl}/records/put`, { records: [{ pk, sk: "p", data: { i } }] });
    const t1 = performance.now();
    if (put.status !== 200) return error(`put_${put.status}`);
    const after = (put.json as { offsets: Record<string, number> }).offsets;
    const get = await post(`${readUrl}/records/get`, {
      records: [{ pk, sk: "p" }],
      after,
      wait_ms: waitMs,
    });
    const t2 = performance.now();
    if (get.status !== 200) return error(`get_${get.status}`);
    const records = (get.json as { records: { data: { i: number } }[] }).records;
    if (records.length !== 1 || records[0]!.data.i !== i) return error("wrong_answer");
    lastVisible = { pk, after };
    if (!measured) return;
    ack.push(t1 - t0);
    propagation.push(t2 - t1);
    endToEnd.push(t2 - t0);
  };

  const schedule = async (first: number, n: number, measured: boolean) => {
    const tasks: Promise<void>[] = [];
    const started = performance.now();
    // Bounded in count (n writes) and time (the schedule plus the last answers' timeouts).
    for (let i = 0; i < n; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (inFlight >= inFlightMax) {
        if (measured) skipped++;
        continue;
      }
      inFlight++;
      tasks.push(
        one(first + i, measured)
          .catch((e) => error(e instanceof Error ? e.name : "error"))
          .finally(() => inFlight--),
      );
    }
    await Promise.all(tasks);
  };

  if (warmup > 0) await schedule(0, warmup, false);
  const warmupErrors = { ...errors };
  for (const kind of Object.keys(errors)) delete errors[kind];
  const lag0 = metricsUrl === null
    ? null
    : await histogram(metricsUrl, "firescroll_apply_lag_seconds");
  const started = performance.now();
  await schedule(warmup, count, true);
  const seconds = (performance.now() - started) / 1000;
  const lag1 = metricsUrl === null
    ? null
    : await histogram(metricsUrl, "firescroll_apply_lag_seconds");

  // The floor: a get with `after` on B that has nothing to wait for, one at a time.
  const control: number[] = [];
  const probe = lastVisible as { pk: string; after: Record<string, number> } | null;
  for (let i = 0; probe !== null && i < controls; i++) {
    const t0 = performance.now();
    const get = await post(`${readUrl}/records/get`, {
      records: [{ pk: probe.pk, sk: "p" }],
      after: probe.after,
      wait_ms: waitMs,
    });
    if (get.status === 200) control.push(performance.now() - t0);
    else error(`control_${get.status}`);
  }

  console.log(JSON.stringify({
    event: "propagation",
    count,
    rate,
    warmup,
    warmup_errors: warmupErrors,
    seconds: Number(seconds.toFixed(2)),
    achieved_rate: Math.round(ack.length / seconds),
    skipped,
    errors,
    ack_ms: summary(ack),
    propagation_ms: summary(propagation),
    write_to_visible_ms: summary(endToEnd),
    control_get_ms: summary(control),
    apply_lag_mean_ms: lag0 === null || lag1 === null || lag1.count === lag0.count
      ? null
      : Number(((lag1.sum - lag0.sum) / (lag1.count - lag0.count) * 1000).toFixed(2)),
    apply_lag_samples: lag0 === null || lag1 === null ? null : lag1.count - lag0.count,
    apply_lag_shares: lag0 === null || lag1 === null ? null : shares(lag0, lag1),
  }));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
