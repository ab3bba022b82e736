/**
 * A small Prometheus registry: counters, gauges and histograms with fixed label names, rendered in
 * the text exposition format. Handles are created once at startup; a labelled child is looked up
 * once per distinct label set and cached, so hot paths only do a Map lookup and an add.
 *
 * Serving threads each keep their own registry (one `createMetrics()` per thread), and the main
 * thread serves the one `/metrics`. A thread sends `registry.snapshot()` (plain arrays, objects,
 * numbers and strings, so it survives `postMessage`), and the main thread calls
 * `registry.render(snapshots)`: each series is the sum of its own child and the children with the
 * same family name and label values in the snapshots; a series only a snapshot has is rendered too.
 *
 * - Counters and histograms add (bucket by bucket, `_sum` and `_count`).
 * - Gauges add as well. That is right for counts spread over threads (open connections, waiters);
 *   a gauge that is a level or a timestamp (an applied offset, a last-success time) must be set by
 *   one thread only, the others never creating that child.
 * - A snapshot family this registry does not have is skipped: every thread builds the same set with
 *   `createMetrics()`, and a snapshot carries no HELP text to render one with.
 * - A snapshot family with the same name but another type, other label names or other buckets is a
 *   programmer error (the threads run the same code), so it fails an `assert()` rather than
 *   rendering a silently wrong sum.
 * - A family registered `perProcess` (the process's memory, CPU, build info) is never summed: a
 *   snapshot leaves it out, so `/metrics` shows the rendering (main) thread's value once.
 *
 * Values that are read rather than counted (from /proc, from the runtime) come from hooks given to
 * `onRender()`: they run at the start of each `render()`, so they cost nothing between scrapes.
 *
 * `render()` with no snapshots takes the same path as before snapshots existed: no copies.
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

/** The three metric types this registry knows. */
export type MetricType = "counter" | "gauge" | "histogram";

/** One counter or gauge child in a snapshot. */
export interface ValueSnapshot {
  /** Label values, in the order of the family's label names. */
  readonly labels: readonly string[];
  readonly value: number;
}

/** One histogram child in a snapshot. */
export interface HistogramChildSnapshot {
  /** Label values, in the order of the family's label names. */
  readonly labels: readonly string[];
  /** Observations per bucket, one per upper bound, not cumulative (no +Inf: that is `count`). */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/** One child in a snapshot: a counter or gauge value, or a histogram's counts. */
export type ChildSnapshot = ValueSnapshot | HistogramChildSnapshot;

/** One metric family in a snapshot. */
export interface FamilySnapshot {
  readonly name: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  /** A histogram's bucket upper bounds; empty for counters and gauges. */
  readonly buckets: readonly number[];
  readonly children: readonly ChildSnapshot[];
}

/**
 * Every family of a registry with every child's current value, as plain arrays, objects, numbers
 * and strings: it survives `structuredClone` and `postMessage`. See `Registry.render()`.
 */
export interface RegistrySnapshot {
  readonly families: readonly FamilySnapshot[];
}

/** What differs between counters, gauges and histograms: making, copying, adding, rendering. */
interface Kind<T> {
  readonly type: MetricType;
  readonly buckets: readonly number[];
  make(): T;
  snapshot(labels: Labels, child: T): ChildSnapshot;
  /** Adds a snapshot child of the same family into `into`. */
  add(into: T, from: ChildSnapshot): void;
  render(out: string[], values: Labels, child: T): void;
}

interface Metric {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labelNames: Labels;
  readonly perProcess: boolean;
  render(out: string[]): void;
  snapshot(): FamilySnapshot;
  renderSum(out: string[], others: readonly FamilySnapshot[]): void;
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

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function valueSnapshot(labels: Labels, child: Counter | Gauge): ValueSnapshot {
  return { labels, value: child.value };
}

function addValue(into: Counter | Gauge, from: ChildSnapshot): void {
  assert("value" in from, `snapshot child {${from.labels}} has no value`);
  into.value += from.value;
}

/** How a family of single values (counters, gauges) is made, snapshotted, summed and rendered. */
function valueKind<T extends Counter | Gauge>(
  type: "counter" | "gauge",
  name: string,
  labelNames: Labels,
  Child: new () => T,
): Kind<T> {
  return {
    type,
    buckets: [],
    make: () => new Child(),
    snapshot: valueSnapshot,
    add: addValue,
    render: (o, v, child) =>
      o.push(`${name}${labelText(labelNames, v)} ${formatNumber(child.value)}`),
  };
}

/** How a family is registered besides its name, help and labels. */
export interface FamilyOptions {
  /**
   * The value describes the whole process (memory, CPU, build info), not one thread's share: a
   * snapshot leaves the family out and `render(snapshots)` never sums it.
   */
  readonly perProcess?: boolean;
}

/** What a registry knows of one family without its values: see `Registry.families()`. */
export interface FamilyInfo {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly perProcess: boolean;
}

class Family<T> implements Metric {
  private readonly children = new Map<string, { values: Labels; child: T }>();
  readonly type: MetricType;
  readonly perProcess: boolean;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: Labels,
    private readonly kind: Kind<T>,
    options: FamilyOptions,
  ) {
    this.type = kind.type;
    this.perProcess = options.perProcess ?? false;
  }

  /** The child for these label values, created on first use. */
  labels(...values: string[]): T {
    assert(values.length === this.labelNames.length, `${this.name} takes ${this.labelNames}`);
    const key = values.join("\u0000");
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { values, child: this.kind.make() };
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
    for (const { values, child } of this.children.values()) this.kind.render(out, values, child);
  }

  snapshot(): FamilySnapshot {
    const children: ChildSnapshot[] = [];
    for (const { values, child } of this.children.values()) {
      children.push(this.kind.snapshot(values, child));
    }
    return {
      name: this.name,
      type: this.type,
      labelNames: this.labelNames,
      buckets: this.kind.buckets,
      children,
    };
  }

  /** Renders each child summed with the same-labelled children of `others` (this family's name). */
  renderSum(out: string[], others: readonly FamilySnapshot[]): void {
    const kind = this.kind;
    const sums = new Map<string, { values: Labels; child: T }>();
    for (const [key, { values, child }] of this.children) {
      const sum = kind.make();
      kind.add(sum, kind.snapshot(values, child));
      sums.set(key, { values, child: sum });
    }
    for (const other of others) {
      assert(
        other.type === this.type && sameList(other.labelNames, this.labelNames) &&
          sameList(other.buckets, kind.buckets),
        `snapshot of ${this.name} is a ${other.type} {${other.labelNames}} [${other.buckets}], ` +
          `not a ${this.type} {${this.labelNames}} [${kind.buckets}]`,
      );
      for (const from of other.children) {
        assert(
          from.labels.length === this.labelNames.length,
          `snapshot of ${this.name} has child {${from.labels}} for labels {${this.labelNames}}`,
        );
        const key = from.labels.join("\u0000");
        let entry = sums.get(key);
        if (entry === undefined) {
          entry = { values: from.labels, child: kind.make() };
          sums.set(key, entry);
        }
        kind.add(entry.child, from);
      }
    }
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const { values, child } of sums.values()) kind.render(out, values, child);
  }
}

/** A family of counters sharing a name and label names. */
export type CounterFamily = Family<Counter>;
/** A family of gauges sharing a name and label names. */
export type GaugeFamily = Family<Gauge>;
/** A family of histograms sharing a name, label names and buckets. */
export type HistogramFamily = Family<Histogram>;

/** Holds every metric of a process (or of one serving thread) and renders them. */
export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly names = new Set<string>();
  private readonly hooks: (() => void)[] = [];

  private add<T extends Metric>(metric: T): T {
    assert(!this.names.has(metric.name), `metric ${metric.name} registered twice`);
    assert(/^[a-z_][a-z0-9_]*$/.test(metric.name), `metric name ${metric.name} is invalid`);
    this.names.add(metric.name);
    this.metrics.push(metric);
    return metric;
  }

  /** Registers a counter family. */
  counter(
    name: string,
    help: string,
    labelNames: Labels = [],
    options: FamilyOptions = {},
  ): CounterFamily {
    return this.add(
      new Family(name, help, labelNames, valueKind("counter", name, labelNames, Counter), options),
    );
  }

  /** Registers a gauge family. */
  gauge(
    name: string,
    help: string,
    labelNames: Labels = [],
    options: FamilyOptions = {},
  ): GaugeFamily {
    return this.add(
      new Family(name, help, labelNames, valueKind("gauge", name, labelNames, Gauge), options),
    );
  }

  /** Registers a histogram family with the given bucket upper bounds. */
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: Labels = [],
    options: FamilyOptions = {},
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
    const kind: Kind<Histogram> = {
      type: "histogram",
      buckets,
      make: () => new Histogram(buckets),
      snapshot: (labels, h) => ({
        labels,
        counts: Array.from(h.counts),
        sum: h.sum,
        count: h.count,
      }),
      add: (into, from) => {
        assert(
          "counts" in from && from.counts.length === into.counts.length,
          `snapshot child {${from.labels}} of ${name} does not have ${buckets.length} buckets`,
        );
        for (let i = 0; i < into.counts.length; i++) into.counts[i]! += from.counts[i]!;
        into.sum += from.sum;
        into.count += from.count;
      },
      render,
    };
    return this.add(new Family(name, help, labelNames, kind, options));
  }

  /**
   * Runs `hook` at the start of every `render()`: it sets the values that are read rather than
   * counted (the process's memory from /proc), so they are current when scraped and cost nothing
   * in between. A hook must not throw; `snapshot()` does not run hooks.
   */
  onRender(hook: () => void): void {
    this.hooks.push(hook);
  }

  /** The name, type, help and label names of every family, in registration order. */
  families(): FamilyInfo[] {
    return this.metrics.map(({ name, type, help, labelNames, perProcess }) => ({
      name,
      type,
      help,
      labelNames,
      perProcess,
    }));
  }

  /**
   * Every family with every child's current value, as plain data for `postMessage`: what a serving
   * thread sends so that the main thread can `render()` the sum.
   */
  snapshot(): RegistrySnapshot {
    const families: FamilySnapshot[] = [];
    for (const metric of this.metrics) if (!metric.perProcess) families.push(metric.snapshot());
    return { families };
  }

  /**
   * The Prometheus text exposition of every metric. With `others` (snapshots of the registries of
   * other threads), each series is the sum over this registry and them; see the module doc for how
   * gauges, unknown families and mismatches are treated. Without, nothing is copied.
   */
  render(others: readonly RegistrySnapshot[] = []): string {
    for (const hook of this.hooks) hook();
    const out: string[] = [];
    if (others.length === 0) {
      for (const metric of this.metrics) metric.render(out);
      return out.join("\n") + "\n";
    }
    const byName = new Map<string, FamilySnapshot[]>();
    for (const other of others) {
      for (const family of other.families) {
        const list = byName.get(family.name);
        if (list === undefined) byName.set(family.name, [family]);
        else list.push(family);
      }
    }
    for (const metric of this.metrics) {
      const list = byName.get(metric.name);
      if (list === undefined || metric.perProcess) metric.render(out);
      else metric.renderSum(out, list);
    }
    return out.join("\n") + "\n";
  }
}
