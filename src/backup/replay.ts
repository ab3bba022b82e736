/**
 * Restores from S3 to a point (issue 15): a partition file rebuilt from the newest snapshot at or
 * before the point plus the archived log segments after it, each verified (the snapshot against
 * its manifest; each segment's sha256 and inner hash chain, and that its chain continues the
 * file's), replayed through the same apply as the node's. Used by a time-travel replica
 * (`S3_RESTORE_TO`), by `deno task restore`, and by a node catching up past Kafka's retention.
 *
 * A point is an offset (everything up to and including it), a log time (every message up to the
 * first one stamped later), or the end of the archive.
 *
 * @module
 */
import { applyDecodedBatch, ConditionCache } from "../apply/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { PartitionStore, storePath } from "../store/mod.ts";
import { log, progress } from "../util/log.ts";
import { archiveSegments, type SegmentRef } from "./archive.ts";
import type { ObjectStore } from "./object_store.ts";
import { decodedBatches, type DecodedSegment, ReplayDecoder } from "./replay_decode.ts";
import { SegmentCorruptError } from "./segment.ts";
import {
  type Manifest,
  manifestOffsets,
  parseManifest,
  partitionPrefix,
  removeQuietly,
  SnapshotRejected,
  snapshotStem,
  verifySnapshot,
} from "./snapshot.ts";

/** Where a restore stops. */
export type RestorePoint =
  | { readonly kind: "offset"; readonly offset: number }
  | { readonly kind: "time"; readonly time: number }
  | { readonly kind: "latest" };

/** What a restore is built from. */
export interface ReplayOptions {
  readonly namespace: string;
  readonly partition: number;
  /** LMDB map size of the file built. */
  readonly mapBytes: number;
  /** The change log's retention in the file built (ms of log time), as the node would keep it. */
  readonly changesRetainMs: number;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** Snapshots tried, newest first, when one is rejected. */
  readonly snapshotsTried?: number;
  /**
   * Where the archive's messages are decoded and chained (`S3_RESTORE_DECODE`): `thread`, a
   * worker beside the thread that writes the file; `inline`, that thread; `auto` (the default),
   * a worker when this process may use more than one CPU and the replay spans
   * `WORKER_OFFSETS_MIN` offsets, decoding inline until the worker has started.
   */
  readonly decode?: RestoreDecode;
}

/** Where a restore decodes the archive's messages (see `ReplayOptions.decode`). */
export type RestoreDecode = "auto" | "thread" | "inline";

/** A partition file built to a point. */
export interface RestoredPartition {
  /** The file: `{dir}/p{partition}.mdb`, closed. */
  readonly path: string;
  /** Its last applied offset (-1: nothing) and chain. */
  readonly offset: number;
  readonly chain: string;
  /** The snapshot it started from (its offset), or null when it started empty. */
  readonly snapshot: number | null;
  /** Messages replayed from the archive. */
  readonly replayed: number;
  /** Log timestamp of the last message replayed (0: none). */
  readonly lastTimestamp: number;
  /** Seconds spent replaying the archive (downloads, checks and apply; not the snapshot's). */
  readonly replaySeconds: number;
  /** Segments decoded in a worker thread beside the replay (`ReplayOptions.decode`). */
  readonly segmentsInWorker: number;
  /** The last offset the archive covers (-1: it has no segment). */
  readonly archiveEnd: number;
}

/** What a restore did, for a log line or a command's output (snake_case, times as ISO text). */
export function restoredFields(restored: RestoredPartition): Record<string, unknown> {
  return {
    offset: restored.offset,
    chain: restored.chain,
    snapshot: restored.snapshot,
    replayed: restored.replayed,
    last_message_ts: restored.lastTimestamp === 0
      ? null
      : new Date(restored.lastTimestamp).toISOString(),
    archive_end: restored.archiveEnd,
    segments_decoded_in_worker: restored.segmentsInWorker,
  };
}

/** The archive cannot restore to the point asked: it ends, or has a hole, before it. */
export class RestoreUnreachable extends Error {
  /** Stable code. */
  readonly code = "restore_unreachable";
  constructor(message: string) {
    super(message);
    this.name = "RestoreUnreachable";
  }
}

/** Records applied in one transaction while replaying. */
const REPLAY_BATCH = 2000;
/** Segments downloaded and decoded ahead of the one applying. */
const AHEAD = 2;
/** Fewest offsets to replay for which decoding in a worker is the default (its start is ~0.1 s). */
const WORKER_OFFSETS_MIN = 20_000;
/** Most seconds between two progress lines of a long replay. */
const PROGRESS_MS = 5000;

/**
 * Builds `partition` at `point` in `dir` (a folder of its own, which must not hold the
 * partition's file yet): the newest usable snapshot at or before the point, then the archive.
 * `partial`: an offset the archive does not reach is no error, the file ends where it ends.
 * `base`: the partition's file is in `dir` already, a verified snapshot at this offset (the caller
 * fetched it): the archive carries it on, no snapshot is downloaded.
 */
export async function restoreToPoint(
  objects: ObjectStore,
  point: RestorePoint,
  dir: string,
  options: ReplayOptions,
  signal: AbortSignal,
  { partial = false, base }: { partial?: boolean; base?: number } = {},
): Promise<RestoredPartition> {
  const { namespace, partition } = options;
  const prefix = partitionPrefix(namespace, partition);
  const keys = await objects.list(prefix, signal);
  const segments = archiveSegments(keys.filter((k) => k.startsWith(`${prefix}log/`)));
  const snapshot = base ?? await bestSnapshot(objects, keys, point, dir, options, signal);
  const store = PartitionStore.open({
    dir,
    namespace,
    partition,
    mapBytes: options.mapBytes,
    changesRetainMs: options.changesRetainMs,
  });
  try {
    const replayed = await replaySegments(objects, store, segments, point, options, signal);
    const { offset, chain } = store.applied;
    const archiveEnd = segments.reduce((end, s) => Math.max(end, s.last), -1);
    if (point.kind === "offset" && replayed.covered < point.offset && !partial) {
      throw new RestoreUnreachable(
        `Cannot restore partition ${partition} to offset ${point.offset}: the archive ${
          archiveEnd > replayed.covered ? "has a hole" : "ends"
        } after offset ${replayed.covered}`,
      );
    }
    return {
      path: storePath(dir, partition),
      offset,
      chain,
      snapshot,
      replayed: replayed.count,
      lastTimestamp: replayed.lastTimestamp,
      replaySeconds: replayed.seconds,
      segmentsInWorker: replayed.segmentsInWorker,
      archiveEnd,
    };
  } finally {
    await store.close();
    await removeQuietly(`${storePath(dir, partition)}-lock`);
  }
}

/** Whether a snapshot's content is all at or before `point`. */
function before(manifest: Manifest, point: RestorePoint): boolean {
  if (point.kind === "offset") return manifest.offset <= point.offset;
  if (point.kind === "latest") return true;
  // The log time of its last message when recorded; else when it was made, which is later.
  return (manifest.log_ts ?? manifest.created_at) <= point.time;
}

/**
 * Downloads and verifies the newest snapshot at or before `point` to `dir`; returns its offset,
 * or null (and no file) when none is usable: the replay then starts from an empty file.
 */
async function bestSnapshot(
  objects: ObjectStore,
  keys: readonly string[],
  point: RestorePoint,
  dir: string,
  options: ReplayOptions,
  signal: AbortSignal,
): Promise<number | null> {
  const { namespace, partition } = options;
  const path = storePath(dir, partition);
  let tried = 0;
  for (const offset of manifestOffsets(keys)) {
    if (point.kind === "offset" && offset > point.offset) continue;
    if (tried >= (options.snapshotsTried ?? 5)) break;
    const stem = snapshotStem(namespace, partition, offset);
    const manifest = parseManifest(await objects.getJson(`${stem}.json`, signal));
    if (manifest === null || !before(manifest, point)) continue;
    tried++;
    try {
      if (
        manifest.namespace !== namespace || manifest.partition !== partition ||
        manifest.offset !== offset
      ) {
        throw new SnapshotRejected("manifest", `${stem}.json describes another snapshot`);
      }
      if (!await objects.getFile(`${stem}.mdb`, path, signal)) {
        throw new SnapshotRejected("missing", `${stem}.mdb does not exist`);
      }
      await verifySnapshot(path, manifest);
      return offset;
    } catch (error) {
      await removeQuietly(path);
      await removeQuietly(`${path}-lock`);
      if (!(error instanceof SnapshotRejected)) throw error;
      log("error", "snapshot_rejected", { partition, offset, error: error.message });
    }
  }
  return null;
}

/**
 * Applies the archived messages after `store`'s offset, up to `point`, segment by segment: each
 * verified, and its chain checked against the file's where they meet and where it ends.
 * Stops at the point, or where the archive ends or has a hole.
 */
export async function replaySegments(
  objects: ObjectStore,
  store: PartitionStore,
  segments: readonly SegmentRef[],
  point: RestorePoint,
  options: Pick<ReplayOptions, "partition" | "metrics" | "now" | "decode">,
  signal: AbortSignal,
): Promise<
  {
    count: number;
    lastTimestamp: number;
    covered: number;
    seconds: number;
    segmentsInWorker: number;
  }
> {
  const { partition } = options;
  const ctx = {
    conditions: new ConditionCache(10_000),
    metrics: options.metrics,
    now: options.now,
  };
  const total = segments.reduce((end, s) => Math.max(end, s.last), -1) - store.applied.offset;
  const started = performance.now();
  let reported = started;
  let count = 0;
  let lastTimestamp = 0;
  // The next offset to restore: past the file's offset, or past offsets the log skipped.
  let next = store.applied.offset + 1;
  const where = options.decode ?? "auto";
  const decoder = new ReplayDecoder(
    where === "auto"
      ? (navigator.hardwareConcurrency > 1 && total >= WORKER_OFFSETS_MIN ? "beside" : "inline")
      : where,
    objects,
    signal,
  );
  // Downloads and decodes `ref` from offset `from` on.
  const decode = async (ref: SegmentRef, from: number): Promise<DecodedSegment> => {
    const decoded = await decoder.segment(ref.key, { next: from, point, batch: REPLAY_BATCH });
    if (decoded === null) {
      throw new SegmentCorruptError(`Cannot read segment ${ref.key}: it is gone`);
    }
    return decoded;
  };
  // The next segments download and decode while this one applies: at most AHEAD of them.
  const ahead: { ref: SegmentRef; from: number; decoded: Promise<DecodedSegment> }[] = [];
  try {
    for (;;) {
      signal.throwIfAborted();
      if (point.kind === "offset" && next > point.offset) break;
      const ref = covering(segments, next);
      if (ref === null) break;
      // Planned from the segments' names: a segment whose body says otherwise is decoded anew.
      if (ahead.length > 0 && (ahead[0]!.ref !== ref || ahead[0]!.from !== next)) ahead.length = 0;
      const decoding = ahead.shift()?.decoded ?? decode(ref, next);
      for (let last = ahead.at(-1)?.ref ?? ref; ahead.length < AHEAD;) {
        if (point.kind === "offset" && last.last >= point.offset) break;
        const following = covering(segments, last.last + 1);
        if (following === null) break;
        const decoded = decode(following, last.last + 1);
        // Awaited when its turn comes; a replay that stops first must not leave it unhandled.
        decoded.catch(() => {});
        ahead.push({ ref: following, from: last.last + 1, decoded });
        last = following;
      }
      const segment = await decoding;
      if (segment.partition !== partition) {
        throw new SegmentCorruptError(`Segment ${ref.key} holds partition ${segment.partition}`);
      }
      // The segment's chain at the file's offset must be the file's.
      if (segment.chainAtNext !== store.applied.chain) {
        throw new SegmentCorruptError(
          `Segment ${ref.key} does not continue the hash chain of partition ${partition} at offset ${
            next - 1
          }`,
        );
      }
      for (const batch of decodedBatches(segment)) await applyDecodedBatch(store, batch, ctx);
      const wanted = segment.offsets.length;
      count += wanted;
      if (wanted > 0) lastTimestamp = segment.timestamps[wanted - 1]!;
      if (segment.stopped) {
        next = (wanted > 0 ? segment.offsets[wanted - 1]! : next - 1) + 1;
        break;
      }
      // Its chain is checked where it counts: apply's chain at its end must be the segment's.
      if (store.applied.chain !== segment.chainAfter) {
        throw new SegmentCorruptError(`Replaying segment ${ref.key} did not end at its hash chain`);
      }
      // A segment may cover offsets past its last message (the log skipped them).
      next = segment.last + 1;
      const now = performance.now();
      if (now - reported >= PROGRESS_MS) {
        reported = now;
        log("info", "restore_progress", {
          partition,
          offset: store.applied.offset,
          ...progress(count, total, now - started),
        });
      }
    }
  } finally {
    decoder.close();
  }
  return {
    count,
    lastTimestamp,
    covered: next - 1,
    seconds: (performance.now() - started) / 1000,
    segmentsInWorker: decoder.segmentsInWorker,
  };
}

/** The segment covering `offset` that reaches furthest, or null. */
function covering(segments: readonly SegmentRef[], offset: number): SegmentRef | null {
  let best: SegmentRef | null = null;
  for (const s of segments) {
    if (s.first <= offset && offset <= s.last && (best === null || s.last > best.last)) best = s;
  }
  return best;
}
