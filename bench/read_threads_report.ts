// deno-lint-ignore-file no-console
/**
 * Turns the raw outputs of `THREADS_MATRIX=1 bash bench/read.sh` into a Markdown block. For each
 * client of the run — wrk (HTTP/1.1) and h2load (h2c, prior knowledge) — per-run rows, then per pin
 * mode the medians of hello ×1, hello ×T, the node at `SERVE_THREADS=1` and at its default (T
 * serving threads) and the CPU each server and the client spend per request; then the latency at
 * half the saturating load; then, per client, each of issue 13's targets held against the data:
 *
 * - unpinned, the default node's throughput ≥ 1.7 × the `SERVE_THREADS=1` node's;
 * - a node's CPU per request ≤ 2 × hello-world's at the same thread count;
 * - p99 ≤ 1 ms at half the default node's saturating load (unpinned; HTTP/1.1: `h2load --h1` at
 *   half of wrk's rate; h2c: h2load at half of h2load's rate).
 *
 * Two clients because the client shares the machine's CPUs with the server: a client that spends
 * more CPU per request than the server leaves a multi-threaded server no CPU to use, so the
 * server's scaling shows only under the cheaper client.
 *
 * Usage: `deno run --allow-read bench/read_threads_report.ts META_JSON RESULTS_JSONL` (each line of
 * RESULTS_JSONL names one wrk or h2load run: its raw output, the CPU measured around it, its pin
 * mode, thread count and protocol; the half-load runs also name h2load's per-request log).
 *
 * @module
 */
import { median, parseH2load, parseWrk, type RunStats } from "./read_report.ts";

/** Issue 13's targets. */
const SPEEDUP_MIN = 1.7;
const CPU_RATIO_MAX = 2;
const HALF_LOAD_P99_MAX_US = 1000;
/** A half-load run that sent less than this share of its target rate did not measure that load. */
const RATE_REACHED_MIN = 0.95;

/** How a run's requests went: HTTP/1.1 (wrk, `h2load --h1`) or h2c with prior knowledge (h2load). */
type Proto = "h1" | "h2c";

interface ResultLine {
  readonly name: string;
  readonly tool: "wrk" | "h2load";
  readonly target: "hello" | "node";
  /** The round number, or "half" for a half-load run. */
  readonly round: string;
  readonly raw: string;
  readonly cmd: string;
  readonly wall_s: number;
  readonly server_cpu_pct: number;
  readonly server_main_thread_cpu_pct: number;
  readonly client_cpu_pct: number;
  readonly machine_busy_pct: number;
  readonly pin: "unpinned" | "pinned";
  readonly threads: number;
  /** Absent in results of runs before h2load joined the matrix: those are all HTTP/1.1. */
  readonly proto?: Proto;
  /** Half-load runs only: h2load's per-request log, the throughput it is half of, the rate. */
  readonly log?: string;
  readonly saturating_rps?: number;
  readonly target_rps?: number;
}

interface Row extends Omit<ResultLine, "proto"> {
  readonly proto: Proto;
  readonly stats: RunStats;
  /** The protocol h2load says it spoke ("Application protocol:"); null for wrk. */
  readonly negotiated: string | null;
}

interface Meta {
  readonly machine: Record<string, string>;
  readonly seed: {
    readonly default: Record<string, unknown>;
    readonly one: Record<string, unknown>;
  };
  readonly records: string;
  readonly partitions: string;
  readonly rounds: string;
  readonly duration: string;
  readonly warmup: string;
  readonly wrk_threads: string;
  readonly conns: string;
  readonly hello_threads: string;
  readonly node_threads: string;
  readonly all_cpus: string;
  readonly server_cpu: string;
  readonly client_cpu: string;
  readonly pin_modes: string;
  readonly half_load: string;
  readonly half_conns: string;
  readonly half_duration: string;
  readonly body: string;
  readonly tmp: string;
  /** MATRIX_CLIENTS; absent before h2load joined the matrix (wrk alone then). */
  readonly clients?: string;
  readonly h2_clients?: string;
  readonly h2_streams?: string;
  readonly h2_threads?: string;
  readonly h2_half_streams?: string;
}

/** One load generator of the matrix and how the report names and reads its runs. */
interface Client {
  readonly tool: "wrk" | "h2load";
  readonly proto: Proto;
  readonly title: string;
  /** The protocol h2load must report for this client's runs (null: not checked). */
  readonly expect: string | null;
  /** The name suffix of the control runs: hello sent the request the nodes get. */
  readonly control: string;
  readonly controlWhat: string;
}

const CLIENTS: readonly Client[] = [
  {
    tool: "wrk",
    proto: "h1",
    title: "wrk, HTTP/1.1",
    expect: null,
    control: "getlua",
    controlWhat: "get.lua",
  },
  {
    tool: "h2load",
    proto: "h2c",
    title: "h2load, h2c (prior knowledge)",
    expect: "h2c",
    control: "post",
    controlWhat: "the nodes' POST",
  },
];

/** Latency percentiles (µs) and non-200 count of an h2load `--log-file` (start, status, µs). */
export function parseH2loadLog(
  text: string,
): {
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  bad: number;
} {
  const latencies: number[] = [];
  let bad = 0;
  for (const line of text.split("\n")) {
    const cols = line.split("\t");
    if (cols.length < 3) continue;
    if (cols[1] !== "200") bad++;
    latencies.push(Number(cols[2]));
  }
  latencies.sort((a, b) => a - b);
  // Nearest rank: the smallest latency at or above which fall (100 - p) % of the requests.
  const at = (p: number) =>
    latencies.length === 0
      ? null
      : latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!;
  return { p50: at(50), p99: at(99), p999: at(99.9), max: at(100), bad };
}

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const rps = (n: number | undefined) => n !== undefined && Number.isFinite(n) ? int.format(n) : "–";
const ms = (us: number | null) =>
  us === null || !Number.isFinite(us) ? "–" : (us / 1000).toFixed(us < 1000 ? 3 : 2);
const pct = (n: number) => Number.isFinite(n) ? n.toFixed(0) : "–";
const fixed = (n: number, digits = 1) => Number.isFinite(n) ? n.toFixed(digits) : "–";
const ratio = (a: number, b: number) => b > 0 && Number.isFinite(a) ? a / b : NaN;
const verdict = (ok: boolean | null) =>
  ok === null ? "**not measured**" : ok ? "**met**" : "**not met**";

/** Server CPU time per request, µs (server CPU ÷ req/s). */
function usPerRequest(r: Row): number {
  return r.stats.rps > 0 ? (r.server_cpu_pct / 100) * 1e6 / r.stats.rps : NaN;
}

/** Load generator CPU time per request, µs: what the client takes from the shared CPUs. */
function clientUsPerRequest(r: Row): number {
  return r.stats.rps > 0 ? (r.client_cpu_pct / 100) * 1e6 / r.stats.rps : NaN;
}

function medianOf(rows: readonly Row[], pick: (r: Row) => number | null): number {
  return median(
    rows.map(pick).filter((v): v is number => v !== null && Number.isFinite(v)),
  );
}

async function readRows(path: string): Promise<Row[]> {
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim() !== "");
  const rows: Row[] = [];
  for (const line of lines) {
    const r = JSON.parse(line) as ResultLine;
    const text = await Deno.readTextFile(r.raw);
    const proto = r.proto ?? "h1";
    if (r.tool === "wrk") {
      rows.push({ ...r, proto, stats: parseWrk(text), negotiated: null });
    } else {
      // h2load's summary has the rate, errors, mean and max; its per-request log (half-load runs
      // only) has the percentiles.
      const summary = parseH2load(text);
      const log = r.log === undefined ? null : parseH2loadLog(await Deno.readTextFile(r.log));
      rows.push({
        ...r,
        proto,
        negotiated: /Application protocol: (\S+)/.exec(text)?.[1] ?? null,
        stats: log === null ? summary : {
          ...summary,
          p50: log.p50,
          p99: log.p99,
          p999: log.p999,
          max: log.max,
          bad: Math.max(summary.bad, log.bad),
        },
      });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const [metaPath, resultsPath] = Deno.args;
  if (metaPath === undefined || resultsPath === undefined) {
    throw new Error("Usage: read_threads_report.ts META_JSON RESULTS_JSONL");
  }
  const meta = JSON.parse(await Deno.readTextFile(metaPath)) as Meta;
  const rows = await readRows(resultsPath);
  const m = meta.machine;
  const t = meta.hello_threads;
  const label: Record<string, string> = {
    "hello-1": "hello ×1",
    "hello-T": `hello ×${t}`,
    "node-1": "node SERVE_THREADS=1",
    "node-default": `node default (${meta.node_threads} threads)`,
    "hello-1-getlua": "hello ×1, get.lua (control)",
    "hello-T-getlua": `hello ×${t}, get.lua (control)`,
    "hello-1-post": "hello ×1, the nodes' POST (control)",
    "hello-T-post": `hello ×${t}, the nodes' POST (control)`,
  };
  const protoName: Record<Proto, string> = { h1: "HTTP/1.1", h2c: "h2c" };
  const listed = (meta.clients ?? "wrk").split(/\s+/).filter((s) => s !== "");
  const clients = CLIENTS.filter((c) => listed.includes(c.tool));
  const h2Setup = `-t${meta.h2_threads ?? "?"} -c${meta.h2_clients ?? "?"} -m${
    meta.h2_streams ?? "?"
  }`;
  const setup: Record<Client["tool"], string> = {
    wrk: `\`wrk -t${meta.wrk_threads} -c${meta.conns}\` (HTTP/1.1): the nodes get one random ` +
      "seeded key per request (`bench/get.lua`), the hellos `GET /`",
    h2load: `\`h2load ${h2Setup}\` (h2c with prior knowledge: ${meta.h2_clients ?? "?"} ` +
      `connections of up to ${meta.h2_streams ?? "?"} concurrent streams): the nodes get ` +
      `\`POST /records/get\` with one fixed key (\`${meta.body}\`), the hellos \`GET /\``,
  };
  const shown = (cmd: string) => cmd.replaceAll(`${meta.tmp}/`, "$TMP/").trim();
  const out: string[] = [];
  const p = (s = "") => out.push(s);

  p(`### Read: serving threads vs hello-world, one run (${m.date})`);
  p();
  p(
    `Machine: ${m.nproc} vCPU ${m.cpu}, ${m.mem}, Linux ${m.kernel}; ${m.deno} (${m.v8}); ` +
      `${m.wrk}; ${m.h2load}. Commit ${m.commit} (${m.src_files_changed} uncommitted changes in ` +
      `src/ and main.ts). Load average at start: ${m.loadavg_at_start}.`,
  );
  p();
  for (const [which, seed] of Object.entries(meta.seed)) {
    if (seed.caught_up === false) {
      p(
        `**WARNING: the ${which === "one" ? "SERVE_THREADS=1" : "default"} node had not applied ` +
          "every acknowledged seed write within the seed's catch-up timeout; the reads below ran " +
          "anyway.**",
      );
      p();
    }
  }
  p(
    `Servers, all at once, 127.0.0.1 only: \`bench/hello.ts\` with \`HELLO_THREADS=1\` (the main ` +
      `thread serves) and \`HELLO_THREADS=${t}\` (${t} Workers, each \`Deno.serve\` with ` +
      `\`reusePort\`); two nodes (embedded log, ${meta.partitions} partitions, fresh DB_PATH on ` +
      `${m.tmp_fs}), one with \`SERVE_THREADS=1\` and one with the default \`SERVE_THREADS=0\` ` +
      `(${meta.node_threads} serving threads), each seeded with ${meta.records} records by ` +
      `\`bench/seed.ts\`. Pin modes: unpinned = every thread of every server and the client on ` +
      `CPUs ${meta.all_cpus}; pinned = every server thread on CPU ${meta.server_cpu} ` +
      `(\`taskset -a -p\` on the running process), the client on CPU ${meta.client_cpu}. Per pin ` +
      `mode a ${meta.warmup} s warm-up per server and client, then ${meta.rounds} round(s) of ` +
      `${meta.duration} s per run, the order alternating. Clients: ` +
      clients.map((c) => setup[c.tool]).join("; ") + ".",
  );
  p();
  p("Commands (the first of each):");
  p();
  p("```sh");
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.tool} ${r.proto} ${r.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    p(`# ${r.name} (${r.round === "half" ? protoName[r.proto] : r.tool})`);
    p(shown(r.cmd));
  }
  p("```");
  p();
  const bad = rows.filter((r) => r.stats.bad > 0);
  if (bad.length > 0) {
    p(
      `**WARNING: ${bad.length} run(s) had non-200 answers or errors (see the errors column); ` +
        "their throughput is not comparable.**",
    );
    p();
  }
  const wrongProto = rows.filter((r) =>
    r.tool === "h2load" && r.negotiated !== (r.proto === "h1" ? "http/1.1" : "h2c")
  );
  if (wrongProto.length > 0) {
    p(
      `**WARNING: ${wrongProto.length} h2load run(s) did not speak the protocol they were meant ` +
        `to (${
          wrongProto.map((r) => `${r.name} round ${r.round}: ${r.negotiated ?? "none"}`).join("; ")
        }).**`,
    );
    p();
  }

  const pins = meta.pin_modes.split(/\s+/).filter((s) => s !== "") as Row["pin"][];
  const saturating = rows.filter((r) => r.round !== "half");
  const of = (c: Client, pin: string, name: string) =>
    saturating.filter((r) => r.tool === c.tool && r.pin === pin && r.name === name);
  const medRps = (c: Client, pin: string, name: string) =>
    medianOf(of(c, pin, name), (r) => r.stats.rps);
  const medUs = (c: Client, pin: string, name: string) => medianOf(of(c, pin, name), usPerRequest);
  const medClientUs = (c: Client, pin: string, name: string) =>
    medianOf(of(c, pin, name), clientUsPerRequest);

  for (const c of clients) {
    const runs = saturating.filter((r) => r.tool === c.tool);
    p(`#### ${c.title}`);
    p();
    const h1 = c.proto === "h1";
    p(
      `${setup[c.tool]}. Per run. Latency in ms: ` +
        (h1
          ? "wrk's histogram. "
          : "h2load prints no percentiles, only the mean and max per request (its per-request " +
            "log is written at half load only, so at saturation the client does no extra work). ") +
        "CPU in % of one CPU: server = the whole process (every thread, `/proc/PID/stat`), main " +
        "= its main thread (the JS thread that serves with one thread; with more it runs the " +
        `node's writer, or only keeps the hello workers), client = ${c.tool}, machine = all ` +
        `${m.nproc} CPUs. µs/req = CPU time per request (server; client).`,
    );
    p();
    const latHead = h1 ? "p50 | p99 | p99.9 | max" : "mean | max";
    const latAlign = h1 ? "--:|--:|--:|--:" : "--:|--:";
    p(
      `| pin | round | run | threads | req/s | ${latHead} | errors | server CPU | main | µs/req | client CPU | client µs/req | machine busy |`,
    );
    p(`|---|--:|---|--:|--:|${latAlign}|--:|--:|--:|--:|--:|--:|--:|`);
    for (const r of runs) {
      const s = r.stats;
      const lat = h1
        ? `${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.p999)} | ${ms(s.max)}`
        : `${ms(s.mean)} | ${ms(s.max)}`;
      p(
        `| ${r.pin} | ${r.round} | ${label[r.name] ?? r.name} | ${r.threads} | ${
          rps(s.rps)
        } | ${lat} | ${s.bad} | ${pct(r.server_cpu_pct)} | ${pct(r.server_main_thread_cpu_pct)} | ${
          fixed(usPerRequest(r))
        } | ${pct(r.client_cpu_pct)} | ${fixed(clientUsPerRequest(r))} | ${
          pct(r.machine_busy_pct)
        } |`,
      );
    }
    p();
    p(`${c.title}: medians over the rounds, req/s (×${t} ÷ ×1: what the extra threads bring):`);
    p();
    p(
      `| pin | hello ×1 | hello ×${t} | hello ×${t} ÷ ×1 | node ×1 | node default | node default ÷ node ×1 | node ×1 ÷ hello ×1 | node default ÷ hello ×${t} | controls: hello ×1 / ×${t} with ${c.controlWhat} |`,
    );
    p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const pin of pins) {
      const h1r = medRps(c, pin, "hello-1");
      const htr = medRps(c, pin, "hello-T");
      const n1 = medRps(c, pin, "node-1");
      const nd = medRps(c, pin, "node-default");
      p(
        `| ${pin} | ${rps(h1r)} | ${rps(htr)} | ${fixed(ratio(htr, h1r), 2)} | ${rps(n1)} | ${
          rps(nd)
        } | **${fixed(ratio(nd, n1), 2)}** | ${fixed(ratio(n1, h1r), 2)} | ${
          fixed(ratio(nd, htr), 2)
        } | ${rps(medRps(c, pin, `hello-1-${c.control}`))} / ${
          rps(medRps(c, pin, `hello-T-${c.control}`))
        } |`,
      );
    }
    p();
    p(
      `${c.title}: medians over the rounds, server CPU µs per request (node ÷ hello at the same ` +
        `thread count), and ${c.tool}'s own CPU µs per request against the nodes:`,
    );
    p();
    p(
      `| pin | hello ×1 | node ×1 | node ×1 ÷ hello ×1 | hello ×${t} | node default | node default ÷ hello ×${t} | client: node ×1 / node default |`,
    );
    p("|---|--:|--:|--:|--:|--:|--:|--:|");
    for (const pin of pins) {
      const h1u = medUs(c, pin, "hello-1");
      const htu = medUs(c, pin, "hello-T");
      const n1 = medUs(c, pin, "node-1");
      const nd = medUs(c, pin, "node-default");
      p(
        `| ${pin} | ${fixed(h1u)} | ${fixed(n1)} | **${fixed(ratio(n1, h1u), 2)}** | ${
          fixed(htu)
        } | ${fixed(nd)} | **${fixed(ratio(nd, htu), 2)}** | ${
          fixed(medClientUs(c, pin, "node-1"))
        } / ${fixed(medClientUs(c, pin, "node-default"))} |`,
      );
    }
    p();
  }

  const half = rows.filter((r) => r.round === "half");
  if (half.length > 0) {
    p("#### Latency at half load");
    p();
    p(
      `Latency at ${Number(meta.half_load) * 100} % of each server's saturating throughput ` +
        `(its unpinned median above), unpinned, ${meta.half_duration} s after a 1 s warm-up, ` +
        `percentiles from h2load's per-request log; ${meta.half_conns} connections, each paced ` +
        "to its share of the rate (`--rps`). HTTP/1.1: `h2load --h1` at half of wrk's median, " +
        "one request at a time per connection. h2c: h2load at half of h2load's median, " +
        `${meta.h2_half_streams ?? "?"} stream(s) per connection. The nodes get one fixed key ` +
        `(\`${meta.body}\`).`,
    );
    p();
    p(
      "| protocol | server | saturating req/s | target req/s | achieved req/s | p50 | p99 | p99.9 | max | errors | server CPU | µs/req |",
    );
    p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const r of half) {
      const s = r.stats;
      p(
        `| ${protoName[r.proto]} | ${label[r.name.replace(/^half-/, "")] ?? r.name} | ${
          rps(r.saturating_rps)
        } | ${rps(r.target_rps)} | ${rps(s.rps)} | ${ms(s.p50)} | **${ms(s.p99)}** | ${
          ms(s.p999)
        } | ${ms(s.max)} | ${s.bad} | ${pct(r.server_cpu_pct)} | ${fixed(usPerRequest(r))} |`,
      );
    }
    p();
    p(
      "h2load times a request from when it sends it: a request it holds back because its " +
        "connection has no free stream (one request at a time over HTTP/1.1) is not charged that " +
        "wait (coordinated omission). The achieved rate tells whether the load was kept; below " +
        "the target it was not.",
    );
    p();
  }

  p("**Targets (issue 13), per client, from this run's medians:**");
  p();
  for (const c of clients) {
    p(`- ${c.title}:`);
    const speedup = pins.includes("unpinned")
      ? ratio(medRps(c, "unpinned", "node-default"), medRps(c, "unpinned", "node-1"))
      : NaN;
    p(
      `  - Unpinned, node default ÷ node SERVE_THREADS=1 = ${fixed(speedup, 2)} (target ≥ ` +
        `${SPEEDUP_MIN}): ${verdict(Number.isFinite(speedup) ? speedup >= SPEEDUP_MIN : null)}.`,
    );
    const cpuChecks: { what: string; value: number }[] = [];
    for (const pin of pins) {
      cpuChecks.push({
        what: `${pin}, ×1`,
        value: ratio(medUs(c, pin, "node-1"), medUs(c, pin, "hello-1")),
      });
      cpuChecks.push({
        what: `${pin}, ×${t}`,
        value: ratio(medUs(c, pin, "node-default"), medUs(c, pin, "hello-T")),
      });
    }
    const measured = cpuChecks.filter((x) => Number.isFinite(x.value));
    const over = measured.filter((x) => x.value > CPU_RATIO_MAX);
    p(
      `  - CPU per request, node ÷ hello at the same thread count (target ≤ ${CPU_RATIO_MAX}): ` +
        cpuChecks.map((x) => `${x.what} ${fixed(x.value, 2)}`).join("; ") + ": " +
        (measured.length === 0
          ? verdict(null)
          : over.length === 0
          ? `${verdict(true)} in all ${measured.length}`
          : `${verdict(false)} in ${over.map((x) => x.what).join("; ")}`) +
        ".",
    );
    const how = c.proto === "h1"
      ? "`h2load --h1` at half of wrk's rate"
      : "h2load h2c at half of h2load's rate";
    const halfDefault = half.find((r) => r.name === "half-node-default" && r.proto === c.proto);
    if (halfDefault === undefined) {
      p(
        `  - p99 at half load ≤ ${HALF_LOAD_P99_MAX_US / 1000} ms (${how}): ${
          verdict(null)
        } (no such run).`,
      );
    } else {
      const p99 = halfDefault.stats.p99;
      const reached = halfDefault.target_rps !== undefined &&
        halfDefault.stats.rps >= RATE_REACHED_MIN * halfDefault.target_rps;
      p(
        `  - p99 of the default node at ${rps(halfDefault.stats.rps)} req/s (${how}; target ` +
          `rate ${rps(halfDefault.target_rps)}, ${Number(meta.half_load) * 100} % of ` +
          `${rps(halfDefault.saturating_rps)}) = ${ms(p99)} ms (target ≤ ` +
          `${HALF_LOAD_P99_MAX_US / 1000} ms): ` +
          (!reached
            ? `${verdict(null)}: the load generator sent less than ${RATE_REACHED_MIN * 100} % ` +
              "of the target rate, so this is not the latency at half load."
            : `${verdict(p99 !== null && p99 <= HALF_LOAD_P99_MAX_US)}.`) +
          (halfDefault.stats.bad > 0 ? ` (${halfDefault.stats.bad} errors.)` : ""),
      );
    }
  }
  console.log(out.join("\n"));
}

if (import.meta.main) await main();
