/**
 * Metrics: a small Prometheus registry and the one list of every metric handle, created once per
 * process (or serving thread) and passed to the components that update them. A serving thread's
 * registry travels to the main thread as a `RegistrySnapshot`; `Registry.render(snapshots)` sums
 * them into the one `/metrics`. The process's own metrics (process.ts) are read at each render and
 * reported once, never summed.
 *
 * @module
 */
export { createMetrics } from "./metrics.ts";
export type { Metrics } from "./metrics.ts";
export {
  EVENT_LOOP_SAMPLE_MS,
  registerProcessMetrics,
  sampleEventLoop,
  THIS_PROCESS,
} from "./process.ts";
export type { ProcessMetrics, ProcessSource } from "./process.ts";
export { Counter, Gauge, Histogram, Registry } from "./registry.ts";
export type {
  ChildSnapshot,
  CounterFamily,
  FamilyInfo,
  FamilyOptions,
  FamilySnapshot,
  GaugeFamily,
  HistogramChildSnapshot,
  HistogramFamily,
  MetricType,
  RegistrySnapshot,
  ValueSnapshot,
} from "./registry.ts";
