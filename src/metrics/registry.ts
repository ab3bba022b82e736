/**
 * A small Prometheus registry: counters, gauges and histograms with fixed label names, rendered in
 * the text exposition format. Handles are created once at startup; a labelled child is looked up
 * once per distinct label set and cached, so hot paths only do a Map lookup and an add.
 */
import { assert } from "../util/assert.ts";

type Labels = readonly string[];

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelText(names: Labels, values: Labels, extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  if (extra !== "") parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

interface Metric {
  readonly name: string;
  render(out: string[]): void;
}

/** A monotonically increasing count. */
export class Counter {
  value = 0;
  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.value += n;
  }
}

/** A value that goes up and down. */
export class Gauge {
  value = 0;
  /** Sets the value. */
  set(n: number): void {
    this.value = n;
  }
}

/** A histogram with fixed buckets (upper bounds, ascending). */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length);
  }
  /** Records one observation. */
  observe(value: number): void {
    this.sum += value;
    this.count++;
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

class Family<T> implements Metric {
  private readonly children = new Map<string, { values: Labels; child: T }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge" | "histogram",
    readonly labelNames: Labels,
    private readonly make: () => T,
    private readonly renderChild: (out: string[], values: Labels, child: T) => void,
  ) {}

  /** The child for these label values, created on first use. */
  labels(...values: string[]): T {
    assert(values.length === this.labelNames.length, `${this.name} takes ${this.labelNames}`);
    const key = values.join("\u0000");
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { values, child: this.make() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  /** Forgets the child with these label values (e.g. a partition no longer owned). */
  remove(...values: string[]): void {
    this.children.delete(values.join("\u0000"));
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const { values, child } of this.children.values()) this.renderChild(out, values, child);
  }
}

/** A family of counters sharing a name and label names. */
export type CounterFamily = Family<Counter>;
/** A family of gauges sharing a name and label names. */
export type GaugeFamily = Family<Gauge>;
/** A family of histograms sharing a name, label names and buckets. */
export type HistogramFamily = Family<Histogram>;

/** Holds every metric of a process and renders them. */
export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly names = new Set<string>();

  private add<T extends Metric>(metric: T): T {
    assert(!this.names.has(metric.name), `metric ${metric.name} registered twice`);
    assert(/^[a-z_][a-z0-9_]*$/.test(metric.name), `metric name ${metric.name} is invalid`);
    this.names.add(metric.name);
    this.metrics.push(metric);
    return metric;
  }

  /** Registers a counter family. */
  counter(name: string, help: string, labelNames: Labels = []): CounterFamily {
    const render = (o: string[], v: Labels, c: Counter) =>
      o.push(`${name}${labelText(labelNames, v)} ${formatNumber(c.value)}`);
    return this.add(new Family(name, help, "counter", labelNames, () => new Counter(), render));
  }

  /** Registers a gauge family. */
  gauge(name: string, help: string, labelNames: Labels = []): GaugeFamily {
    const render = (o: string[], v: Labels, g: Gauge) =>
      o.push(`${name}${labelText(labelNames, v)} ${formatNumber(g.value)}`);
    return this.add(new Family(name, help, "gauge", labelNames, () => new Gauge(), render));
  }

  /** Registers a histogram family with the given bucket upper bounds. */
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: Labels = [],
  ): HistogramFamily {
    for (let i = 1; i < buckets.length; i++) {
      assert(buckets[i]! > buckets[i - 1]!, `${name} buckets must ascend`);
    }
    const render = (o: string[], v: Labels, h: Histogram) => {
      let cumulative = 0;
      for (let i = 0; i < h.buckets.length; i++) {
        cumulative += h.counts[i]!;
        const le = `le="${formatNumber(h.buckets[i]!)}"`;
        o.push(`${name}_bucket${labelText(labelNames, v, le)} ${cumulative}`);
      }
      o.push(`${name}_bucket${labelText(labelNames, v, 'le="+Inf"')} ${h.count}`);
      o.push(`${name}_sum${labelText(labelNames, v)} ${formatNumber(h.sum)}`);
      o.push(`${name}_count${labelText(labelNames, v)} ${h.count}`);
    };
    const make = () => new Histogram(buckets);
    return this.add(new Family(name, help, "histogram", labelNames, make, render));
  }

  /** The Prometheus text exposition of every metric. */
  render(): string {
    const out: string[] = [];
    for (const metric of this.metrics) metric.render(out);
    return out.join("\n") + "\n";
  }
}
