/**
 * The on-disk value of a record: a fixed header followed by the record's `data` as JSON text.
 *
 * `data` stays JSON text so the read path can splice it into a response without parsing and
 * re-serializing it; the header holds the numbers conditions and responses need.
 *
 * Layouts (little endian), told apart by the first byte:
 * - format 1: `u8 1 ‖ f64 version ‖ f64 created_at ‖ f64 updated_at ‖ JSON` (no expiry);
 * - format 2: `u8 2 ‖ f64 version ‖ f64 created_at ‖ f64 updated_at ‖ f64 expires_at ‖ JSON`.
 * A record without expiry keeps format 1, so files and digests from before TTL are unchanged.
 */
import { RECORD_FORMAT, RECORD_FORMAT_EXPIRING } from "../config/mod.ts";
import { assert } from "../util/assert.ts";

/** The format bytes: cluster-wide constants (snapshots move between nodes). */
export { RECORD_FORMAT, RECORD_FORMAT_EXPIRING };
const HEADER_BYTES = 1 + 8 * 3;
const EXPIRING_HEADER_BYTES = HEADER_BYTES + 8;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A record as stored, with `data` still as JSON text. */
export interface StoredRecord {
  /** Partition key. */
  readonly pk: string;
  /** Sort key. */
  readonly sk: string;
  /** `data` as JSON text. */
  readonly dataJson: string;
  /** Log offset of the mutation that last wrote the record. */
  readonly version: number;
  /** Log timestamp (unix ms) of the mutation that created the record. */
  readonly createdAt: number;
  /** Log timestamp (unix ms) of the mutation that last wrote the record. */
  readonly updatedAt: number;
  /** Unix ms from which the record is absent, or null when it does not expire. */
  readonly expiresAt: number | null;
}

/** Encodes a record value. */
export function encodeRecordValue(
  dataJson: string,
  version: number,
  createdAt: number,
  updatedAt: number,
  expiresAt: number | null = null,
): Uint8Array {
  const out = new Uint8Array(recordValueRoom(dataJson));
  return out.slice(0, writeRecordValue(out, dataJson, version, createdAt, updatedAt, expiresAt));
}

/** Bytes {@linkcode writeRecordValue} may need for `dataJson` (3 per UTF-16 unit at worst). */
export function recordValueRoom(dataJson: string): number {
  return EXPIRING_HEADER_BYTES + 3 * dataJson.length;
}

/**
 * Writes the value {@linkcode encodeRecordValue} returns into `out` (at least
 * {@linkcode recordValueRoom} bytes) and returns its length: the apply path's allocation-free
 * form.
 */
export function writeRecordValue(
  out: Uint8Array,
  dataJson: string,
  version: number,
  createdAt: number,
  updatedAt: number,
  expiresAt: number | null = null,
): number {
  const header = writeRecordHeader(out, version, createdAt, updatedAt, expiresAt);
  const { written } = encoder.encodeInto(dataJson, out.subarray(header));
  return header + written;
}

/** The longest header {@linkcode writeRecordHeader} writes. */
export const RECORD_HEADER_BYTES_MAX = EXPIRING_HEADER_BYTES;

/** Writes a value's header into `out` and returns its length; `data`'s UTF-8 JSON follows it. */
export function writeRecordHeader(
  out: Uint8Array,
  version: number,
  createdAt: number,
  updatedAt: number,
  expiresAt: number | null,
): number {
  assert(Number.isSafeInteger(version) && version >= 0, "record version must be an offset");
  const view = new DataView(out.buffer, out.byteOffset, EXPIRING_HEADER_BYTES);
  out[0] = expiresAt === null ? RECORD_FORMAT : RECORD_FORMAT_EXPIRING;
  view.setFloat64(1, version, true);
  view.setFloat64(9, createdAt, true);
  view.setFloat64(17, updatedAt, true);
  if (expiresAt === null) return HEADER_BYTES;
  view.setFloat64(25, expiresAt, true);
  return EXPIRING_HEADER_BYTES;
}

/** What apply needs of a stored record: its creation and expiry instants. */
export interface RecordHead {
  readonly createdAt: number;
  /** Unix ms from which the record is absent, or null when it does not expire. */
  readonly expiresAt: number | null;
}

/** The head of an encoded value, without decoding its `data`. */
export function decodeRecordHead(value: Uint8Array): RecordHead {
  assert(isRecordValue(value), "record value is corrupt");
  const view = new DataView(value.buffer, value.byteOffset, value.length);
  return {
    createdAt: view.getFloat64(9, true),
    expiresAt: value[0] === RECORD_FORMAT_EXPIRING ? view.getFloat64(25, true) : null,
  };
}

/** The expiry instant of an encoded value (null: none), without decoding the rest. */
export function valueExpiresAt(value: Uint8Array): number | null {
  if (value[0] !== RECORD_FORMAT_EXPIRING) return null;
  return new DataView(value.buffer, value.byteOffset, value.length).getFloat64(25, true);
}

/** Whether `value` is a well-formed record value's header (the verifier's check). */
export function isRecordValue(value: Uint8Array): boolean {
  return (value[0] === RECORD_FORMAT && value.length >= HEADER_BYTES) ||
    (value[0] === RECORD_FORMAT_EXPIRING && value.length >= EXPIRING_HEADER_BYTES);
}

/** Decodes a record value read from LMDB; asserts the layout, since a bad one means corruption. */
export function decodeRecordValue(pk: string, sk: string, value: Uint8Array): StoredRecord {
  assert(isRecordValue(value), "record value is corrupt");
  const view = new DataView(value.buffer, value.byteOffset, value.length);
  const expiring = value[0] === RECORD_FORMAT_EXPIRING;
  return {
    pk,
    sk,
    version: view.getFloat64(1, true),
    createdAt: view.getFloat64(9, true),
    updatedAt: view.getFloat64(17, true),
    expiresAt: expiring ? view.getFloat64(25, true) : null,
    dataJson: decoder.decode(value.subarray(expiring ? EXPIRING_HEADER_BYTES : HEADER_BYTES)),
  };
}
