/**
 * One partition's database: an LMDB environment `{dir}/p{partition}.mdb` with four named DBs,
 * `records` (encoded `[pk, sk]` → record value), `meta` (applied offset, hash chain, identity),
 * `changes` (the change log watches read, changes.ts) and `expiry` (the records that expire, by
 * instant, expiry.ts).
 *
 * The applied offset and the chain are written in the same transaction as the records they
 * describe, so after any crash the file says exactly which log prefix it reflects.
 */
import { createHash } from "node:crypto";
import { open, type RootDatabase } from "lmdb";
import { STORE_FORMAT } from "../config/mod.ts";
import { encodeRecordKey } from "../keys/mod.ts";
import { assert } from "../util/assert.ts";
import { log } from "../util/log.ts";
import {
  type Change,
  changeBytes,
  type ChangeCursor,
  changeKeyInto,
  type ChangeKind,
  type ChangesDb,
  encodeChangeInto,
  oldestChange,
  openChangesDb,
  pruneBudget,
  pruneChanges,
  readChanges,
} from "./changes.ts";
import {
  type HistoryDb,
  indexChange,
  listAt,
  openHistoryDb,
  type Point,
  readHistory,
  recordAt,
  recordAtTime,
  unindexChange,
  type Version,
} from "./history.ts";
import {
  dueBy,
  earliestExpiry,
  EXPIRY_ROW,
  type ExpiryDb,
  expiryKey,
  openExpiryDb,
} from "./expiry.ts";
import {
  decodeRecordHead,
  decodeRecordValue,
  RECORD_HEADER_BYTES_MAX,
  type RecordHead,
  recordValueRoom,
  type StoredRecord,
  valueExpiresAt,
  writeRecordHeader,
  writeRecordValue,
} from "./record_codec.ts";
import { RECORD_HASH_BYTES, recordHash, xorRecordHash } from "./record_hash.ts";
import {
  getRecord,
  KEY_SCRATCH_BYTES,
  keyIn,
  type ListPage,
  type ListQuery,
  listRecords,
  openRecordsDb,
  type ReadTxn,
  type RecordsDb,
} from "./record_reads.ts";

/** Version of the file layout, stored in `meta`: a cluster-wide constant (snapshots move). */
export { STORE_FORMAT };

/** The hash chain before any message: 32 zero bytes. */
export const CHAIN_ZERO = "0".repeat(64);

/** The content digest of an empty store: 16 zero bytes, hex. */
export const DIGEST_ZERO = "0".repeat(2 * RECORD_HASH_BYTES);

/** A well-formed digest: hex of {@linkcode RECORD_HASH_BYTES} bytes. */
export const DIGEST_PATTERN = new RegExp(`^[0-9a-f]{${2 * RECORD_HASH_BYTES}}$`);

/**
 * The content digest is the XOR of {@linkcode recordHash} over all records: order-free, so a put
 * removes the old record's hash and adds the new one in O(1), and replicas holding the same
 * records have the same digest however they got there.
 */
export { recordHash };

/** XORs `hash` into `digest` in place (adding and removing a record are the same operation). */
export function xorInto(digest: Uint8Array, hash: Uint8Array): void {
  for (let i = 0; i < RECORD_HASH_BYTES; i++) digest[i]! ^= hash[i]!;
}

/** Hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Checksum over the meta values, stored as meta `check`: a flipped byte inside the meta (an offset
 * or chain that still parses) is caught at open and by the verifier.
 */
export function metaCheck(
  partition: number,
  namespace: string,
  format: number,
  offset: number,
  chain: string,
  digest: string,
): string {
  const text = JSON.stringify([partition, namespace, format, offset, chain, digest]);
  return createHash("sha256").update(text).digest("hex");
}

/** What a partition file says about itself. */
export interface StoreMeta {
  readonly partition: number;
  readonly namespace: string;
  /** Last applied offset, -1 when nothing was applied. */
  readonly offset: number;
  /** Hash chain at that offset, hex. */
  readonly chain: string;
}

/** Where a partition's file stands in the log. */
export interface AppliedPosition {
  /** Last applied log offset, -1 when nothing was applied yet. */
  readonly offset: number;
  /** Hash chain after that offset, hex. */
  readonly chain: string;
}

/** Reads and writes inside one write transaction. */
export interface StoreTx {
  /**
   * Starts the log message at `offset` (log timestamp `timestamp`, `ops` operations): purges the
   * records whose expiry instant is at or before `timestamp` (earliest first, at most
   * `1024 + 2 × ops`, each an `expire` change), and records the puts and deletes that follow in
   * the change log under it. Puts and deletes outside a message record nothing.
   */
  message(offset: number, timestamp: number, ops: number): void;
  /**
   * The record as the transaction sees it (earlier writes of the same transaction included). A
   * `put` or `delete` of the same record next reuses what this read.
   */
  get(pk: string, sk: string): StoredRecord | null;
  /** Writes a record (`expiresAt`: the unix ms it expires at; null: never). */
  put(
    pk: string,
    sk: string,
    dataJson: string,
    version: number,
    createdAt: number,
    updatedAt: number,
    expiresAt?: number | null,
  ): void;
  /** Deletes a record; absent records are ignored. */
  delete(pk: string, sk: string): void;
  /**
   * The head of the record at encoded key `key` (`keys/record_key.ts`), or null when absent. A
   * `putEncoded` or `deleteKey` of the same array next reuses what this read: its bytes must not
   * change in between.
   */
  head(key: Uint8Array): RecordHead | null;
  /** {@linkcode put} at encoded key `key`, of `data` given as UTF-8 JSON bytes. */
  putEncoded(
    key: Uint8Array,
    data: Uint8Array,
    version: number,
    createdAt: number,
    updatedAt: number,
    expiresAt: number | null,
  ): void;
  /** {@linkcode delete} at encoded key `key`. */
  deleteKey(key: Uint8Array): void;
}

/** How to open a store. */
export interface StoreOptions {
  /** Folder holding the partition files of one namespace. */
  readonly dir: string;
  /** Namespace, recorded in meta and checked on open. */
  readonly namespace: string;
  /** Partition number. */
  readonly partition: number;
  /** LMDB map size, bytes. */
  readonly mapBytes: number;
  /** How long changes are kept in the change log, ms of log time; 0 records none. */
  readonly changesRetainMs?: number;
}

/** Raised when a partition file's meta contradicts itself: the file is damaged. */
export class StoreCorruptError extends Error {
  /** Stable code. */
  readonly code = "store_corrupt";
  constructor(message: string) {
    super(message);
    this.name = "StoreCorruptError";
  }
}

/** Raised when a file on disk belongs to another partition or namespace. */
export class StoreMismatchError extends Error {
  /** Stable code. */
  readonly code = "store_mismatch";
  constructor(message: string) {
    super(message);
    this.name = "StoreMismatchError";
  }
}

/** lmdb-js's `sync(callback)`: `mdb_env_sync(force)` on a worker thread; not in its types. */
interface EnvSync {
  sync(callback: (error?: unknown) => void): void;
}

/**
 * The write transaction's key and value buffers: lmdb-js copies keys and values before `getBinaryFast`
 * and `putSync` return, so one buffer of each serves every write (allocating two arrays per record
 * was a measurable share of apply).
 */
const WRITE_KEY_SCRATCH = new Uint8Array(KEY_SCRATCH_BYTES);
/** The record value `StoreTx.get`/`head` read last (see `keep` in the write transaction). */
let headScratch = new Uint8Array(4096);
/** The key `StoreTx.get` read last, kept for the write of the same record that follows it. */
const GET_KEY_SCRATCH = new Uint8Array(KEY_SCRATCH_BYTES);
/** lmdb-js's put flag for a key above every other of its DB (MDB_APPEND: no B-tree search). */
const APPEND = { append: true };
/** Scratch for the change-log key being written: LMDB copies a key before `putSync` returns. */
const CHANGE_KEY_SCRATCH = new Uint8Array(12);
/** The arena of one message's change rows (see `recordChange` in the write transaction). */
let changeArena = new Uint8Array(256 * 1024);
let changeArenaUsed = 0;
let writeValueScratch = new Uint8Array(64 * 1024);

/** LMDB's on-disk header (liblmdb as built by lmdb-js): what `mdb_env_open` checks first. */
const LMDB_PAGE_FLAGS_AT = 18;
const LMDB_P_META = 0x08;
const LMDB_META_AT = 24;
const LMDB_MAGIC = 0xbeefc0de;
const LMDB_DATA_VERSION = 2;
/** `mm_psize`: the free DB's `md_pad` in the meta, after magic, version, address and map size. */
const LMDB_PAGE_BYTES_AT = LMDB_META_AT + 24;
const LMDB_HEADER_BYTES = LMDB_PAGE_BYTES_AT + 4;

/**
 * Why `path` cannot be an LMDB data file, or null when its first meta page looks like one.
 * lmdb-js crashes the whole process (SIGSEGV in its open error path) instead of throwing when
 * LMDB refuses a file, so a file from elsewhere (a snapshot) is checked by hand before opening.
 */
export function lmdbHeaderProblem(path: string): string | null {
  const file = Deno.openSync(path, { read: true });
  try {
    const size = file.statSync().size;
    const head = new Uint8Array(LMDB_HEADER_BYTES);
    let read = 0;
    while (read < head.length) {
      const n = file.readSync(head.subarray(read));
      if (n === null) break;
      read += n;
    }
    if (read < head.length) return `it is ${size} bytes, too short for an LMDB file`;
    const view = new DataView(head.buffer);
    if ((view.getUint16(LMDB_PAGE_FLAGS_AT, true) & LMDB_P_META) === 0) {
      return "its first page is not an LMDB meta page";
    }
    if (view.getUint32(LMDB_META_AT, true) !== LMDB_MAGIC) return "it is not an LMDB file";
    const version = view.getUint32(LMDB_META_AT + 4, true) & 0xffff;
    if (version !== LMDB_DATA_VERSION) {
      return `it is LMDB data version ${version}, expected ${LMDB_DATA_VERSION}`;
    }
    const pageBytes = view.getUint32(LMDB_PAGE_BYTES_AT, true);
    if (pageBytes < 512 || pageBytes > 65536 || (pageBytes & (pageBytes - 1)) !== 0) {
      return `its page size ${pageBytes} is not an LMDB page size`;
    }
    if (size < 2 * pageBytes) return `it is ${size} bytes, shorter than its two meta pages`;
    return null;
  } finally {
    file.close();
  }
}

/**
 * How often a store that committed since its last flush is flushed to disk, ms. Commits are not
 * synced (see {@linkcode PartitionStore}); this bounds how much of the log an OS crash makes a
 * restart re-apply.
 */
export const STORE_SYNC_INTERVAL_MS = 1000;

/** Path of a partition's file. */
export function storePath(dir: string, partition: number): string {
  return `${dir}/p${partition}.mdb`;
}

/**
 * One partition's LMDB database.
 *
 * Commits are not synced (LMDB `noSync`): the log is the durable record and apply is idempotent by
 * offset, so a commit lost in an OS crash is applied again from the log. A timer flushes a store
 * that committed every {@linkcode STORE_SYNC_INTERVAL_MS}, and `close()` flushes before the clean
 * stop is recorded. After an OS crash the file may be torn (meta pointing at pages that never
 * reached the disk): no clean-stop record vouches for it then, so the start verifies it and
 * rebuilds it when damaged (verify.ts). docs/architecture.md weighs this against `noMetaSync`.
 */
export class PartitionStore {
  readonly partition: number;
  readonly path: string;
  private readonly env: RootDatabase;
  private readonly records: RecordsDb;
  private readonly meta;
  private readonly changes: ChangesDb;
  private readonly expiry: ExpiryDb;
  private readonly history: HistoryDb;
  /** The newest log timestamp of a pruned change (every later change is kept); -1: none. */
  private sinceTs: number;
  private readonly changesRetainMs: number;
  /** The log timestamp of the last message applied since the file was opened (0: none). */
  private lastTimestamp = 0;
  /**
   * The log timestamp of the change log's oldest row (null: empty), and the earliest expiry
   * instant (null: none).
   * Apply looks at the DBs only when these say pruning or a purge is due: a range read per
   * message is a measurable share of a small write.
   */
  private oldestTs: number | null = null;
  private earliestDue: number | null = null;
  /** Every change of every offset above this is in the change log (meta `changes_since`). */
  private since: number;
  private position: AppliedPosition;
  /** Content digest (XOR of {@linkcode recordHash} over all records), as committed. */
  private digestBytes: Uint8Array;
  private readonly namespace: string;
  private closed = false;
  private writing = false;
  /** Snapshot copies in flight: `close()` waits for them. */
  private copying: Promise<void> | null = null;
  /**
   * The read snapshot every get and list uses, renewed after each commit of this store. lmdb-js
   * would otherwise renew its own read transaction on every event-loop turn, with a timer per
   * turn: at tens of thousands of reads per second that timer is most of a get's cost. Only this
   * process writes this file, so renewing after our own commits is exactly as fresh.
   */
  private readTxn: ReadTxn | null = null;
  /** Committed since the last flush started. */
  private dirty = false;
  private syncTimer: ReturnType<typeof setTimeout> | null = null;
  /** The flush in flight, if any: `close()` waits for it. */
  private syncing: Promise<void> | null = null;

  private constructor(options: StoreOptions) {
    this.partition = options.partition;
    this.namespace = options.namespace;
    this.changesRetainMs = options.changesRetainMs ?? 0;
    this.path = storePath(options.dir, options.partition);
    Deno.mkdirSync(options.dir, { recursive: true });
    this.env = open({
      path: this.path,
      maxDbs: 8,
      mapSize: options.mapBytes,
      noSync: true,
      overlappingSync: false,
    });
    // Whatever makes the open fail (a mismatch, damaged meta) must not leave the file mapped:
    // the caller may move it aside and open a new one at the same path.
    try {
      this.records = openRecordsDb(this.env);
      this.meta = this.env.openDB<unknown, string>({ name: "meta", encoding: "json" });
      const partition = this.meta.get("partition");
      const namespace = this.meta.get("namespace");
      if (partition === undefined) {
        this.meta.transactionSync(() => {
          this.meta.putSync("partition", options.partition);
          this.meta.putSync("namespace", options.namespace);
          this.meta.putSync("format", STORE_FORMAT);
          this.meta.putSync("offset", -1);
          this.meta.putSync("chain", CHAIN_ZERO);
          this.meta.putSync("digest", DIGEST_ZERO);
          this.meta.putSync("check", this.checkOf(-1, CHAIN_ZERO, DIGEST_ZERO));
        });
      } else if (partition !== options.partition || namespace !== options.namespace) {
        const found = `partition ${partition} of namespace ${namespace}`;
        this.env.close();
        throw new StoreMismatchError(
          `Cannot open ${this.path}: it holds ${found}, expected partition ${options.partition} of namespace ${options.namespace}`,
        );
      }
      const format = this.meta.get("format");
      if (format !== STORE_FORMAT) {
        this.env.close();
        throw new StoreMismatchError(
          `Cannot open ${this.path}: format ${format}, expected ${STORE_FORMAT}`,
        );
      }
      const position = this.readPosition();
      this.position = position.position;
      this.digestBytes = position.digest;
      this.changes = openChangesDb(this.env);
      this.expiry = openExpiryDb(this.env);
      this.history = openHistoryDb(this.env);
      this.oldestTs = oldestChange(this.changes);
      this.earliestDue = earliestExpiry(this.expiry);
      const sinceTs = this.meta.get("changes_since_ts");
      this.sinceTs = typeof sinceTs === "number" ? sinceTs : -1;
      const since = this.meta.get("changes_since");
      if (typeof since === "number" && Number.isSafeInteger(since) && since >= -1) {
        this.since = since;
      } else {
        // A file from before the change log: it records changes from here on.
        this.since = this.position.offset;
        this.meta.putSync("changes_since", this.since);
      }
    } catch (error) {
      try {
        this.env.close();
      } catch {
        // Already closed by the check that threw.
      }
      throw error;
    }
  }

  /**
   * The position and digest the meta holds, checked against its checksum (the env is closed when
   * they do not match). A file written before digests existed gets its digest computed once.
   */
  private readPosition(): { position: AppliedPosition; digest: Uint8Array } {
    const offset = this.meta.get("offset");
    const chain = this.meta.get("chain");
    assert(
      typeof offset === "number" && Number.isSafeInteger(offset) && offset >= -1,
      "meta offset is corrupt",
    );
    assert(typeof chain === "string" && /^[0-9a-f]{64}$/.test(chain), "meta chain is corrupt");
    const digest = this.meta.get("digest");
    if (digest === undefined) {
      // A file written before digests existed: compute it once, from every record.
      const computed = this.computeDigest();
      const hex = toHex(computed);
      this.meta.transactionSync(() => {
        this.meta.putSync("digest", hex);
        this.meta.putSync("check", this.checkOf(offset, chain, hex));
      });
      return { position: { offset, chain }, digest: computed };
    }
    if (typeof digest !== "string" || !DIGEST_PATTERN.test(digest)) {
      this.env.close();
      throw new StoreCorruptError(`Cannot open ${this.path}: its meta digest is malformed`);
    }
    if (this.meta.get("check") !== this.checkOf(offset, chain, digest)) {
      this.env.close();
      throw new StoreCorruptError(`Cannot open ${this.path}: its meta checksum does not match`);
    }
    return { position: { offset, chain }, digest: fromHex(digest) };
  }

  private checkOf(offset: number, chain: string, digest: string): string {
    return metaCheck(this.partition, this.namespace, STORE_FORMAT, offset, chain, digest);
  }

  private computeDigest(): Uint8Array {
    const digest = new Uint8Array(RECORD_HASH_BYTES);
    for (const { key, value } of this.records.getRange({})) xorRecordHash(digest, key, value);
    return digest;
  }

  /** Content digest of the committed records, hex (equal on replicas with equal records). */
  get digest(): string {
    return toHex(this.digestBytes);
  }

  /** Opens (creating if needed) the store of one partition. */
  static open(options: StoreOptions): PartitionStore {
    return new PartitionStore(options);
  }

  /** The last applied offset and chain, as committed. */
  get applied(): AppliedPosition {
    return this.position;
  }

  private snapshot(): ReadTxn {
    return this.readTxn ??= this.records.useReadTransaction();
  }

  /** Releases the read snapshot; the next read takes a fresh one. */
  private renewSnapshot(): void {
    this.readTxn?.done();
    this.readTxn = null;
  }

  /** One record, or null. */
  get(pk: string, sk: string): StoredRecord | null {
    return getRecord(this.records, this.snapshot(), pk, sk);
  }

  /** One page of a pk's records; see {@linkcode ListQuery}. */
  list(query: ListQuery): ListPage {
    return listRecords(this.records, this.snapshot(), query);
  }

  /** Every change of every offset above this is in the change log (see changes.ts). */
  get changesSince(): number {
    return this.since;
  }

  /** The newest log timestamp of a change the change log no longer holds (-1: none). */
  get changesSinceTs(): number {
    return this.sinceTs;
  }

  /** The versions of `[pk, sk]`, newest first, below `beforeOffset` (see history.ts). */
  historyOf(pk: string, sk: string, beforeOffset: number | null, limit: number): Version[] {
    return readHistory(
      this.history,
      this.changes,
      this.snapshot(),
      encodeRecordKey(pk, sk),
      beforeOffset,
      limit,
    );
  }

  /** `[pk, sk]` just after `offset` (null: absent); see history.ts. */
  getAt(pk: string, sk: string, offset: number): StoredRecord | null {
    const txn = this.snapshot();
    const key = encodeRecordKey(pk, sk);
    return recordAt(this.history, this.changes, txn, key, offset, this.get(pk, sk));
  }

  /** One page of `query` as the partition was at `point`; see history.ts. */
  listAt(query: ListQuery, point: Point): ListPage {
    return listAt(this.records, this.history, this.changes, this.snapshot(), query, point);
  }

  /** `[pk, sk]` at unix ms `at` of log time (null: absent); see history.ts. */
  getAtTime(pk: string, sk: string, at: number): StoredRecord | null {
    const txn = this.snapshot();
    const key = encodeRecordKey(pk, sk);
    return recordAtTime(this.history, this.changes, txn, key, at, this.get(pk, sk));
  }

  /** The earliest expiry instant of a record in the file (unix ms), or null when none expires. */
  earliestExpiry(): number | null {
    return this.earliestDue;
  }

  /** The log timestamp of the last message applied since the file was opened (0: none yet). */
  get lastMessageTimestamp(): number {
    return this.lastTimestamp;
  }

  /** At most `limit` changes after `cursor`, as committed. */
  changesAfter(cursor: ChangeCursor, limit: number): Change[] {
    return readChanges(this.changes, this.snapshot(), cursor, this.position.offset, limit);
  }

  /** Number of records (LMDB keeps the count; this does not scan). */
  count(): number {
    return (this.records.getStats() as { entryCount: number }).entryCount;
  }

  /**
   * Runs `body` in one write transaction. `body` reads and writes through the {@linkcode StoreTx}
   * and returns the position the transaction reaches, or null to write nothing; the new offset
   * and chain are stored in the same transaction. Resolves once committed and visible to readers.
   */
  write(body: (tx: StoreTx) => AppliedPosition | null): Promise<AppliedPosition> {
    // Synchronous inside; a throw (an assertion included) is a rejection, as callers await it.
    try {
      return Promise.resolve(this.writeSync(body));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private writeSync(body: (tx: StoreTx) => AppliedPosition | null): AppliedPosition {
    assert(!this.closed, `store p${this.partition} is closed`);
    // Each transaction checks the offset against the last committed one, so they must not overlap.
    assert(!this.writing, `store p${this.partition} already has a write in flight`);
    this.writing = true;
    const records = this.records;
    const meta = this.meta;
    const changes = this.changes;
    const expiry = this.expiry;
    const history = this.history;
    let sinceTs = this.sinceTs;
    let oldest = this.oldestTs;
    let earliest = this.earliestDue;
    const retainMs = this.changesRetainMs;
    // Updated as the transaction writes; adopted only once it commits.
    const digest = this.digestBytes.slice();
    let since = this.since;
    // The current message's change rows, written when it ends (the last one is flagged).
    let messageOffset = -1;
    const pending: Uint8Array[] = [];
    // A transaction aborted mid-message left rows in the arena: none of them is wanted.
    changeArenaUsed = 0;
    const endMessage = () => {
      if (pending.length === 0) return;
      pending[pending.length - 1]![1]! |= 1;
      for (let i = 0; i < pending.length; i++) {
        const key = changeKeyInto(CHANGE_KEY_SCRATCH, messageOffset, i);
        // Change keys only grow (offsets move forward): each row appends, no B-tree search.
        const appended = changes.putSync(key, pending[i]!, APPEND);
        assert(appended, `p${this.partition} change row ${messageOffset}/${i} is not the last`);
        oldest ??= messageTimestamp;
        indexChange(history, key, pending[i]!);
      }
      pending.length = 0;
      changeArenaUsed = 0;
    };
    // A message's change rows are encoded into one arena, not an array each: LMDB copies them
    // when the message ends. An arena too small is replaced, never grown under earlier rows.
    const recordChange = (
      kind: ChangeKind,
      timestamp: number,
      recordKey: Uint8Array,
      value: Uint8Array | null,
      previous: Uint8Array | null,
    ) => {
      const bytes = changeBytes(recordKey, value, previous);
      if (changeArenaUsed + bytes > changeArena.length) {
        changeArena = new Uint8Array(Math.max(2 * changeArena.length, bytes));
        changeArenaUsed = 0;
      }
      const row = changeArena.subarray(changeArenaUsed, changeArenaUsed + bytes);
      changeArenaUsed += bytes;
      encodeChangeInto(row, kind, false, timestamp, recordKey, value, previous);
      pending.push(row);
    };
    let messageTimestamp = 0;
    const recording = () => retainMs > 0 && messageOffset >= 0;
    // Drops `key`'s expiry row; the earliest instant is looked up again if it was that one.
    const unexpire = (expiresAt: number, key: Uint8Array) => {
      expiry.removeSync(expiryKey(expiresAt, key));
      if (expiresAt === earliest) earliest = earliestExpiry(expiry);
    };
    // What `get` or `head` last read (a copy) and the key it read: the put or delete of that
    // record which follows it — by `get`'s pk and sk, or by `head`'s key array — takes it instead
    // of a second lookup. Every write and every message forgets it.
    let headKey: Uint8Array | null = null;
    let headValue: Uint8Array | undefined = undefined;
    let headPk: string | null = null;
    let headSk = "";
    // The key of [pk, sk]: the one `get` encoded last when it was that record's.
    const keyOf = (pk: string, sk: string) =>
      headKey !== null && pk === headPk && sk === headSk
        ? headKey
        : keyIn(WRITE_KEY_SCRATCH, pk, sk);
    // A copy of what a read found, in a buffer of its own that outlives lmdb-js's (reused by its
    // next read) and is allocated once, not per record.
    const keep = (found: Uint8Array): Uint8Array => {
      if (found.length > headScratch.length) {
        headScratch = new Uint8Array(Math.max(found.length, 2 * headScratch.length));
      }
      // lmdb-js narrows `length` on a view of its whole read buffer: copy that many bytes.
      const length = found.length;
      headScratch.set(found.subarray(0, length));
      return headScratch.subarray(0, length);
    };
    // Reads the record at `key` (of [pk, sk] when known) and remembers it for the write after.
    const read = (key: Uint8Array, pk: string | null, sk: string): Uint8Array | undefined => {
      const found = records.getBinaryFast(key);
      headKey = key;
      headPk = pk;
      headSk = sk;
      headValue = found === undefined ? undefined : keep(found);
      return headValue;
    };
    const current = (key: Uint8Array): Uint8Array | undefined => {
      const known = key === headKey;
      headKey = null;
      return known ? headValue : records.getBinaryFast(key);
    };
    // Writes the encoded record `value` at `key`: the digest, the change log and the expiry index
    // follow.
    const writeValue = (key: Uint8Array, value: Uint8Array, expiresAt: number | null) => {
      const old = current(key);
      // Everything `old` says is taken before the next read: lmdb-js reuses its buffer.
      const oldExpiresAt = old === undefined ? null : valueExpiresAt(old);
      if (old !== undefined) xorRecordHash(digest, key, old);
      xorRecordHash(digest, key, value);
      if (recording()) {
        recordChange("put", messageTimestamp, key, value, old ?? null);
      }
      if (oldExpiresAt !== null) unexpire(oldExpiresAt, key);
      if (expiresAt !== null) {
        expiry.putSync(expiryKey(expiresAt, key), EXPIRY_ROW);
        if (earliest === null || expiresAt < earliest) earliest = expiresAt;
      }
      records.putSync(key, value);
    };
    const deleteKey = (key: Uint8Array) => {
      const old = current(key);
      if (old === undefined) return;
      const oldExpiresAt = valueExpiresAt(old);
      xorRecordHash(digest, key, old);
      if (recording()) {
        recordChange("delete", messageTimestamp, key, null, old);
      }
      if (oldExpiresAt !== null) unexpire(oldExpiresAt, key);
      records.removeSync(key);
    };
    const tx: StoreTx = {
      message: (offset, timestamp, ops) => {
        headKey = null;
        endMessage();
        messageOffset = offset;
        messageTimestamp = timestamp;
        if (retainMs > 0 && oldest !== null && oldest < timestamp - retainMs) {
          const pruned = pruneChanges(
            changes,
            timestamp - retainMs,
            pruneBudget(ops),
            (key, value) => unindexChange(history, key, value),
          );
          if (pruned !== null) {
            since = Math.max(since, pruned.offset);
            sinceTs = Math.max(sinceTs, pruned.timestamp);
          }
          oldest = oldestChange(changes);
        }
        // What expired by this message's time goes before the message applies.
        if (earliest === null || earliest > timestamp) return;
        for (const due of dueBy(expiry, timestamp, pruneBudget(ops))) {
          expiry.removeSync(due.indexKey);
          const old = records.getBinaryFast(due.recordKey);
          if (old === undefined || valueExpiresAt(old) !== due.expiresAt) continue;
          xorRecordHash(digest, due.recordKey, old);
          if (recording()) {
            recordChange("expire", timestamp, due.recordKey, null, old);
          }
          records.removeSync(due.recordKey);
        }
        earliest = earliestExpiry(expiry);
      },
      get: (pk, sk) => {
        const value = read(keyIn(GET_KEY_SCRATCH, pk, sk), pk, sk);
        return value === undefined ? null : decodeRecordValue(pk, sk, value);
      },
      put: (pk, sk, dataJson, version, createdAt, updatedAt, expiresAt = null) => {
        const room = recordValueRoom(dataJson);
        if (room > writeValueScratch.length) {
          writeValueScratch = new Uint8Array(Math.max(room, 2 * writeValueScratch.length));
        }
        const value = writeValueScratch.subarray(
          0,
          writeRecordValue(writeValueScratch, dataJson, version, createdAt, updatedAt, expiresAt),
        );
        writeValue(keyOf(pk, sk), value, expiresAt);
      },
      delete: (pk, sk) => deleteKey(keyOf(pk, sk)),
      head: (key) => {
        const value = read(key, null, "");
        return value === undefined ? null : decodeRecordHead(value);
      },
      putEncoded: (key, data, version, createdAt, updatedAt, expiresAt) => {
        const room = RECORD_HEADER_BYTES_MAX + data.length;
        if (room > writeValueScratch.length) {
          writeValueScratch = new Uint8Array(Math.max(room, 2 * writeValueScratch.length));
        }
        const header = writeRecordHeader(
          writeValueScratch,
          version,
          createdAt,
          updatedAt,
          expiresAt,
        );
        writeValueScratch.set(data, header);
        writeValue(key, writeValueScratch.subarray(0, header + data.length), expiresAt);
      },
      deleteKey,
    };
    try {
      // A synchronous transaction: commits are not synced, so it costs no disk wait, and it saves
      // the trip through lmdb-js's write thread an async one takes. lmdb-js aborts it when the
      // body throws, so records never commit without their offset and chain.
      const reached = this.env.transactionSync(() => {
        const next = body(tx);
        endMessage();
        if (next === null) return null;
        assert(next.offset > this.position.offset, `p${this.partition} offset must move forward`);
        // Recording nothing, the change log is whole from the newest offset only.
        if (retainMs === 0) since = next.offset;
        if (since !== this.since) meta.putSync("changes_since", since);
        if (sinceTs !== this.sinceTs) meta.putSync("changes_since_ts", sinceTs);
        const hex = toHex(digest);
        meta.putSync("offset", next.offset);
        meta.putSync("chain", next.chain);
        meta.putSync("digest", hex);
        meta.putSync("check", this.checkOf(next.offset, next.chain, hex));
        return next;
      });
      if (reached !== null) {
        this.renewSnapshot();
        this.since = since;
        this.sinceTs = sinceTs;
        this.oldestTs = oldest;
        this.earliestDue = earliest;
        this.lastTimestamp = Math.max(this.lastTimestamp, messageTimestamp);
        this.position = reached;
        this.digestBytes = digest;
        this.dirty = true;
        this.syncTimer ??= setTimeout(() => this.flush(), STORE_SYNC_INTERVAL_MS);
      }
      return this.position;
    } finally {
      this.writing = false;
    }
  }

  /** Starts flushing the file to disk (on lmdb-js's worker thread), unless one is in flight. */
  private flush(): void {
    this.syncTimer = null;
    if (this.syncing !== null || this.closed) return;
    this.dirty = false;
    this.syncing = this.sync()
      .catch((error) => {
        // The next commit schedules another flush; until one succeeds the log still holds it all.
        this.dirty = true;
        log("error", "store_sync_failed", { partition: this.partition, error: String(error) });
      })
      .finally(() => {
        this.syncing = null;
        if (this.dirty && !this.closed) {
          this.syncTimer ??= setTimeout(() => this.flush(), STORE_SYNC_INTERVAL_MS);
        }
      });
  }

  private sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      (this.env as unknown as EnvSync).sync((error) => error ? reject(error) : resolve());
    });
  }

  /**
   * Writes a compacted, consistent copy of the whole file to `path` (LMDB's online copy: a read
   * transaction on a background thread, so reads and applies go on). One copy at a time.
   */
  async snapshotTo(path: string): Promise<void> {
    assert(!this.closed, `store p${this.partition} is closed`);
    assert(this.copying === null, `store p${this.partition} is already being copied`);
    this.copying = (async () => {
      await this.env.backup(path, true);
    })();
    try {
      await this.copying;
    } finally {
      this.copying = null;
    }
  }

  /**
   * The identity and position recorded in a partition file that is not open (a snapshot being
   * verified before it is swapped in). Throws when the file is not a FireScroll partition file.
   */
  static readMeta(path: string): StoreMeta {
    const problem = lmdbHeaderProblem(path);
    if (problem !== null) throw new StoreMismatchError(`Cannot use ${path}: ${problem}`);
    const env = open({ path, maxDbs: 8, readOnly: true });
    try {
      const meta = env.openDB<unknown, string>({ name: "meta", encoding: "json" });
      const partition = meta.get("partition");
      const namespace = meta.get("namespace");
      const format = meta.get("format");
      const offset = meta.get("offset");
      const chain = meta.get("chain");
      if (
        typeof partition !== "number" || typeof namespace !== "string" || format !== STORE_FORMAT ||
        typeof offset !== "number" || typeof chain !== "string" || !/^[0-9a-f]{64}$/.test(chain)
      ) {
        throw new StoreMismatchError(`Cannot use ${path}: its meta is missing or malformed`);
      }
      return { partition, namespace, offset, chain };
    } finally {
      env.close();
    }
  }

  /**
   * Flushes and closes the environment (after any snapshot copy ends). Further calls fail.
   * `sync: false` skips the flush: for a hand-over, where the successor opens the file from the
   * same page cache at once (its own stop flushes).
   */
  async close(sync = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (this.copying !== null) await this.copying.catch(() => {});
    if (this.syncing !== null) await this.syncing;
    this.renewSnapshot();
    // LMDB does not flush a noSync file at close: the clean-stop record written after this
    // vouches that the file is whole on disk, not only in the page cache.
    if (sync) await this.sync();
    await this.env.close();
  }
}
