// deno-lint-ignore-file no-console
/**
 * Turns the raw outputs of `THREADS_MATRIX=1 bash bench/read.sh` into a Markdown block: per-run
 * rows, then per pin mode the medians of hello ×1, hello ×T, the node at `SERVE_THREADS=1` and at
 * its default (T serving threads), the CPU each spends per request, and the latency at half the
 * saturating load, each held against issue 13's targets:
 *
 * - unpinned, the default node's throughput ≥ 1.7 × the `SERVE_THREADS=1` node's;
 * - a node's CPU per request ≤ 2 × hello-world's at the same thread count;
 * - p99 ≤ 1 ms at half the default node's saturating load (unpinned).
 *
 * Usage: `deno run --allow-read bench/read_threads_report.ts META_JSON RESULTS_JSONL` (each line of
 * RESULTS_JSONL names one wrk or h2load run: its raw output, the CPU measured around it, its pin
 * mode and thread count; the half-load runs also name h2load's per-request log).
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

interface ResultLine {
  readonly name: string;
  readonly tool: "wrk" | "h2load";
  readonly target: "hello" | "node";
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
  /** Half-load runs only: h2load's per-request log, the throughput it is half of, the rate. */
  readonly log?: string;
  readonly saturating_rps?: number;
  readonly target_rps?: number;
}

interface Row extends ResultLine {
  readonly stats: RunStats;
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
}

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
    if (r.tool === "wrk") {
      rows.push({ ...r, stats: parseWrk(text) });
    } else {
      // h2load's summary has the rate and errors; its per-request log has the percentiles.
      const summary = parseH2load(text);
      const log = r.log === undefined ? null : parseH2loadLog(await Deno.readTextFile(r.log));
      rows.push({
        ...r,
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
      `\`bench/seed.ts\`. Pin modes: unpinned = every thread of every server and wrk on CPUs ` +
      `${meta.all_cpus}; pinned = every server thread on CPU ${meta.server_cpu} ` +
      `(\`taskset -a -p\` on the running process), wrk on CPU ${meta.client_cpu}. Per pin mode a ` +
      `${meta.warmup} s warm-up per server, then ${meta.rounds} round(s) of ${meta.duration} s per ` +
      `run, the order alternating. wrk: -t${meta.wrk_threads} -c${meta.conns}; nodes get one ` +
      "random seeded key per request (`bench/get.lua`), hellos `GET /`.",
  );
  p();
  p("Commands (the first of each):");
  p();
  p("```sh");
  const seen = new Set<string>();
  for (const r of rows) {
    if (seen.has(r.name)) continue;
    seen.add(r.name);
    p(`# ${r.name}`);
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

  const rounds = rows.filter((r) => r.tool === "wrk");
  p(
    "Per run. Latency in ms (wrk's histogram). CPU in % of one CPU: server = the whole process " +
      "(every thread, `/proc/PID/stat`), main = its main thread (the JS thread that serves with " +
      "one thread; with more it runs the node's writer, or only keeps the hello workers), client " +
      `= wrk, machine = all ${m.nproc} CPUs. µs/req = server CPU time per request.`,
  );
  p();
  p(
    "| pin | round | run | threads | req/s | p50 | p99 | p99.9 | max | errors | server CPU | main | µs/req | client CPU | machine busy |",
  );
  p("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  for (const r of rounds) {
    const s = r.stats;
    p(
      `| ${r.pin} | ${r.round} | ${label[r.name] ?? r.name} | ${r.threads} | ${rps(s.rps)} | ${
        ms(s.p50)
      } | ${ms(s.p99)} | ${ms(s.p999)} | ${ms(s.max)} | ${s.bad} | ${pct(r.server_cpu_pct)} | ${
        pct(r.server_main_thread_cpu_pct)
      } | ${fixed(usPerRequest(r))} | ${pct(r.client_cpu_pct)} | ${pct(r.machine_busy_pct)} |`,
    );
  }
  p();

  const pins = meta.pin_modes.split(/\s+/).filter((s) => s !== "") as Row["pin"][];
  const of = (pin: string, name: string) => rounds.filter((r) => r.pin === pin && r.name === name);
  const medRps = (pin: string, name: string) => medianOf(of(pin, name), (r) => r.stats.rps);
  const medUs = (pin: string, name: string) => medianOf(of(pin, name), usPerRequest);

  p(`Medians over the rounds, req/s (×${t} ÷ ×1: what the extra threads bring):`);
  p();
  p(
    `| pin | hello ×1 | hello ×${t} | hello ×${t} ÷ ×1 | node ×1 | node default | node default ÷ node ×1 | node ×1 ÷ hello ×1 | node default ÷ hello ×${t} | controls: hello ×1 / ×${t} with get.lua |`,
  );
  p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  for (const pin of pins) {
    const h1 = medRps(pin, "hello-1");
    const ht = medRps(pin, "hello-T");
    const n1 = medRps(pin, "node-1");
    const nd = medRps(pin, "node-default");
    p(
      `| ${pin} | ${rps(h1)} | ${rps(ht)} | ${fixed(ratio(ht, h1), 2)} | ${rps(n1)} | ${
        rps(nd)
      } | ` +
        `**${fixed(ratio(nd, n1), 2)}** | ${fixed(ratio(n1, h1), 2)} | ${
          fixed(ratio(nd, ht), 2)
        } | ` +
        `${rps(medRps(pin, "hello-1-getlua"))} / ${rps(medRps(pin, "hello-T-getlua"))} |`,
    );
  }
  p();
  p("Medians over the rounds, server CPU µs per request (node ÷ hello at the same thread count):");
  p();
  p(
    `| pin | hello ×1 | node ×1 | node ×1 ÷ hello ×1 | hello ×${t} | node default | node default ÷ hello ×${t} |`,
  );
  p("|---|--:|--:|--:|--:|--:|--:|");
  for (const pin of pins) {
    const h1 = medUs(pin, "hello-1");
    const ht = medUs(pin, "hello-T");
    const n1 = medUs(pin, "node-1");
    const nd = medUs(pin, "node-default");
    p(
      `| ${pin} | ${fixed(h1)} | ${fixed(n1)} | **${fixed(ratio(n1, h1), 2)}** | ${fixed(ht)} | ` +
        `${fixed(nd)} | **${fixed(ratio(nd, ht), 2)}** |`,
    );
  }
  p();

  const half = rows.filter((r) => r.tool === "h2load");
  if (half.length > 0) {
    p(
      `Latency at ${Number(meta.half_load) * 100} % of each server's saturating throughput ` +
        `(its unpinned median above), unpinned: \`h2load --h1\`, ${meta.half_conns} connections ` +
        `of one request at a time, each paced to its share of the rate (\`--rps\`), ` +
        `${meta.half_duration} s after a 1 s warm-up; percentiles from h2load's per-request ` +
        `log. The nodes get one fixed key (\`${meta.body}\`).`,
    );
    p();
    p(
      "| server | saturating req/s | target req/s | achieved req/s | p50 | p99 | p99.9 | max | errors | server CPU | µs/req |",
    );
    p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const r of half) {
      const s = r.stats;
      p(
        `| ${label[r.name.replace(/^half-/, "")] ?? r.name} | ${rps(r.saturating_rps)} | ${
          rps(r.target_rps)
        } | ${rps(s.rps)} | ${ms(s.p50)} | **${ms(s.p99)}** | ${ms(s.p999)} | ${
          ms(s.max)
        } | ${s.bad} | ${pct(r.server_cpu_pct)} | ${fixed(usPerRequest(r))} |`,
      );
    }
    p();
    p(
      "h2load times a request from when it sends it: a request it holds back because its " +
        "connection is still waiting is not charged that wait (coordinated omission). The " +
        "achieved rate tells whether the load was kept; below the target it was not.",
    );
    p();
  }

  p("**Targets (issue 13):**");
  p();
  const speedup = pins.includes("unpinned")
    ? ratio(medRps("unpinned", "node-default"), medRps("unpinned", "node-1"))
    : NaN;
  p(
    `- Unpinned, node default ÷ node SERVE_THREADS=1 = ${fixed(speedup, 2)} (target ≥ ` +
      `${SPEEDUP_MIN}): ${verdict(Number.isFinite(speedup) ? speedup >= SPEEDUP_MIN : null)}.`,
  );
  const cpuChecks: { what: string; value: number }[] = [];
  for (const pin of pins) {
    cpuChecks.push({
      what: `${pin}, ×1`,
      value: ratio(medUs(pin, "node-1"), medUs(pin, "hello-1")),
    });
    cpuChecks.push({
      what: `${pin}, ×${t}`,
      value: ratio(medUs(pin, "node-default"), medUs(pin, "hello-T")),
    });
  }
  const measured = cpuChecks.filter((c) => Number.isFinite(c.value));
  const over = measured.filter((c) => c.value > CPU_RATIO_MAX);
  p(
    `- CPU per request, node ÷ hello at the same thread count (target ≤ ${CPU_RATIO_MAX}): ` +
      cpuChecks.map((c) => `${c.what} ${fixed(c.value, 2)}`).join("; ") + ": " +
      (measured.length === 0
        ? verdict(null)
        : over.length === 0
        ? `${verdict(true)} in all ${measured.length}`
        : `${verdict(false)} in ${over.map((c) => c.what).join("; ")}`) +
      ".",
  );
  const halfDefault = half.find((r) => r.name === "half-node-default");
  if (halfDefault === undefined) {
    p(`- p99 at half load ≤ ${HALF_LOAD_P99_MAX_US / 1000} ms: ${
      verdict(null)
    } (no unpinned run).`);
  } else {
    const p99 = halfDefault.stats.p99;
    const reached = halfDefault.target_rps !== undefined &&
      halfDefault.stats.rps >= RATE_REACHED_MIN * halfDefault.target_rps;
    p(
      `- p99 of the default node at ${rps(halfDefault.stats.rps)} req/s (target rate ` +
        `${rps(halfDefault.target_rps)}, ${Number(meta.half_load) * 100} % of ` +
        `${rps(halfDefault.saturating_rps)}) = ${ms(p99)} ms (target ≤ ` +
        `${HALF_LOAD_P99_MAX_US / 1000} ms): ` +
        (!reached
          ? `${verdict(null)}: the load generator sent less than ${RATE_REACHED_MIN * 100} % ` +
            "of the target rate, so this is not the latency at half load."
          : `${verdict(p99 !== null && p99 <= HALF_LOAD_P99_MAX_US)}.`) +
        (halfDefault.stats.bad > 0 ? ` (${halfDefault.stats.bad} errors.)` : ""),
    );
  }
  console.log(out.join("\n"));
}

if (import.meta.main) await main();
