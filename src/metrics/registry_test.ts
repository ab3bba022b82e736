import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { checkMetrics } from "../../tests/_promtool.ts";
import { AssertionError } from "../util/assert.ts";
import { createMetrics } from "./metrics.ts";
import { Registry } from "./registry.ts";

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Reads a label set `{a="x",b="y\"z"}` per the text format's escaping rules. */
function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    ok(eq > i, `label name expected in ${text}`);
    const name = text.slice(i, eq);
    ok(/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name), `label name ${name}`);
    equal(text[eq + 1], '"', `label ${name} value is quoted`);
    let value = "";
    let j = eq + 2;
    for (; text[j] !== '"'; j++) {
      ok(j < text.length, `unterminated label value in ${text}`);
      if (text[j] === "\\") {
        j++;
        const escaped = ({ "\\": "\\", '"': '"', n: "\n" } as Record<string, string>)[text[j]!];
        ok(escaped !== undefined, `bad escape \\${text[j]} in ${text}`);
        value += escaped;
      } else {
        ok(text[j] !== "\n", "raw newline in a label value");
        value += text[j];
      }
    }
    ok(!(name in labels), `label ${name} repeated`);
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      equal(text[i], ",", `comma between labels in ${text}`);
      i++;
    }
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  ok(/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text), `sample value ${text}`);
  return Number(text);
}

/**
 * A strict reader of the Prometheus text exposition format (0.0.4): every line is HELP, TYPE or a
 * sample of the family last declared, and histograms have cumulative buckets ending in +Inf that
 * equals _count.
 */
function parseExposition(text: string): Map<string, Family> {
  ok(text.endsWith("\n"), "exposition ends with a newline");
  const families = new Map<string, Family>();
  let current: Family | null = null;
  let pendingHelp: { name: string; help: string } | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) {
      const [, name, help] = /^# HELP (\S+) (.*)$/.exec(line) ?? [];
      ok(name !== undefined && NAME.test(name), `HELP line ${line}`);
      pendingHelp = { name, help: help! };
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [, name, type] =
        /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ??
          [];
      ok(name !== undefined && type !== undefined, `TYPE line ${line}`);
      ok(!families.has(name), `family ${name} declared twice`);
      equal(pendingHelp?.name, name, `HELP precedes TYPE for ${name}`);
      current = { name, type, help: pendingHelp!.help, samples: [] };
      families.set(name, current);
      pendingHelp = null;
      continue;
    }
    ok(!line.startsWith("#"), `unknown comment ${line}`);
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    ok(match !== null, `sample line ${JSON.stringify(line)}`);
    ok(current !== null, `sample before any TYPE: ${line}`);
    const [, name, labels, value] = match;
    const allowed = current.type === "histogram"
      ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`]
      : [current.name];
    ok(allowed.includes(name!), `sample ${name} in family ${current.name}`);
    current.samples.push({
      name: name!,
      labels: labels === undefined ? {} : parseLabels(labels),
      value: parseValue(value!),
    });
  }
  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, Sample[]>();
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), sample]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name.endsWith("_bucket"));
    ok(buckets.length >= 1, `${family.name}${key} has buckets`);
    const les = buckets.map((b) => parseValue(b.labels.le!));
    equal(les.at(-1), Infinity, `${family.name}${key} ends with le="+Inf"`);
    for (let i = 1; i < buckets.length; i++) {
      ok(les[i]! > les[i - 1]!, `${family.name}${key} le ascends`);
      ok(buckets[i]!.value >= buckets[i - 1]!.value, `${family.name}${key} buckets are cumulative`);
    }
    const count = samples.find((s) => s.name.endsWith("_count"));
    const sum = samples.find((s) => s.name.endsWith("_sum"));
    ok(count !== undefined && sum !== undefined, `${family.name}${key} has _sum and _count`);
    equal(buckets.at(-1)!.value, count.value, `${family.name}${key} +Inf bucket equals _count`);
  }
}

Deno.test("Registry.render() writes counters and gauges in the Prometheus text format", () => {
  const registry = new Registry();
  const requests = registry.counter("app_requests_total", "Requests served.", ["route", "status"]);
  const depth = registry.gauge("app_queue_depth", "Items waiting.");
  registry.counter("app_unused_total", "Never incremented.");
  requests.labels("/records/get", "200").inc();
  requests.labels("/records/get", "200").inc(2);
  requests.labels("/records/put", "503").inc();
  depth.labels().set(-4.5);
  const text = registry.render();
  const families = parseExposition(text);
  deepEqual([...families.keys()], ["app_requests_total", "app_queue_depth", "app_unused_total"]);
  equal(families.get("app_requests_total")!.type, "counter");
  equal(families.get("app_requests_total")!.help, "Requests served.");
  deepEqual(families.get("app_requests_total")!.samples, [
    { name: "app_requests_total", labels: { route: "/records/get", status: "200" }, value: 3 },
    { name: "app_requests_total", labels: { route: "/records/put", status: "503" }, value: 1 },
  ]);
  deepEqual(families.get("app_queue_depth")!.samples, [
    { name: "app_queue_depth", labels: {}, value: -4.5 },
  ]);
  deepEqual(families.get("app_unused_total")!.samples, []);
  ok(text.includes('app_requests_total{route="/records/get",status="200"} 3\n'));
});

Deno.test("Registry.render() escapes backslashes, quotes and newlines in label values", () => {
  const registry = new Registry();
  const family = registry.gauge("app_weird", "Odd label values.", ["v"]);
  const values = ['say "hi"', "back\\slash", "two\nlines", "\\n literally", "é😀", ""];
  values.forEach((v, i) => family.labels(v).set(i));
  const text = registry.render();
  ok(text.includes('app_weird{v="say \\"hi\\""} 0\n'), text);
  ok(text.includes('app_weird{v="back\\\\slash"} 1\n'), text);
  ok(text.includes('app_weird{v="two\\nlines"} 2\n'), text);
  deepEqual(parseExposition(text).get("app_weird")!.samples.map((s) => s.labels.v), values);
});

Deno.test("Registry.render() writes histograms with cumulative buckets, +Inf, _sum and _count", () => {
  const registry = new Registry();
  const latency = registry.histogram("app_latency_seconds", "Latency.", [0.005, 0.1, 1], ["route"]);
  const get = latency.labels("get");
  for (const v of [0.001, 0.005, 0.05, 0.5, 0.5, 3]) get.observe(v);
  latency.labels("put"); // a series with no observations yet
  const families = parseExposition(registry.render());
  const samples = families.get("app_latency_seconds")!.samples;
  equal(families.get("app_latency_seconds")!.type, "histogram");
  const forGet = samples.filter((s) => s.labels.route === "get");
  deepEqual(forGet.map((s) => [s.name, s.labels.le ?? null, s.value]), [
    ["app_latency_seconds_bucket", "0.005", 2], // 0.005 falls in its own bucket (le is <=)
    ["app_latency_seconds_bucket", "0.1", 3],
    ["app_latency_seconds_bucket", "1", 5],
    ["app_latency_seconds_bucket", "+Inf", 6],
    ["app_latency_seconds_sum", null, 4.056],
    ["app_latency_seconds_count", null, 6],
  ]);
  const forPut = samples.filter((s) => s.labels.route === "put");
  deepEqual(forPut.map((s) => s.value), [0, 0, 0, 0, 0, 0]);
});

Deno.test("Registry.render() of every FireScroll metric is valid exposition text", async () => {
  const metrics = createMetrics();
  metrics.requestDuration.labels("/records/get", "200").observe(0.0003);
  metrics.requestDuration.labels("/records/put", "413").observe(12);
  metrics.applyLag.labels().observe(0.2);
  metrics.appliedOffset.labels("0").set(41);
  metrics.appliedMessages.labels().inc(42);
  metrics.conditionErrors.labels().inc();
  metrics.logCommitDuration.labels().observe(0.004);
  metrics.partitions.labels("owned").set(16);
  const text = metrics.registry.render();
  const families = parseExposition(text);
  for (const name of families.keys()) {
    // The process's own metrics keep the names the Prometheus client libraries give them.
    ok(
      /^firescroll_[a-z]+_[a-z0-9_]+$/.test(name) || /^(process|nodejs)_[a-z0-9_]+$/.test(name),
      `${name} follows firescroll_<component>_...`,
    );
    if (families.get(name)!.type === "counter") ok(name.endsWith("_total"), `${name} ends _total`);
  }
  equal(families.get("firescroll_apply_offset")!.samples[0]!.value, 41);
  // Removing a labelled child drops its series.
  metrics.appliedOffset.remove("0");
  deepEqual(parseExposition(metrics.registry.render()).get("firescroll_apply_offset")!.samples, []);
  equal(await checkMetrics(text), "", "promtool check metrics");
});

Deno.test("Registry refuses duplicate names, invalid names and unordered buckets", () => {
  const registry = new Registry();
  registry.counter("app_things_total", "Things.");
  throws(() => registry.gauge("app_things_total", "Again."), AssertionError);
  throws(() => registry.counter("app-things", "Dash."), AssertionError);
  throws(() => registry.histogram("app_h", "Unordered.", [1, 0.5]), AssertionError);
  const labelled = registry.counter("app_labelled_total", "Labelled.", ["a"]);
  throws(() => labelled.labels(), AssertionError);
  throws(() => labelled.labels("x", "y"), AssertionError);
});

/** Three registries with the same families, as three threads' `createMetrics()` would build. */
function threadRegistry() {
  const registry = new Registry();
  return {
    registry,
    requests: registry.counter("app_requests_total", "Requests.", ["route"]),
    waiters: registry.gauge("app_waiters", "Waiters."),
    latency: registry.histogram("app_latency_seconds", "Latency.", [0.1, 1], ["route"]),
  };
}

Deno.test("Registry.render(snapshots) sums counters, gauges and histograms over threads", () => {
  const main = threadRegistry();
  const a = threadRegistry();
  const b = threadRegistry();
  main.requests.labels("get").inc(1);
  a.requests.labels("get").inc(10);
  b.requests.labels("get").inc(100);
  b.requests.labels("put").inc(7); // a series only one snapshot has
  main.waiters.labels().set(2);
  a.waiters.labels().set(3);
  main.latency.labels("get").observe(0.05);
  a.latency.labels("get").observe(0.5);
  b.latency.labels("get").observe(5);
  b.latency.labels("put").observe(0.25);
  a.latency.labels("put"); // a series with no observations adds nothing
  const alone = main.registry.render();
  const text = main.registry.render([a.registry.snapshot(), b.registry.snapshot()]);
  equal(
    text,
    [
      "# HELP app_requests_total Requests.",
      "# TYPE app_requests_total counter",
      'app_requests_total{route="get"} 111',
      'app_requests_total{route="put"} 7',
      "# HELP app_waiters Waiters.",
      "# TYPE app_waiters gauge",
      "app_waiters 5",
      "# HELP app_latency_seconds Latency.",
      "# TYPE app_latency_seconds histogram",
      'app_latency_seconds_bucket{route="get",le="0.1"} 1',
      'app_latency_seconds_bucket{route="get",le="1"} 2',
      'app_latency_seconds_bucket{route="get",le="+Inf"} 3',
      'app_latency_seconds_sum{route="get"} 5.55',
      'app_latency_seconds_count{route="get"} 3',
      'app_latency_seconds_bucket{route="put",le="0.1"} 0',
      'app_latency_seconds_bucket{route="put",le="1"} 1',
      'app_latency_seconds_bucket{route="put",le="+Inf"} 1',
      'app_latency_seconds_sum{route="put"} 0.25',
      'app_latency_seconds_count{route="put"} 1',
      "",
    ].join("\n"),
  );
  parseExposition(text);
  // Summing reads the snapshots and this registry; it changes neither.
  equal(main.registry.render(), alone);
  ok(alone.includes('app_requests_total{route="get"} 1\n'), alone);
  equal(a.requests.labels("get").value, 10);
});

Deno.test("Registry.snapshot() is plain data that survives structuredClone", () => {
  const thread = threadRegistry();
  thread.requests.labels('say "hi"\n').inc(3);
  thread.waiters.labels().set(-1);
  thread.latency.labels("get").observe(0.5);
  const snapshot = thread.registry.snapshot();
  const cloned = structuredClone(snapshot);
  deepEqual(cloned, snapshot);
  deepEqual(cloned, {
    families: [
      {
        name: "app_requests_total",
        type: "counter",
        labelNames: ["route"],
        buckets: [],
        children: [{ labels: ['say "hi"\n'], value: 3 }],
      },
      {
        name: "app_waiters",
        type: "gauge",
        labelNames: [],
        buckets: [],
        children: [{ labels: [], value: -1 }],
      },
      {
        name: "app_latency_seconds",
        type: "histogram",
        labelNames: ["route"],
        buckets: [0.1, 1],
        children: [{ labels: ["get"], counts: [0, 1], sum: 0.5, count: 1 }],
      },
    ],
  });
  // A fresh registry summed with the clone renders what the thread itself renders.
  equal(threadRegistry().registry.render([cloned]), thread.registry.render());
});

Deno.test("Registry.render(snapshots) skips unknown families and refuses mismatched ones", () => {
  const main = threadRegistry();
  const extra = new Registry();
  extra.counter("app_other_total", "Only in another thread.").labels().inc();
  equal(main.registry.render([extra.snapshot()]), main.registry.render());

  const wrongType = new Registry();
  wrongType.gauge("app_requests_total", "A gauge now.", ["route"]);
  throws(() => main.registry.render([wrongType.snapshot()]), AssertionError);
  const wrongLabels = new Registry();
  wrongLabels.counter("app_requests_total", "Other labels.", ["path"]);
  throws(() => main.registry.render([wrongLabels.snapshot()]), AssertionError);
  const wrongBuckets = new Registry();
  wrongBuckets.histogram("app_latency_seconds", "Other buckets.", [0.1, 2], ["route"]);
  throws(() => main.registry.render([wrongBuckets.snapshot()]), AssertionError);
});

Deno.test("Registry.render(snapshots) reports a perProcess family once, never summed", () => {
  const threads = () => {
    const registry = new Registry();
    return {
      registry,
      requests: registry.counter("app_requests_total", "Requests."),
      rss: registry.gauge("app_rss_bytes", "Resident memory.", [], { perProcess: true }),
    };
  };
  const main = threads();
  const a = threads();
  main.requests.labels().inc(1);
  a.requests.labels().inc(2);
  main.rss.labels().set(1000);
  // Even a thread that sets it (it should not) does not add to it: its snapshot leaves it out.
  a.rss.labels().set(1000);
  deepEqual(a.registry.snapshot().families.map((f) => f.name), ["app_requests_total"]);
  const text = main.registry.render([a.registry.snapshot(), a.registry.snapshot()]);
  ok(text.includes("\napp_requests_total 5\n"), text);
  ok(text.includes("\napp_rss_bytes 1000\n"), text);
  deepEqual(
    main.registry.families().map(({ name, perProcess }) => [name, perProcess]),
    [["app_requests_total", false], ["app_rss_bytes", true]],
  );
});

Deno.test("Registry.render() runs its onRender hooks first, and snapshot() does not", () => {
  const registry = new Registry();
  const reads = registry.gauge("app_reads", "Renders seen by the hook.");
  let calls = 0;
  registry.onRender(() => reads.labels().set(++calls));
  ok(registry.render().includes("\napp_reads 1\n"));
  ok(registry.render([]).includes("\napp_reads 2\n"));
  ok(registry.render([new Registry().snapshot()]).includes("\napp_reads 3\n"));
  registry.snapshot();
  equal(calls, 3);
});
