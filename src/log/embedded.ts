/**
 * The embedded log: a durable, append-only log in one local LMDB file, with per-partition offsets
 * and the same message format as Kafka. It makes one process a whole single-node cluster.
 *
 * Writers are group-committed: appends that arrive while a commit is in flight wait for the next
 * one, and every append in a commit is acknowledged by the same fsync.
 */
import { open, type RootDatabase } from "lmdb";
import { setImmediate } from "node:timers";
import type { LogRecord } from "../apply/mod.ts";
import type { ConfigCluster, ConfigLog } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { assert } from "../util/assert.ts";
import { OperationalError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { getU64, setU64 } from "../util/u64.ts";
import type { AppendRequest, MutationLog, PartitionConsumer } from "../node/mod.ts";

/**
 * What the embedded log is built from: its config sections whole (`cluster.partitions`;
 * `log.queueMax` appends waiting for a commit, more refused with 503 `log_overloaded`;
 * `log.applyBatchMax` records delivered to the consumer in one call; `log.embeddedLogMapBytes`)
 * and its file.
 */
export interface EmbeddedLogOptions {
  /** File path of the log, e.g. `{DB_PATH}/{ns}/log.mdb`. */
  readonly path: string;
  readonly cluster: ConfigCluster;
  readonly log: ConfigLog;
  readonly metrics: Metrics;
  /** Clock for message timestamps, injectable for tests. */
  readonly now: () => number;
}

interface Pending {
  readonly messages: readonly AppendRequest[];
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: unknown) => void;
}

const TIMESTAMP_BYTES = 8;

function entryKey(partition: number, offset: number, key = new Uint8Array(12)): Uint8Array {
  const view = new DataView(key.buffer, key.byteOffset, 12);
  view.setUint32(0, partition, false);
  setU64(view, 4, offset);
  return key;
}

/**
 * The commit's key and value buffers: `putSync` copies both before it returns, and lmdb-js resolves
 * the address of a value's buffer once per buffer, so reusing one costs less than a new array per
 * entry.
 */
const COMMIT_KEY = new Uint8Array(12);
let commitValue = new Uint8Array(64 * 1024);

/** Messages one step of {@linkcode EmbeddedLog.readRange} reads. */
const READ_RANGE_CHUNK = 256;

/** A key above every entry of `partition` and below every entry of the next one. */
function partitionEndKey(partition: number): Uint8Array {
  const key = new Uint8Array(12).fill(0xff);
  new DataView(key.buffer).setUint32(0, partition, false);
  return key;
}

function entryPartition(key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.length).getUint32(0, false);
}

function entryOffset(key: Uint8Array): number {
  const view = new DataView(key.buffer, key.byteOffset, key.length);
  return getU64(view, 4);
}

/** The embedded implementation of {@linkcode MutationLog}. */
export class EmbeddedLog implements MutationLog {
  readonly kind = "embedded";
  private env: RootDatabase | null = null;
  private entries: ReturnType<RootDatabase["openDB"]> | null = null;
  /** Next offset to assign, per partition. */
  private readonly endOffsets: number[];
  /**
   * End offset of what is committed, per partition: what readers may see. `endOffsets` moves
   * inside the commit transaction, before its entries are visible; a reader using it would find
   * nothing there yet and skip past entries that commit a moment later.
   */
  private readonly committedEnds: number[];
  private queue: Pending[] = [];
  private queued = 0;
  /** A commit is scheduled for the end of this event-loop turn. */
  private scheduled = false;
  private readonly commitNow = () => this.commit();
  private appended: () => void = () => {};
  private appendedSignal: Promise<void> = Promise.resolve();

  constructor(private readonly options: EmbeddedLogOptions) {
    assert(options.cluster.partitions >= 1, "partitions must be positive");
    this.endOffsets = new Array(options.cluster.partitions).fill(0);
    this.committedEnds = new Array(options.cluster.partitions).fill(0);
    this.resetSignal();
  }

  private resetSignal(): void {
    this.appendedSignal = new Promise((resolve) => (this.appended = resolve));
  }

  async start(): Promise<void> {
    const dir = this.options.path.replace(/\/[^/]*$/, "");
    Deno.mkdirSync(dir, { recursive: true });
    // Commit must mean fsync'd: an acknowledged write is durable.
    this.env = open({
      path: this.options.path,
      maxDbs: 2,
      mapSize: this.options.log.embeddedLogMapBytes,
      overlappingSync: false,
    });
    const entries = this.env.openDB<Uint8Array, Uint8Array>({
      name: "entries",
      keyEncoding: "binary",
      encoding: "binary",
    });
    this.entries = entries;
    for (let p = 0; p < this.options.cluster.partitions; p++) {
      // A reverse scan starts at the last key <= its start, so it must start below partition
      // p + 1's first entry: starting at that entry would find it and miss p's last one.
      for (const key of entries.getKeys({ start: partitionEndKey(p), reverse: true, limit: 1 })) {
        const k = key as Uint8Array;
        if (entryPartition(k) === p) {
          this.endOffsets[p] = this.committedEnds[p] = entryOffset(k) + 1;
        }
      }
    }
    // Like the Kafka `_partitions` topic, the first count wins: with another count every pk would
    // hash to another partition and its records would seem gone.
    const meta = this.env.openDB<unknown, string>({ name: "meta", encoding: "json" });
    const recorded = meta.get("partitions");
    if (recorded !== undefined && recorded !== this.options.cluster.partitions) {
      await this.refuse(`was created with PARTITIONS=${recorded}`);
    }
    // A file older than the record: entries beyond the count say it was written with more.
    for (
      const key of entries.getKeys({
        start: entryKey(this.options.cluster.partitions, 0),
        limit: 1,
      })
    ) {
      await this.refuse(`has partition ${entryPartition(key as Uint8Array)}`);
    }
    if (recorded === undefined) meta.putSync("partitions", this.options.cluster.partitions);
  }

  private async refuse(found: string): Promise<never> {
    const env = this.env!;
    this.env = null;
    this.entries = null;
    await env.close();
    throw new OperationalError(
      "partition_count_mismatch",
      `Cannot start: the embedded log ${this.options.path} ${found} but PARTITIONS=${this.options.cluster.partitions}`,
    );
  }

  append(messages: readonly AppendRequest[]): Promise<number[]> {
    assert(this.entries !== null, "embedded log is not started");
    assert(messages.length > 0, "append needs at least one message");
    for (const m of messages) {
      assert(
        m.partition >= 0 && m.partition < this.options.cluster.partitions,
        "partition out of range",
      );
    }
    if (this.queued + messages.length > this.options.log.queueMax) {
      return Promise.reject(
        new OperationalError(
          "log_overloaded",
          `Cannot append: ${this.queued} messages are already waiting for the log`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ messages, resolve, reject });
      this.queued += messages.length;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.commitNow);
      }
    });
  }

  /**
   * Commits everything queued in one synchronous, fsync'd transaction. It runs once per event-loop
   * turn (setImmediate), after that turn's I/O callbacks queued their appends: an fdatasync of a
   * small append is ~0.2 ms, cheaper than the two hops through the JS thread an async transaction
   * on lmdb-js's write thread costs, and the appends arriving meanwhile wait for the next turn.
   */
  private commit(): void {
    this.scheduled = false;
    if (this.queue.length === 0 || this.entries === null) return;
    const entries = this.entries;
    const batch = this.queue;
    this.queue = [];
    this.queued = 0;
    const timestamp = this.options.now();
    const offsets: number[][] = [];
    const started = performance.now();
    const before = this.endOffsets.slice();
    let count = 0;
    try {
      // lmdb-js aborts a synchronous transaction whose body throws (map full): the entries before
      // the throw are not committed. The commit fdatasyncs (no overlappingSync, no noSync).
      this.env!.transactionSync(() => {
        for (const pending of batch) {
          const assigned: number[] = [];
          for (const m of pending.messages) {
            const offset = this.endOffsets[m.partition]!;
            this.endOffsets[m.partition] = offset + 1;
            const length = TIMESTAMP_BYTES + m.value.length;
            if (length > commitValue.length) {
              commitValue = new Uint8Array(Math.max(length, 2 * commitValue.length));
            }
            new DataView(commitValue.buffer).setFloat64(0, timestamp, false);
            commitValue.set(m.value, TIMESTAMP_BYTES);
            entries.putSync(
              entryKey(m.partition, offset, COMMIT_KEY),
              commitValue.subarray(0, length),
            );
            assigned.push(offset);
            count++;
          }
          offsets.push(assigned);
        }
      });
    } catch (error) {
      this.endOffsets.splice(0, this.endOffsets.length, ...before);
      log("error", "embedded_log_commit_failed", { error: String(error) });
      const failure = new OperationalError(
        "log_unavailable",
        "Cannot append: the embedded log failed to commit",
      );
      for (const pending of batch) pending.reject(failure);
      this.wake();
      return;
    }
    this.committedEnds.splice(0, this.committedEnds.length, ...this.endOffsets);
    this.options.metrics.logCommits.labels().inc();
    this.options.metrics.logAppends.labels().inc(count);
    this.options.metrics.logCommitDuration.labels().observe((performance.now() - started) / 1000);
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(offsets[i]!);
    this.wake();
  }

  /** Wakes the consumer loop and anyone waiting for a commit to finish. */
  private wake(): void {
    const wake = this.appended;
    this.resetSignal();
    wake();
  }

  /** Reads up to `max` records of `partition` from `from` on. */
  read(partition: number, from: number, max: number): LogRecord[] {
    const records: LogRecord[] = [];
    const end = Math.min(this.committedEnds[partition]!, from + max);
    if (from >= end) return records;
    for (
      const { key, value } of this.entries!.getRange({
        start: entryKey(partition, from),
        end: entryKey(partition, end),
      })
    ) {
      const v = value as Uint8Array;
      records.push({
        offset: entryOffset(key as Uint8Array),
        timestamp: new DataView(v.buffer, v.byteOffset, v.length).getFloat64(0, false),
        value: v.slice(TIMESTAMP_BYTES),
      });
    }
    return records;
  }

  readRange(partition: number, from: number, maxBytes: number): Promise<LogRecord[]> {
    assert(this.entries !== null, "embedded log is not started");
    // The embedded log keeps every message: it is never truncated.
    const records: LogRecord[] = [];
    let bytes = 0;
    let at = from;
    while (bytes < maxBytes) {
      const chunk = this.read(partition, at, READ_RANGE_CHUNK);
      if (chunk.length === 0) break;
      for (const r of chunk) {
        if (records.length > 0 && bytes + r.value.length > maxBytes) {
          return Promise.resolve(records);
        }
        records.push(r);
        bytes += r.value.length;
      }
      at = chunk[chunk.length - 1]!.offset + 1;
    }
    return Promise.resolve(records);
  }

  async run(consumer: PartitionConsumer, signal: AbortSignal): Promise<void> {
    assert(this.entries !== null, "embedded log is not started");
    const all = Array.from({ length: this.options.cluster.partitions }, (_, p) => p);
    const ends = new Map(all.map((p) => [p, this.committedEnds[p]!]));
    const starts = await consumer.assigned(all, ends);
    const positions = all.map((p) => starts.get(p) ?? 0);
    const aborted = new Promise<void>((resolve) =>
      signal.addEventListener("abort", () => resolve())
    );
    while (!signal.aborted) {
      const waitFor = this.appendedSignal;
      const work: Promise<void>[] = [];
      for (const p of all) {
        const from = positions[p]!;
        if (from >= this.committedEnds[p]!) continue;
        const records = this.read(p, from, this.options.log.applyBatchMax);
        const next = records.length === 0
          ? this.committedEnds[p]!
          : records[records.length - 1]!.offset + 1;
        positions[p] = next;
        work.push(consumer.deliver(p, records, next, this.committedEnds[p]!));
      }
      if (work.length > 0) {
        await Promise.all(work);
        continue;
      }
      await Promise.race([waitFor, aborted]);
    }
    await consumer.revoked(all);
  }

  async close(): Promise<void> {
    // Commit what is queued: its writers may be gone, but what a log took in is made durable.
    this.commit();
    if (this.env !== null) await this.env.close();
    this.env = null;
    this.entries = null;
  }
}
