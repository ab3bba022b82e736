/**
 * The monitoring files — `deploy/prometheus/alerts.yaml` with its unit tests and
 * `deploy/grafana/firescroll.json` — held to Prometheus's own checker and to the metrics a node
 * exports: promtool checks the rules, runs their unit tests and checks a real node's `/metrics`;
 * every metric an alert, an alert test or a dashboard panel names must be one the registry renders
 * (docs/operations.md "Every metric" is held to the same registry by src/metrics/metrics_test.ts).
 * promtool comes from scripts/promtool.sh (tests/_promtool.ts): without it these tests fail.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { createMetrics } from "../src/metrics/mod.ts";
import { VERSION } from "../src/version.ts";
import { checkMetrics, promtool } from "./_promtool.ts";
import { withNode } from "./integration/_node.ts";

const ROOT = new URL("../", import.meta.url);
const ALERTS = "deploy/prometheus/alerts.yaml";
const ALERTS_TEST = "deploy/prometheus/alerts_test.yaml";
const DASHBOARD = "deploy/grafana/firescroll.json";

function read(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

// --- What the node exports ---------------------------------------------------------------------

/** Every family a node renders: name → type (process metrics included). */
const FAMILIES: ReadonlyMap<string, string> = new Map(
  createMetrics().registry.families().map((f) => [f.name, f.type]),
);

/** Series Prometheus makes itself for every target, which rules may use beside the node's. */
const PROMETHEUS_SERIES = new Set(["up"]);

/** The family a series name belongs to (`x_bucket` of a histogram `x` is `x`), or null. */
function familyOf(series: string): string | null {
  if (FAMILIES.has(series) || PROMETHEUS_SERIES.has(series)) return series;
  const base = /^(.+)_(bucket|sum|count)$/.exec(series)?.[1];
  return base !== undefined && FAMILIES.get(base) === "histogram" ? base : null;
}

// --- PromQL ------------------------------------------------------------------------------------

/** Operators and modifiers spelled as words: identifiers that are not metric names. */
const PROMQL_WORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression selects: identifiers left once strings, Grafana variables,
 * label matchers, ranges and grouping clauses are gone, minus functions and aggregations (followed
 * by `(`) and the words above. Numbers and durations never match (an identifier never follows a
 * digit or a dot).
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\$\{?\w+\}?/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names: string[] = [];
  for (const [, name, call] of bare.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (call !== undefined || PROMQL_WORDS.has(name!.toLowerCase())) continue;
    if (!names.includes(name!)) names.push(name!);
  }
  return names;
}

Deno.test("metricNames() finds the metrics of a PromQL expression and nothing else", () => {
  deepEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (job, le) (rate(a_seconds_bucket{route="get",x=~"b|c"}[5m])))' +
        " > 0.25 and on (job, partition) changes(b_offset[10m] offset 1h) == 0 or vector(1e3)",
    ),
    ["a_seconds_bucket", "b_offset"],
  );
  deepEqual(
    metricNames(
      'sum(up{job=~"$job"}) / ignoring(state) c_total{instance=~"${instance}"}[$__rate_interval] - 2 * time()',
    ),
    ["up", "c_total"],
  );
  deepEqual(metricNames("count by (version) (firescroll_build_info)"), ["firescroll_build_info"]);
});

// --- The rules ---------------------------------------------------------------------------------

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

function alertRules(): Rule[] {
  const file = parseYaml(read(ALERTS)) as { groups: { name: string; rules: Rule[] }[] };
  return file.groups.flatMap((g) => g.rules);
}

interface AlertTest {
  readonly input_series: { series: string; values: string }[];
  readonly alert_rule_test: {
    eval_time: string;
    alertname: string;
    exp_alerts: unknown[];
  }[];
}

function alertTests(): AlertTest[] {
  return (parseYaml(read(ALERTS_TEST)) as { tests: AlertTest[] }).tests;
}

Deno.test("promtool check rules accepts deploy/prometheus/alerts.yaml", async () => {
  const { success, output } = await promtool(["check", "rules", ALERTS]);
  ok(success, output);
  match(output, new RegExp(`SUCCESS: ${alertRules().length} rules found`));
  ok(!/WARNING/i.test(output), output);
});

Deno.test("promtool test rules passes deploy/prometheus/alerts_test.yaml", async () => {
  const { success, output } = await promtool(["test", "rules", ALERTS_TEST]);
  ok(success, output);
  match(output, /SUCCESS/);
});

Deno.test("every alert has a severity, a summary, a description and a for", () => {
  const rules = alertRules();
  ok(rules.length >= 15, `${rules.length} rules`);
  const names = new Set<string>();
  for (const rule of rules) {
    ok(rule.alert !== undefined, `a recording rule in ${ALERTS}: ${rule.record}`);
    ok(!names.has(rule.alert), `${rule.alert} twice`);
    names.add(rule.alert);
    ok(["critical", "warning", "info"].includes(rule.labels?.severity ?? ""), rule.alert);
    ok((rule.annotations?.summary ?? "") !== "", `${rule.alert} has a summary`);
    ok((rule.annotations?.description ?? "") !== "", `${rule.alert} has a description`);
    match(rule.for ?? "", /^\d+[smh]$/, `${rule.alert} has a for`);
  }
});

Deno.test("every alert has a test where it fires and one where it does not", () => {
  const firing = new Set<string>();
  const quiet = new Set<string>();
  for (const test of alertTests()) {
    for (const check of test.alert_rule_test) {
      (check.exp_alerts.length > 0 ? firing : quiet).add(check.alertname);
    }
  }
  const alerts = alertRules().map((r) => r.alert!).sort();
  deepEqual([...firing].sort(), alerts, "alerts with a firing case");
  deepEqual([...quiet].sort(), alerts, "alerts with a not-firing case");
});

Deno.test("the alerts and their tests name only metrics a node exports", () => {
  ok(FAMILIES.size > 50, `${FAMILIES.size} families`);
  const unknown: string[] = [];
  for (const rule of alertRules()) {
    const names = metricNames(rule.expr);
    ok(names.length > 0, `${rule.alert} selects no metric`);
    for (const name of names) if (familyOf(name) === null) unknown.push(`${rule.alert}: ${name}`);
  }
  for (const test of alertTests()) {
    for (const { series } of test.input_series) {
      const name = /^[a-zA-Z_:][\w:]*/.exec(series)?.[0] ?? series;
      if (familyOf(name) === null) unknown.push(`${ALERTS_TEST}: ${name}`);
    }
  }
  deepEqual(unknown, []);
});

// --- The dashboard -----------------------------------------------------------------------------

interface Target {
  readonly expr: string;
  readonly datasource?: { uid?: string };
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly targets?: Target[];
}

interface Dashboard {
  readonly schemaVersion: number;
  readonly templating: { list: { name: string; type: string; query: unknown }[] };
  readonly panels: Panel[];
}

function dashboard(): Dashboard {
  return JSON.parse(read(DASHBOARD)) as Dashboard;
}

/** Every PromQL expression of the dashboard: panel targets and query variables. */
function dashboardExpressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const board = dashboard();
  for (const panel of board.panels) {
    for (const target of panel.targets ?? []) out.push({ where: panel.title, expr: target.expr });
  }
  for (const variable of board.templating.list) {
    if (variable.type !== "query") continue;
    const query = (variable.query as { query: string }).query;
    // label_values(<series selector>, <label>): the selector is PromQL.
    const selector = /^label_values\((.*),\s*\w+\)$/.exec(query)?.[1];
    ok(selector !== undefined, `variable ${variable.name}: ${query}`);
    out.push({ where: `variable ${variable.name}`, expr: selector });
  }
  return out;
}

Deno.test("the dashboard has a Prometheus data source variable that every panel uses", () => {
  const board = dashboard();
  ok(
    board.schemaVersion >= 36 && board.schemaVersion <= 41,
    `schemaVersion ${board.schemaVersion}`,
  );
  const datasource = board.templating.list.find((v) => v.name === "datasource");
  deepEqual([datasource?.type, datasource?.query], ["datasource", "prometheus"]);
  const ids = new Set<number>();
  for (const panel of board.panels) {
    ok(!ids.has(panel.id), `panel id ${panel.id} twice`);
    ids.add(panel.id);
    if (panel.type === "row") continue;
    deepEqual(panel.datasource, { type: "prometheus", uid: "${datasource}" }, panel.title);
    ok((panel.targets ?? []).length > 0, `${panel.title} has no query`);
    for (const target of panel.targets!) equal(target.datasource?.uid, "${datasource}");
  }
});

Deno.test("the dashboard shows requests, apply, cluster, backups, archive and process", () => {
  const used = new Set(dashboardExpressions().flatMap(({ expr }) => metricNames(expr)));
  for (
    const name of [
      "firescroll_api_request_duration_seconds_count",
      "firescroll_api_request_duration_seconds_bucket",
      "firescroll_apply_lag_seconds_bucket",
      "firescroll_apply_consumer_lag_messages",
      "firescroll_node_partitions",
      "firescroll_cluster_gossip_members",
      "firescroll_cluster_proxy_requests_total",
      "firescroll_backup_last_success_timestamp_seconds",
      "firescroll_backup_failures_total",
      "firescroll_archive_offset",
      "firescroll_archive_gaps",
      "process_resident_memory_bytes",
      "firescroll_process_eventloop_lag_seconds_bucket",
    ]
  ) ok(used.has(name), `no panel shows ${name}`);
});

Deno.test("the dashboard's queries name only metrics a node exports", () => {
  const unknown: string[] = [];
  for (const { where, expr } of dashboardExpressions()) {
    const names = metricNames(expr);
    ok(names.length > 0, `${where} selects no metric: ${expr}`);
    for (const name of names) if (familyOf(name) === null) unknown.push(`${where}: ${name}`);
  }
  deepEqual(unknown, []);
});

Deno.test("the dashboard's queries are valid PromQL to promtool", async () => {
  // Grafana's variables replaced by what they stand for; each query a recording rule.
  const rules = dashboardExpressions().map(({ expr }, i) => ({
    record: `dashboard:query_${i}`,
    expr: expr.replaceAll("$__rate_interval", "5m").replace(/\$\{?\w+\}?/g, ".*"),
  }));
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, JSON.stringify({ groups: [{ name: "dashboard", rules }] }));
    const { success, output } = await promtool(["check", "rules", file]);
    ok(success, output);
    match(output, new RegExp(`SUCCESS: ${rules.length} rules found`));
  } finally {
    await Deno.remove(file);
  }
});

// --- A real node -------------------------------------------------------------------------------

/** The value of the sample `series` (name and labels as rendered), or null. */
function sample(text: string, series: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

Deno.test("a node with serving threads serves /metrics that promtool finds clean, the process once", async () => {
  await withNode({ env: { PARTITIONS: "4", SERVE_THREADS: "2" } }, async (node) => {
    for (let i = 0; i < 5; i++) {
      const put = await node.post("/records/put", { records: [{ pk: `m${i}`, sk: "s", data: i }] });
      equal(put.status, 200, put.text);
      const get = await node.post("/records/get", {
        records: [{ pk: `m${i}`, sk: "s" }],
        after: put.json.offsets,
        wait_ms: 2000,
      });
      equal(get.status, 200, get.text);
    }
    const metrics = await node.internal("/metrics");
    equal(metrics.status, 200);
    const text = metrics.text;
    equal(await checkMetrics(text), "", "promtool check metrics");
    // Every family the registry has, and no other.
    const rendered = new Map<string, string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      rendered.set(name!, type!);
    }
    deepEqual(rendered, FAMILIES);
    ok(
      sample(text, 'firescroll_api_request_duration_seconds_count{route="get",status="200"}')! >= 5,
    );
    equal(sample(text, "firescroll_node_ready"), 1);
    // Reported once for the process, not once per thread.
    const { deno, v8, typescript } = Deno.version;
    const info = `firescroll_build_info{version="${VERSION}",deno="${deno}",v8="${v8}",` +
      `typescript="${typescript}"}`;
    equal(sample(text, info), 1);
    equal(text.split("\n").filter((l) => l.startsWith("firescroll_build_info{")).length, 1);
    const start = sample(text, "process_start_time_seconds")!;
    ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 600, `start ${start}`);
    ok(sample(text, "process_resident_memory_bytes")! > 10 * 1024 * 1024);
    ok(sample(text, "process_cpu_seconds_total")! > 0);
    // The app samples the main thread's event loop.
    ok(sample(text, "firescroll_process_eventloop_lag_seconds_count")! > 0);
    ok(sample(text, "nodejs_eventloop_lag_seconds")! >= 0);
    if (Deno.build.os === "linux") {
      const fds = sample(text, "process_open_fds")!;
      ok(fds > 5 && fds < sample(text, "process_max_fds")!, `open fds ${fds}`);
    }
  });
});
