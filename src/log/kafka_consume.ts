/**
 * The Kafka log's consuming side: one {@linkcode ConsumeLoop} per `KafkaLog.run()` follows the
 * group's assignments (pause, ask the node where each new partition resumes, seek, resume),
 * hands fetched batches to the node in chunks, commits the applied offsets for monitoring, and
 * revokes everything when its signal aborts.
 *
 * @module
 */
import type { Admin, Batch, Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import { setImmediate } from "node:timers";
import type { LogRecord } from "../apply/mod.ts";
import type { PartitionConsumer } from "../node/mod.ts";
import { errorMessage, log } from "../util/log.ts";
import type { TopicOffsets } from "./kafka_topics.ts";

/**
 * How often the consumer commits the offsets it applied to Kafka. They serve monitoring only
 * (LMDB holds where a partition resumes), so they are committed rarely and off the fetch path.
 */
const COMMIT_INTERVAL_MS = 5000;
/** Bound on the last offset commit at shutdown. */
const FINAL_COMMIT_TIMEOUT_MS = 2000;
/**
 * Catch-up gives the event loop a turn after this much apply without one (ms). Applying is
 * synchronous and the fetch loop moves on through promise continuations alone, which never let a
 * timer or a socket run: without a turn, heartbeats, the coordinator's answers and the HTTP
 * requests waiting for this node sat out a whole fetch of backlog (5 s and an eviction from the
 * group, on a starved machine).
 */
const APPLY_TURN_MS = 20;

const EMPTY = new Uint8Array(0);

function toRecord(message: KafkaMessage): LogRecord {
  const value = message.value;
  return {
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    // A null value (tombstone) is not a mutation: it decodes as poison like any foreign bytes.
    value: value === null
      ? EMPTY
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
  };
}

/** What a {@linkcode ConsumeLoop} consumes with. */
export interface ConsumeLoopOptions {
  /** The replica group's consumer, connected and subscribed to `topic`. */
  readonly consumer: Consumer;
  /** For the log start of a partition fetched from beyond where it must resume. */
  readonly admin: Admin;
  /** The mutations topic. */
  readonly topic: string;
  /** Partitions of the topic. */
  readonly partitions: number;
  /** `log.applyBatchMax`: most records handed to the node in one call (one transaction). */
  readonly applyBatchMax: number;
  /** Each partition's first and next offset, asked for at each assignment. */
  readonly offsets: () => Promise<TopicOffsets[]>;
}

/** Consumes the partitions the group assigns into the node's {@linkcode PartitionConsumer}. */
export class ConsumeLoop {
  /**
   * The first assignment's offsets, asked for while the group is being joined: one round trip
   * less before the first fetch. Ends read a moment before the assignment are as good a point
   * to call caught up as ends read at it; later assignments ask afresh.
   */
  private early: Promise<TopicOffsets[] | null> | null;
  /** Partitions this node has opened, and the next offset each must read. */
  private readonly expected = new Map<number, number>();
  private joinedOnce = false;
  /** Membership changes are handled one at a time, in order. */
  private changes = Promise.resolve();
  /** The next offset last committed to Kafka per partition. */
  private readonly committed = new Map<number, number>();
  private committing: Promise<void> | null = null;
  /** When the current stretch of apply without an event-loop turn began (`performance.now()`). */
  private stretchStart = 0;
  /** An immediate is armed that ends the current stretch when the event loop next turns. */
  private watching = false;
  /** The turn the partitions' apply loops wait for together, while one is pending. */
  private turn: Promise<void> | null = null;

  /** Asks for the offsets at once and follows the group's assignments from now on. */
  constructor(
    private readonly options: ConsumeLoopOptions,
    private readonly partitionConsumer: PartitionConsumer,
  ) {
    this.early = options.offsets().catch(() => null);
    const consumer = options.consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.onAssignment(event.payload.memberAssignment[options.topic] ?? []);
    });
  }

  /**
   * Joins the group and consumes until `signal` aborts; then commits (bounded), leaves the group
   * and revokes every partition still held.
   */
  async run(signal: AbortSignal): Promise<void> {
    const consumer = this.options.consumer;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.min(this.options.partitions, 8),
      eachBatch: this.eachBatch,
    });
    const commitTimer = setInterval(() => void this.commitApplied(), COMMIT_INTERVAL_MS);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    clearInterval(commitTimer);
    let finalTimer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.commitApplied(),
      new Promise<void>((resolve) => finalTimer = setTimeout(resolve, FINAL_COMMIT_TIMEOUT_MS)),
    ]);
    clearTimeout(finalTimer);
    await consumer.disconnect();
    await this.changes.catch(() => {});
    await this.partitionConsumer.revoked([...this.expected.keys()]);
    this.expected.clear();
  }

  private onAssignment(assigned: readonly number[]): void {
    const { consumer, topic } = this.options;
    const expected = this.expected;
    const now = new Set(assigned);
    const added = assigned.filter((p) => !expected.has(p));
    const removed = [...expected.keys()].filter((p) => !now.has(p));
    // The first join is reported even when it brings nothing: the node is then a member.
    if (added.length === 0 && removed.length === 0 && this.joinedOnce) return;
    this.joinedOnce = true;
    // Nothing of a new partition is fetched before its stored offset is known.
    if (added.length > 0) consumer.pause([{ topic, partitions: added }]);
    this.changes = this.changes.then(async () => {
      if (removed.length > 0) {
        for (const p of removed) expected.delete(p);
        await this.partitionConsumer.revoked(removed);
      }
      if (added.length > 0 || expected.size === 0) {
        const ends = new Map<number, number>();
        const lows = new Map<number, number>();
        const known = this.early === null ? null : await this.early;
        this.early = null;
        for (const o of known ?? await this.options.offsets()) {
          ends.set(o.partition, Number(o.high));
          lows.set(o.partition, Number(o.low));
        }
        const starts = await this.partitionConsumer.assigned(added, ends, lows);
        for (const p of added) {
          const start = starts.get(p) ?? 0;
          expected.set(p, start);
          consumer.seek({ topic, partition: p, offset: String(start) });
        }
        consumer.resume([{ topic, partitions: added }]);
      }
      log("info", "kafka_assignment", { assigned: [...now].sort((a, b) => a - b) });
    }).catch((error) => {
      log("error", "kafka_assignment_failed", { error: errorMessage(error) });
      throw error;
    });
  }

  private readonly eachBatch = async (
    { batch, resolveOffset, heartbeat, isRunning }: EachBatchPayload,
  ): Promise<void> => {
    await this.changes;
    const { consumer, admin, topic } = this.options;
    const partition = batch.partition;
    const next = this.expected.get(partition);
    if (next === undefined || !isRunning()) return;
    const first = batch.firstOffset();
    if (first !== null && Number(first) > next) {
      const [offsets] = (await admin.fetchTopicOffsets(topic)).filter((o) =>
        o.partition === partition
      );
      const low = Number(offsets?.low ?? 0);
      if (low > next) {
        // The log no longer holds what this partition needs: applying from `low` would skip
        // mutations silently. Stop here and say so; a snapshot is needed (DESIGN §7).
        consumer.pause([{ topic, partitions: [partition] }]);
        this.partitionConsumer.blocked(
          partition,
          `the log starts at offset ${low} but this partition needs offset ${next}`,
        );
        return;
      }
      // Fetched from a committed offset ahead of LMDB (e.g. a wiped disk): go back.
      consumer.seek({ topic, partition, offset: String(next) });
      return;
    }
    await this.deliverBatch(batch, next, resolveOffset, heartbeat);
  };

  /**
   * Commits what was applied since the last commit (partitions this node still holds). Never
   * on the fetch path: kafkajs's auto-commit waits for the commit before the next fetch, and
   * commits once per partition on each seek.
   */
  private commitApplied(): Promise<void> {
    if (this.committing !== null) return this.committing;
    const topic = this.options.topic;
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    for (const [partition, offset] of this.expected) {
      if (this.committed.get(partition) !== offset) {
        offsets.push({ topic, partition, offset: String(offset) });
      }
    }
    if (offsets.length === 0) return Promise.resolve();
    this.committing = this.options.consumer.commitOffsets(offsets).then(() => {
      for (const o of offsets) this.committed.set(o.partition, Number(o.offset));
    }, (error) => {
      // Monitoring only: the next round tries again.
      log("warn", "kafka_commit_failed", { error: errorMessage(error) });
    }).finally(() => {
      this.committing = null;
    });
    return this.committing;
  }

  /** Hands `batch` to the node from `next` on, in chunks of at most `applyBatchMax` records. */
  private async deliverBatch(
    batch: Batch,
    next: number,
    resolveOffset: (offset: string) => void,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    const partitionConsumer = this.partitionConsumer;
    const expected = this.expected;
    const partition = batch.partition;
    const max = this.options.applyBatchMax;
    let chunk: LogRecord[] = [];
    let position = next;
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (offset < position) continue;
      chunk.push(toRecord(message));
      if (chunk.length === max) {
        position = offset + 1;
        await partitionConsumer.deliver(partition, chunk, position, Number(batch.highWatermark));
        expected.set(partition, position);
        resolveOffset(message.offset);
        await heartbeat();
        await this.turnWhenBusy();
        chunk = [];
      }
    }
    const last = Number(batch.lastOffset());
    const end = Math.max(position, last + 1);
    await partitionConsumer.deliver(partition, chunk, end, Number(batch.highWatermark));
    expected.set(partition, end);
    resolveOffset(batch.lastOffset());
    await this.turnWhenBusy();
  }

  /**
   * Lets timers and sockets run (a `setImmediate`, ~15 µs; `setTimeout(0)` is clamped to 4 ms
   * once nested) when apply has held the event loop for {@linkcode APPLY_TURN_MS}. The first call
   * since the loop last turned only starts the clock, so a fetch cycle of steady-state writes
   * goes on to its next fetch without a pause. The partitions' apply loops (up to 8 at once)
   * share one turn and one clock: each waiting on a turn of its own would let all of them run
   * on, one after another, in the same phase of the loop.
   */
  private turnWhenBusy(): Promise<void> | void {
    if (this.turn !== null) return this.turn;
    if (!this.watching) {
      this.watching = true;
      this.stretchStart = performance.now();
      setImmediate(() => {
        this.watching = false;
      });
      return;
    }
    if (performance.now() - this.stretchStart < APPLY_TURN_MS) return;
    this.turn = new Promise<void>((resolve) =>
      setImmediate(() => {
        this.turn = null;
        resolve();
      })
    );
    return this.turn;
  }
}
