/**
 * The process's own metrics, named as the Prometheus client libraries name them so that stock
 * dashboards and alerts work: `process_*` as the Go and Node.js clients export them, `nodejs_*` as
 * prom-client names V8's heap and the event-loop lag (Deno runs V8 as Node.js does), and
 * `firescroll_build_info`.
 *
 * Values are read when `/metrics` is rendered (a `Registry.onRender` hook): memory and file
 * descriptors from /proc/self on Linux (absent elsewhere: no sample rather than a wrong one), CPU
 * time and V8's heap from the runtime. Event-loop lag alone needs a timer: `sampleEventLoop()`.
 *
 * Every family here is `perProcess`: a serving thread's snapshot leaves it out, so `/metrics`
 * shows the process once (the main thread's reading), never a sum over threads. The V8 heap is the
 * main thread's: each serving thread has its own heap, which only the resident memory counts.
 *
 * Not exported: GC time. Deno lists `gc` among `PerformanceObserver.supportedEntryTypes` but
 * delivers no entries (Deno 2.9), so prom-client's `nodejs_gc_duration_seconds` would stay empty.
 */
import process from "node:process";
import { assert } from "../util/assert.ts";
import { VERSION } from "../version.ts";
import type { GaugeFamily, HistogramFamily, Registry } from "./registry.ts";

/** How often `sampleEventLoop()` measures the event loop's lag (20 timers a second). */
export const EVENT_LOOP_SAMPLE_MS = 50;

/** `/proc/self/fd` entries counted at most per scrape: a bound on the scrape's cost. */
export const OPEN_FDS_COUNTED_MAX = 100_000;

const EVENT_LOOP_LAG_BUCKETS_S = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** The handles of process metrics that something other than the render hook updates. */
export interface ProcessMetrics {
  /** `firescroll_process_eventloop_lag_seconds`: sampled event-loop lags of the main thread. */
  readonly eventLoopLag: HistogramFamily;
  /** `nodejs_eventloop_lag_seconds`: the main thread's last sampled event-loop lag. */
  readonly eventLoopLagLast: GaugeFamily;
}

/** Where the render hook reads the process's state; tests give fixed text. */
export interface ProcessSource {
  /** `/proc/self/status`, or null where there is none. */
  status(): string | null;
  /** `/proc/self/limits`, or null. */
  limits(): string | null;
  /** Entries of `/proc/self/fd` (counted up to `max`), or null. */
  openFds(max: number): number | null;
  /** CPU time of the whole process (every thread) in microseconds. */
  cpuUsage(): { readonly user: number; readonly system: number };
  /** The process's resident set and the main thread's V8 heap, in bytes. */
  memoryUsage(): Deno.MemoryUsage;
  /** When the process started, in unix seconds. */
  readonly startTimeS: number;
}

function readOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    // Not Linux, or no read permission: the metric shows no sample.
    return null;
  }
}

/** The process this code runs in, read from /proc/self (Linux) and the runtime. */
export const THIS_PROCESS: ProcessSource = {
  status: () => readOrNull("/proc/self/status"),
  limits: () => readOrNull("/proc/self/limits"),
  openFds(max: number): number | null {
    try {
      let count = 0;
      for (const _ of Deno.readDirSync("/proc/self/fd")) {
        if (++count >= max) break;
      }
      // The directory's own descriptor, open while it was read, is not one of the process's.
      return Math.max(0, count - 1);
    } catch {
      return null;
    }
  },
  cpuUsage: () => process.cpuUsage(),
  memoryUsage: () => Deno.memoryUsage(),
  // The main isolate is created as the process starts (a worker's origin is its own start, but
  // workers never render: see the module doc).
  startTimeS: performance.timeOrigin / 1000,
};

/** A `Vm*:` line of /proc/self/status in bytes (the kernel writes kB), or null. */
export function statusBytes(status: string, field: string): number | null {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  return match === null ? null : Number(match[1]) * 1024;
}

/** The soft limit of open files from /proc/self/limits; null when absent or unlimited. */
export function maxOpenFiles(limits: string): number | null {
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  if (match === null || match[1] === "unlimited") return null;
  const value = Number(match[1]);
  return Number.isSafeInteger(value) ? value : null;
}

/**
 * Registers the process families on `registry` with the hook that reads them at each render, and
 * sets `firescroll_build_info`. Returns the handles `sampleEventLoop()` updates.
 */
export function registerProcessMetrics(
  registry: Registry,
  source: ProcessSource = THIS_PROCESS,
): ProcessMetrics {
  const once = { perProcess: true } as const;
  // Families, not children: a child renders a sample, and one never read must not show as 0.
  const gauge = (name: string, help: string) => registry.gauge(name, help, [], once);
  const counter = (name: string, help: string) => registry.counter(name, help, [], once).labels();
  registry.gauge(
    "firescroll_build_info",
    "Always 1; the labels name the FireScroll version and the Deno, V8 and TypeScript it runs on.",
    ["version", "deno", "v8", "typescript"],
    once,
  ).labels(VERSION, Deno.version.deno, Deno.version.v8, Deno.version.typescript).set(1);
  const cpuUser = counter(
    "process_cpu_user_seconds_total",
    "User CPU time spent by the process (every thread), in seconds.",
  );
  const cpuSystem = counter(
    "process_cpu_system_seconds_total",
    "System CPU time spent by the process (every thread), in seconds.",
  );
  const cpu = counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent by the process (every thread), in seconds.",
  );
  const start = gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
  );
  const resident = gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
  const virtual = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
  const heap = gauge(
    "process_heap_bytes",
    "Process heap size in bytes (VmData: the data segment, every thread's heap in it).",
  );
  const openFds = gauge(
    "process_open_fds",
    `Number of open file descriptors (counted up to ${OPEN_FDS_COUNTED_MAX}).`,
  );
  const maxFds = gauge("process_max_fds", "Maximum number of open file descriptors (soft limit).");
  const heapTotal = gauge(
    "nodejs_heap_size_total_bytes",
    "V8 heap size of the main thread in bytes (serving threads have their own).",
  );
  const heapUsed = gauge(
    "nodejs_heap_size_used_bytes",
    "V8 heap used by the main thread in bytes (serving threads have their own).",
  );
  const external = gauge(
    "nodejs_external_memory_bytes",
    "Memory of the main thread's JavaScript objects held outside V8's heap (buffers), in bytes.",
  );
  const metrics: ProcessMetrics = {
    eventLoopLagLast: registry.gauge(
      "nodejs_eventloop_lag_seconds",
      `Lag of the main thread's event loop at the last sample (every ${EVENT_LOOP_SAMPLE_MS} ms), in seconds.`,
      [],
      once,
    ),
    eventLoopLag: registry.histogram(
      "firescroll_process_eventloop_lag_seconds",
      `Lags of the main thread's event loop (applying, internal port), sampled every ${EVENT_LOOP_SAMPLE_MS} ms: how late a timer ran.`,
      EVENT_LOOP_LAG_BUCKETS_S,
      [],
      once,
    ),
  };
  start.labels().set(source.startTimeS);
  registry.onRender(() => {
    const { user, system } = source.cpuUsage();
    // Counters the kernel keeps: set to its count rather than incremented.
    cpuUser.value = user / 1e6;
    cpuSystem.value = system / 1e6;
    cpu.value = (user + system) / 1e6;
    const memory = source.memoryUsage();
    resident.labels().set(memory.rss);
    heapTotal.labels().set(memory.heapTotal);
    heapUsed.labels().set(memory.heapUsed);
    external.labels().set(memory.external);
    const status = source.status();
    const vmSize = status === null ? null : statusBytes(status, "VmSize");
    const vmData = status === null ? null : statusBytes(status, "VmData");
    if (vmSize !== null) virtual.labels().set(vmSize);
    if (vmData !== null) heap.labels().set(vmData);
    const fds = source.openFds(OPEN_FDS_COUNTED_MAX);
    if (fds !== null) openFds.labels().set(fds);
    const limits = source.limits();
    const max = limits === null ? null : maxOpenFiles(limits);
    if (max !== null) maxFds.labels().set(max);
  });
  return metrics;
}

/**
 * Measures the event loop's lag every `intervalMs` until `signal` aborts: how much later than
 * asked a timer runs, which is how long something held the thread (a long apply batch, a sync
 * read, a GC pause). One unref'd timer: it never keeps the process alive.
 */
export function sampleEventLoop(
  metrics: ProcessMetrics,
  signal: AbortSignal,
  intervalMs: number = EVENT_LOOP_SAMPLE_MS,
): void {
  assert(Number.isInteger(intervalMs) && intervalMs >= 1, `interval ${intervalMs} ms`);
  const last = metrics.eventLoopLagLast.labels();
  const lags = metrics.eventLoopLag.labels();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let due = 0;
  const tick = () => {
    const lagS = Math.max(0, performance.now() - due) / 1000;
    last.set(lagS);
    lags.observe(lagS);
    schedule();
  };
  const schedule = () => {
    due = performance.now() + intervalMs;
    const id = setTimeout(tick, intervalMs);
    Deno.unrefTimer(id);
    timer = id;
  };
  if (signal.aborted) return;
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  schedule();
}
