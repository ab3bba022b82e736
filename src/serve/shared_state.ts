/**
 * What the main thread (the applier) tells the serving threads without messages: one
 * `SharedArrayBuffer` holding, per partition, whether it is readable here (serving or retiring),
 * whether a live region peer serves it, its applied offset and a sequence number the main thread
 * bumps and `Atomics.notify`s on every change; and, for the node, readiness, draining and the
 * count of parked reads and of open watch streams (`WAITERS_MAX` and `WATCHERS_MAX` bound the whole
 * node, not each thread).
 *
 * A serving thread reads these on its hot path (one typed-array load per get) and parks `after`
 * reads with `Atomics.waitAsync` on the partition's sequence number: it learns of a new applied
 * offset the moment the main thread publishes it, without polling.
 *
 * Only the main thread writes, except the waiter count, which every thread updates atomically.
 *
 * @module
 */
import { assert } from "../util/assert.ts";
import type { WaiterSlots } from "../node/mod.ts";

/** Whether a partition is read here, as the serving threads see it. */
export type ReadState = "serving" | "retiring" | null;

const SERVING = 1;
const RETIRING = 2;
const STATE_MASK = 3;
/** A live region peer serves the partition (bit of the partition's flags). */
const PEER = 4;

/** Header cells (Int32). */
const READY = 0;
const DRAINING = 1;
const WAITERS = 2;
/** The node's shutdown (bumped and notified once, so parked threads wake). */
const STOPPED = 3;
/** 1 once requests are answered; 0 while a hand-over restart holds them (app.ts). */
const OPEN = 4;
/** Watch streams open, every thread's (`WATCHERS_MAX`). */
const WATCHERS = 5;
const HEADER_CELLS = 6;

/** The node's state shared with its serving threads; see the module doc. */
export class SharedState implements WaiterSlots {
  /** The buffer to send to a serving thread (`postMessage` shares it, never copies it). */
  readonly buffer: SharedArrayBuffer;
  readonly partitions: number;
  private readonly header: Int32Array;
  private readonly flags: Int32Array;
  /** Per partition: bumped on every publish, for `Atomics.waitAsync`. */
  private readonly seq: Int32Array;
  private readonly offsets: Float64Array;

  /** A new state for `partitions` partitions (main thread), or a view of `buffer` (a thread). */
  constructor(partitions: number, readonly waitersMax: number, buffer?: SharedArrayBuffer) {
    assert(Number.isSafeInteger(partitions) && partitions >= 1, "partitions must be ≥ 1");
    this.partitions = partitions;
    // Float64 cells first: they need 8-byte alignment.
    const bytes = 8 * partitions + 4 * (HEADER_CELLS + 2 * partitions);
    this.buffer = buffer ?? new SharedArrayBuffer(bytes);
    assert(this.buffer.byteLength === bytes, "shared state buffer has the wrong size");
    this.offsets = new Float64Array(this.buffer, 0, partitions);
    this.header = new Int32Array(this.buffer, 8 * partitions, HEADER_CELLS);
    this.flags = new Int32Array(this.buffer, 8 * partitions + 4 * HEADER_CELLS, partitions);
    this.seq = new Int32Array(
      this.buffer,
      8 * partitions + 4 * (HEADER_CELLS + partitions),
      partitions,
    );
    if (buffer === undefined) {
      this.offsets.fill(-1);
      this.header[OPEN] = 1;
    }
  }

  // --- written by the main thread -------------------------------------------------------------

  /** Sets whether `partition` is read here and whether a live peer serves it; wakes waiters. */
  setPartition(partition: number, state: ReadState, peerServes: boolean): void {
    const flags = (state === "serving" ? SERVING : state === "retiring" ? RETIRING : 0) |
      (peerServes ? PEER : 0);
    if (Atomics.exchange(this.flags, partition, flags) !== flags) this.bump(partition);
  }

  /** Publishes `partition`'s applied offset (committed and visible to other threads). */
  publishApplied(partition: number, offset: number): void {
    this.offsets[partition] = offset;
    // The atomic add orders the offset's store before any thread that sees the new sequence.
    this.bump(partition);
  }

  /** Sets readiness (`/readyz`). */
  setReady(ready: boolean): void {
    Atomics.store(this.header, READY, ready ? 1 : 0);
  }

  /** The node is draining: threads fail parked reads and park no more. Wakes every partition. */
  setDraining(): void {
    Atomics.store(this.header, DRAINING, 1);
    for (let p = 0; p < this.partitions; p++) this.bump(p);
  }

  /** Holds requests (a hand-over restart, until the folder is taken over) or lets them through. */
  setOpen(open: boolean): void {
    Atomics.store(this.header, OPEN, open ? 1 : 0);
    if (open) Atomics.notify(this.header, OPEN);
  }

  /** The node stops: every parked wait wakes and ends. */
  setStopped(): void {
    Atomics.store(this.header, STOPPED, 1);
    for (let p = 0; p < this.partitions; p++) this.bump(p);
  }

  private bump(partition: number): void {
    Atomics.add(this.seq, partition, 1);
    Atomics.notify(this.seq, partition);
  }

  // --- read by the serving threads ------------------------------------------------------------

  /** Whether `partition` is read here. */
  readState(partition: number): ReadState {
    const state = this.flags[partition]! & STATE_MASK;
    return state === SERVING ? "serving" : state === RETIRING ? "retiring" : null;
  }

  /** Whether a live region peer serves `partition`. */
  peerServes(partition: number): boolean {
    return (this.flags[partition]! & PEER) !== 0;
  }

  /** The applied offset last published for `partition` (-1 before any). */
  applied(partition: number): number {
    return this.offsets[partition]!;
  }

  /** The partition's sequence number, to wait on. */
  sequence(partition: number): number {
    return Atomics.load(this.seq, partition);
  }

  /** Resolves when `partition`'s sequence moves from `seen`, or after `timeoutMs`. */
  changed(partition: number, seen: number, timeoutMs: number): Promise<unknown> {
    const wait = Atomics.waitAsync(this.seq, partition, seen, timeoutMs);
    return wait.async ? wait.value : Promise.resolve(wait.value);
  }

  get ready(): boolean {
    return Atomics.load(this.header, READY) === 1;
  }

  get draining(): boolean {
    return Atomics.load(this.header, DRAINING) === 1;
  }

  /** Whether requests are answered (not held). A plain load: this runs on every request. */
  get open(): boolean {
    return this.header[OPEN] === 1;
  }

  /** Resolves once requests are answered, or after `timeoutMs`. */
  async opened(timeoutMs: number): Promise<void> {
    if (this.open) return;
    const wait = Atomics.waitAsync(this.header, OPEN, 0, timeoutMs);
    if (wait.async) await wait.value;
  }

  get stopped(): boolean {
    return Atomics.load(this.header, STOPPED) === 1;
  }

  // --- the node-wide waiter count (WaiterSlots) -----------------------------------------------

  take(): boolean {
    if (Atomics.add(this.header, WAITERS, 1) < this.waitersMax) return true;
    Atomics.sub(this.header, WAITERS, 1);
    return false;
  }

  give(): void {
    Atomics.sub(this.header, WAITERS, 1);
  }

  get taken(): number {
    return Atomics.load(this.header, WAITERS);
  }

  /** The node-wide count of watch streams, bounded by `max` (`WATCHERS_MAX`). */
  watcherSlots(max: number): WaiterSlots {
    const header = this.header;
    return {
      take(): boolean {
        if (Atomics.add(header, WATCHERS, 1) < max) return true;
        Atomics.sub(header, WATCHERS, 1);
        return false;
      },
      give(): void {
        Atomics.sub(header, WATCHERS, 1);
      },
      get taken(): number {
        return Atomics.load(header, WATCHERS);
      },
    };
  }
}
