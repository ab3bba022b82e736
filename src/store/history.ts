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
import { decodeSk, keyWithSk, pkPrefix } from "../keys/mod.ts";
import {
  compareBytes,
  type ListPage,
  type ListQuery,
  listRecords,
  type ReadTxn,
  type RecordsDb,
} from "./record_reads.ts";

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

/** Scratch for index rows: LMDB copies a key before `putSync`/`removeSync` return. */
let rowScratch = new Uint8Array(1024);

/** The index row of a change row, in a scratch buffer valid until the next call. */
function historyRowOf(changeRowKey: Uint8Array, value: Uint8Array): Uint8Array {
  const recordKey = changeRecordKey(value);
  const length = recordKey.length + 13;
  if (length > rowScratch.length) rowScratch = new Uint8Array(2 * length);
  const out = rowScratch.subarray(0, length);
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

/** A point of the past: just after a log offset, or an instant of log time (unix ms). */
export type Point = { readonly offset: number } | { readonly ms: number };

/** Raised when a read of the past would examine more than its bound. */
export class TooMuchHistoryError extends Error {
  constructor(readonly scanned: number) {
    super(`more than ${scanned} records and versions under this prefix`);
    this.name = "TooMuchHistoryError";
  }
}

/**
 * The records of `query`'s pk and sk prefix as they were at `point`: the keys that changed
 * since, from their history; the others as they are now (`current`, every record under the
 * prefix, in key order). Then `query`'s range, order, filter and limit. Examines at most
 * `query.scanMax` history rows (else {@linkcode TooMuchHistoryError}).
 */
export function listAt(
  records: RecordsDb,
  history: HistoryDb,
  changes: ChangesDb,
  txn: ReadTxn,
  query: ListQuery,
  point: Point,
): ListPage {
  // Every record under the prefix now, in key order: the keys that did not change since.
  const now = listRecords(records, txn, {
    pk: query.pk,
    skPrefix: query.skPrefix,
    startAfter: null,
    endBefore: null,
    limit: query.scanMax,
    reverse: false,
    filter: null,
    stopOnFilter: false,
    scanMax: query.scanMax,
  });
  if (now.next !== null) throw new TooMuchHistoryError(query.scanMax);
  const current = now.records;
  const prefix = keyWithSk(pkPrefix(query.pk), query.skPrefix);
  const end = new Uint8Array(prefix.length + 1);
  end.set(prefix, 0);
  end[prefix.length] = SEPARATOR;
  // sk → what the key held at the point (null: absent), for every key that changed since.
  const then = new Map<string, StoredRecord | null>();
  let group: { recordKey: Uint8Array; rows: Uint8Array[] } | null = null;
  let scanned = 0;
  const settle = () => {
    if (group === null) return;
    const state = stateOfGroup(changes, txn, group.rows, point);
    if (state !== undefined) then.set(decodeSk(group.recordKey), state);
  };
  // Every row under the prefix: `end` (prefix ‖ 0xff) bounds them, since no key holds 0xff.
  const upper = new Uint8Array(prefix.length + 2);
  upper.set(end, 0);
  upper[prefix.length + 1] = 0xff;
  for (const { key } of history.getRange({ start: prefix, end: upper, transaction: txn })) {
    if (++scanned > query.scanMax) throw new TooMuchHistoryError(query.scanMax);
    const recordKey = key.subarray(0, key.length - 13);
    if (group === null || compareBytes(group.recordKey, recordKey) !== 0) {
      settle();
      group = { recordKey: recordKey.slice(), rows: [] };
    }
    group.rows.push(key.slice(key.length - 12));
  }
  settle();
  const state = new Map(current.map((r) => [r.sk, r]));
  for (const [sk, record] of then) {
    if (record === null) state.delete(sk);
    else state.set(sk, record);
  }
  const encoder = new TextEncoder();
  const sorted = [...state.values()]
    .filter((r) => !("ms" in point) || r.expiresAt === null || r.expiresAt > point.ms)
    .map((r) => ({ r, key: encoder.encode(r.sk) }))
    .sort((a, b) => compareBytes(a.key, b.key));
  if (query.reverse) sorted.reverse();
  const after = query.startAfter === null ? null : encoder.encode(query.startAfter);
  const before = query.endBefore === null ? null : encoder.encode(query.endBefore);
  const sign = query.reverse ? -1 : 1;
  const page: StoredRecord[] = [];
  for (const { r, key } of sorted) {
    if (after !== null && sign * compareBytes(key, after) <= 0) continue;
    if (before !== null && sign * compareBytes(key, before) >= 0) break;
    if (query.filter !== null && !query.filter(r)) {
      if (query.stopOnFilter) return { records: page, next: null };
      continue;
    }
    if (page.length === query.limit) return { records: page, next: page[page.length - 1]!.sk };
    page.push(r);
  }
  return { records: page, next: null };
}

/**
 * What one key held at `point`, from its change rows (`rows`, oldest first), or undefined when it
 * did not change after the point (it holds now what it held then).
 */
function stateOfGroup(
  changes: ChangesDb,
  txn: ReadTxn,
  rows: readonly Uint8Array[],
  point: Point,
): StoredRecord | null | undefined {
  for (const rowKey of rows) {
    const value = changes.get(rowKey, { transaction: txn });
    if (value === undefined) continue;
    const change = decodeChange(rowKey, value);
    const later = "offset" in point ? change.offset > point.offset : change.timestamp > point.ms;
    // The first change after the point replaced what the key held then.
    if (later) return changePrevious(change, value);
  }
  return undefined;
}
