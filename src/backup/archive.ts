/**
 * The log archive (`BACKUP=1`, `ARCHIVE=1`): every message of each partition this node backs up,
 * read back from the log in offset order and uploaded as segments (segment.ts) to
 * `{ns}/p{partition}/log/{first:020}-{last:020}`.
 *
 * - **Where a partition's archive stands** is read from S3, not remembered locally: the end of
 *   the newest segment and the hash chain there (its trailer). A node that takes a partition over
 *   (a rebalance, a restart) goes on from where the archive is, whoever wrote it.
 * - **Segments are cut by the messages**: a segment ends before the first message of a later
 *   `ARCHIVE_SEGMENT_SEC` bucket of log time, or before the message that would take it past
 *   `ARCHIVE_SEGMENT_BYTES` (`SegmentBuilder`). Nodes going on from the same point upload the same
 *   bytes under the same key, and the upload is a conditional create: the second is a no-op. A
 *   bucket no later message has closed yet is closed by the clock, a second after it ends.
 * - **Holes** (a deleted segment, a node that fell behind Kafka's retention before anyone
 *   archived) are found by listing the archive every `ARCHIVE_CHECK_SEC` and filled from the log
 *   while it still holds the messages; those it cannot fill are logged and counted in
 *   `firescroll_archive_gaps`.
 * - Only what this node has applied is archived, and where a segment ends at the node's applied
 *   offset its chain is compared with the file's: an archive that disagrees with apply is never
 *   extended.
 *
 * Failures are logged and counted; the partition is retried at the next round. Nothing here can
 * stop the node or slow a write: the archive reads the log after the fact.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type { ConfigArchive, ConfigCluster } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { MutationLog } from "../node/mod.ts";
import { CHAIN_ZERO, type PartitionStore } from "../store/mod.ts";
import { errorMessage, log } from "../util/log.ts";
import { sleep } from "../util/sleep.ts";
import type { ObjectStore } from "./object_store.ts";
import {
  compress,
  decodeSegmentBody,
  decompress,
  parseSegmentKey,
  SegmentBuilder,
  segmentKey,
} from "./segment.ts";

/** What the archive is built from: its config sections whole, and what is injected. */
export interface ArchiveOptions {
  readonly cluster: ConfigCluster;
  readonly archive: ConfigArchive;
  readonly metrics: Metrics;
  /** The node's clock: closes buckets no later message closed, paces the hole checks. */
  readonly now: () => number;
}

/** What the archive reads of a partition's file: where apply stands. */
export type ArchivedStore = Pick<PartitionStore, "applied">;

/** What the archive needs from the node: the partitions it backs up. */
export interface ArchiveSource {
  /** Partitions this node owns and serves now, with their stores. */
  ownedServingStores(): [number, ArchivedStore][];
}

/** One segment as its key names it. */
export interface SegmentRef {
  readonly key: string;
  readonly first: number;
  readonly last: number;
}

/** Where a partition's archive ends: its last offset and the hash chain after it. */
interface Position {
  readonly offset: number;
  readonly chain: string;
}

/** How long after a bucket's end its segment is closed by the clock. */
const CLOSE_GRACE_MS = 1000;
/**
 * Bytes asked of the log in one read. The messages of one read are chained and copied in one
 * synchronous step: small enough that HTTP answers and group commits are not held up by it (a
 * turn is given back after each read).
 */
const READ_BYTES = 64 * 1024;
/** Pause between two rounds over the partitions. */
const ROUND_MS = 500;
/** Most holes filled per partition per check (the rest wait for the next check). */
const REPAIRS_PER_CHECK = 16;

/** Lets timers, sockets and the log's commits run before the archive goes on. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The segments under a partition's `log/` prefix, by first offset. */
export function archiveSegments(keys: readonly string[]): SegmentRef[] {
  const out: SegmentRef[] = [];
  for (const key of keys) {
    const range = parseSegmentKey(key);
    if (range !== null) out.push({ key, ...range });
  }
  return out.sort((a, b) => a.first - b.first || a.last - b.last);
}

/** The segment that reaches furthest (where the archive ends), or null when there is none. */
export function newestSegment(segments: readonly SegmentRef[]): SegmentRef | null {
  return segments.reduce<SegmentRef | null>((a, s) => a === null || s.last > a.last ? s : a, null);
}

/**
 * The holes in an archive: offset ranges after its first segment that no segment covers,
 * each with the segment before it (whose chain it continues from) and after it.
 */
export function archiveHoles(
  segments: readonly SegmentRef[],
): { from: number; to: number; before: SegmentRef; after: SegmentRef }[] {
  const holes = [];
  let reach: SegmentRef | null = null;
  for (const s of segments) {
    if (reach !== null && s.first > reach.last + 1) {
      holes.push({ from: reach.last + 1, to: s.first - 1, before: reach, after: s });
    }
    if (reach === null || s.last > reach.last) reach = s;
  }
  return holes;
}

/** The log archive of one node. */
export class Archive {
  /** Where each partition's archive ends, as last seen or written here. */
  private readonly ends = new Map<number, Position>();
  /** Each partition's messages read past its end, not yet in a closed segment. */
  private readonly open = new Map<number, SegmentBuilder>();
  /** When each partition's archive was last listed for holes. */
  private readonly checked = new Map<number, number>();

  constructor(
    private readonly objects: ObjectStore,
    private readonly log: Pick<MutationLog, "readRange">,
    private readonly options: ArchiveOptions,
  ) {}

  /** Runs until `signal` aborts. */
  async run(source: ArchiveSource, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.round(source, signal);
      await sleep(ROUND_MS, signal);
    }
  }

  /** Archives what each owned serving partition applied since the last round. */
  async round(source: ArchiveSource, signal: AbortSignal): Promise<void> {
    const owned = source.ownedServingStores();
    const ownedSet = new Set(owned.map(([p]) => p));
    // A partition that left and comes back goes on from the archive, not from stale state.
    for (const p of [...this.ends.keys()]) if (!ownedSet.has(p)) this.forget(p);
    for (const [partition, store] of owned) {
      if (signal.aborted) return;
      try {
        await this.archivePartition(partition, store, signal);
      } catch (error) {
        if (signal.aborted) return;
        this.options.metrics.archiveSegments.labels("failed").inc();
        log("warn", "archive_failed", { partition, error: errorMessage(error) });
        this.forget(partition);
      }
    }
  }

  /** Drops what is known about a partition's archive: the next round reads it from S3. */
  private forget(partition: number): void {
    this.ends.delete(partition);
    this.open.delete(partition);
    this.checked.delete(partition);
  }

  /** One partition: checks for holes when due, then archives up to its applied offset. */
  async archivePartition(
    partition: number,
    store: ArchivedStore,
    signal: AbortSignal,
  ): Promise<void> {
    const now = this.options.now();
    const checkedAt = this.checked.get(partition);
    if (
      !this.ends.has(partition) || checkedAt === undefined ||
      now - checkedAt >= this.options.archive.checkSec * 1000
    ) {
      this.checked.set(partition, now);
      const end = await this.check(partition, store, signal);
      this.ends.set(partition, end);
      // Another node moved the archive on meanwhile: what was read here starts elsewhere.
      if (this.open.get(partition)?.first !== end.offset + 1) this.open.delete(partition);
    }
    await this.extend(partition, store, signal);
  }

  /**
   * Lists the archive of `partition`, fills the holes the log still can, and returns where the
   * archive ends — or, when there is none yet, where it starts: before offset 0 while the log
   * still holds it, else at the partition file's applied offset.
   */
  private async check(
    partition: number,
    store: ArchivedStore,
    signal: AbortSignal,
  ): Promise<Position> {
    const prefix = `${this.options.cluster.namespace}/p${partition}/log/`;
    const segments = archiveSegments(await this.objects.list(prefix, signal));
    const holes = archiveHoles(segments);
    let unfilled = 0;
    for (const hole of holes.slice(0, REPAIRS_PER_CHECK)) {
      if (!await this.fill(partition, hole, signal)) unfilled++;
    }
    unfilled += Math.max(0, holes.length - REPAIRS_PER_CHECK);
    this.options.metrics.archiveGaps.labels(String(partition)).set(unfilled);
    const newest = newestSegment(segments);
    if (newest !== null) {
      const segment = await this.read(newest.key, signal);
      return { offset: segment.last, chain: segment.chainAfter };
    }
    const start = await this.log.readRange(partition, 0, 1);
    if (start !== "truncated") return { offset: -1, chain: CHAIN_ZERO };
    const { offset, chain } = store.applied;
    log("warn", "archive_started_late", {
      partition,
      offset,
      message: "the log no longer starts at offset 0: the archive starts at the file's offset",
    });
    return { offset, chain };
  }

  /** Downloads and verifies one segment. */
  private async read(key: string, signal: AbortSignal) {
    const bytes = await this.objects.getBytes(key, signal);
    if (bytes === null) throw new Error(`Cannot read segment ${key}: it is gone`);
    return decodeSegmentBody(await decompress(bytes));
  }

  /**
   * Fills one hole from the log; false when the log no longer holds its messages (or the chain
   * it yields does not meet the next segment's, which is logged as an error).
   */
  private async fill(
    partition: number,
    hole: { from: number; to: number; before: SegmentRef; after: SegmentRef },
    signal: AbortSignal,
  ): Promise<boolean> {
    const before = await this.read(hole.before.key, signal);
    let builder = new SegmentBuilder(partition, hole.from, before.chainAfter, this.bounds);
    let from = hole.from;
    while (from <= hole.to) {
      signal.throwIfAborted();
      const read = await this.log.readRange(partition, from, READ_BYTES);
      if (read === "truncated") {
        log("error", "archive_gap", {
          partition,
          from: hole.from,
          to: hole.to,
          message: "the log no longer holds these messages: restores cannot pass this hole",
        });
        return false;
      }
      let past = read.length === 0;
      for (const r of read) {
        if (r.offset > hole.to) {
          past = true;
          break;
        }
        if (!builder.fits(r)) {
          builder = await this.closeRepair(builder, signal);
        }
        builder.add(r);
        from = r.offset + 1;
      }
      if (past) break;
      await nextTurn();
    }
    if (builder.count > 0) builder = await this.closeRepair(builder, signal, hole.to);
    const after = await this.read(hole.after.key, signal);
    if (after.chainBefore !== builder.chainBefore || builder.first !== hole.to + 1) {
      log("error", "archive_chain_mismatch", {
        partition,
        segment: hole.after.key,
        message: "the messages filling a hole do not lead to the chain of the segment after it",
      });
      return false;
    }
    log("info", "archive_repaired", { partition, from: hole.from, to: hole.to });
    return true;
  }

  /** Uploads a segment that fills (part of) a hole; returns the next, empty one. */
  private async closeRepair(
    builder: SegmentBuilder,
    signal: AbortSignal,
    last?: number,
  ): Promise<SegmentBuilder> {
    const written = await this.upload(builder, signal, { last });
    this.options.metrics.archiveRepairs.labels().inc();
    return new SegmentBuilder(builder.partition, written.last + 1, written.chainAfter, this.bounds);
  }

  private get bounds() {
    return { sec: this.options.archive.segmentSec, bytes: this.options.archive.segmentBytes };
  }

  /** Reads what the partition applied past the archive's end and uploads closed segments. */
  private async extend(
    partition: number,
    store: ArchivedStore,
    signal: AbortSignal,
  ): Promise<void> {
    const end = this.ends.get(partition)!;
    let open = this.open.get(partition) ??
      new SegmentBuilder(partition, end.offset + 1, end.chain, this.bounds);
    this.open.set(partition, open);
    const applied = store.applied;
    let from = open.lastOffset + 1;
    while (from <= applied.offset) {
      signal.throwIfAborted();
      const read = await this.log.readRange(partition, from, READ_BYTES);
      if (read === "truncated") {
        // Retention took messages nobody archived: the archive goes on from the file.
        log("error", "archive_gap", {
          partition,
          from,
          to: applied.offset,
          message: "the log no longer holds these messages: the archive goes on from the file",
        });
        // The hole shows in the listing (and the gauge) once the next segment is up.
        this.ends.set(partition, applied);
        this.open.delete(partition);
        return;
      }
      let done = read.length === 0;
      for (const r of read) {
        if (r.offset > applied.offset) {
          done = true;
          break;
        }
        if (!open.fits(r)) open = await this.close(open, applied, signal);
        open.add(r);
        from = r.offset + 1;
      }
      if (done) break;
      await nextTurn();
    }
    if (open.count > 0 && this.options.now() >= open.bucketEndsAt + CLOSE_GRACE_MS) {
      await this.close(open, applied, signal);
    }
  }

  /** Uploads `open` as a segment; returns (and keeps) the next, empty one. */
  private async close(
    open: SegmentBuilder,
    applied: Position,
    signal: AbortSignal,
  ): Promise<SegmentBuilder> {
    const { partition } = open;
    const written = await this.upload(open, signal, { expect: applied });
    this.ends.set(partition, { offset: written.last, chain: written.chainAfter });
    this.options.metrics.archiveOffset.labels(String(partition)).set(written.last);
    const next = new SegmentBuilder(partition, written.last + 1, written.chainAfter, this.bounds);
    this.open.set(partition, next);
    return next;
  }

  /** Compresses and creates one segment (a no-op when its key exists). */
  private async upload(
    builder: SegmentBuilder,
    signal: AbortSignal,
    { last, expect }: { last?: number | undefined; expect?: Position } = {},
  ): Promise<{ last: number; chainAfter: string }> {
    const { partition } = builder;
    const { body, header } = builder.finish(last);
    // Where the segment ends at the file's applied offset, the chains must agree.
    if (
      expect !== undefined && header.last === expect.offset && header.chainAfter !== expect.chain
    ) {
      throw new Error(
        `Cannot extend the archive of partition ${partition}: its chain at ${header.last} differs from the file's`,
      );
    }
    const key = segmentKey(this.options.cluster.namespace, partition, header.first, header.last);
    const object = await compress(body);
    const created = await this.objects.createBytes(key, object, signal);
    const m = this.options.metrics;
    m.archiveSegments.labels(created ? "uploaded" : "exists").inc();
    if (created) m.archiveBytes.labels().inc(object.length);
    log("debug", "archive_segment", {
      partition,
      first: header.first,
      last: header.last,
      count: header.count,
      bytes: object.length,
      uploaded: created,
    });
    return { last: header.last, chainAfter: header.chainAfter };
  }
}
