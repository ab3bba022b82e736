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
  encodeTick,
  type LogRecord,
  type Mutation,
} from "../apply/mod.ts";
import { changesRetainMs, type Config } from "../config/mod.ts";
import type {
  AppendRequest,
  MutationLog,
  PartitionConsumer,
  ReadReplicas,
  SnapshotSource,
} from "./ports.ts";
import type { Metrics } from "../metrics/mod.ts";
import {
  type AppliedPosition,
  boundedAll,
  type CleanStop,
  needsVerify,
  PartitionStore,
  stampOf,
  StoreMismatchError,
  type StoreOptions,
  takeCleanStop,
  VerifierUnavailableError,
  verifyInChild,
  type VerifyResult,
  writeCleanStop,
} from "../store/mod.ts";
import { assert } from "../util/assert.ts";
import { OperationalError } from "../util/errors.ts";
import { StartError } from "../util/start_error.ts";
import { errorMessage, log } from "../util/log.ts";
import { sleep } from "../util/sleep.ts";
import { CatchUpProgress } from "./catch_up_progress.ts";
import { type Partition, PartitionTable } from "./partition_state.ts";
import { movedError, stoppingError } from "./reader.ts";
import { Waiters } from "./waiters.ts";

/** How often the node looks for partitions with expired records, ms. */
const TICK_LOOK_MS = 250;
/** Least time between two ticks of one partition from this node, ms. */
const TICK_EVERY_MS = 1000;

/** States whose file answers reads here. */
/**
 * Waits for every promise (partition files close side by side: each close waits on lmdb-js's own
 * thread, not on the others), then throws the first failure, so none is left running.
 */
async function settleAll(promises: readonly Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  for (const result of results) if (result.status === "rejected") throw result.reason;
}

const READABLE = new Set(["serving", "retiring"] as const);
/** States of a partition this node owns (assigned by the log, file open). */
const OWNED = new Set(["catching_up", "serving"] as const);

/**
 * The log messages of a write: one per partition, keyed by its first op's pk. 413
 * `message_too_large` when one would exceed `messageBytesMax`.
 */
export function encodeWrites(
  mutations: ReadonlyMap<number, Mutation>,
  messageBytesMax: number,
): AppendRequest[] {
  const requests: AppendRequest[] = [];
  for (const [partition, mutation] of mutations) {
    const value = encodeMutation(mutation);
    if (value.length > messageBytesMax) {
      throw new OperationalError(
        "message_too_large",
        `Cannot write: partition ${partition} would get a ${value.length}-byte log message, more than MESSAGE_BYTES_MAX (${messageBytesMax})`,
        { partition, bytes: value.length, limit: messageBytesMax },
      );
    }
    requests.push({ partition, key: mutation.ops[0]!.pk, value });
  }
  return requests;
}

/** Per-partition view for `/internal/status`. */
export interface PartitionStatus {
  readonly state: "catching_up" | "serving";
  readonly offset: number;
  readonly chain: string;
  /** Content digest of the partition's records (equal on replicas with equal records). */
  readonly digest: string;
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
  /** Whether any peer of the region is alive (not leaving, not suspect). */
  anyAlivePeer(): boolean;
}

/** What a node is built from; everything external is injected. */
export interface NodeDeps {
  readonly config: Config;
  readonly log: MutationLog;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** Snapshot restore (S3, peers); none = the log alone rebuilds partitions. */
  readonly snapshots?: SnapshotSource | null;
}

/** One FireScroll node. */
export class Node implements PartitionConsumer {
  readonly config: Config;
  readonly conditions: ConditionCache;
  readonly metrics: Metrics;
  /** The log this node writes to and consumes. */
  readonly log: MutationLog;
  /** Every partition's lifecycle state (the one place it is kept). */
  private readonly table: PartitionTable;
  private readonly waiters: Waiters;
  private readonly applyContext: ApplyContext;
  private readonly stopping = new AbortController();
  private consuming: Promise<void> | null = null;
  /** Set by {@linkcode drain}: the node is stopping and parks no more reads. */
  private draining = false;
  /** The region's view, in cluster mode: revoked partitions stay readable until peers serve them. */
  private peers: HandOffPeers | null = null;
  private retireLoop: Promise<void> | null = null;
  /** Aborted by {@linkcode stop}: ends the retire and hand-off waits. */
  private readonly closing = new AbortController();
  /** The log has told this node its partitions at least once (possibly none). */
  private joined = false;
  /** Where partition files come from besides the log (S3, peers), when configured. */
  private readonly snapshots: SnapshotSource | null;
  /** The node's clock (injected): retirement and unowned-file ages, read deadlines. */
  readonly now: () => number;
  /** The clean-stop record found at start (null: the previous stop was not clean). */
  private cleanStop: CleanStop | null = null;
  /** Partitions whose file this process verified or opened: never verified again here. */
  private readonly trusted = new Set<number>();
  /** The serving threads that read the partition files too, when there are any. */
  private replicas: ReadReplicas | null = null;
  /** The loop sending tick messages for expired records (see `tickLoop`). */
  private ticking: Promise<void> | null = null;
  /** Started by {@linkcode startLogEarly}. */
  private logStarted = false;
  /** Whether closing a file flushes it (not in a hand-over's stop). */
  private syncOnClose = true;
  /** Appends in flight, and the highest offset appended per partition (see `freeze`). */
  private readonly appending = new Set<Promise<number[]>>();
  private readonly appendedTo = new Map<number, number>();
  /** Applies in flight: `freeze` lets them commit before the folder changes hands. */
  private readonly applying = new Set<Promise<AppliedPosition>>();
  /** Set by `freeze`: nothing more is applied, and `stop` writes nothing in the folder. */
  private frozen = false;
  /** Set by `freeze` with the embedded log: appends are refused (the log is the successor's). */
  private appendsClosed = false;
  /** Set by `stop`: revoked partitions close even when frozen. */
  private stopCalled = false;
  /** In a hand-over's stop: files done with but left open until {@linkcode closeLeftFiles}. */
  private leftOpen: PartitionStore[] | null = null;
  /** `catch_up_progress` lines of the partitions reading the log before they serve. */
  private readonly catchUp: CatchUpProgress;

  constructor(deps: NodeDeps) {
    this.config = deps.config;
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.conditions = new ConditionCache(
      deps.config.limits.conditionCacheMax,
      deps.config.limits.conditionCacheCharsMax,
    );
    this.waiters = new Waiters(deps.config.limits.waitersMax);
    this.applyContext = { conditions: this.conditions, metrics: deps.metrics, now: deps.now };
    this.snapshots = deps.snapshots ?? null;
    this.now = deps.now;
    this.table = new PartitionTable(deps.metrics, deps.now);
    this.catchUp = new CatchUpProgress(deps.now);
  }

  /** Folder of this namespace's partition files. */
  get storeDir(): string {
    return `${this.config.store.dbPath}/${this.config.cluster.namespace}`;
  }

  /**
   * Starts the log (connect, create topics, check the partition count); no consuming yet. First
   * takes the clean-stop record (see `store/clean_stop.ts`) and, after an unclean stop, verifies
   * the embedded log in a child process: a damaged log stops the start with one clear error.
   */
  async open(): Promise<void> {
    await Deno.mkdir(this.storeDir, { recursive: true });
    this.cleanStop = takeCleanStop(this.storeDir);
    const embedded = this.config.log.kind === "embedded";
    if (embedded) await this.verifyEmbeddedLog(false);
    if (this.logStarted) return;
    try {
      await this.log.start();
    } catch (error) {
      // An open that throws on a file a clean stop vouched for: damage, or another fault?
      if (embedded && !(error instanceof OperationalError)) await this.verifyEmbeddedLog(true);
      throw error;
    }
  }

  private async verifyEmbeddedLog(always: boolean): Promise<void> {
    const file = `${this.storeDir}/log.mdb`;
    const stamp = stampOf(file);
    if (stamp === null || (!always && !needsVerify(this.cleanStop, "log.mdb", stamp))) return;
    const result = await this.verify("log", file);
    if (result === null || result.ok) return;
    this.metrics.storeCorruptFiles.labels("log").inc();
    // Moving only the log aside would leave partition files ahead of a new log that restarts at
    // offset 0, which would then skip new writes: the folder goes back or aside as a whole.
    const recovery =
      `it is the only copy of this node's mutations: stop, then restore the whole folder ${this.storeDir} from a backup of the volume, or move the whole folder aside to start empty (see docs/operations.md, "A damaged embedded log")`;
    throw new StartError(
      "embedded_log_corrupt",
      `Cannot start: the embedded log ${file} is damaged (${result.reason}); ${recovery}`,
      { file, reason: result.reason, recovery },
    );
  }

  /**
   * Runs the verifier child on `file`. Null when the verifier itself cannot run (logged): the
   * file is then opened as before, rather than condemning every file for an environment fault.
   */
  private async verify(kind: "partition" | "log", file: string): Promise<VerifyResult | null> {
    try {
      return await verifyInChild(kind, file, this.config.store.verifyTimeoutMs);
    } catch (error) {
      if (!(error instanceof VerifierUnavailableError)) throw error;
      log("error", "verify_unavailable", { file, error: error.message });
      return null;
    }
  }

  /**
   * Verifies, before anything maps them, the files of `partitions` that need it (unclean stop,
   * changed since the clean stop), a bounded number of children at a time; damaged files are
   * moved aside so the partition is rebuilt like a new one.
   */
  private async verifyPartitionFiles(partitions: readonly number[]): Promise<void> {
    const pending: number[] = [];
    for (const p of partitions) {
      if (this.trusted.has(p) || this.table.stateOf(p) === "retiring") continue;
      if (needsVerify(this.cleanStop, `p${p}.mdb`, stampOf(`${this.storeDir}/p${p}.mdb`))) {
        pending.push(p);
      } else {
        this.trusted.add(p);
      }
    }
    if (pending.length === 0) return;
    const started = this.now();
    let damaged = 0;
    await boundedAll(pending, this.config.store.verifyConcurrency, async (p) => {
      const file = `${this.storeDir}/p${p}.mdb`;
      const result = await this.verify("partition", file);
      if (result !== null && !result.ok) {
        damaged++;
        await this.moveAside(p, file, result.reason ?? "unknown");
      }
    });
    log("info", "partition_files_verified", {
      files: pending.length,
      damaged,
      ms: this.now() - started,
    });
  }

  /** Moves a damaged partition file (and its lock file) aside, counted and logged once. */
  private async moveAside(partition: number, file: string, reason: string): Promise<void> {
    const aside = `${file}.corrupt-${this.now()}`;
    await Deno.rename(file, aside);
    await Deno.rename(`${file}-lock`, `${aside}-lock`).catch(() => {});
    this.metrics.storeCorruptFiles.labels("partition").inc();
    log("error", "partition_file_corrupt", { partition, file, moved_to: aside, reason });
  }

  /**
   * Opens a partition's file; when the open fails (a damaged meta), verifies it in a child and,
   * when damaged, moves it aside and opens a new, empty file instead.
   */
  private async openVerified(options: StoreOptions): Promise<PartitionStore> {
    try {
      return PartitionStore.open(options);
    } catch (error) {
      // Another namespace's or partition's file is a setup mistake, not damage: never moved.
      if (error instanceof StoreMismatchError) throw error;
      const file = `${options.dir}/p${options.partition}.mdb`;
      const result = await this.verify("partition", file);
      if (result === null || result.ok) throw error;
      await this.moveAside(options.partition, file, result.reason ?? errorMessage(error));
      return PartitionStore.open(options);
    }
  }

  /**
   * Starts a log that lives outside the data folder (Kafka) before {@linkcode open}: a hand-over
   * successor connects while its predecessor still runs. False for the embedded log, whose file is
   * in the folder, and a time-travel replica's, which writes the partition files (both start in
   * `open()`).
   */
  async startLogEarly(): Promise<boolean> {
    if (this.config.log.kind !== "kafka") return false;
    await this.log.start();
    this.logStarted = true;
    return true;
  }

  /** Starts the consume loop: partitions get assigned, restored, caught up and served. */
  consume(): void {
    assert(this.consuming === null, "the consume loop runs once");
    this.consuming = this.log.run(this, this.stopping.signal).catch((error) => {
      // The consume loop only ends by abort; anything else is a fault the node cannot serve past.
      log("error", "consume_loop_failed", { error: errorMessage(error) });
      throw error;
    });
    this.ticking = this.tickLoop();
  }

  /**
   * Expired records are purged by apply, before the next message of their partition (apply.ts):
   * a partition with a record past its instant gets a tick message (no ops) from this node, at
   * most one per {@linkcode TICK_EVERY_MS}, so the purge and its `expire` events do not wait for
   * the next write. Every node serving the partition may send one; a tick changes nothing but the
   * purge, so several cost one message each.
   */
  private async tickLoop(): Promise<void> {
    const signal = this.stopping.signal;
    const sent = new Map<number, number>();
    while (!signal.aborted) {
      await sleep(TICK_LOOK_MS, signal).catch(() => {});
      // A time-travel replica takes no messages: expired records are only hidden on reads.
      if (signal.aborted || this.frozen || this.draining || this.config.log.kind === "archive") {
        break;
      }
      const now = this.now();
      for (const entry of this.table.inState("serving")) {
        const due = entry.store!.earliestExpiry();
        if (due === null || due > now || now - (sent.get(entry.partition) ?? 0) < TICK_EVERY_MS) {
          continue;
        }
        sent.set(entry.partition, now);
        this.append([{ partition: entry.partition, key: "", value: encodeTick() }]).catch(
          (error) =>
            log("warn", "tick_failed", { partition: entry.partition, error: errorMessage(error) }),
        );
      }
    }
  }

  /** Whether every owned partition is serving (`/readyz`). */
  get ready(): boolean {
    if (!this.joined || this.draining) return false;
    const t = this.table;
    // Opening and restoring count too: a restore can take a while.
    if (t.count("opening") + t.count("restoring") + t.count("catching_up") > 0) return false;
    // A cluster node without partitions (more nodes than partitions) still answers by proxying.
    return t.count("serving") > 0 || this.peers !== null;
  }

  /** The store of a partition this node answers reads for (serving or retiring), or null. */
  servingStore(partition: number): PartitionStore | null {
    // On every read: two comparisons rather than a set lookup.
    const entry = this.table.get(partition);
    if (entry === undefined) return null;
    return entry.state === "serving" || entry.state === "retiring" ? entry.store : null;
  }

  /** Partitions this node owns and serves, with their stores (what backups copy). */
  ownedServingStores(): [number, PartitionStore][] {
    return this.table.inState("serving").map((e) => [e.partition, e.store!]);
  }

  /** The lifecycle state of `partition` on this node. */
  stateOf(partition: number): Partition["state"] {
    return this.table.stateOf(partition);
  }

  /**
   * Deletes the files of partitions no longer used here for `UNOWNED_RETAIN_SEC` (kept until
   * then in case the partition comes back). Files found at start count from the start.
   */
  async sweepUnowned(now: number): Promise<void> {
    const retainMs = this.config.store.unownedRetainSec * 1000;
    for (let p = 0; p < this.config.cluster.partitions; p++) {
      if (this.table.stateOf(p) !== "closed") continue;
      const path = `${this.storeDir}/p${p}.mdb`;
      const exists = await Deno.stat(path).then(() => true, () => false);
      // The await above lets a concurrent assignment start opening the file: look again.
      if (!exists || this.table.stateOf(p) !== "closed") continue;
      const entry = this.table.get(p);
      if (entry === undefined) {
        this.table.adopt(p, now);
        continue;
      }
      if (now - entry.since < retainMs) continue;
      await Deno.remove(path).catch(() => {});
      await Deno.remove(`${path}-lock`).catch(() => {});
      this.table.forget(p);
      log("info", "partition_file_deleted", { partition: p, unowned_ms: now - entry.since });
    }
  }

  /** Whether `partition` is retiring here: revoked, still readable until a peer serves it. */
  isRetiring(partition: number): boolean {
    return this.table.stateOf(partition) === "retiring";
  }

  /** The partitions this node answers reads for (advertised in gossip). */
  servingPartitions(): number[] {
    return this.table.inState("serving", "retiring").map((e) => e.partition);
  }

  /**
   * Joins the region (cluster mode). From now on a revoked partition is not closed at once: it
   * keeps answering reads from its file until a live peer serves it, or `HANDOFF_TIMEOUT_MS`
   * passes, so a rebalance never leaves a partition without a reader.
   */
  attachPeers(peers: HandOffPeers): void {
    this.peers = peers;
    this.replicas?.changed();
  }

  /**
   * Other threads read the partition files from now on (serving threads): they are told every
   * state change and applied offset, and each file is released by them before it is closed.
   */
  attachReplicas(replicas: ReadReplicas): void {
    assert(this.replicas === null, "one set of read replicas per node");
    this.replicas = replicas;
    this.table.onChange = () => replicas.changed();
    replicas.changed();
  }

  /**
   * Graceful hand-off before a stop (cluster mode): announce `leaving`, leave the log's consumer
   * group so peers take the partitions over, and keep answering reads until a live peer serves
   * each of them (or `HANDOFF_TIMEOUT_MS` passes).
   */
  async handOff(): Promise<void> {
    const peers = this.peers;
    if (peers === null) return;
    const started = this.now();
    await peers.announceLeaving();
    this.stopping.abort();
    if (this.consuming !== null) await this.consuming.catch(() => {});
    const handing = this.table.count("retiring");
    // Wait while some live peer can still take partitions over; when the whole region stops at
    // once there is nobody to hand to, and waiting out the timeout would only delay the stop.
    while (
      this.table.count("retiring") > 0 && peers.anyAlivePeer() && !this.closing.signal.aborted
    ) {
      await sleep(100, this.closing.signal);
    }
    log("info", "hand_off_done", {
      partitions: handing,
      unserved: this.table.inState("retiring").map((e) => e.partition),
      ms: this.now() - started,
    });
  }

  /** Closes retiring partitions once served elsewhere (or timed out); runs while any remain. */
  private retireWhenServed(): void {
    if (this.retireLoop !== null) return;
    this.retireLoop = (async () => {
      while (this.table.count("retiring") > 0 && !this.closing.signal.aborted) {
        const now = this.now();
        for (const r of this.table.inState("retiring")) {
          const served = this.peers?.servedElsewhere(r.partition) ?? true;
          if (!served && now - r.since < this.config.lifecycle.handoffTimeoutMs) continue;
          await this.close(r, {
            served_elsewhere: served,
            ms: now - r.since,
          }, served ? "info" : "warn");
        }
        if (this.table.count("retiring") > 0) await sleep(100, this.closing.signal);
      }
      this.retireLoop = null;
    })();
  }

  /** Closes an open partition's file and moves it to `closed`, logged with `fields`. */
  private async close(
    entry: Partition,
    fields: Record<string, unknown> = {},
    level: "info" | "warn" = "info",
  ): Promise<void> {
    const store = entry.store!;
    // The serving threads let go of the file first: none may read it while it closes.
    if (this.replicas !== null) await this.replicas.release(entry.partition);
    if (this.leftOpen !== null) this.leftOpen.push(store);
    else await store.close(this.syncOnClose);
    this.table.transition(entry.partition, "closed", {
      fields: { offset: store.applied.offset, ...fields },
      level,
    });
  }

  /**
   * Appends one mutation per partition and resolves to the offsets, keyed by partition.
   * `mutations` maps partition → mutation; every mutation has been validated by the API.
   */
  write(mutations: ReadonlyMap<number, Mutation>): Promise<Record<string, number>> {
    return this.append(encodeWrites(mutations, this.config.log.messageBytesMax));
  }

  /** Appends encoded messages (a serving thread encodes its writes itself); offsets by partition. */
  async append(requests: readonly AppendRequest[]): Promise<Record<string, number>> {
    if (this.appendsClosed) {
      // A hand-over let go of the log: appending here would hand out the successor's offsets.
      throw new OperationalError(
        "log_unavailable",
        "Cannot write: this node has handed its log over to its successor",
      );
    }
    const appended = this.log.append(requests);
    this.appending.add(appended);
    let offsets: number[];
    try {
      offsets = await appended;
    } finally {
      this.appending.delete(appended);
    }
    const out: Record<string, number> = {};
    for (let i = 0; i < requests.length; i++) {
      const partition = requests[i]!.partition;
      const offset = offsets[i]!;
      out[String(partition)] = offset;
      if (offset > (this.appendedTo.get(partition) ?? -1)) this.appendedTo.set(partition, offset);
    }
    return out;
  }

  /**
   * A hand-over lets go of the folder while this process still answers plain reads from its
   * files: waits, at most `waitMs`, until the appends in flight now are done and everything this
   * node appended so far is applied (so every `after` read parked here is answered; later ones go
   * to the successor, src/api/forward.ts), then applies nothing more, writes the clean-stop record
   * the successor starts from, and leaves the log's consumer group (Kafka: the successor's
   * consumer joins it) without closing anything. `closeAppends` (the embedded log, a file in the
   * folder) refuses every append from the start: writes go to the successor, and one that did
   * not must not take an offset the successor also hands out. With Kafka this node goes on
   * producing the writes it is sent. The files stay open for reads; `stop()` later closes them
   * and writes nothing in the folder.
   */
  async freeze(waitMs: number, closeAppends: boolean): Promise<void> {
    if (closeAppends) this.appendsClosed = true;
    const deadline = performance.now() + waitMs;
    const remaining = () => Math.max(0, deadline - performance.now());
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.appending]),
      new Promise((resolve) => timer = setTimeout(resolve, remaining())),
    ]);
    clearTimeout(timer);
    const targets = new Map(this.appendedTo);
    const applied = () => {
      for (const [partition, offset] of targets) {
        const store = this.table.storeIn(partition, OWNED);
        if (store !== null && store.applied.offset < offset) return false;
      }
      return true;
    };
    while (!applied() && remaining() > 0) await sleep(1, this.stopping.signal);
    this.frozen = true;
    // An apply that began before is still committing (with Kafka, of messages from anywhere):
    // after the release the successor applies from what the files hold, and a late commit here
    // would write under it — an older batch over newer records.
    await Promise.allSettled([...this.applying]);
    await writeCleanStop(this.storeDir, false);
    // Out of the consumer group (its partitions stay open here, see `revoked`); `stop` waits.
    this.stopping.abort();
  }

  /**
   * Resolves once `partition` has applied `offset`, waiting at most `waitMs`; rejects with 504
   * `not_caught_up` otherwise.
   */
  waitForOffset(partition: number, offset: number, waitMs: number): Promise<void> {
    const entry = this.table.get(partition);
    const state = entry?.state;
    assert(
      state === "catching_up" || state === "serving" || state === "retiring",
      "waitForOffset needs a partition read here",
    );
    const applied = entry!.store!.applied.offset;
    if (applied >= offset) return Promise.resolve();
    // A retiring partition no longer applies: the reader must go to its new owner.
    if (this.draining) return Promise.reject(stoppingError(partition));
    if (state === "retiring") return Promise.reject(movedError(partition));
    return this.waiters.wait(partition, offset, waitMs, applied);
  }

  /**
   * First step of a graceful stop: `/readyz` turns 503 and every parked `after` read fails now
   * with 503 `partition_unavailable` instead of holding the HTTP drain for up to `WAIT_MS_MAX`,
   * which would push the stop past `SHUTDOWN_TIMEOUT_MS`.
   */
  drain(): void {
    this.draining = true;
    for (const e of this.table.inState(...OWNED)) this.waiters.cancel(e.partition);
    this.replicas?.changed();
  }

  /** Set by {@linkcode drain}: the node is stopping and parks no more reads. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Offsets, chains and counts of every owned partition. */
  status(): Record<string, PartitionStatus> {
    const out: Record<string, PartitionStatus> = {};
    for (const e of this.table.inState(...OWNED)) {
      const store = e.store!;
      const { offset, chain } = store.applied;
      const status: PartitionStatus = {
        state: e.state as PartitionStatus["state"],
        offset,
        chain,
        digest: store.digest,
        records: store.count(),
      };
      out[String(e.partition)] = e.blockedReason === null
        ? status
        : { ...status, blocked: e.blockedReason };
    }
    return out;
  }

  // --- PartitionConsumer ---------------------------------------------------------------------

  async assigned(
    partitions: readonly number[],
    endOffsets: ReadonlyMap<number, number>,
    startOffsets: ReadonlyMap<number, number> = new Map(),
  ): Promise<ReadonlyMap<number, number>> {
    const starts = new Map<number, number>();
    if (this.frozen) {
      // A rebalance while a frozen node leaves its group: it applies nothing, opens nothing.
      for (const p of partitions) {
        starts.set(p, (this.table.get(p)?.store?.applied.offset ?? -1) + 1);
      }
      return starts;
    }
    // Every new partition is `opening` from here (not ready, not swept) until its file is open.
    for (const p of partitions) {
      const state = this.table.stateOf(p);
      assert(state === "closed" || state === "retiring", `p${p} assigned twice`);
      if (state === "closed") this.table.transition(p, "opening");
    }
    await this.verifyPartitionFiles(partitions);
    for (const partition of partitions) {
      const logStart = startOffsets.get(partition) ?? 0;
      const catchUpTo = endOffsets.get(partition) ?? 0;
      // Assigned back while still retiring: keep the open file (and reads) going.
      let store = this.table.storeIn(partition, READABLE);
      if (store === null) {
        try {
          store = await this.openBest(partition, logStart, catchUpTo);
        } catch (error) {
          this.table.transition(partition, "closed", { fields: { error: errorMessage(error) } });
          throw error;
        }
      }
      const offset = store.applied.offset;
      this.table.transition(partition, "catching_up", {
        store,
        catchUpTo,
        fields: { offset, catch_up_to: catchUpTo, log_start: logStart },
      });
      starts.set(partition, offset + 1);
      this.catchUp.start(partition, offset + 1, catchUpTo);
      this.metrics.appliedOffset.labels(String(partition)).set(offset);
      if (offset + 1 < logStart) {
        this.blocked(
          partition,
          `the log starts at offset ${logStart} but this partition's data ends at ${offset}, and no snapshot reaches it (enable S3_RESTORE or peer bootstrap)`,
        );
      }
      this.maybeServe(partition, offset + 1);
    }
    this.joined = true;
    this.replicas?.changed();
    return starts;
  }

  /**
   * Opens a partition's file after putting the best copy in place: the local file, or a snapshot
   * that is further along (S3 with `S3_RESTORE=1`; a region peer when the log cannot fill the
   * gap). The swap is a rename on the same file system, so a crash leaves one whole file.
   */
  private async openBest(
    partition: number,
    logStart: number,
    logEnd: number,
  ): Promise<PartitionStore> {
    const options = {
      dir: this.storeDir,
      namespace: this.config.cluster.namespace,
      partition,
      mapBytes: this.config.store.lmdbMapBytes,
      changesRetainMs: changesRetainMs(this.config),
    };
    const store = await this.openVerified(options);
    this.trusted.add(partition);
    if (this.snapshots === null) return store;
    const local = store.applied.offset;
    this.table.transition(partition, "restoring", { fields: { offset: local } });
    let snapshot;
    try {
      snapshot = await this.snapshots.fetch(partition, local, logStart, logEnd, this.storeDir);
    } catch (error) {
      await store.close();
      throw error;
    }
    if (snapshot === null) return store;
    await store.close();
    await Deno.rename(snapshot.path, store.path);
    await Deno.remove(`${store.path}-lock`).catch(() => {});
    const restored = PartitionStore.open(options);
    assert(restored.applied.offset === snapshot.offset, "restored file is not the verified one");
    log("info", "partition_restored", {
      partition,
      source: snapshot.source,
      from_offset: local,
      to_offset: snapshot.offset,
    });
    return restored;
  }

  async revoked(partitions: readonly number[]): Promise<void> {
    // Frozen by a hand-over, this node answers plain reads from its files until `stop`.
    if (this.frozen && !this.stopCalled) return;
    const closing: Promise<void>[] = [];
    for (const partition of partitions) {
      const entry = this.table.get(partition);
      if (entry === undefined || !OWNED.has(entry.state as "serving")) continue;
      this.waiters.cancel(partition);
      if (this.peers !== null && entry.state === "serving") {
        this.table.transition(partition, "retiring", {
          fields: { offset: entry.store!.applied.offset },
        });
        this.retireWhenServed();
        continue;
      }
      this.metrics.appliedOffset.remove(String(partition));
      this.metrics.consumerLag.remove(String(partition));
      closing.push(this.close(entry));
    }
    await settleAll(closing);
  }

  async deliver(
    partition: number,
    records: readonly LogRecord[],
    nextOffset: number,
    logEnd?: number,
  ): Promise<void> {
    // Frozen by a hand-over: the successor applies from here.
    if (this.frozen) return;
    const store = this.table.storeIn(partition, OWNED);
    assert(store !== null, `p${partition} delivered but not owned`);
    if (records.length > 0) {
      const applying = applyBatch(store, records, this.applyContext);
      this.applying.add(applying);
      let position: AppliedPosition;
      try {
        position = await applying;
      } finally {
        this.applying.delete(applying);
      }
      this.waiters.release(partition, position.offset);
      this.replicas?.applied(partition, position.offset);
    }
    if (logEnd !== undefined) {
      this.metrics.consumerLag.labels(String(partition)).set(Math.max(0, logEnd - nextOffset));
    }
    this.catchUp.advanced(partition, nextOffset);
    this.maybeServe(partition, nextOffset);
  }

  blocked(partition: number, reason: string): void {
    if (!this.table.block(partition, reason)) return;
    this.metrics.partitionsBlocked.labels().inc();
    const offset = this.table.get(partition)!.store!.applied.offset;
    log("error", "partition_blocked", { partition, reason, offset });
  }

  /** Moves a caught-up partition to `serving` once it has read to the log end seen at assignment. */
  private maybeServe(partition: number, readTo: number): void {
    const entry = this.table.get(partition)!;
    if (
      entry.state !== "catching_up" || readTo < entry.catchUpTo || entry.blockedReason !== null
    ) {
      return;
    }
    this.catchUp.end(partition);
    this.table.transition(partition, "serving", {
      fields: { offset: entry.store!.applied.offset },
    });
  }

  /**
   * Stops consuming, closes every store and the log. `sync: false` (a hand-over: the successor
   * opens the files from the same page cache at once) skips flushing them to disk, and leaves
   * the partition files open, with nothing more to write, until {@linkcode closeLeftFiles}: on a
   * busy machine unmapping them takes ~10 ms, which the successor would otherwise wait for.
   */
  async stop(options: { readonly sync?: boolean } = {}): Promise<void> {
    this.stopCalled = true;
    this.syncOnClose = options.sync ?? true;
    if (!this.syncOnClose) this.leftOpen = [];
    this.stopping.abort();
    if (this.consuming !== null) await this.consuming.catch(() => {});
    await this.ticking;
    await this.revoked(this.table.inState(...OWNED).map((e) => e.partition));
    // Whatever still retires closes now: the process is going away.
    this.closing.abort();
    if (this.retireLoop !== null) await this.retireLoop;
    await settleAll(this.table.inState("retiring").map((r) => this.close(r, { stopping: true })));
    await this.log.close();
    // Last: every file is closed (or left open with nothing more to write), so the record
    // vouches for all of them at the next start. Frozen, the record is written and the folder
    // is the successor's already.
    if (!this.frozen) await writeCleanStop(this.storeDir, this.syncOnClose);
  }

  /** Closes the files a hand-over's {@linkcode stop} left open (their data is already written). */
  async closeLeftFiles(): Promise<void> {
    const left = this.leftOpen ?? [];
    this.leftOpen = null;
    await settleAll(left.map((store) => store.close(false)));
  }
}
