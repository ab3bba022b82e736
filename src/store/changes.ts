/**
 * A partition's change log: the `changes` DB of its file, one row per change apply made (a put,
 * or a delete of a record that existed), written in the same transaction as the change itself.
 * Watches (src/watch/) read it: every replica applies the same log, so every replica has the same
 * rows with the same ids, and a watcher resumes on any of them, across restarts.
 *
 * Key: `u64be(offset) ‖ u32be(index)` — rows in log order; `index` counts the changes of one
 * message from 0 (a batch put of 100 records is one message with 100 changes; the records its
 * timestamp expires come first, as `expire` changes).
 *
 * Value: `u8 kind ‖ u8 flags ‖ f64le timestamp ‖ u16be key length ‖ record key ‖
 * u32le new-value length ‖ new record value ‖ previous record value`. `flags` bit 0 marks the last
 * change of its message; the timestamp is the message's log timestamp (what pruning goes by);
 * the record key and values use the `records` DB's encodings (keys/record_key.ts,
 * record_codec.ts). The new value is empty for a delete, the previous one (the rest) empty when
 * there was none.
 *
 * Pruning is deterministic: before applying a message, apply removes the oldest rows whose
 * timestamp is older than the message's timestamp minus the retention, at most
 * {@linkcode pruneBudget} of them, so replicas with the same retention hold the same rows. The
 * meta key `changes_since` says from where the rows are whole: every change of every offset above
 * it is present.
 *
 * @module
 */
import type { Database, RootDatabase } from "lmdb";
import { decodeRecordKey } from "../keys/mod.ts";
import { assert } from "../util/assert.ts";
import { readU64, writeU64 } from "../util/u64.ts";
import { decodeRecordValue, type StoredRecord } from "./record_codec.ts";
import type { ReadTxn } from "./record_reads.ts";

/** What a change did to its record (`expire`: apply purged it, its expiry instant had passed). */
export type ChangeKind = "put" | "delete" | "expire";

const KINDS: readonly ChangeKind[] = ["put", "delete", "expire"];
const LAST = 1;
const HEAD_BYTES = 1 + 1 + 8 + 2;
/** Rows pruned before any message, whatever its size. */
const PRUNE_BASE = 1024;

/** A partition's `changes` DB: `u64be(offset) ‖ u32be(index)` → change value. */
export type ChangesDb = Database<Uint8Array, Uint8Array>;

/** Opens (creating it when the environment may write) a partition file's `changes` DB. */
export function openChangesDb(env: RootDatabase): ChangesDb {
  return env.openDB<Uint8Array, Uint8Array>({
    name: "changes",
    keyEncoding: "binary",
    encoding: "binary",
  });
}

/** One row of the change log, decoded. */
export interface Change {
  /** Offset of the log message that made it. */
  readonly offset: number;
  /** Its place among that message's changes, from 0. */
  readonly index: number;
  /** Whether it is the message's last change. */
  readonly last: boolean;
  readonly kind: ChangeKind;
  /** The message's log timestamp, unix ms. */
  readonly timestamp: number;
  readonly pk: string;
  readonly sk: string;
  /** The record as the change left it; null for a delete or an expiry. */
  readonly record: StoredRecord | null;
}

/** A position in the change log: after change `index` of `offset` (`index` null: the whole message). */
export interface ChangeCursor {
  readonly offset: number;
  readonly index: number | null;
}

/** The key of change `index` of `offset`. */
export function changeKey(offset: number, index: number): Uint8Array {
  return changeKeyInto(new Uint8Array(12), offset, index);
}

/** Writes the key of change `index` of `offset` into `out` (12 bytes) and returns `out`. */
export function changeKeyInto(out: Uint8Array, offset: number, index: number): Uint8Array {
  assert(Number.isSafeInteger(offset) && offset >= 0, "a change's offset is a log offset");
  assert(
    Number.isInteger(index) && index >= 0 && index <= 0xffff_ffff,
    "change index out of range",
  );
  writeU64(out, 0, offset);
  out[8] = index >>> 24;
  out[9] = (index >>> 16) & 0xff;
  out[10] = (index >>> 8) & 0xff;
  out[11] = index & 0xff;
  return out;
}

function keyOffset(key: Uint8Array): number {
  return readU64(key, 0);
}

const TIMESTAMP_BYTES = new Uint8Array(8);
const TIMESTAMP_SCRATCH = new DataView(TIMESTAMP_BYTES.buffer);

/** Bytes of the change row {@linkcode encodeChangeInto} writes. */
export function changeBytes(
  recordKey: Uint8Array,
  value: Uint8Array | null,
  previous: Uint8Array | null,
): number {
  return HEAD_BYTES + recordKey.length + 4 + (value?.length ?? 0) + (previous?.length ?? 0);
}

/** Encodes a change row's value (see the module doc). */
export function encodeChange(
  kind: ChangeKind,
  last: boolean,
  timestamp: number,
  recordKey: Uint8Array,
  value: Uint8Array | null,
  previous: Uint8Array | null,
): Uint8Array {
  const out = new Uint8Array(changeBytes(recordKey, value, previous));
  encodeChangeInto(out, kind, last, timestamp, recordKey, value, previous);
  return out;
}

/**
 * Encodes a change row's value at the start of `out` (at least {@linkcode changeBytes} long):
 * the write path's allocation-free form of {@linkcode encodeChange}.
 */
export function encodeChangeInto(
  out: Uint8Array,
  kind: ChangeKind,
  last: boolean,
  timestamp: number,
  recordKey: Uint8Array,
  value: Uint8Array | null,
  previous: Uint8Array | null,
): void {
  const newLength = value?.length ?? 0;
  out[0] = KINDS.indexOf(kind);
  out[1] = last ? LAST : 0;
  // Written through one shared scratch view: a DataView per row is a measurable share of apply.
  TIMESTAMP_SCRATCH.setFloat64(0, timestamp, true);
  out.set(TIMESTAMP_BYTES, 2);
  out[10] = recordKey.length >>> 8;
  out[11] = recordKey.length & 0xff;
  out.set(recordKey, HEAD_BYTES);
  let at = HEAD_BYTES + recordKey.length;
  out[at] = newLength & 0xff;
  out[at + 1] = (newLength >>> 8) & 0xff;
  out[at + 2] = (newLength >>> 16) & 0xff;
  out[at + 3] = newLength >>> 24;
  at += 4;
  if (value !== null) out.set(value, at);
  // subarray: lmdb-js's `getBinaryFast` answers a Buffer whose `length` is the value's but whose
  // bytes run on (its shared read buffer), and `set` copies by the latter.
  if (previous !== null) out.set(previous.subarray(0, previous.length), at + newLength);
}

/** The record key inside an encoded change value (a view of it). */
export function changeRecordKey(value: Uint8Array): Uint8Array {
  const keyLength = (value[10]! << 8) | value[11]!;
  return value.subarray(HEAD_BYTES, HEAD_BYTES + keyLength);
}

/** The record a change replaced (null: there was none), decoded from its value. */
export function changePrevious(change: Change, value: Uint8Array): StoredRecord | null {
  const keyLength = (value[10]! << 8) | value[11]!;
  const at = HEAD_BYTES + keyLength;
  const newLength = new DataView(value.buffer, value.byteOffset, value.length).getUint32(at, true);
  const start = at + 4 + newLength;
  if (start >= value.length) return null;
  return decodeRecordValue(change.pk, change.sk, value.subarray(start, value.length));
}

/** The timestamp of an encoded change value. */
export function changeTimestamp(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, value.length).getFloat64(2, true);
}

/** Decodes a change row; asserts the layout, since a bad one means corruption. */
export function decodeChange(key: Uint8Array, value: Uint8Array): Change {
  assert(key.length === 12 && value.length >= HEAD_BYTES, "change row is corrupt");
  const view = new DataView(value.buffer, value.byteOffset, value.length);
  const kind = KINDS[value[0]!];
  assert(kind !== undefined, "change kind is corrupt");
  const keyLength = view.getUint16(10);
  const { pk, sk } = decodeRecordKey(value.subarray(HEAD_BYTES, HEAD_BYTES + keyLength));
  const at = HEAD_BYTES + keyLength;
  const newLength = view.getUint32(at, true);
  const record = newLength === 0
    ? null
    : decodeRecordValue(pk, sk, value.subarray(at + 4, at + 4 + newLength));
  return {
    offset: keyOffset(key),
    index: ((key[8]! << 24) | (key[9]! << 16) | (key[10]! << 8) | key[11]!) >>> 0,
    last: (value[1]! & LAST) !== 0,
    kind,
    timestamp: view.getFloat64(2, true),
    pk,
    sk,
    record,
  };
}

/** The first key after `cursor`. */
function startAfter(cursor: ChangeCursor): Uint8Array {
  if (cursor.index === null || cursor.index === 0xffff_ffff) return changeKey(cursor.offset + 1, 0);
  return changeKey(cursor.offset, cursor.index + 1);
}

/**
 * At most `limit` changes after `cursor` (a cursor at offset -1 reads from the start), up to and
 * including offset `through`, in `txn`'s snapshot.
 */
export function readChanges(
  changes: ChangesDb,
  txn: ReadTxn,
  cursor: ChangeCursor,
  through: number,
  limit: number,
): Change[] {
  assert(limit >= 1, "readChanges needs a positive limit");
  const out: Change[] = [];
  if (through <= cursor.offset && cursor.index === null) return out;
  const start = cursor.offset < 0 ? changeKey(0, 0) : startAfter(cursor);
  const end = changeKey(through + 1, 0);
  for (const { key, value } of changes.getRange({ start, end, transaction: txn, limit })) {
    out.push(decodeChange(key, value));
  }
  return out;
}

/** The log timestamp of the oldest row (in the caller's transaction), or null when none. */
export function oldestChange(changes: ChangesDb): number | null {
  for (const { value } of changes.getRange({ limit: 1 })) return changeTimestamp(value);
  return null;
}

/**
 * Rows pruning may remove before a message of `ops` operations: more than the message can add, so
 * a change log over its retention shrinks with every message until it is back within it.
 */
export function pruneBudget(ops: number): number {
  return PRUNE_BASE + 2 * ops;
}

/** What pruning removed: the last row's offset and log timestamp. */
export interface Pruned {
  readonly offset: number;
  readonly timestamp: number;
}

/**
 * Removes, oldest first, at most `budget` rows with a timestamp below `before`, inside the
 * caller's write transaction, telling `removed` of each (the history index goes with them).
 * Returns the last row removed, or null when none was.
 */
export function pruneChanges(
  changes: ChangesDb,
  before: number,
  budget: number,
  removed: (key: Uint8Array, value: Uint8Array) => void = () => {},
): Pruned | null {
  const expired: [Uint8Array, Uint8Array][] = [];
  let timestamp = -Infinity;
  for (const { key, value } of changes.getRange({ limit: budget })) {
    const at = changeTimestamp(value);
    if (at >= before) break;
    timestamp = Math.max(timestamp, at);
    // Copied: lmdb-js may reuse the buffers at the next read.
    expired.push([key.slice(0, key.length), value.slice(0, value.length)]);
  }
  // Removed after the walk: the range's cursor is not moved under it.
  for (const [key, value] of expired) {
    removed(key, value);
    changes.removeSync(key);
  }
  if (expired.length === 0) return null;
  return { offset: keyOffset(expired[expired.length - 1]![0]), timestamp };
}
