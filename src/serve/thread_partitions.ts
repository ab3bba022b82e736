/**
 * A serving thread's view of the node's partitions (the `LocalPartitions` a `Reader` reads): a
 * read-only {@linkcode PartitionReader} per partition file, opened on first use while the main
 * thread says the partition is readable, and `after` waits parked on the shared state.
 *
 * Freshness: a reader keeps one LMDB snapshot and renews it when the main thread has published a
 * newer applied offset than the snapshot shows — one typed-array load per get, no timer. A commit
 * (`putSync` inside `transactionSync`) is in the file for every thread once the main thread's
 * `write()` returns, and the offset is published after that, so a renewed snapshot shows it. The
 * code does not lean on that alone: an `after` wait is released by the offset this thread's own
 * snapshot shows, never by the published number, so a read after a wait always sees the write it
 * waited for; and a snapshot that still shows less is renewed again on the next read.
 *
 * lmdb-js shares one environment per file per process across threads, and a store opened while
 * only readers hold its file fails for good (src/store/partition_reader.ts): a thread opens a
 * reader only while the main thread says the partition is readable — its store is open then —
 * and the main thread closes a store only after every thread released its reader.
 *
 * @module
 */
import type { ConditionCache } from "../apply/mod.ts";
import {
  type LocalPartitions,
  movedError,
  stoppingError,
  unavailable,
  Waiters,
} from "../node/mod.ts";
import { PartitionReader } from "../store/mod.ts";
import type { SharedState } from "./shared_state.ts";

/** Longest a parked wait sleeps before looking at its partition again. */
const WATCH_MS_MAX = 1000;
/** Pause before looking again when an offset was published but is not yet visible here. */
const NOT_VISIBLE_RETRY_MS = 1;

/** Where the partition files are. */
export interface ThreadPartitionsOptions {
  /** `{DB_PATH}/{namespace}`. */
  readonly dir: string;
  readonly namespace: string;
  readonly conditions: ConditionCache;
}

/** The partitions as one serving thread reads them. */
export class ThreadPartitions implements LocalPartitions {
  readonly conditions: ConditionCache;
  private readonly readers = new Map<number, PartitionReader>();
  /** The applied offset each open reader's snapshot shows (-2: none open). */
  private readonly seen: Float64Array;
  private readonly waiters: Waiters;
  /** Partitions with a watch loop running (it ends when their last waiter leaves). */
  private readonly watching = new Set<number>();

  constructor(
    private readonly state: SharedState,
    private readonly options: ThreadPartitionsOptions,
  ) {
    this.conditions = options.conditions;
    this.seen = new Float64Array(state.partitions).fill(-2);
    this.waiters = new Waiters(state);
  }

  servingStore(partition: number): PartitionReader | null {
    if (this.state.readState(partition) === null) return null;
    return this.fresh(partition);
  }

  isRetiring(partition: number): boolean {
    return this.state.readState(partition) === "retiring";
  }

  waitForOffset(partition: number, offset: number, waitMs: number): Promise<void> {
    const state = this.state.readState(partition);
    if (state === null) return Promise.reject(unavailable(partition));
    this.fresh(partition);
    const visible = this.seen[partition]!;
    if (visible >= offset) return Promise.resolve();
    if (this.state.draining) return Promise.reject(stoppingError(partition));
    if (state === "retiring") return Promise.reject(movedError(partition));
    const wait = this.waiters.wait(partition, offset, waitMs, visible);
    this.watch(partition);
    return wait;
  }

  /** Closes the reader of `partition` (the main thread is about to close the file). */
  release(partition: number): void {
    this.waiters.cancel(partition);
    const reader = this.readers.get(partition);
    if (reader === undefined) return;
    this.readers.delete(partition);
    this.seen[partition] = -2;
    reader.close();
  }

  /**
   * Drops the snapshots that are behind what the main thread published, so an idle thread pins
   * no old pages (LMDB cannot reuse pages a snapshot still sees); the next read takes a new one.
   */
  releaseStale(): void {
    for (const [partition, reader] of this.readers) {
      if (this.seen[partition]! < this.state.applied(partition)) reader.release();
    }
  }

  /** Closes every reader. */
  close(): void {
    for (const partition of [...this.readers.keys()]) this.release(partition);
  }

  /** The reader of `partition`, opened on first use and renewed when behind the published offset. */
  private fresh(partition: number): PartitionReader {
    let reader = this.readers.get(partition);
    if (reader === undefined) {
      const { dir, namespace } = this.options;
      reader = PartitionReader.open({ dir, namespace, partition });
      this.readers.set(partition, reader);
      this.seen[partition] = reader.refresh();
    } else if (this.seen[partition]! < this.state.applied(partition)) {
      this.seen[partition] = reader.refresh();
    }
    return reader;
  }

  private watch(partition: number): void {
    if (this.watching.has(partition)) return;
    this.watching.add(partition);
    void this.watchLoop(partition);
  }

  /**
   * Releases `partition`'s waiters as its applied offset becomes visible here. The loop leaves
   * `watching` in the same step as its last look (the `finally` of this function, not of its
   * promise, which would run a step later): a waiter it released that parks again at once (a
   * watch's loop does) must find no loop running and start one, or it sleeps until its timeout.
   */
  private async watchLoop(partition: number): Promise<void> {
    const state = this.state;
    try {
      while (this.waiters.waiting(partition)) {
        // The sequence first: a change after this read wakes the wait below at once.
        const seen = state.sequence(partition);
        if (state.stopped || state.draining || state.readState(partition) !== "serving") {
          this.waiters.cancel(partition);
          return;
        }
        this.fresh(partition);
        this.waiters.release(partition, this.seen[partition]!);
        if (!this.waiters.waiting(partition)) return;
        const notVisible = this.seen[partition]! < state.applied(partition);
        await state.changed(partition, seen, notVisible ? NOT_VISIBLE_RETRY_MS : WATCH_MS_MAX);
      }
    } finally {
      this.watching.delete(partition);
    }
  }
}
