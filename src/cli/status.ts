/**
 * `status`: reads `GET /internal/status` (and the consumer lag from `GET /metrics`) of one or more
 * nodes' internal ports, prints nodes × partitions, and compares the hash chains and digests of
 * replicas at equal offsets. Two replicas at the same offset of a partition must agree
 * (docs/api.md "Internal port"); when they do not, `status` says so and exits 3.
 *
 * @module
 */
import type { Command } from "./args.ts";
import { Client } from "./client.ts";
import { CliError, EXIT, type ExitCode } from "./exit.ts";
import { cell, type Io, render, tableLines } from "./output.ts";

/** One partition in `/internal/status`. */
export interface PartitionWire {
  readonly state: string;
  readonly offset: number;
  readonly chain: string;
  readonly digest: string;
  readonly records: number;
  readonly blocked?: string;
}

/** The parts of `/internal/status` the client reads. */
export interface StatusWire {
  readonly node: {
    readonly id: string;
    readonly region?: string;
    readonly replica_group?: string;
    readonly log?: string;
    readonly partitions?: number;
    readonly ready: boolean;
  };
  readonly partitions: Readonly<Record<string, PartitionWire>>;
}

/** What one `--internal-url` answered. */
export interface NodeReport {
  readonly url: string;
  /** Null when the node could not be read (`error` says why). */
  readonly status: StatusWire | null;
  readonly error: CliError | null;
  /** `firescroll_apply_consumer_lag_messages` by partition, where the node exports it. */
  readonly lag: ReadonlyMap<string, number>;
}

/**
 * Replicas of one partition at one offset that disagree on its chain (they applied different
 * log messages) or only on its digest (the same messages, different records: a damaged file, or
 * two separate logs whose messages carry different timestamps).
 */
export interface Divergence {
  readonly partition: number;
  readonly offset: number;
  readonly differs: "chain" | "digest";
  readonly nodes: readonly { node: string; url: string; chain: string; digest: string }[];
}

/** One replica of one partition, as the table and `--json` show it. */
export interface ReplicaRow {
  readonly partition: number;
  readonly node: string;
  readonly url: string;
  readonly state: string;
  readonly offset: number;
  /** Offsets behind the furthest node read for this partition. */
  readonly behind: number;
  /** Log messages not yet read, from `/metrics`; null where not exported. */
  readonly lag: number | null;
  readonly records: number;
  readonly chain: string;
  readonly digest: string;
  readonly blocked: string | null;
}

const LAG_METRIC = "firescroll_apply_consumer_lag_messages";

/** The consumer lag by partition from a `/metrics` text. */
export function parseLag(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(LAG_METRIC + "{")) continue;
    const match = /partition="(\d+)"[^}]*\}\s+(\S+)/.exec(line);
    if (match === null) continue;
    const value = Number(match[2]);
    if (Number.isFinite(value)) out.set(match[1]!, value);
  }
  return out;
}

/** Names the nodes by their ids; a node read through two URLs gets the URL too. */
export function nodeNames(reports: readonly NodeReport[]): string[] {
  const ids = reports.map((r) => r.status?.node.id ?? "?");
  return ids.map((id, i) =>
    ids.indexOf(id) === ids.lastIndexOf(id) && id !== "?" ? id : `${id}@${reports[i]!.url}`
  );
}

/** Every replica of every partition read, by partition then node. */
export function replicaRows(reports: readonly NodeReport[]): ReplicaRow[] {
  const names = nodeNames(reports);
  const furthest = new Map<number, number>();
  for (const report of reports) {
    for (const [p, s] of Object.entries(report.status?.partitions ?? {})) {
      furthest.set(Number(p), Math.max(furthest.get(Number(p)) ?? -1, s.offset));
    }
  }
  const rows: ReplicaRow[] = [];
  reports.forEach((report, i) => {
    for (const [p, s] of Object.entries(report.status?.partitions ?? {})) {
      const partition = Number(p);
      rows.push({
        partition,
        node: names[i]!,
        url: report.url,
        state: s.state,
        offset: s.offset,
        behind: furthest.get(partition)! - s.offset,
        lag: report.lag.get(p) ?? null,
        records: s.records,
        chain: s.chain,
        digest: s.digest,
        blocked: s.blocked ?? null,
      });
    }
  });
  return rows.sort((a, b) => a.partition - b.partition || (a.node < b.node ? -1 : 1));
}

/** The partitions where replicas at an equal offset show different chains or digests. */
export function findDivergences(rows: readonly ReplicaRow[]): Divergence[] {
  const groups = new Map<string, ReplicaRow[]>();
  for (const row of rows) {
    const key = `${row.partition}:${row.offset}`;
    let group = groups.get(key);
    if (group === undefined) groups.set(key, group = []);
    group.push(row);
  }
  const out: Divergence[] = [];
  for (const group of groups.values()) {
    const first = group[0]!;
    const chains = group.every((r) => r.chain === first.chain);
    if (chains && group.every((r) => r.digest === first.digest)) continue;
    out.push({
      partition: first.partition,
      offset: first.offset,
      differs: chains ? "digest" : "chain",
      nodes: group.map(({ node, url, chain, digest }) => ({ node, url, chain, digest })),
    });
  }
  return out.sort((a, b) => a.partition - b.partition);
}

async function readNode(
  url: string,
  secret: string | null,
  timeoutMs: number,
): Promise<NodeReport> {
  const client = new Client(url, secret, timeoutMs);
  const [status, metrics] = await Promise.allSettled([
    client.call("GET", "/internal/status", null),
    // /metrics is open and optional: the lag column shows "-" without it.
    client.call("GET", "/metrics", null),
  ]);
  const lag = metrics.status === "fulfilled" ? parseLag(metrics.value) : new Map<string, number>();
  if (status.status === "rejected") {
    const error = status.reason instanceof CliError
      ? status.reason
      : new CliError(EXIT.problem, "internal_error", String(status.reason));
    return { url, status: null, error, lag };
  }
  let parsed: StatusWire;
  try {
    parsed = JSON.parse(status.value) as StatusWire;
    if (typeof parsed.node?.id !== "string" || typeof parsed.partitions !== "object") {
      throw new Error("not a status");
    }
  } catch {
    const error = new CliError(
      EXIT.problem,
      "invalid_status",
      `Cannot read ${url}/internal/status: not a FireScroll status (is this the internal port?)`,
    );
    return { url, status: null, error, lag };
  }
  return { url, status: parsed, error: null, lag };
}

const CHAIN_SHOWN = 16;

function short(hash: string): string {
  return hash.length > CHAIN_SHOWN ? hash.slice(0, CHAIN_SHOWN) + "…" : hash;
}

function nodeTable(reports: readonly NodeReport[], names: readonly string[]): string {
  const rows = [["NODE", "URL", "GROUP", "LOG", "READY", "PARTITIONS"]];
  reports.forEach((r, i) => {
    const s = r.status;
    if (s === null) {
      rows.push([
        names[i]!,
        r.url,
        "-",
        "-",
        "-",
        `error: ${r.error?.code ?? "unknown"} (see stderr)`,
      ]);
      return;
    }
    const served = Object.keys(s.partitions).length;
    rows.push([
      cell(names[i]!),
      r.url,
      `${s.node.region ?? "-"}/${s.node.replica_group ?? "-"}`,
      s.node.log ?? "-",
      s.node.ready ? "yes" : "no",
      `${served} of ${s.node.partitions ?? "?"}`,
    ]);
  });
  return tableLines(rows);
}

function partitionTable(rows: readonly ReplicaRow[]): string {
  const lines = [["PARTITION", "NODE", "STATE", "OFFSET", "BEHIND", "LAG", "RECORDS", "CHAIN"]];
  for (const r of rows) {
    lines.push([
      String(r.partition),
      cell(r.node),
      r.blocked === null ? r.state : `${r.state} (blocked: ${r.blocked})`,
      String(r.offset),
      String(r.behind),
      r.lag === null ? "-" : String(r.lag),
      String(r.records),
      short(r.chain),
    ]);
  }
  return tableLines(lines);
}

/**
 * Reads every node and prints the tables (or, with `json`, one object); returns the exit code:
 * 3 when replicas diverge, else 4 when a node could not be reached, else 1 when one answered
 * with a problem, else 0.
 */
export async function status(
  io: Io,
  json: boolean,
  command: Extract<Command, { kind: "status" }>,
  timeoutMs: number,
): Promise<ExitCode> {
  const reports = await Promise.all(
    command.internalUrls.map((url) => readNode(url, command.secret, timeoutMs)),
  );
  const names = nodeNames(reports);
  const rows = replicaRows(reports);
  const divergences = findDivergences(rows);
  if (json) {
    io.out(render(
      {
        nodes: reports.map((r, i) => ({
          node: names[i],
          url: r.url,
          id: r.status?.node.id ?? null,
          ready: r.status?.node.ready ?? null,
          error: r.error === null ? null : { code: r.error.code, detail: r.error.message },
        })),
        partitions: rows,
        divergences,
      },
      true,
    ));
  } else {
    io.out(nodeTable(reports, names) + "\n" + partitionTable(rows));
    if (divergences.length === 0 && reports.some((r) => r.status !== null)) {
      const shared = reports.filter((r) => r.status !== null).length;
      io.out(
        shared > 1
          ? `\nok: no divergence (replicas at equal offsets agree on chain and digest)\n`
          : "\nok: one node read, nothing to compare\n",
      );
    }
    for (const d of divergences) {
      const what = d.differs === "chain" ? "chains differ" : "digests differ, chains agree";
      let text = `\nDIVERGED: partition ${d.partition} at offset ${d.offset} (${what}):\n`;
      text += tableLines(
        d.nodes.map((n) => ["  " + n.node, `chain ${n.chain}`, `digest ${n.digest}`]),
      );
      io.out(text);
    }
  }
  for (const r of reports) if (r.error !== null) io.err(`${r.error.line}\n`);
  if (divergences.length > 0) {
    io.err(
      `error: divergence: ${divergences.length} partition(s) differ between replicas at the same offset\n`,
    );
    return EXIT.divergence;
  }
  if (reports.some((r) => r.error?.exitCode === EXIT.unreachable)) return EXIT.unreachable;
  if (reports.some((r) => r.error !== null)) return EXIT.problem;
  return EXIT.ok;
}
