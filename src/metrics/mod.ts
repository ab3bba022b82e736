/**
 * Metrics: a small Prometheus registry and the one list of every metric handle, created once per
 * process and passed to the components that update them.
 *
 * @module
 */
export { createMetrics } from "./metrics.ts";
export type { Metrics } from "./metrics.ts";
export { Counter, Gauge, Histogram, Registry } from "./registry.ts";
export type { CounterFamily, GaugeFamily, HistogramFamily } from "./registry.ts";
