/**
 * The partition lifecycle (DESIGN §7) as one state per partition and one transition function.
 *
 * ```
 *            assigned                    snapshot source configured
 * closed ─────────────▶ opening ─────────────────────────────▶ restoring
 *   ▲  ▲                   │ (verify, open the local file)        │ (S3 / peer snapshot)
 *   │  │ open failed       ▼                                      ▼
 *   │  └──────────── catching_up ◀──────────────────────────────────┘
 *   │ revoked              │ read up to the log end seen at assignment, not blocked
 *   │                      ▼
 *   ├───────────────── serving ── revoked (cluster) ──▶ retiring ── assigned back ─▶ catching_up
 *   │                                                      │
 *   └──────────────── served by a peer / timed out / stop ─┘
 * ```
 *
 * Every change goes through {@linkcode PartitionTable.transition}: it asserts the edge, logs it
 * once (the event names are the ones operators grep: `partition_assigned`, `partition_serving`,
 * `partition_revoked`, `partition_retired`, …), keeps the `firescroll_node_partitions` gauges,
 * and is what `/internal/status`, readiness, gossip and read routing read.
 *
 * @module
 */
import type { Metrics } from "../metrics/mod.ts";
import type { PartitionStore } from "../store/mod.ts";
import { assert } from "../util/assert.ts";
import { type Level, log } from "../util/log.ts";

/** Where one partition stands on this node. */
export type PartitionState =
  | "opening"
  | "restoring"
  | "catching_up"
  | "serving"
  | "retiring"
  | "closed";

/** The allowed edges, each with the log event that records it. */
const EDGES: Readonly<Record<PartitionState, Partial<Record<PartitionState, string>>>> = {
  closed: { opening: "partition_opening" },
  opening: {
    restoring: "partition_restoring",
    catching_up: "partition_assigned",
    closed: "partition_open_failed",
  },
  restoring: { catching_up: "partition_assigned", closed: "partition_open_failed" },
  catching_up: { serving: "partition_serving", closed: "partition_revoked" },
  serving: { retiring: "partition_retiring", closed: "partition_revoked" },
  // Assigned back while retiring: the open file (and its reads) carry on.
  retiring: { catching_up: "partition_assigned", closed: "partition_retired" },
};

/** Whether `from → to` is an edge of the lifecycle. */
export function isAllowed(from: PartitionState, to: PartitionState): boolean {
  return EDGES[from][to] !== undefined;
}

/** States in which the partition's file is open and applied or read here. */
const OPEN: ReadonlySet<PartitionState> = new Set(["catching_up", "serving", "retiring"]);

/** One partition known to this node (owned now, or its file left on disk). */
export interface Partition {
  readonly partition: number;
  /** Current state; changed only by {@linkcode PartitionTable.transition}. */
  readonly state: PartitionState;
  /** The open file in `catching_up`, `serving` and `retiring`; null otherwise. */
  readonly store: PartitionStore | null;
  /** Log end offset seen at assignment: serving once read this far. */
  readonly catchUpTo: number;
  /** Why the log cannot feed this partition, or null. */
  readonly blockedReason: string | null;
  /** When (node clock) the partition entered its state. */
  readonly since: number;
}

type Entry = { -readonly [K in keyof Partition]: Partition[K] };

/** What a transition may set besides the state. */
export interface TransitionChange {
  readonly store?: PartitionStore | null;
  readonly catchUpTo?: number;
  /** Extra fields of the log line. */
  readonly fields?: Record<string, unknown>;
  /** Level of the log line (default info). */
  readonly level?: Level;
}

/** The state of every partition this node knows of, with the one transition function. */
export class PartitionTable {
  private readonly entries = new Map<number, Entry>();
  private readonly counts: Record<PartitionState, number> = {
    opening: 0,
    restoring: 0,
    catching_up: 0,
    serving: 0,
    retiring: 0,
    closed: 0,
  };

  /** Called after every transition (the serving threads follow the table through it). */
  onChange: (() => void) | null = null;

  constructor(private readonly metrics: Metrics, private readonly now: () => number) {}

  /** The partition's entry, or undefined when this node never had it (or forgot it). */
  get(partition: number): Partition | undefined {
    return this.entries.get(partition);
  }

  /** The state of `partition` (`closed` when unknown). */
  stateOf(partition: number): PartitionState {
    return this.entries.get(partition)?.state ?? "closed";
  }

  /** The open store of `partition` when it is in one of `states`, else null. */
  storeIn(partition: number, states: ReadonlySet<PartitionState>): PartitionStore | null {
    const entry = this.entries.get(partition);
    return entry !== undefined && states.has(entry.state) ? entry.store : null;
  }

  /** Partitions in one of `states`, ascending. */
  inState(...states: PartitionState[]): Partition[] {
    const out: Partition[] = [];
    for (const entry of this.entries.values()) if (states.includes(entry.state)) out.push(entry);
    return out.sort((a, b) => a.partition - b.partition);
  }

  /** How many partitions are in `state`. */
  count(state: PartitionState): number {
    return this.counts[state];
  }

  /**
   * Moves `partition` to `to`, asserting the edge, and logs the change once. An unknown
   * partition starts from `closed`.
   */
  transition(partition: number, to: PartitionState, change: TransitionChange = {}): Partition {
    const known = this.entries.get(partition);
    const from = known?.state ?? "closed";
    const event = EDGES[from][to];
    assert(event !== undefined, `p${partition}: no transition ${from} → ${to}`);
    const store = OPEN.has(to) ? change.store ?? known?.store ?? null : null;
    assert(!OPEN.has(to) || store !== null, `p${partition}: ${to} needs an open store`);
    const entry = known ?? this.closedEntry(partition, this.now());
    if (known === undefined) this.entries.set(partition, entry);
    else this.counts[from]--;
    this.counts[to]++;
    entry.state = to;
    entry.since = this.now();
    entry.store = store;
    if (change.catchUpTo !== undefined) entry.catchUpTo = change.catchUpTo;
    if (to !== "catching_up" && to !== "serving") entry.blockedReason = null;
    this.metrics.partitions.labels("owned").set(this.counts.catching_up + this.counts.serving);
    this.metrics.partitions.labels("serving").set(this.counts.serving);
    log(change.level ?? "info", event, { partition, from, to, ...change.fields });
    this.onChange?.();
    return entry;
  }

  private closedEntry(partition: number, since: number): Entry {
    return { partition, state: "closed", store: null, catchUpTo: 0, blockedReason: null, since };
  }

  /**
   * Records why the log cannot feed an owned partition; false when it was already recorded
   * (or the partition is not owned).
   */
  block(partition: number, reason: string): boolean {
    const entry = this.entries.get(partition);
    if (entry === undefined || !(entry.state === "catching_up" || entry.state === "serving")) {
      return false;
    }
    if (entry.blockedReason === reason) return false;
    entry.blockedReason = reason;
    return true;
  }

  /** Notes a partition file found on disk that this node does not use (`closed` since `at`). */
  adopt(partition: number, at: number): void {
    if (this.entries.has(partition)) return;
    this.entries.set(partition, this.closedEntry(partition, at));
    this.counts.closed++;
  }

  /** Forgets a closed partition (its file was deleted). */
  forget(partition: number): void {
    const entry = this.entries.get(partition);
    if (entry === undefined) return;
    assert(entry.state === "closed", `p${partition}: forgotten while ${entry.state}`);
    this.entries.delete(partition);
    this.counts.closed--;
  }
}
