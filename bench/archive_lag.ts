// deno-lint-ignore-file no-console
/**
 * Archive lag probe: puts at a steady rate against a running node with the log archive on, and
 * measures for every acknowledged put the time until S3 holds a segment of its partition that
 * reaches its offset (ack → archived), by listing each partition's `log/` prefix every
 * `--poll-ms`. Also reads the node's `firescroll_archive_uploaded_bytes_total` before and after,
 * for the bytes the archive uploaded per put and per hour at this rate.
 *
 * Each put is one record (`pk` one of `--keys` existing keys, so the partition's size stays put:
 * updates, as a config database sees them), one log message.
 *
 * Usage:
 *   deno run --allow-all bench/archive_lag.ts --url http://127.0.0.1:28890 \
 *     --metrics-url http://127.0.0.1:28891/metrics --namespace NS --partitions 1 \
 *     [--rate 100] [--duration-s 60] [--keys 1000000] [--poll-ms 250] [--drain-timeout-s 60]
 *     [--json FILE]
 * S3 comes from the node's variables (S3_ENDPOINT, S3_BUCKET, AWS_*), read from the environment.
 *
 * @module
 */
import { archiveSegments, S3ObjectStore } from "../src/backup/mod.ts";
import { loadConfig } from "../src/config/mod.ts";
import { recordData } from "./seed.ts";
import { flag } from "./_args.ts";

const url = flag("url")!.replace(/\/$/, "");
const metricsUrl = flag("metrics-url")!;
const namespace = flag("namespace")!;
const partitions = Number(flag("partitions") ?? 1);
const rate = Number(flag("rate") ?? 100);
const durationS = Number(flag("duration-s") ?? 60);
const keys = Number(flag("keys") ?? 1_000_000);
const pollMs = Number(flag("poll-ms") ?? 250);
const drainTimeoutS = Number(flag("drain-timeout-s") ?? 60);
const jsonOut = flag("json") ?? null;

const config = loadConfig({ ...Deno.env.toObject(), NAMESPACE: namespace });
const objects = new S3ObjectStore({ s3: config.s3 });

async function archivedBytes(): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith("firescroll_archive_uploaded_bytes_total ")
  );
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

/** Acknowledged puts: partition, offset, ack time (ms, performance clock). */
const acks: { partition: number; offset: number; at: number }[] = [];
/** Per partition: the archive's end as last listed, and when each end was first seen. */
const seen = Array.from({ length: partitions }, () => [] as { last: number; at: number }[]);
let stopPolling = false;

async function poll(): Promise<void> {
  while (!stopPolling) {
    const started = performance.now();
    for (let p = 0; p < partitions; p++) {
      const refs = archiveSegments(
        await objects.list(`${namespace}/p${p}/log/`, AbortSignal.timeout(10_000)),
      );
      const end = refs.reduce((e, r) => Math.max(e, r.last), -1);
      const list = seen[p]!;
      if (list.length === 0 || list[list.length - 1]!.last < end) {
        list.push({ last: end, at: performance.now() });
      }
    }
    const left = pollMs - (performance.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
}

/** When S3 first held `offset` of `partition`, or null. */
function archivedAt(partition: number, offset: number): number | null {
  for (const s of seen[partition]!) if (s.last >= offset) return s.at;
  return null;
}

const bytesBefore = await archivedBytes();
const polling = poll();
const t0 = performance.now();
const deadline = t0 + durationS * 1000;
let sent = 0;
const errors: Record<string, number> = {};
const inFlight = new Set<Promise<void>>();
while (performance.now() < deadline) {
  const due = t0 + (sent * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const i = sent++;
  const pk = `k${Math.floor(Math.random() * keys)}`;
  const request = (async () => {
    const response = await fetch(`${url}/records/put`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ records: [{ pk, sk: "s", data: recordData(i) }] }),
    });
    const body = await response.json();
    if (response.status !== 200) {
      errors[String(response.status)] = (errors[String(response.status)] ?? 0) + 1;
      return;
    }
    const [p, offset] = Object.entries(body.offsets as Record<string, number>)[0]!;
    acks.push({ partition: Number(p), offset, at: performance.now() });
  })();
  inFlight.add(request);
  request.finally(() => inFlight.delete(request));
  if (inFlight.size > 256) await Promise.race(inFlight);
}
await Promise.all(inFlight);
const drainDeadline = performance.now() + drainTimeoutS * 1000;
while (performance.now() < drainDeadline) {
  if (acks.every((a) => archivedAt(a.partition, a.offset) !== null)) break;
  await new Promise((r) => setTimeout(r, pollMs));
}
stopPolling = true;
await polling;
// Bytes of the segments closed by now (the counter moves as segments go up).
const bytes = (await archivedBytes()) - bytesBefore;

const lags = acks.map((a) => {
  const at = archivedAt(a.partition, a.offset);
  return at === null ? Infinity : at - a.at;
}).sort((x, y) => x - y);
const q = (f: number) => lags[Math.min(lags.length - 1, Math.floor(f * lags.length))]!;
const result = {
  puts: acks.length,
  errors,
  seconds: durationS,
  rate_per_s: acks.length / durationS,
  lag_ms: { p50: q(0.5), p99: q(0.99), max: lags[lags.length - 1] },
  unarchived: lags.filter((l) => l === Infinity).length,
  archive_bytes: bytes,
  archive_bytes_per_put: acks.length > 0 ? bytes / acks.length : 0,
  archive_bytes_per_hour: (bytes / durationS) * 3600,
};
console.log(JSON.stringify(result));
if (jsonOut !== null) await Deno.writeTextFile(jsonOut, JSON.stringify(result) + "\n");
