/**
 * Rebuilding a lost log from the archive (`deno task restore --rebuild-log`): after the mutations
 * topic was deleted, every archived message goes back into a new, empty topic **at the offset it
 * had**, so partition files, snapshots, `after` tokens and hash chains made before the loss stay
 * valid and the cluster takes writes again where the archive ends.
 *
 * A Kafka partition starts at offset 0: when the archive starts later (retention deleted older
 * segments), the offsets before it are filled with tick messages (no ops) and then deleted from
 * the topic (DeleteRecords), so the partition starts where the archive does and no node ever
 * applies them: a node restores from S3 (snapshot + archive) first, as after any retention.
 *
 * Refused, with the reason: a partition whose topic is not empty, whose archive has a hole, or
 * whose archived offsets skip (they could not be given back the same offsets).
 *
 * @module
 */
import { encodeTick } from "../apply/mod.ts";
import type { AppendRequest } from "../node/mod.ts";
import { log } from "../util/log.ts";
import { archiveHoles, archiveSegments, type SegmentRef } from "./archive.ts";
import type { ObjectStore } from "./object_store.ts";
import { decodeSegmentBody, decompress, SegmentCorruptError } from "./segment.ts";

/** What a rebuild writes to: the new topic, through the node's own log client. */
export interface RebuildTarget {
  /** As `MutationLog.append`: at most one message per partition per call, offsets in order. */
  append(messages: readonly AppendRequest[]): Promise<number[]>;
  /** The first and next offset of a partition. */
  partitionOffsets(partition: number): Promise<{ low: number; high: number }>;
  /** Deletes a partition's messages before `offset` (its start moves there). */
  deleteBefore(partition: number, offset: number): Promise<void>;
}

/** What a rebuild of one partition did. */
export interface RebuiltPartition {
  readonly partition: number;
  /** The first and last archived offsets written back (null: nothing archived). */
  readonly first: number | null;
  readonly last: number | null;
  readonly messages: number;
  /** Tick messages written before the archive's start, then deleted. */
  readonly pads: number;
}

/** A partition that cannot be rebuilt, and why. */
export class RebuildRefused extends Error {
  /** Stable code. */
  readonly code = "rebuild_refused";
  constructor(message: string) {
    super(message);
    this.name = "RebuildRefused";
  }
}

/** Appends waiting at once: the log's queue (`LOG_QUEUE_MAX`) must hold them. */
const WINDOW = 1000;

/** Writes `partition`'s archive back into the empty topic behind `target`, at its offsets. */
export async function rebuildPartition(
  objects: ObjectStore,
  target: RebuildTarget,
  namespace: string,
  partition: number,
  signal: AbortSignal,
): Promise<RebuiltPartition> {
  const { low, high } = await target.partitionOffsets(partition);
  if (high !== 0 || low !== 0) {
    throw new RebuildRefused(
      `Cannot rebuild partition ${partition}: its topic partition is not empty (offsets ${low}–${high}); rebuild only into a new topic`,
    );
  }
  const segments = archiveSegments(
    await objects.list(`${namespace}/p${partition}/log/`, signal),
  );
  if (segments.length === 0) {
    return { partition, first: null, last: null, messages: 0, pads: 0 };
  }
  const holes = archiveHoles(segments);
  if (holes.length > 0) {
    throw new RebuildRefused(
      `Cannot rebuild partition ${partition}: its archive has a hole at ${holes[0]!.from}–${
        holes[0]!.to
      }`,
    );
  }
  const first = segments[0]!.first;
  const writer = new InOrder(target, partition);
  for (let offset = 0; offset < first; offset++) await writer.put(offset, encodeTick());
  await writer.flush();
  if (first > 0) await target.deleteBefore(partition, first);
  let next = first;
  let messages = 0;
  for (const ref of chainOf(segments)) {
    signal.throwIfAborted();
    const bytes = await objects.getBytes(ref.key, signal);
    if (bytes === null) throw new SegmentCorruptError(`Cannot read segment ${ref.key}: it is gone`);
    const segment = decodeSegmentBody(await decompress(bytes));
    for (const r of segment.records) {
      if (r.offset < next) continue;
      if (r.offset !== next) {
        throw new RebuildRefused(
          `Cannot rebuild partition ${partition}: the archive skips offsets ${next}–${
            r.offset - 1
          }`,
        );
      }
      await writer.put(r.offset, r.value);
      next++;
      messages++;
    }
    if (segment.last >= next) {
      throw new RebuildRefused(
        `Cannot rebuild partition ${partition}: the archive skips offsets ${next}–${segment.last}`,
      );
    }
  }
  await writer.flush();
  log("info", "rebuild_partition_done", {
    partition,
    first,
    last: next - 1,
    messages,
    pads: first,
  });
  return { partition, first, last: next - 1, messages, pads: first };
}

/** The segments that chain from the first one to the end, furthest-reaching first at each step. */
function chainOf(segments: readonly SegmentRef[]): SegmentRef[] {
  const out: SegmentRef[] = [];
  let next = segments[0]!.first;
  for (;;) {
    let best: SegmentRef | null = null;
    for (const s of segments) {
      if (s.first <= next && next <= s.last && (best === null || s.last > best.last)) best = s;
    }
    if (best === null) return out;
    out.push(best);
    next = best.last + 1;
  }
}

/** Appends to one partition, up to {@linkcode WINDOW} at once, each checked for its offset. */
class InOrder {
  private readonly pending: Promise<void>[] = [];

  constructor(private readonly target: RebuildTarget, private readonly partition: number) {}

  async put(offset: number, value: Uint8Array): Promise<void> {
    const partition = this.partition;
    this.pending.push(
      this.target.append([{ partition, key: "", value }]).then(([got]) => {
        if (got !== offset) {
          throw new RebuildRefused(
            `Cannot rebuild partition ${partition}: the log gave offset ${got} to the message of offset ${offset} (was the topic written to meanwhile?)`,
          );
        }
      }),
    );
    if (this.pending.length >= WINDOW) await this.flush();
  }

  async flush(): Promise<void> {
    const all = this.pending.splice(0);
    await Promise.all(all);
  }
}
