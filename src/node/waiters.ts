/**
 * Readers parked until a partition applies an offset (`after` + `wait_ms`). Bounded in number;
 * each waiter has its own timer and leaves when released, timed out or cancelled.
 */
import { OperationalError } from "../util/errors.ts";

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

function notCaughtUp(partition: number, offset: number, applied: number): OperationalError {
  return new OperationalError(
    "not_caught_up",
    `Cannot read: partition ${partition} has applied offset ${applied}, not yet ${offset}`,
    { partition, offset, applied },
  );
}

/**
 * Where the waiter count is kept: in the node's own thread, or shared by every serving thread so
 * that `WAITERS_MAX` bounds the whole node (src/serve/shared_state.ts).
 */
export interface WaiterSlots {
  /** Takes a slot; false when `WAITERS_MAX` are taken. */
  take(): boolean;
  /** Gives a slot back. */
  give(): void;
  /** Slots taken now (for the error message). */
  readonly taken: number;
}

/** Slots counted in this thread alone (also the node's watch streams without serving threads). */
export class LocalSlots implements WaiterSlots {
  taken = 0;
  constructor(private readonly max: number) {}
  take(): boolean {
    if (this.taken >= this.max) return false;
    this.taken++;
    return true;
  }
  give(): void {
    this.taken--;
  }
}

/** The waiters of every partition. */
export class Waiters {
  private readonly byPartition = new Map<number, Waiter[]>();
  private readonly slots: WaiterSlots;

  /** At most `max` waiters, or as many as shared `slots` allow. */
  constructor(max: number | WaiterSlots) {
    this.slots = typeof max === "number" ? new LocalSlots(max) : max;
  }

  /** Whether any read waits on `partition`. */
  waiting(partition: number): boolean {
    return this.byPartition.has(partition);
  }

  /** Parks until `release(partition, ≥ offset)` or `waitMs` passes. */
  wait(partition: number, offset: number, waitMs: number, applied: number): Promise<void> {
    if (waitMs <= 0) return Promise.reject(notCaughtUp(partition, offset, applied));
    if (!this.slots.take()) {
      return Promise.reject(
        new OperationalError(
          "too_many_waiters",
          `Cannot wait: ${this.slots.taken} reads are already waiting (WAITERS_MAX)`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { offset, resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        this.remove(partition, waiter);
        reject(notCaughtUp(partition, offset, applied));
      }, waitMs);
      let list = this.byPartition.get(partition);
      if (list === undefined) this.byPartition.set(partition, list = []);
      list.push(waiter);
    });
  }

  /** Releases every waiter of `partition` whose offset is now applied. */
  release(partition: number, applied: number): void {
    const list = this.byPartition.get(partition);
    if (list === undefined) return;
    const keep: Waiter[] = [];
    for (const waiter of list) {
      if (waiter.offset <= applied) {
        clearTimeout(waiter.timer);
        this.slots.give();
        waiter.resolve();
      } else keep.push(waiter);
    }
    if (keep.length === 0) this.byPartition.delete(partition);
    else this.byPartition.set(partition, keep);
  }

  /** Fails every waiter of a partition that is going away. */
  cancel(partition: number): void {
    const list = this.byPartition.get(partition);
    if (list === undefined) return;
    this.byPartition.delete(partition);
    for (const waiter of list) {
      clearTimeout(waiter.timer);
      this.slots.give();
      waiter.reject(
        new OperationalError(
          "partition_unavailable",
          `Cannot read: partition ${partition} is no longer served here`,
          { partition },
        ),
      );
    }
  }

  private remove(partition: number, waiter: Waiter): void {
    const list = this.byPartition.get(partition);
    if (list === undefined) return;
    const i = list.indexOf(waiter);
    if (i >= 0) {
      list.splice(i, 1);
      this.slots.give();
    }
    if (list.length === 0) this.byPartition.delete(partition);
  }
}
