/**
 * Progress of the partitions catching up from the log, for operators watching a long start:
 * at most one `catch_up_progress` line per partition every {@linkcode CATCH_UP_PROGRESS_MS}
 * (the same shape as a restore's `restore_progress`), checked once per delivered batch, never
 * per message.
 */
import { assert } from "../util/assert.ts";
import { log, type Progress, progress } from "../util/log.ts";

/** Least time between two progress lines of one partition. */
export const CATCH_UP_PROGRESS_MS = 5000;

/**
 * The fields of one `catch_up_progress` line: `done` offsets applied since catch-up began of the
 * `total` from there to the log end seen at assignment.
 */
export interface CatchUpLine extends Progress {
  readonly partition: number;
  /** The last offset applied. */
  readonly offset: number;
}

interface Running {
  /** First offset to apply when catch-up began. */
  readonly from: number;
  /** The log end seen at assignment: serving once read this far. */
  readonly to: number;
  readonly startedMs: number;
  reportedMs: number;
}

/** The catch-ups under way on a node (one per partition at most, so bounded by PARTITIONS). */
export class CatchUpProgress {
  private readonly running = new Map<number, Running>();

  constructor(
    private readonly now: () => number,
    private readonly everyMs: number = CATCH_UP_PROGRESS_MS,
  ) {
    assert(everyMs > 0, "a progress interval must be positive");
  }

  /** `partition` reads the log from `from` up to `to` (exclusive) before it serves. */
  start(partition: number, from: number, to: number): void {
    if (from >= to) {
      this.running.delete(partition);
      return;
    }
    const now = this.now();
    this.running.set(partition, { from, to, startedMs: now, reportedMs: now });
  }

  /**
   * `partition` has read the log up to `next` (exclusive): logs a progress line when one is due,
   * and returns its fields (null when none was).
   */
  advanced(partition: number, next: number): CatchUpLine | null {
    const running = this.running.get(partition);
    if (running === undefined) return null;
    const now = this.now();
    if (now - running.reportedMs < this.everyMs) return null;
    running.reportedMs = now;
    const line: CatchUpLine = {
      partition,
      offset: next - 1,
      ...progress(
        Math.max(0, next - running.from),
        running.to - running.from,
        now - running.startedMs,
      ),
    };
    log("info", "catch_up_progress", { ...line });
    return line;
  }

  /** `partition` serves, or was let go: no more lines for it. */
  end(partition: number): void {
    this.running.delete(partition);
  }
}
