/**
 * A node: the log, the partition stores it feeds, and the partition lifecycle
 * (assign → open → catch up → serve → revoke). The API talks to the node, never to the log or
 * stores directly.
 */
import {
  applyBatch,
  type ApplyContext,
  ConditionCache,
  encodeMutation,
  type LogRecord,
  type Mutation,
} from "../apply/mod.ts";
import type { Config } from "../config/mod.ts";
import type { AppendRequest, MutationLog, PartitionConsumer } from "./ports.ts";
import type { Metrics } from "../metrics/mod.ts";
import { type AppliedPosition, PartitionStore } from "../store/mod.ts";
import { assert } from "../util/assert.ts";
import { OperationalError } from "../util/errors.ts";
import { errorMessage, log } from "../util/log.ts";
import { Waiters } from "./waiters.ts";

/** Where a partition owned by this node stands. */
export type PartitionState = "catching_up" | "serving";

interface Owned {
  readonly store: PartitionStore;
  state: PartitionState;
  /** Log end offset seen at assignment: serving once read this far. */
  readonly catchUpTo: number;
  /** Why the log cannot feed this partition, or null. */
  blockedReason: string | null;
}

function stoppingError(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    503,
    `Cannot wait for partition ${partition}: the node is stopping`,
    { partition },
  );
}

/** Per-partition view for `/internal/status`. */
export interface PartitionStatus {
  readonly state: PartitionState;
  readonly offset: number;
  readonly chain: string;
  readonly records: number;
  /** Why the partition cannot catch up, when it cannot. */
  readonly blocked?: string;
}

/** What a hand-off needs from the region cluster. */
export interface HandOffPeers {
  /** Tells the region this node is leaving (peers route elsewhere when they can). */
  announceLeaving(): Promise<void>;
  /** Whether a live peer of the region serves `partition`. */
  servedElsewhere(partition: number): boolean;
}

/** What a node is built from; everything external is injected. */
export interface NodeDeps {
  readonly config: Config;
  readonly log: MutationLog;
  readonly metrics: Metrics;
  readonly now: () => number;
}

/** One FireScroll node. */
export class Node implements PartitionConsumer {
  readonly config: Config;
  readonly conditions: ConditionCache;
  readonly metrics: Metrics;
  private readonly log: MutationLog;
  private readonly owned = new Map<number, Owned>();
  private readonly waiters: Waiters;
  private readonly applyContext: ApplyContext;
  private readonly stopping = new AbortController();
  private consuming: Promise<void> | null = null;
  private started = false;
  /** Set by {@linkcode drain}: the node is stopping and parks no more reads. */
  private draining = false;
  /** Set by {@linkcode handOff}: revoked partitions stay readable until peers serve them. */
  private handingOff = false;
  /** Partitions revoked during a hand-off: no longer applied, still read from. */
  private readonly retiring = new Map<number, Owned>();

  constructor(deps: NodeDeps) {
    this.config = deps.config;
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.conditions = new ConditionCache(deps.config.conditionCacheMax);
    this.waiters = new Waiters(deps.config.waitersMax);
    this.applyContext = { conditions: this.conditions, metrics: deps.metrics, now: deps.now };
  }

  /** Folder of this namespace's partition files. */
  get storeDir(): string {
    return `${this.config.dbPath}/${this.config.namespace}`;
  }

  /** Starts the log and the consume loop; resolves once the log accepted the start. */
  async start(): Promise<void> {
    await this.log.start();
    this.started = true;
    this.consuming = this.log.run(this, this.stopping.signal).catch((error) => {
      // The consume loop only ends by abort; anything else is a fault the node cannot serve past.
      log("error", "consume_loop_failed", { error: errorMessage(error) });
      throw error;
    });
  }

  /** Whether every owned partition is serving (`/readyz`). */
  get ready(): boolean {
    if (!this.started || this.draining || this.owned.size === 0) return false;
    for (const owned of this.owned.values()) if (owned.state !== "serving") return false;
    return true;
  }

  /** The store of a partition this node serves, or null. */
  servingStore(partition: number): PartitionStore | null {
    const owned = this.owned.get(partition) ?? this.retiring.get(partition);
    return owned !== undefined && owned.state === "serving" ? owned.store : null;
  }

  /** The partitions this node answers reads for (advertised in gossip). */
  servingPartitions(): number[] {
    const out: number[] = [];
    for (const [p, owned] of this.owned) if (owned.state === "serving") out.push(p);
    for (const p of this.retiring.keys()) out.push(p);
    return out;
  }

  /**
   * Graceful hand-off before a stop (cluster mode): announce `leaving`, leave the log's consumer
   * group so peers take the partitions over, and keep answering reads from the local files until
   * a live peer serves each of them (or `timeoutMs` passes). Reads never find a partition
   * without an owner because this node left first.
   */
  async handOff(peers: HandOffPeers, timeoutMs: number): Promise<void> {
    this.handingOff = true;
    await peers.announceLeaving();
    this.stopping.abort();
    if (this.consuming !== null) await this.consuming.catch(() => {});
    const started = Date.now();
    const deadline = started + timeoutMs;
    let waiting = [...this.retiring.keys()];
    while (Date.now() < deadline) {
      waiting = waiting.filter((p) => !peers.servedElsewhere(p));
      if (waiting.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    log(waiting.length === 0 ? "info" : "warn", "hand_off_done", {
      partitions: this.retiring.size,
      still_unserved: waiting,
      ms: Date.now() - started,
    });
  }

  /**
   * Appends one mutation per partition and resolves to the offsets, keyed by partition.
   * `mutations` maps partition → mutation; every mutation has been validated by the API.
   */
  async write(mutations: ReadonlyMap<number, Mutation>): Promise<Record<string, number>> {
    const requests: AppendRequest[] = [];
    for (const [partition, mutation] of mutations) {
      const value = encodeMutation(mutation);
      if (value.length > this.config.messageBytesMax) {
        throw new OperationalError(
          "message_too_large",
          413,
          `Cannot write: partition ${partition} would get a ${value.length}-byte log message, more than MESSAGE_BYTES_MAX (${this.config.messageBytesMax})`,
          { partition, bytes: value.length, limit: this.config.messageBytesMax },
        );
      }
      requests.push({ partition, key: mutation.ops[0]!.pk, value });
    }
    const offsets = await this.log.append(requests);
    const out: Record<string, number> = {};
    for (let i = 0; i < requests.length; i++) out[String(requests[i]!.partition)] = offsets[i]!;
    return out;
  }

  /**
   * Resolves once `partition` has applied `offset`, waiting at most `waitMs`; rejects with 504
   * `not_caught_up` otherwise.
   */
  waitForOffset(partition: number, offset: number, waitMs: number): Promise<void> {
    const owned = this.owned.get(partition);
    assert(owned !== undefined, "waitForOffset needs an owned partition");
    if (owned.store.applied.offset >= offset) return Promise.resolve();
    if (this.draining) return Promise.reject(stoppingError(partition));
    return this.waiters.wait(partition, offset, waitMs, owned.store.applied.offset);
  }

  /**
   * First step of a graceful stop: `/readyz` turns 503 and every parked `after` read fails now
   * with 503 `partition_unavailable` instead of holding the HTTP drain for up to `WAIT_MS_MAX`,
   * which would push the stop past `SHUTDOWN_TIMEOUT_MS`.
   */
  drain(): void {
    this.draining = true;
    for (const partition of this.owned.keys()) this.waiters.cancel(partition);
  }

  /** Offsets, chains and counts of every owned partition. */
  status(): Record<string, PartitionStatus> {
    const out: Record<string, PartitionStatus> = {};
    const sorted = [...this.owned.keys()].sort((a, b) => a - b);
    for (const p of sorted) {
      const owned = this.owned.get(p)!;
      const { offset, chain } = owned.store.applied;
      const status: PartitionStatus = {
        state: owned.state,
        offset,
        chain,
        records: owned.store.count(),
      };
      out[String(p)] = owned.blockedReason === null
        ? status
        : { ...status, blocked: owned.blockedReason };
    }
    return out;
  }

  // --- PartitionConsumer ---------------------------------------------------------------------

  assigned(
    partitions: readonly number[],
    endOffsets: ReadonlyMap<number, number>,
  ): Promise<ReadonlyMap<number, number>> {
    const starts = new Map<number, number>();
    for (const partition of partitions) {
      assert(!this.owned.has(partition), `p${partition} assigned twice`);
      const store = PartitionStore.open({
        dir: this.storeDir,
        namespace: this.config.namespace,
        partition,
        mapBytes: this.config.lmdbMapBytes,
      });
      const catchUpTo = endOffsets.get(partition) ?? 0;
      const owned: Owned = { store, state: "catching_up", catchUpTo, blockedReason: null };
      this.owned.set(partition, owned);
      starts.set(partition, store.applied.offset + 1);
      this.metrics.appliedOffset.labels(String(partition)).set(store.applied.offset);
      log("info", "partition_assigned", {
        partition,
        offset: store.applied.offset,
        catch_up_to: catchUpTo,
      });
      this.maybeServe(partition, owned, store.applied.offset + 1);
    }
    this.updatePartitionGauges();
    return Promise.resolve(starts);
  }

  async revoked(partitions: readonly number[]): Promise<void> {
    for (const partition of partitions) {
      const owned = this.owned.get(partition);
      if (owned === undefined) continue;
      this.owned.delete(partition);
      if (this.handingOff && owned.state === "serving") {
        this.retiring.set(partition, owned);
        continue;
      }
      this.waiters.cancel(partition);
      this.metrics.appliedOffset.remove(String(partition));
      await owned.store.close();
      log("info", "partition_revoked", { partition, offset: owned.store.applied.offset });
    }
    this.updatePartitionGauges();
  }

  async deliver(
    partition: number,
    records: readonly LogRecord[],
    nextOffset: number,
  ): Promise<void> {
    const owned = this.owned.get(partition);
    assert(owned !== undefined, `p${partition} delivered but not owned`);
    let position: AppliedPosition = owned.store.applied;
    if (records.length > 0) {
      position = await applyBatch(owned.store, records, this.applyContext);
      this.waiters.release(partition, position.offset);
    }
    this.maybeServe(partition, owned, nextOffset);
  }

  blocked(partition: number, reason: string): void {
    const owned = this.owned.get(partition);
    if (owned === undefined || owned.blockedReason === reason) return;
    owned.blockedReason = reason;
    this.metrics.partitionsBlocked.labels().inc();
    log("error", "partition_blocked", { partition, reason, offset: owned.store.applied.offset });
  }

  private maybeServe(partition: number, owned: Owned, readTo: number): void {
    if (owned.state === "serving" || readTo < owned.catchUpTo) return;
    owned.state = "serving";
    log("info", "partition_serving", { partition, offset: owned.store.applied.offset });
    this.updatePartitionGauges();
  }

  private updatePartitionGauges(): void {
    let serving = 0;
    for (const owned of this.owned.values()) if (owned.state === "serving") serving++;
    this.metrics.partitions.labels("owned").set(this.owned.size);
    this.metrics.partitions.labels("serving").set(serving);
  }

  /** Stops consuming, closes every store and the log. */
  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.consuming !== null) await this.consuming.catch(() => {});
    await this.revoked([...this.owned.keys()]);
    for (const [partition, owned] of this.retiring) {
      await owned.store.close();
      log("info", "partition_revoked", { partition, offset: owned.store.applied.offset });
    }
    this.retiring.clear();
    await this.log.close();
  }
}
