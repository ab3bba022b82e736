/**
 * A read-only view of one partition's file for a thread (a Worker) or a process that is not its
 * writer: the main thread's `PartitionStore` keeps applying to the same file while a
 * {@linkcode PartitionReader} answers gets and lists from it, with the same results
 * (record_reads.ts serves both).
 *
 * **The reader holds its own snapshot.** Every read uses one LMDB read transaction the reader
 * keeps until told otherwise. Left to itself, lmdb-js renews its read transaction on every
 * event-loop turn with a timer per turn, and at tens of thousands of reads per second that timer
 * is most of a get's cost. Holding the snapshot also makes a reader's answers consistent with each
 * other and with {@linkcode PartitionReader.applied}: everything it returns is the file as of one
 * applied offset.
 *
 * **The caller decides when to refresh.** A reader never sees a newer commit on its own:
 * {@linkcode PartitionReader.refresh} takes a fresh snapshot and says which offset it reflects. The
 * writer tells readers that it committed (a posted offset); the reader's own `applied` is what
 * counts, since a posted offset is only a wake-up. {@linkcode PartitionReader.release} drops the
 * snapshot so that an idle reader pins no old pages (which would make the writer's file grow).
 *
 * **Visibility across threads.** A commit of `PartitionStore.write()` (`putSync` inside
 * `transactionSync`) is in the file when the call returns: a snapshot that any thread takes after
 * that sees it, even while the writer's task is still running (the tests hold it to this with the
 * writer blocked in `Atomics.wait`). So a writer that posts an offset after `await store.write(…)`
 * never sends a reader to refresh too early. The lag bench/lmdb_visibility_probe.ts measured
 * (another thread seeing a commit only once the writer's event loop turned) comes from its async
 * `put` inside `transactionSync`, which lmdb-js 3.5.6 leaves to its next batch: with `putSync` the
 * same probe reads every commit at once. Either way, what a reader serves is its own `applied`.
 *
 * **Environments are shared within a process.** lmdb-js keeps one LMDB environment per file
 * (device and inode) per process, with the flags of whichever thread opened it first; later
 * opens of the file from any thread share it, and their own flags (`readOnly` included) are
 * ignored. Closing an opener only decrements a count. So a reader may outlive the store's close,
 * and a store reopened at the same path while a reader is open gets the same read-write
 * environment back. But a store that opens a file which only readers hold open gets their
 * read-only environment: its open throws, and lmdb-js then leaves that environment pinned for
 * the rest of the process. Within a process, open a reader only while the file's store is open.
 * A file moved into the path (a snapshot, a rebuild) is another inode: readers of the old one go
 * on reading the old file and must be reopened. Its lock file (`{path}-lock`) must be replaced
 * with it, as the node does: LMDB keeps the last transaction id in the lock file, so readers of
 * the old file sharing a lock with the new one pick their meta page by the new file's ids and
 * read a wrong snapshot (the offset assertion in `refresh()` caught one going back in a probe).
 *
 * @module
 */
import { open, type RootDatabase } from "lmdb";
import { STORE_FORMAT } from "../config/mod.ts";
import { assert } from "../util/assert.ts";
import {
  type AppliedPosition,
  DIGEST_PATTERN,
  lmdbHeaderProblem,
  metaCheck,
  StoreCorruptError,
  StoreMismatchError,
  storePath,
} from "./partition_store.ts";
import type { StoredRecord } from "./record_codec.ts";
import {
  type Change,
  type ChangeCursor,
  type ChangesDb,
  openChangesDb,
  readChanges,
} from "./changes.ts";
import {
  type HistoryDb,
  listAt,
  openHistoryDb,
  type Point,
  readHistory,
  recordAt,
  recordAtTime,
  type Version,
} from "./history.ts";
import { encodeRecordKey } from "../keys/mod.ts";
import {
  getRecord,
  type ListPage,
  type ListQuery,
  listRecords,
  openRecordsDb,
  type ReadTxn,
  type RecordsDb,
} from "./record_reads.ts";

/** Which partition file a reader opens. */
export interface ReaderOptions {
  /** Folder holding the partition files of one namespace. */
  readonly dir: string;
  /** Namespace the file must belong to. */
  readonly namespace: string;
  /** Partition number the file must belong to. */
  readonly partition: number;
}

const CHAIN_PATTERN = /^[0-9a-f]{64}$/;

/** A read-only view of one partition's file; see the module doc. */
export class PartitionReader {
  /** Partition number. */
  readonly partition: number;
  /** Path of the file. */
  readonly path: string;
  private readonly namespace: string;
  private readonly env: RootDatabase;
  private readonly records: RecordsDb;
  private readonly meta;
  private readonly changes: ChangesDb;
  private readonly history: HistoryDb;
  /** The snapshot every read uses; null after `release()` until the next read takes one. */
  private txn: ReadTxn | null = null;
  /** Offset and chain in the meta of the last snapshot taken. */
  private position: AppliedPosition = { offset: -1, chain: "" };
  /** The meta `changes_since` of the last snapshot taken. */
  private since = -1;
  private closed = false;

  private constructor(options: ReaderOptions) {
    this.partition = options.partition;
    this.namespace = options.namespace;
    this.path = storePath(options.dir, options.partition);
    // lmdb-js would create a missing file (or crash on a foreign one): check before opening.
    try {
      Deno.statSync(this.path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(`Cannot open a reader on ${this.path}: it does not exist`);
      }
      throw error;
    }
    const problem = lmdbHeaderProblem(this.path);
    if (problem !== null) {
      throw new StoreMismatchError(`Cannot open a reader on ${this.path}: ${problem}`);
    }
    this.env = open({ path: this.path, maxDbs: 8, readOnly: true });
    try {
      this.records = openRecordsDb(this.env);
      this.meta = this.env.openDB<unknown, string>({ name: "meta", encoding: "json" });
      this.changes = openChangesDb(this.env);
      this.history = openHistoryDb(this.env);
      this.txn = this.records.useReadTransaction();
      this.position = this.checkMeta(this.txn);
      this.since = this.sinceIn(this.txn, this.position.offset);
    } catch (error) {
      this.txn?.done();
      this.txn = null;
      this.env.close();
      throw error;
    }
  }

  /**
   * Opens a reader on an existing partition file (never creating one). Throws `NotFound` when
   * the file is missing and {@linkcode StoreMismatchError} when it is not this partition's file.
   */
  static open(options: ReaderOptions): PartitionReader {
    return new PartitionReader(options);
  }

  /**
   * What PartitionStore checks at open, read in `txn`, without its repairs (a reader never
   * writes); returns the position the meta records.
   */
  private checkMeta(txn: ReadTxn): AppliedPosition {
    const read = { transaction: txn };
    const partition = this.meta.get("partition", read);
    const namespace = this.meta.get("namespace", read);
    if (partition !== this.partition || namespace !== this.namespace) {
      const found = partition === undefined
        ? "no partition"
        : `partition ${partition} of namespace ${namespace}`;
      throw new StoreMismatchError(
        `Cannot open a reader on ${this.path}: it holds ${found}, expected partition ${this.partition} of namespace ${this.namespace}`,
      );
    }
    const format = this.meta.get("format", read);
    if (format !== STORE_FORMAT) {
      throw new StoreMismatchError(
        `Cannot open a reader on ${this.path}: format ${format}, expected ${STORE_FORMAT}`,
      );
    }
    const offset = this.meta.get("offset", read);
    const chain = this.meta.get("chain", read);
    const digest = this.meta.get("digest", read);
    if (
      typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < -1 ||
      typeof chain !== "string" || !CHAIN_PATTERN.test(chain) ||
      typeof digest !== "string" || !DIGEST_PATTERN.test(digest)
    ) {
      throw new StoreCorruptError(
        `Cannot open a reader on ${this.path}: its meta offset, chain or digest is missing or malformed`,
      );
    }
    const check = metaCheck(this.partition, this.namespace, STORE_FORMAT, offset, chain, digest);
    if (this.meta.get("check", read) !== check) {
      throw new StoreCorruptError(
        `Cannot open a reader on ${this.path}: its meta checksum does not match`,
      );
    }
    return { offset, chain };
  }

  /** The held snapshot, taking a fresh one (and its meta's position) when none is held. */
  private snapshot(): ReadTxn {
    if (this.txn !== null) return this.txn;
    const txn = this.records.useReadTransaction();
    const read = { transaction: txn };
    const offset = this.meta.get("offset", read);
    const chain = this.meta.get("chain", read);
    assert(
      typeof offset === "number" && Number.isSafeInteger(offset) && offset >= -1,
      `meta offset of ${this.path} is corrupt`,
    );
    assert(
      typeof chain === "string" && CHAIN_PATTERN.test(chain),
      `meta chain of ${this.path} is corrupt`,
    );
    // A file's offset only moves forward: an older one means another file took this path's place.
    assert(
      offset >= this.position.offset,
      `${this.path} went back from offset ${this.position.offset} to ${offset}`,
    );
    this.txn = txn;
    this.position = { offset, chain };
    this.since = this.sinceIn(txn, offset);
    return txn;
  }

  /** The offset and chain the current snapshot reflects (taking a snapshot if none is held). */
  get applied(): AppliedPosition {
    assert(!this.closed, `reader of ${this.path} is closed`);
    this.snapshot();
    return this.position;
  }

  /** One record in the current snapshot, or null. */
  get(pk: string, sk: string): StoredRecord | null {
    assert(!this.closed, `reader of ${this.path} is closed`);
    return getRecord(this.records, this.txn ?? this.snapshot(), pk, sk);
  }

  /** One page of a pk's records in the current snapshot; see {@linkcode ListQuery}. */
  list(query: ListQuery): ListPage {
    assert(!this.closed, `reader of ${this.path} is closed`);
    return listRecords(this.records, this.txn ?? this.snapshot(), query);
  }

  /** The meta `changes_since` in `txn` (a file from before the change log: its `offset`). */
  private sinceIn(txn: ReadTxn, offset: number): number {
    const since = this.meta.get("changes_since", { transaction: txn });
    return typeof since === "number" && Number.isSafeInteger(since) ? since : offset;
  }

  /** Every change of every offset above this is in the current snapshot's change log. */
  get changesSince(): number {
    assert(!this.closed, `reader of ${this.path} is closed`);
    this.snapshot();
    return this.since;
  }

  /** The newest log timestamp of a change the snapshot's change log no longer holds (-1: none). */
  get changesSinceTs(): number {
    assert(!this.closed, `reader of ${this.path} is closed`);
    const since = this.meta.get("changes_since_ts", { transaction: this.txn ?? this.snapshot() });
    return typeof since === "number" ? since : -1;
  }

  /** The versions of `[pk, sk]` in the current snapshot (see history.ts). */
  historyOf(pk: string, sk: string, beforeOffset: number | null, limit: number): Version[] {
    assert(!this.closed, `reader of ${this.path} is closed`);
    const txn = this.txn ?? this.snapshot();
    return readHistory(
      this.history,
      this.changes,
      txn,
      encodeRecordKey(pk, sk),
      beforeOffset,
      limit,
    );
  }

  /** `[pk, sk]` just after `offset` (null: absent); see history.ts. */
  getAt(pk: string, sk: string, offset: number): StoredRecord | null {
    const current = this.get(pk, sk);
    const txn = this.txn ?? this.snapshot();
    return recordAt(this.history, this.changes, txn, encodeRecordKey(pk, sk), offset, current);
  }

  /** One page of `query` as the partition was at `point`; see history.ts. */
  listAt(query: ListQuery, point: Point): ListPage {
    assert(!this.closed, `reader of ${this.path} is closed`);
    const txn = this.txn ?? this.snapshot();
    return listAt(this.records, this.history, this.changes, txn, query, point);
  }

  /** `[pk, sk]` at unix ms `at` of log time (null: absent); see history.ts. */
  getAtTime(pk: string, sk: string, at: number): StoredRecord | null {
    const current = this.get(pk, sk);
    const txn = this.txn ?? this.snapshot();
    return recordAtTime(this.history, this.changes, txn, encodeRecordKey(pk, sk), at, current);
  }

  /** At most `limit` changes after `cursor` in the current snapshot. */
  changesAfter(cursor: ChangeCursor, limit: number): Change[] {
    assert(!this.closed, `reader of ${this.path} is closed`);
    const txn = this.txn ?? this.snapshot();
    return readChanges(this.changes, txn, cursor, this.position.offset, limit);
  }

  /** Drops the current snapshot and takes a fresh one; returns the offset it reflects. */
  refresh(): number {
    assert(!this.closed, `reader of ${this.path} is closed`);
    this.dropSnapshot();
    this.snapshot();
    return this.position.offset;
  }

  /**
   * Drops the current snapshot without taking another, so an idle reader pins no old pages (which
   * the writer could otherwise not reuse); the next read takes a fresh one.
   */
  release(): void {
    assert(!this.closed, `reader of ${this.path} is closed`);
    this.dropSnapshot();
  }

  private dropSnapshot(): void {
    this.txn?.done();
    this.txn = null;
    // lmdb-js keeps its read transaction current until its timer fires at the end of the turn,
    // and renewing a current transaction is a no-op (EINVAL, ignored): without this reset, a
    // refresh in the same turn as the last snapshot would get that snapshot back.
    this.env.resetReadTxn();
  }

  /** Drops the snapshot and closes this reader's handle on the file. Further calls fail. */
  async close(): Promise<void> {
    assert(!this.closed, `reader of ${this.path} is already closed`);
    this.closed = true;
    this.dropSnapshot();
    await this.env.close();
  }
}
