// deno-lint-ignore-file no-console
/**
 * Turns the raw outputs of bench/read.sh into the Markdown block for bench/RESULTS.md.
 *
 * Usage: `deno run --allow-read bench/read_report.ts META_JSON RESULTS_JSONL`, where each line of
 * RESULTS_JSONL names one wrk or h2load run (its raw output file and the CPU use measured around
 * it) and META_JSON describes the machine, the seed and the settings.
 *
 * @module
 */

/** What one load-generator run measured. Latencies are microseconds; null when not reported. */
export interface RunStats {
  readonly rps: number;
  readonly requests: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly p999: number | null;
  readonly mean: number | null;
  readonly max: number | null;
  /** Responses that were not 200, plus failed or errored requests. */
  readonly bad: number;
}

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
}

interface Row extends ResultLine {
  readonly stats: RunStats;
}

interface Meta {
  readonly machine: Record<string, string>;
  readonly seed: Record<string, unknown>;
  readonly sample: string;
  readonly records: string;
  readonly partitions: string;
  readonly rounds: string;
  readonly duration: string;
  readonly warmup: string;
  readonly pin: string;
  readonly tmp: string;
}

/** Parses the `BENCH_JSON {...}` line printed by bench/get.lua and bench/summary.lua. */
export function parseWrk(text: string): RunStats {
  const line = text.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (line === undefined) throw new Error("Cannot parse wrk output: no BENCH_JSON line");
  const j = JSON.parse(line.slice("BENCH_JSON ".length));
  const e = j.errors;
  return {
    rps: j.rps,
    requests: j.requests,
    p50: j.p50_us,
    p99: j.p99_us,
    p999: j.p999_us,
    mean: j.mean_us,
    max: j.max_us,
    bad: j.non200 + e.connect + e.read + e.write + e.timeout,
  };
}

function micros(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value);
  if (m === null) throw new Error(`Cannot parse h2load duration "${value}"`);
  const n = Number(m[1]);
  return m[2] === "us" ? n : m[2] === "ms" ? n * 1000 : n * 1e6;
}

/** Parses h2load's summary; it reports no percentiles, only min/max/mean/sd per request. */
export function parseH2load(text: string): RunStats {
  const finished = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(text);
  const requests =
    /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/
      .exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(text);
  if (finished === null || requests === null || codes === null || time === null) {
    throw new Error("Cannot parse h2load output: summary lines missing");
  }
  return {
    rps: Number(finished[1]),
    requests: Number(requests[1]),
    p50: null,
    p99: null,
    p999: null,
    mean: micros(time[3]!),
    max: micros(time[2]!),
    bad: Number(requests[3]) + Number(requests[4]) + Number(requests[5]) + Number(codes[2]) +
      Number(codes[3]) + Number(codes[4]),
  };
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function rps(n: number): string {
  return Number.isFinite(n) ? int.format(n) : "–";
}

function ms(us: number | null): string {
  if (us === null || !Number.isFinite(us)) return "–";
  return us < 1000 ? `${(us / 1000).toFixed(3)}` : `${(us / 1000).toFixed(2)}`;
}

function pct(n: number): string {
  return Number.isFinite(n) ? n.toFixed(0) : "–";
}

function ratio(a: number, b: number): string {
  return b > 0 && Number.isFinite(a) ? (a / b).toFixed(2) : "–";
}

/** CPU time of the server process per request, µs: less sensitive to a busy machine than req/s. */
function usPerRequest(r: Row): number {
  return r.stats.rps > 0 ? (r.server_cpu_pct / 100) * 1e6 / r.stats.rps : NaN;
}

function medianOf(rows: readonly Row[], pick: (r: Row) => number | null): number {
  const values = rows.map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
  return median(values);
}

async function main(): Promise<void> {
  const [metaPath, resultsPath] = Deno.args;
  if (metaPath === undefined || resultsPath === undefined) {
    throw new Error("Usage: read_report.ts META_JSON RESULTS_JSONL");
  }
  const meta = JSON.parse(await Deno.readTextFile(metaPath)) as Meta;
  const lines = (await Deno.readTextFile(resultsPath)).split("\n").filter((l) => l.trim() !== "");
  const rows: Row[] = [];
  for (const line of lines) {
    const r = JSON.parse(line) as ResultLine;
    const text = await Deno.readTextFile(r.raw);
    rows.push({ ...r, stats: r.tool === "wrk" ? parseWrk(text) : parseH2load(text) });
  }
  const m = meta.machine;
  const tmp = meta.tmp;
  const shown = (cmd: string) => cmd.replaceAll(`${tmp}/`, "$TMP/").trim();
  const out: string[] = [];
  const p = (s = "") => out.push(s);

  p(`### Read: single-key get vs hello-world (${m.date})`);
  p();
  p(
    `Machine: ${m.nproc} vCPU ${m.cpu}, ${m.mem}, Linux ${m.kernel}; ${m.deno} (${m.v8}); ` +
      `${m.wrk}; ${m.h2load}. Commit ${m.commit} (${m.src_files_changed} uncommitted changes in ` +
      `src/ and main.ts). Load average at start: ${m.loadavg_at_start}. ` +
      `CPU pinning: ${meta.pin === "1" ? "servers on one CPU, clients on the other" : "none"}.`,
  );
  p();
  const seed = meta.seed;
  if (seed.caught_up === false) {
    p(
      "**WARNING: the node had not applied every acknowledged seed write within the seed's " +
        "catch-up timeout; the reads below ran anyway.**",
    );
    p();
  }
  p(
    `Node: embedded log, ${meta.partitions} partitions, fresh DB_PATH on ${m.tmp_fs}, ` +
      `LISTEN_HOST=127.0.0.1, seeded with ${meta.records} records by \`bench/seed.ts\` ` +
      `(${rps(Number(seed.records_per_s))} records/s, caught up ${seed.catch_up_s} s after the ` +
      `last ack; the node then held ${
        seed.records_on_node ?? "?"
      } records). ${meta.rounds} rounds of ${meta.duration} s per run, alternating order, ` +
      `after a ${meta.warmup} s warm-up per server and client.`,
  );
  p();
  const firstOf = (name: string) => rows.find((r) => r.name === name);
  const body = JSON.stringify({
    records: [{ pk: `user-${Number(meta.records) >> 1}`, sk: "profile" }],
  });
  p(`Commands (\`$TMP/get_body.json\` holds \`${body}\`):`);
  p();
  p("```sh");
  for (const name of ["wrk-hello", "wrk-hello-getlua", "wrk-node", "h2load-hello", "h2load-node"]) {
    const r = firstOf(name);
    if (r !== undefined) p(shown(r.cmd));
  }
  const sweep = rows.filter((r) => r.name.startsWith("sweep-"));
  if (sweep.length > 0) {
    p(`# sweep: ${shown(sweep[0]!.cmd).replace(/-c\d+/, "-c<C>")}`);
  }
  p("```");
  p();
  p(
    "Per run. Latency in ms (wrk: percentiles; h2load reports only mean and max). CPU in % of " +
      "one CPU: server = whole process, JS = its main thread, client = the load generator, " +
      `machine = all ${m.nproc} CPUs (so the rest is other work on the machine).`,
  );
  p();
  p(
    "| round | run | req/s | p50 | p99 | p99.9 | mean | max | non-200/errors | server CPU | JS thread | server µs/req | client CPU | machine busy |",
  );
  p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  const main = rows.filter((r) => !r.name.startsWith("sweep-"));
  for (const r of main) {
    const s = r.stats;
    p(
      `| ${r.round} | ${r.name} | ${rps(s.rps)} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.p999)} | ${
        ms(s.mean)
      } | ${ms(s.max)} | ${s.bad} | ${pct(r.server_cpu_pct)} | ${
        pct(r.server_main_thread_cpu_pct)
      } | ${usPerRequest(r).toFixed(1)} | ${pct(r.client_cpu_pct)} | ${pct(r.machine_busy_pct)} |`,
    );
  }
  p();
  p(
    "server µs/req = CPU time of the server process per request (server CPU ÷ req/s): the cost " +
      "of one request, which a busy machine inflates far less than it cuts req/s.",
  );
  p();
  p("Medians over the rounds:");
  p();
  p(
    "| run | req/s | p50 | p99 | mean | server CPU | JS thread | server µs/req | client CPU | machine busy |",
  );
  p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  const med = new Map<string, { rps: number; p99: number }>();
  for (const name of ["wrk-hello", "wrk-hello-getlua", "wrk-node", "h2load-hello", "h2load-node"]) {
    const rs = main.filter((r) => r.name === name);
    if (rs.length === 0) continue;
    const mr = medianOf(rs, (r) => r.stats.rps);
    const m99 = medianOf(rs, (r) => r.stats.p99);
    med.set(name, { rps: mr, p99: m99 });
    p(
      `| ${name} | ${rps(mr)} | ${ms(medianOf(rs, (r) => r.stats.p50))} | ${ms(m99)} | ${
        ms(medianOf(rs, (r) => r.stats.mean))
      } | ${pct(medianOf(rs, (r) => r.server_cpu_pct))} | ${
        pct(medianOf(rs, (r) => r.server_main_thread_cpu_pct))
      } | ${medianOf(rs, usPerRequest).toFixed(1)} | ${
        pct(medianOf(rs, (r) => r.client_cpu_pct))
      } | ${pct(medianOf(rs, (r) => r.machine_busy_pct))} |`,
    );
  }
  const hello = med.get("wrk-hello")?.rps ?? NaN;
  const helloLua = med.get("wrk-hello-getlua")?.rps ?? NaN;
  const node = med.get("wrk-node")?.rps ?? NaN;
  const nodeP99 = med.get("wrk-node")?.p99 ?? NaN;
  const h2Hello = med.get("h2load-hello")?.rps ?? NaN;
  const h2Node = med.get("h2load-node")?.rps ?? NaN;
  p();
  p("Ratios of medians, node ÷ hello:");
  p();
  p(`- wrk, node get.lua ÷ hello GET /: **${ratio(node, hello)}**`);
  p(
    `- wrk, node get.lua ÷ hello with the same get.lua client (control for the client's own cost): ` +
      `**${ratio(node, helloLua)}**`,
  );
  p(`- h2load (h2c prior knowledge), node ÷ hello: **${ratio(h2Node, h2Hello)}**`);
  p();
  const target = hello / 2;
  const meets = node >= target;
  p(
    `Target: single-key get ≥ 0.5 × hello-world (wrk) = ${rps(target)} req/s, with p99 < 2 ms ` +
      `at that load. Closed loop at the configured connections: ${rps(node)} req/s, p99 ` +
      `${ms(nodeP99)} ms → throughput ${meets ? "**met**" : "**not met**"}, p99 ${
        nodeP99 < 2000 ? "**< 2 ms**" : "**≥ 2 ms**"
      }. wrk has no rate limit, so this p99 is measured at the closed loop's own (maximum) ` +
      "throughput, which is at or above the target load when the target is met: an upper bound " +
      "for the p99 at exactly the target rate.",
  );
  if (sweep.length > 0) {
    p();
    p(
      "Latency at lower load (closed loop, fewer connections; one run each, the load is what the " +
        "connections sustain):",
    );
    p();
    p("| connections | req/s | ≥ target | p50 | p99 | p99.9 | max | non-200 | JS thread | machine busy |");
    p("|--:|--:|:-:|--:|--:|--:|--:|--:|--:|--:|");
    for (const r of sweep) {
      const s = r.stats;
      p(
        `| ${r.round.replace(/^c/, "")} | ${rps(s.rps)} | ${s.rps >= target ? "yes" : "no"} | ${
          ms(s.p50)
        } | ${ms(s.p99)} | ${ms(s.p999)} | ${ms(s.max)} | ${s.bad} | ${
          pct(r.server_main_thread_cpu_pct)
        } | ${pct(r.machine_busy_pct)} |`,
      );
    }
    const first = sweep.find((r) => r.stats.rps >= target);
    p();
    p(
      first === undefined
        ? "No sweep point reached the target throughput."
        : `Lowest sweep point at or above the target: ${
          first.round.replace(/^c/, "")
        } connections, ${rps(first.stats.rps)} req/s, p99 ${ms(first.stats.p99)} ms.`,
    );
  }
  const nodeRuns = main.filter((r) => r.name === "wrk-node");
  const helloRuns = main.filter((r) => r.name === "wrk-hello");
  const nodeUs = medianOf(nodeRuns, usPerRequest);
  const helloUs = medianOf(helloRuns, usPerRequest);
  const js = medianOf(nodeRuns, (r) => r.server_main_thread_cpu_pct);
  const client = medianOf(nodeRuns, (r) => r.client_cpu_pct);
  const busy = medianOf(nodeRuns, (r) => r.machine_busy_pct);
  p();
  p(
    `Limit (wrk-node medians): node JS thread ${pct(js)} %, whole node process ${
      pct(medianOf(nodeRuns, (r) => r.server_cpu_pct))
    } %, wrk ${pct(client)} %, machine ${pct(busy)} % of ${Number(m.nproc) * 100} %. ` +
      (js >= 90
        ? "The node's JS thread is saturated: the node is CPU-bound on its one JS thread."
        : busy >= Number(m.nproc) * 90
        ? "The machine is saturated (both CPUs busy), so client, server and kernel compete."
        : "Neither the JS thread nor the machine is saturated: look at latency per request " +
          "(wake-ups, syscalls) rather than CPU."),
  );
  p();
  p(
    `CPU per request (medians): node ${nodeUs.toFixed(1)} µs, hello ${helloUs.toFixed(1)} µs ` +
      `(${ratio(nodeUs, helloUs)}×). When the server's CPU is the limit, throughput ratio ≈ ` +
      `hello µs ÷ node µs = ${ratio(helloUs, nodeUs)}; the target needs node ≤ 2 × hello = ` +
      `${(2 * helloUs).toFixed(1)} µs per request.`,
  );
  console.log(out.join("\n"));
}

if (import.meta.main) await main();
