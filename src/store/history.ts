/**
 * A partition's history index: the `history` DB of its file, one row per change-log row, keyed
 * by the record it changed — `record key ‖ 0xff ‖ u64be(offset) ‖ u32be(index)`, value empty —
 * so the versions of one key are one range, newest last. `0xff` never occurs in UTF-8, so no
 * other key's rows fall inside one key's range. Rows come and go with their change-log rows
 * (changes.ts); what the history of a key says is read from those.
 *
 * @module
 */
import type { Database, RootDatabase } from "lmdb";
import { assert } from "../util/assert.ts";
import {
  type Change,
  changeKey,
  changePrevious,
  changeRecordKey,
  type ChangesDb,
  decodeChange,
} from "./changes.ts";
import type { StoredRecord } from "./record_codec.ts";
import { compareBytes, type ReadTxn } from "./record_reads.ts";

/** A partition's `history` DB. */
export type HistoryDb = Database<Uint8Array, Uint8Array>;

const ROW = new Uint8Array(0);
const SEPARATOR = 0xff;

/** Opens (creating it when the environment may write) a partition file's `history` DB. */
export function openHistoryDb(env: RootDatabase): HistoryDb {
  return env.openDB<Uint8Array, Uint8Array>({
    name: "history",
    keyEncoding: "binary",
    encoding: "binary",
  });
}

/** The history row of change `index` of `offset`, which changed `recordKey`. */
export function historyKey(recordKey: Uint8Array, offset: number, index: number): Uint8Array {
  const key = new Uint8Array(recordKey.length + 13);
  key.set(recordKey, 0);
  key[recordKey.length] = SEPARATOR;
  key.set(changeKey(offset, index), recordKey.length + 1);
  return key;
}

/** Indexes the change row (`key`, `value`) (inside the caller's write transaction). */
export function indexChange(history: HistoryDb, key: Uint8Array, value: Uint8Array): void {
  history.putSync(historyRowOf(key, value), ROW);
}

/** Removes the index row of the change row (`key`, `value`). */
export function unindexChange(history: HistoryDb, key: Uint8Array, value: Uint8Array): void {
  history.removeSync(historyRowOf(key, value));
}

function historyRowOf(changeRowKey: Uint8Array, value: Uint8Array): Uint8Array {
  const recordKey = changeRecordKey(value);
  const out = new Uint8Array(recordKey.length + 13);
  out.set(recordKey, 0);
  out[recordKey.length] = SEPARATOR;
  out.set(changeRowKey.subarray(0, 12), recordKey.length + 1);
  return out;
}

/** One version of a key: the change that made it and the record it left (null: gone). */
export interface Version {
  readonly change: Change;
  /** The record before this change (null: there was none). */
  readonly previous: StoredRecord | null;
}

/** Below every row of `recordKey` (`recordKey ‖ 0xff`) and above them all (`‖ 0xff 0xff`). */
function bounds(recordKey: Uint8Array): [Uint8Array, Uint8Array] {
  const low = new Uint8Array(recordKey.length + 1);
  low.set(recordKey, 0);
  low[recordKey.length] = SEPARATOR;
  const high = new Uint8Array(recordKey.length + 2);
  high.set(low, 0);
  high[recordKey.length + 1] = 0xff;
  return [low, high];
}

/** The change rows of `recordKey` below `high`, newest first, with their values. */
function* newestFirst(
  history: HistoryDb,
  changes: ChangesDb,
  txn: ReadTxn,
  recordKey: Uint8Array,
  high: Uint8Array,
): Generator<{ change: Change; value: Uint8Array }> {
  const low = bounds(recordKey)[0];
  const rows = history.getRange({ start: high, end: low, reverse: true, transaction: txn });
  for (const { key } of rows) {
    // lmdb-js's reverse range starts at `start` inclusive.
    if (compareBytes(key, high) >= 0) continue;
    const rowKey = key.slice(key.length - 12);
    const value = changes.get(rowKey, { transaction: txn });
    if (value === undefined) continue;
    yield { change: decodeChange(rowKey, value), value };
  }
}

/**
 * The versions of `recordKey`, newest first, of offsets below `beforeOffset` (null: all), at
 * most `limit` — more only to keep the changes of one offset together — in `txn`'s snapshot.
 */
export function readHistory(
  history: HistoryDb,
  changes: ChangesDb,
  txn: ReadTxn,
  recordKey: Uint8Array,
  beforeOffset: number | null,
  limit: number,
): Version[] {
  assert(limit >= 1, "readHistory needs a positive limit");
  if (beforeOffset !== null && beforeOffset <= 0) return [];
  const high = beforeOffset === null
    ? bounds(recordKey)[1]
    : historyKey(recordKey, beforeOffset, 0);
  const out: Version[] = [];
  for (const { change, value } of newestFirst(history, changes, txn, recordKey, high)) {
    if (out.length >= limit && change.offset !== out[out.length - 1]!.change.offset) break;
    out.push({ change, previous: changePrevious(change, value) });
  }
  return out;
}

/**
 * The record `recordKey` held just after offset `offset` (null: absent), from its history, or
 * `current` when it changed at no later offset. The caller checks that `offset` is not older
 * than the change log (`changes_since`): every later change of the key is then in the index.
 */
export function recordAt(
  history: HistoryDb,
  changes: ChangesDb,
  txn: ReadTxn,
  recordKey: Uint8Array,
  offset: number,
  current: StoredRecord | null,
): StoredRecord | null {
  const start = historyKey(recordKey, offset + 1, 0);
  const end = bounds(recordKey)[1];
  for (const { key } of history.getRange({ start, end, transaction: txn, limit: 1 })) {
    const rowKey = key.slice(key.length - 12);
    const value = changes.get(rowKey, { transaction: txn });
    if (value === undefined) break;
    // The first change after `offset` replaced what the key held then.
    return changePrevious(decodeChange(rowKey, value), value);
  }
  return current;
}

/**
 * The record `recordKey` held at unix ms `at` by log time (null: absent): the newest version
 * written at or before `at`, else what the oldest later one replaced, else `current`. The caller
 * checks `at` against the change log's horizon (`changes_since_ts`).
 */
export function recordAtTime(
  history: HistoryDb,
  changes: ChangesDb,
  txn: ReadTxn,
  recordKey: Uint8Array,
  at: number,
  current: StoredRecord | null,
): StoredRecord | null {
  let replaced: StoredRecord | null | undefined = undefined;
  const high = bounds(recordKey)[1];
  for (const { change, value } of newestFirst(history, changes, txn, recordKey, high)) {
    if (change.timestamp <= at) return change.record;
    replaced = changePrevious(change, value);
  }
  return replaced === undefined ? current : replaced;
}
