import { deepEqual, equal, ok } from "node:assert/strict";
import { VERSION } from "../version.ts";
import { createMetrics } from "./metrics.ts";
import {
  maxOpenFiles,
  type ProcessSource,
  registerProcessMetrics,
  sampleEventLoop,
  statusBytes,
  THIS_PROCESS,
} from "./process.ts";
import { Registry } from "./registry.ts";

/** The value of the sample `series` (name and labels exactly as rendered), or null. */
function sample(text: string, series: string): number | null {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

/** Every sample line of the family `name` (no HELP/TYPE). */
function samples(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
}

const STATUS = `Name:\tdeno
VmPeak:\t 2000000 kB
VmSize:\t 1843200 kB
VmRSS:\t  131072 kB
VmData:\t  262144 kB
Threads:\t12
`;

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                1048576              files
`;

Deno.test("statusBytes() and maxOpenFiles() read /proc/self/status and /proc/self/limits", () => {
  equal(statusBytes(STATUS, "VmSize"), 1843200 * 1024);
  equal(statusBytes(STATUS, "VmData"), 262144 * 1024);
  equal(statusBytes(STATUS, "VmSwap"), null);
  equal(maxOpenFiles(LIMITS), 20000);
  equal(maxOpenFiles(LIMITS.replace("20000     ", "unlimited ")), null);
  equal(maxOpenFiles(""), null);
});

Deno.test("process metrics are read at each render from the source", () => {
  let userUs = 1_500_000;
  const source: ProcessSource = {
    status: () => STATUS,
    limits: () => LIMITS,
    openFds: (max) => Math.min(42, max),
    cpuUsage: () => ({ user: userUs, system: 250_000 }),
    memoryUsage: () => ({ rss: 3_000_000, heapTotal: 2_000_000, heapUsed: 1_000_000, external: 7 }),
    startTimeS: 1_700_000_000.5,
  };
  const registry = new Registry();
  registerProcessMetrics(registry, source);
  const text = registry.render();
  equal(sample(text, "process_cpu_user_seconds_total"), 1.5);
  equal(sample(text, "process_cpu_system_seconds_total"), 0.25);
  equal(sample(text, "process_cpu_seconds_total"), 1.75);
  equal(sample(text, "process_start_time_seconds"), 1_700_000_000.5);
  equal(sample(text, "process_resident_memory_bytes"), 3_000_000);
  equal(sample(text, "process_virtual_memory_bytes"), 1843200 * 1024);
  equal(sample(text, "process_heap_bytes"), 262144 * 1024);
  equal(sample(text, "process_open_fds"), 42);
  equal(sample(text, "process_max_fds"), 20000);
  equal(sample(text, "nodejs_heap_size_total_bytes"), 2_000_000);
  equal(sample(text, "nodejs_heap_size_used_bytes"), 1_000_000);
  equal(sample(text, "nodejs_external_memory_bytes"), 7);
  userUs += 500_000;
  equal(sample(registry.render(), "process_cpu_seconds_total"), 2.25);
});

Deno.test("without /proc (not Linux) those metrics show no sample rather than a wrong one", () => {
  const registry = new Registry();
  registerProcessMetrics(registry, {
    ...THIS_PROCESS,
    status: () => null,
    limits: () => null,
    openFds: () => null,
  });
  const text = registry.render();
  for (const name of ["process_virtual_memory_bytes", "process_heap_bytes", "process_open_fds"]) {
    deepEqual(samples(text, name), [], name);
    ok(text.includes(`# TYPE ${name} gauge\n`), name);
  }
  deepEqual(samples(text, "process_max_fds"), []);
  ok(sample(text, "process_resident_memory_bytes")! > 0);
});

Deno.test("createMetrics() reports this process: memory, CPU, descriptors, start, build", () => {
  const metrics = createMetrics();
  const before = metrics.registry.render();
  const started = Date.now();
  while (Date.now() - started < 30) {
    // Burn CPU time, which the next render must show.
  }
  const text = metrics.registry.render();
  ok(sample(text, "process_cpu_seconds_total")! > sample(before, "process_cpu_seconds_total")!);
  const rss = sample(text, "process_resident_memory_bytes")!;
  ok(rss > 1024 * 1024, `rss ${rss}`);
  const startS = sample(text, "process_start_time_seconds")!;
  ok(startS <= Date.now() / 1000 && startS > Date.now() / 1000 - 3600, `start ${startS}`);
  ok(sample(text, "nodejs_heap_size_used_bytes")! > 0);
  ok(sample(text, "nodejs_heap_size_used_bytes")! <= sample(text, "nodejs_heap_size_total_bytes")!);
  if (Deno.build.os === "linux") {
    ok(sample(text, "process_virtual_memory_bytes")! >= rss);
    ok(sample(text, "process_heap_bytes")! > 0);
    const open = sample(text, "process_open_fds")!;
    ok(open >= 3 && open <= sample(text, "process_max_fds")!, `open fds ${open}`);
    // Opening a file shows in the next render.
    const file = Deno.openSync(new URL(import.meta.url).pathname);
    try {
      equal(sample(metrics.registry.render(), "process_open_fds"), open + 1);
    } finally {
      file.close();
    }
  }
  const { deno, v8, typescript } = Deno.version;
  equal(
    sample(
      text,
      `firescroll_build_info{version="${VERSION}",deno="${deno}",v8="${v8}",typescript="${typescript}"}`,
    ),
    1,
  );
});

Deno.test("with serving threads, /metrics reports the process once, not once per thread", () => {
  const main = createMetrics();
  const threads = [createMetrics(), createMetrics()];
  for (const thread of threads) {
    thread.requestDuration.labels("get", "200").observe(0.001);
    // A thread renders nothing itself; even if it did, its snapshot carries no process family.
    thread.registry.render();
  }
  main.requestDuration.labels("get", "200").observe(0.001);
  const text = main.registry.render(threads.map((t) => t.registry.snapshot()));
  equal(
    sample(text, 'firescroll_api_request_duration_seconds_count{route="get",status="200"}'),
    3,
  );
  deepEqual(samples(text, "firescroll_build_info").map((l) => l.split(" ").at(-1)), ["1"]);
  equal(samples(text, "process_start_time_seconds").length, 1);
  const rss = sample(text, "process_resident_memory_bytes")!;
  // One process's RSS, not three times it (the main thread's own render reads it again).
  ok(rss < 1.5 * sample(main.registry.render(), "process_resident_memory_bytes")!, `rss ${rss}`);
  for (const family of threads[0]!.registry.snapshot().families) {
    ok(!/^(process|nodejs)_|_build_info$|_eventloop_|_node_ready$/.test(family.name), family.name);
  }
});

Deno.test("sampleEventLoop() records how long the thread was held, until aborted", async () => {
  const metrics = createMetrics();
  const stop = new AbortController();
  sampleEventLoop(metrics, stop.signal, 10);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const blocked = Date.now();
  while (Date.now() - blocked < 150) {
    // Hold the thread: the sampler's timer runs late by about this long.
  }
  await new Promise((resolve) => setTimeout(resolve, 30));
  stop.abort();
  const text = metrics.registry.render();
  const count = sample(text, "firescroll_process_eventloop_lag_seconds_count")!;
  ok(count >= 3, `samples ${count}`);
  // At least one sample waited past the 100 ms bucket; most did not.
  const under = sample(text, 'firescroll_process_eventloop_lag_seconds_bucket{le="0.1"}')!;
  ok(under < count && under >= 1, `${under} of ${count} under 100 ms`);
  ok(sample(text, "firescroll_process_eventloop_lag_seconds_sum")! >= 0.13);
  ok(sample(text, "nodejs_eventloop_lag_seconds")! >= 0);
  // Stopped: no timer left (the test's op sanitizer checks it) and no more samples.
  await new Promise((resolve) => setTimeout(resolve, 30));
  equal(
    sample(metrics.registry.render(), "firescroll_process_eventloop_lag_seconds_count"),
    count,
  );
});
