/**
 * The two reads a partition file answers, one record by key and one page of a pk's records, over
 * its `records` DB and a read transaction the caller holds. `PartitionStore` (the writer) and
 * `PartitionReader` (a read-only view from another thread or process) both answer through these
 * functions, so a get or a list means the same thing whichever of them serves it.
 *
 * Both are hot paths: a get writes its key into one scratch buffer per thread instead of a new
 * array, and the caller keeps its transaction across reads instead of letting lmdb-js renew one
 * per event-loop turn.
 *
 * @module
 */
import type { Database, RootDatabase, Transaction } from "lmdb";
import { PK_BYTES_MAX, RECORD_KEY_BYTES_MAX, SK_BYTES_MAX } from "../config/mod.ts";
import { decodeSk, keyWithSk, pkPrefix, writeRecordKey } from "../keys/mod.ts";
import { assert } from "../util/assert.ts";
import { decodeRecordValue, type StoredRecord } from "./record_codec.ts";

/** A partition's `records` DB: encoded `[pk, sk]` → encoded record value. */
export type RecordsDb = Database<Uint8Array, Uint8Array>;

/** A read transaction (a snapshot) of a partition's environment. */
export type ReadTxn = Transaction;

/**
 * The `records` DB of a partition environment (binary keys and values), asserting that LMDB as
 * lmdb-js compiled it takes keys as long as the cluster's key limits allow.
 */
export function openRecordsDb(env: RootDatabase): RecordsDb {
  const records = env.openDB<Uint8Array, Uint8Array>({
    name: "records",
    keyEncoding: "binary",
    encoding: "binary",
  });
  const { maxKeySize } = records as unknown as { readonly maxKeySize: number };
  assert(
    maxKeySize >= RECORD_KEY_BYTES_MAX,
    `LMDB keys are limited to ${maxKeySize} bytes, less than RECORD_KEY_BYTES_MAX (${RECORD_KEY_BYTES_MAX})`,
  );
  return records;
}

/** A list query, already validated by the API. */
export interface ListQuery {
  /** Partition key whose records are listed. */
  readonly pk: string;
  /** Only sort keys starting with this (an exact match included). */
  readonly skPrefix: string;
  /** Resume after this sort key (in iteration order). */
  readonly startAfter: string | null;
  /** Stop before this sort key (in iteration order). */
  readonly endBefore: string | null;
  /** Most records returned. */
  readonly limit: number;
  /** Descending order. */
  readonly reverse: boolean;
  /** Row filter; rows failing it are skipped (or end the scan with `stopOnFilter`). */
  readonly filter: ((record: StoredRecord) => boolean) | null;
  /** End the scan at the first row that fails `filter`. */
  readonly stopOnFilter: boolean;
  /** Most rows examined, so a selective filter cannot scan a whole partition in one request. */
  readonly scanMax: number;
  /** Records expired by this unix ms are skipped (absent); omitted: none is. */
  readonly now?: number;
}

/** One page of a list. */
export interface ListPage {
  /** Matching records in order. */
  readonly records: StoredRecord[];
  /** Cursor for `start_after`, or null when the range is exhausted. */
  readonly next: string | null;
}

/** lmdb-js accepts a transaction here; its type declarations omit the parameter. */
interface FastReads {
  getBinaryFast(key: Uint8Array, options: { transaction: ReadTxn }): Uint8Array | undefined;
}

/** Room for any valid key written as UTF-8 (3 bytes per UTF-16 unit at worst). */
export const KEY_SCRATCH_BYTES = 2 + 3 * (PK_BYTES_MAX + SK_BYTES_MAX);

/**
 * The gets' key buffer: lmdb-js copies the key before the lookup returns, so one buffer serves
 * every get of this thread (module state is per thread: a Worker has its own).
 */
const READ_KEY_SCRATCH = new Uint8Array(KEY_SCRATCH_BYTES);

/** `[pk, sk]`'s key in `scratch` (or a new array for an oversized key), valid until the next call. */
export function keyIn(scratch: Uint8Array, pk: string, sk: string): Uint8Array {
  const room = 2 + 3 * (pk.length + sk.length);
  const buffer = room <= scratch.length ? scratch : new Uint8Array(room);
  return buffer.subarray(0, writeRecordKey(buffer, pk, sk));
}

const FF = new Uint8Array([0xff]);
const ZERO = new Uint8Array([0x00]);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** memcmp order, as LMDB sorts keys. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function maxBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareBytes(a, b) >= 0 ? a : b;
}

function minBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareBytes(a, b) <= 0 ? a : b;
}

/** The record at `[pk, sk]` in `txn`'s snapshot, or null. */
export function getRecord(
  records: RecordsDb,
  txn: ReadTxn,
  pk: string,
  sk: string,
): StoredRecord | null {
  const value = (records as unknown as FastReads).getBinaryFast(
    keyIn(READ_KEY_SCRATCH, pk, sk),
    { transaction: txn },
  );
  return value === undefined ? null : decodeRecordValue(pk, sk, value);
}

/** One page of a pk's records in `txn`'s snapshot; see {@linkcode ListQuery}. */
export function listRecords(records: RecordsDb, txn: ReadTxn, query: ListQuery): ListPage {
  assert(query.limit >= 1 && query.scanMax >= query.limit, "list limits are inconsistent");
  const prefix = pkPrefix(query.pk);
  let lo = keyWithSk(prefix, query.skPrefix);
  let hi = concat(lo, FF); // UTF-8 never contains 0xff, so this bounds every key with the prefix.
  if (query.startAfter !== null) {
    const cursor = keyWithSk(prefix, query.startAfter);
    if (query.reverse) hi = minBytes(hi, cursor);
    else lo = maxBytes(lo, concat(cursor, ZERO)); // The immediate successor of the cursor.
  }
  if (query.endBefore !== null) {
    const end = keyWithSk(prefix, query.endBefore);
    if (query.reverse) lo = maxBytes(lo, concat(end, ZERO));
    else hi = minBytes(hi, end);
  }
  const page: StoredRecord[] = [];
  if (compareBytes(lo, hi) >= 0) return { records: page, next: null };
  // Forward ranges are [lo, hi). lmdb-js's reverse start is inclusive, so skip a row equal to hi
  // and stop below lo by hand.
  const range = query.reverse
    ? records.getRange({ start: hi, reverse: true, transaction: txn })
    : records.getRange({ start: lo, end: hi, transaction: txn });
  let scanned = 0;
  let lastScanned: string | null = null;
  for (const { key, value } of range) {
    if (query.reverse) {
      if (compareBytes(key, hi) >= 0) continue;
      if (compareBytes(key, lo) < 0) break;
    }
    if (page.length === query.limit) return { records: page, next: page[page.length - 1]!.sk };
    if (scanned === query.scanMax) return { records: page, next: lastScanned };
    scanned++;
    const sk = decodeSk(key);
    lastScanned = sk;
    const record = decodeRecordValue(query.pk, sk, value);
    // Expired, not yet purged: absent, like a row that was never there.
    if (record.expiresAt !== null && record.expiresAt <= (query.now ?? -Infinity)) continue;
    if (query.filter !== null && !query.filter(record)) {
      if (query.stopOnFilter) return { records: page, next: null };
      continue;
    }
    page.push(record);
  }
  return { records: page, next: null };
}
