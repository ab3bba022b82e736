// deno-lint-ignore-file no-console
/**
 * Write benchmark client: closed-loop writers against a running node, one run per
 * (records per request, concurrency) pair.
 *
 * Each of `concurrency` writers sends `/records/put` with `records-per-request` new records (pk
 * `w<rpr>c<c>-<writer>-<seq>[-<j>]`, sk `profile`, ≈100 bytes of data), waits for the answer,
 * and sends the next, for `duration` seconds. A 200 is an acknowledgement: the write is fsync'd
 * in the log (DESIGN §3). Latency is measured in this client from just before `fetch` to the end
 * of the response body, so it includes the client's own overhead.
 *
 * Around each run the node's internal `/metrics` are read: `firescroll_log_appends_total` ÷
 * `firescroll_log_commits_total` is the number of log messages sharing one group commit (one
 * fsync), the commit duration histogram gives the mean commit time, and
 * `firescroll_apply_messages_total` ÷ `firescroll_apply_transactions_total` the log messages each
 * partition transaction of apply took in (until caught up). After each run the client
 * waits (with `after` + `wait_ms` on `/records/get`) until the node has applied everything it
 * acknowledged, reports that catch-up time, and only then starts the next run.
 *
 * Usage:
 *   deno run --allow-all bench/write.ts \
 *     [--url http://127.0.0.1:8190] [--metrics-url http://127.0.0.1:8191/metrics]
 *     [--concurrency 1,16,64] [--records-per-request 1,100] [--duration-s 10]
 *     [--partitions 16] [--pid <node pid, for its CPU use>] [--json FILE]
 *     [--catch-up-timeout-s 30] [--disk-device vda]
 * Env fallbacks: WRITE_URL, WRITE_METRICS_URL, WRITE_CONCURRENCY, WRITE_RECORDS_PER_REQUEST,
 * WRITE_DURATION_S, PARTITIONS, WRITE_NODE_PID, WRITE_CATCH_UP_TIMEOUT_S, WRITE_DISK_DEVICE.
 * With `--disk-device` (the block device holding the node's DB_PATH, as /proc/diskstats names
 * it) each run also reports that device's flush requests/s, write requests/s and bytes written
 * per acknowledged record — the whole device, so other processes on it count too — and, with
 * `--pid`, the bytes the node itself wrote per record (/proc/<pid>/io) and its CPU µs per put.
 * Prints a Markdown table on stdout. (`--allow-all` because Deno asks for it to read `/proc/<pid>/stat`.)
 *
 * @module
 */
import process from "node:process";
import { partitionOf } from "../src/keys/mod.ts";
import { recordData } from "./seed.ts";
import { flag } from "./_args.ts";

interface Options {
  readonly url: string;
  readonly metricsUrl: string;
  readonly concurrency: readonly number[];
  readonly recordsPerRequest: readonly number[];
  readonly durationS: number;
  readonly partitions: number;
  readonly pid: number | null;
  readonly json: string | null;
  readonly catchUpTimeoutS: number;
  /** Block device (as named in /proc/diskstats) holding the node's DB_PATH, or null. */
  readonly diskDevice: string | null;
}

function ints(name: string, env: string, fallback: string, max: number): number[] {
  const raw = flag(name) ?? Deno.env.get(env) ?? fallback;
  const values = raw.split(",").map((s) => Number(s.trim()));
  for (const n of values) {
    if (!Number.isSafeInteger(n) || n < 1 || n > max) {
      throw new Error(`Cannot run: --${name} (${env}) must list integers in [1, ${max}]`);
    }
  }
  return values;
}

function options(): Options {
  const url = (flag("url") ?? Deno.env.get("WRITE_URL") ?? "http://127.0.0.1:8190")
    .replace(/\/$/, "");
  const pid = flag("pid") ?? Deno.env.get("WRITE_NODE_PID");
  return {
    url,
    metricsUrl: flag("metrics-url") ?? Deno.env.get("WRITE_METRICS_URL") ??
      "http://127.0.0.1:8191/metrics",
    concurrency: ints("concurrency", "WRITE_CONCURRENCY", "1,16,64", 4096),
    // RECORDS_PER_REQUEST_MAX defaults to 1000.
    recordsPerRequest: ints("records-per-request", "WRITE_RECORDS_PER_REQUEST", "1,100", 100_000),
    durationS: ints("duration-s", "WRITE_DURATION_S", "10", 3600)[0]!,
    partitions: ints("partitions", "PARTITIONS", "16", 4096)[0]!,
    pid: pid === undefined || pid === "" ? null : Number(pid),
    json: flag("json") ?? null,
    catchUpTimeoutS: ints("catch-up-timeout-s", "WRITE_CATCH_UP_TIMEOUT_S", "30", 3600)[0]!,
    diskDevice: flag("disk-device") ?? Deno.env.get("WRITE_DISK_DEVICE") ?? null,
  };
}

/** The counters this benchmark reads from the node's `/metrics`. */
interface NodeCounters {
  readonly appends: number;
  readonly commits: number;
  readonly commitSeconds: number;
  readonly applied: number;
  readonly applyTransactions: number;
}

/** The value of an unlabelled sample `name` in Prometheus text, 0 when absent. */
export function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m === null ? 0 : Number(m[1]);
}

async function counters(url: string): Promise<NodeCounters> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`Cannot read ${url}: ${response.status}`);
  return {
    appends: sample(text, "firescroll_log_appends_total"),
    commits: sample(text, "firescroll_log_commits_total"),
    commitSeconds: sample(text, "firescroll_log_commit_duration_seconds_sum"),
    applied: sample(text, "firescroll_apply_messages_total"),
    applyTransactions: sample(text, "firescroll_apply_transactions_total"),
  };
}

/**
 * User+system CPU seconds of a process (all threads), or of its main thread (the JS thread)
 * with `mainThread`, from /proc.
 */
async function procCpuSeconds(pid: number, mainThread = false): Promise<number> {
  const path = mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`;
  const stat = await Deno.readTextFile(path);
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Cumulative counters of one block device from /proc/diskstats. */
export interface DiskCounters {
  /** Write requests completed. */
  readonly writes: number;
  /** Bytes written (sectors × 512). */
  readonly bytes: number;
  /** Flush requests completed (fsync/fdatasync reaching the device; 0 on kernels before 5.5). */
  readonly flushes: number;
}

/** The counters of `device` in the text of /proc/diskstats, or null when it is not listed. */
export function diskCounters(diskstats: string, device: string): DiskCounters | null {
  for (const line of diskstats.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[2] !== device) continue;
    // Major, minor, name; reads (4 fields); writes completed, merged, sectors, ms; 3 I/O
    // fields; discards (4 fields, kernel 4.18+); flush requests completed, ms (kernel 5.5+).
    return {
      writes: Number(f[7]),
      bytes: Number(f[9]) * 512,
      flushes: f.length > 18 ? Number(f[18]) : 0,
    };
  }
  return null;
}

async function readDisk(device: string | null): Promise<DiskCounters | null> {
  if (device === null) return null;
  return diskCounters(await Deno.readTextFile("/proc/diskstats"), device);
}

/** Bytes a process caused to be written to storage (`write_bytes` of /proc/<pid>/io). */
async function procWriteBytes(pid: number | null): Promise<number | null> {
  if (pid === null) return null;
  try {
    const m = /^write_bytes: (\d+)$/m.exec(await Deno.readTextFile(`/proc/${pid}/io`));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

function clientCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** What one run measured. Latencies in milliseconds. */
export interface RunResult {
  readonly recordsPerRequest: number;
  readonly concurrency: number;
  readonly seconds: number;
  readonly requests: number;
  readonly records: number;
  readonly errors: Record<string, number>;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly appends: number;
  readonly commits: number;
  readonly commitMeanMs: number;
  /** Log messages per apply transaction (all partitions), from the start until caught up. */
  readonly applyMessagesPerTransaction: number;
  /** Null when the node did not apply every acknowledged offset within the timeout. */
  readonly catchUpMs: number | null;
  /**
   * Log messages appended but not applied once caught up (cumulative since the node started):
   * anything but 0 means acknowledged writes the node never applied.
   */
  readonly unapplied: number;
  readonly nodeCpuPct: number | null;
  /** CPU of the node's main (JS) thread alone. */
  readonly nodeJsCpuPct: number | null;
  readonly clientCpuPct: number;
  /** Node CPU (all threads) per acknowledged put, µs. */
  readonly nodeCpuUsPerPut: number | null;
  /** Of the device holding DB_PATH, during the run (whole device: every process on it). */
  readonly diskFlushesPerS: number | null;
  readonly diskWritesPerS: number | null;
  readonly diskBytesPerRecord: number | null;
  /** Bytes the node process itself wrote to storage per acknowledged record (/proc/PID/io). */
  readonly nodeBytesPerRecord: number | null;
}

class Latencies {
  private values = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = v;
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.length).sort();
  }
}

/** Resolves true once the node applied `maxOffsets`, false if it did not within the timeout. */
async function waitApplied(
  o: Options,
  maxOffsets: ReadonlyMap<number, number>,
  probe: ReadonlyMap<number, string>,
): Promise<boolean> {
  if (maxOffsets.size === 0) return true;
  const after = Object.fromEntries([...maxOffsets].map(([p, off]) => [String(p), off]));
  const records = [...maxOffsets.keys()].map((p) => ({ pk: probe.get(p)!, sk: "profile" }));
  const deadline = performance.now() + o.catchUpTimeoutS * 1000;
  while (performance.now() < deadline) {
    const waitMs = Math.max(1, Math.min(5000, Math.round(deadline - performance.now())));
    const body = JSON.stringify({ records, after, wait_ms: waitMs });
    const response = await fetch(`${o.url}/records/get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await response.text();
    if (response.status === 200) return true;
    if (response.status !== 504) {
      throw new Error(`Cannot wait for apply: ${response.status} ${text.slice(0, 300)}`);
    }
  }
  return false;
}

async function runOnce(o: Options, rpr: number, concurrency: number): Promise<RunResult> {
  const before = await counters(o.metricsUrl);
  const nodeCpu0 = o.pid === null ? 0 : await procCpuSeconds(o.pid);
  const nodeJs0 = o.pid === null ? 0 : await procCpuSeconds(o.pid, true);
  const clientCpu0 = clientCpuSeconds();
  const disk0 = await readDisk(o.diskDevice);
  const io0 = await procWriteBytes(o.pid);
  const latencies = new Latencies();
  const errors: Record<string, number> = {};
  const maxOffsets = new Map<number, number>();
  // One acknowledged pk per partition, to prove apply caught up afterwards.
  const probe = new Map<number, string>();
  let requests = 0;
  let records = 0;
  const started = performance.now();
  const stopAt = started + o.durationS * 1000;
  const prefix = `w${rpr}c${concurrency}`;

  const writer = async (w: number) => {
    for (let seq = 0; performance.now() < stopAt; seq++) {
      const batch = new Array(rpr);
      for (let j = 0; j < rpr; j++) {
        const pk = rpr === 1 ? `${prefix}-${w}-${seq}` : `${prefix}-${w}-${seq}-${j}`;
        batch[j] = { pk, sk: "profile", data: recordData(seq * rpr + j) };
      }
      const body = JSON.stringify({ records: batch });
      const t0 = performance.now();
      let status: string;
      let text = "";
      try {
        const response = await fetch(`${o.url}/records/put`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        text = await response.text();
        status = String(response.status);
      } catch (error) {
        status = error instanceof Error ? error.name : "error";
      }
      const t1 = performance.now();
      if (status !== "200") {
        errors[status] = (errors[status] ?? 0) + 1;
        continue;
      }
      latencies.push(t1 - t0);
      requests++;
      records += rpr;
      const { offsets } = JSON.parse(text) as { offsets: Record<string, number> };
      for (const p in offsets) {
        const partition = Number(p);
        const offset = offsets[p]!;
        if ((maxOffsets.get(partition) ?? -1) < offset) maxOffsets.set(partition, offset);
      }
      if (probe.size < o.partitions) {
        for (const r of batch as { pk: string }[]) {
          const p = partitionOf(r.pk, o.partitions);
          if (!probe.has(p)) probe.set(p, r.pk);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => writer(w)));
  const ended = performance.now();
  const clientCpu1 = clientCpuSeconds();
  const nodeCpu1 = o.pid === null ? 0 : await procCpuSeconds(o.pid);
  const nodeJs1 = o.pid === null ? 0 : await procCpuSeconds(o.pid, true);
  const disk1 = await readDisk(o.diskDevice);
  const io1 = await procWriteBytes(o.pid);
  const after = await counters(o.metricsUrl);
  const caughtUp = await waitApplied(o, maxOffsets, probe);
  const caughtUpAt = performance.now();
  const settled = await counters(o.metricsUrl);
  const seconds = (ended - started) / 1000;
  const sorted = latencies.sorted();
  const commits = after.commits - before.commits;
  return {
    recordsPerRequest: rpr,
    concurrency,
    seconds,
    requests,
    records,
    errors,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
    appends: after.appends - before.appends,
    commits,
    commitMeanMs: commits === 0
      ? NaN
      : (after.commitSeconds - before.commitSeconds) * 1000 / commits,
    applyMessagesPerTransaction: (settled.applied - before.applied) /
      (settled.applyTransactions - before.applyTransactions),
    catchUpMs: caughtUp ? caughtUpAt - ended : null,
    unapplied: settled.appends - settled.applied,
    nodeCpuPct: o.pid === null ? null : (100 * (nodeCpu1 - nodeCpu0)) / seconds,
    nodeJsCpuPct: o.pid === null ? null : (100 * (nodeJs1 - nodeJs0)) / seconds,
    clientCpuPct: (100 * (clientCpu1 - clientCpu0)) / seconds,
    nodeCpuUsPerPut: o.pid === null || requests === 0
      ? null
      : ((nodeCpu1 - nodeCpu0) * 1e6) / requests,
    diskFlushesPerS: disk0 === null || disk1 === null
      ? null
      : (disk1.flushes - disk0.flushes) / seconds,
    diskWritesPerS: disk0 === null || disk1 === null
      ? null
      : (disk1.writes - disk0.writes) / seconds,
    diskBytesPerRecord: disk0 === null || disk1 === null || records === 0
      ? null
      : (disk1.bytes - disk0.bytes) / records,
    nodeBytesPerRecord: io0 === null || io1 === null || records === 0
      ? null
      : (io1 - io0) / records,
  };
}

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function f(n: number | null, digits = 2): string {
  return n === null || !Number.isFinite(n) ? "–" : n.toFixed(digits);
}

/** The Markdown table of a set of runs. */
export function table(results: readonly RunResult[]): string {
  const lines = [
    "| records/request | writers | requests | records/s acked | requests/s | p50 ms | p99 ms | max ms | errors | log appends | group commits | appends/commit | mean commit ms | apply msgs/txn | apply catch-up ms | unapplied msgs | node CPU % | node JS thread % | client CPU % | node CPU µs/put | disk flushes/s | disk writes/s | disk bytes/record | node bytes written/record |",
    "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const r of results) {
    const errors = Object.entries(r.errors).map(([k, v]) => `${v}×${k}`).join(" ") || "0";
    lines.push(
      `| ${r.recordsPerRequest} | ${r.concurrency} | ${int.format(r.requests)} | ${
        int.format(r.records / r.seconds)
      } | ${int.format(r.requests / r.seconds)} | ${f(r.p50)} | ${f(r.p99)} | ${
        f(r.max)
      } | ${errors} | ${int.format(r.appends)} | ${int.format(r.commits)} | ${
        f(r.commits === 0 ? NaN : r.appends / r.commits, 1)
      } | ${f(r.commitMeanMs)} | ${f(r.applyMessagesPerTransaction, 1)} | ${
        r.catchUpMs === null ? "**timeout**" : f(r.catchUpMs, 0)
      } | ${r.unapplied} | ${f(r.nodeCpuPct, 0)} | ${f(r.nodeJsCpuPct, 0)} | ${
        f(r.clientCpuPct, 0)
      } | ${f(r.nodeCpuUsPerPut, 0)} | ${f(r.diskFlushesPerS, 0)} | ${f(r.diskWritesPerS, 0)} | ${
        f(r.diskBytesPerRecord, 0)
      } | ${f(r.nodeBytesPerRecord, 0)} |`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const o = options();
  const results: RunResult[] = [];
  for (const rpr of o.recordsPerRequest) {
    for (const c of o.concurrency) {
      console.error(`[write] ${rpr} record(s)/request, ${c} writer(s), ${o.durationS} s`);
      const r = await runOnce(o, rpr, c);
      console.error(`[write] ${JSON.stringify(r)}`);
      results.push(r);
    }
  }
  if (o.json !== null) await Deno.writeTextFile(o.json, JSON.stringify(results) + "\n");
  console.log(table(results));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
