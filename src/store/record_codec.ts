/**
 * The on-disk value of a record: a fixed header followed by the record's `data` as JSON text.
 *
 * `data` stays JSON text so the read path can splice it into a response without parsing and
 * re-serializing it; the header holds the numbers conditions and responses need.
 *
 * Layout (little endian): u8 format (=1) ‖ f64 version ‖ f64 created_at ‖ f64 updated_at ‖ JSON.
 */
import { RECORD_FORMAT } from "../config/mod.ts";
import { assert } from "../util/assert.ts";

/** The format byte of the current layout: a cluster-wide constant (snapshots move between nodes). */
export { RECORD_FORMAT };
const HEADER_BYTES = 1 + 8 * 3;

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
}

/** Encodes a record value. */
export function encodeRecordValue(
  dataJson: string,
  version: number,
  createdAt: number,
  updatedAt: number,
): Uint8Array {
  const json = encoder.encode(dataJson);
  const out = new Uint8Array(HEADER_BYTES + json.length);
  writeHeader(out, version, createdAt, updatedAt);
  out.set(json, HEADER_BYTES);
  return out;
}

/** Bytes {@linkcode writeRecordValue} may need for `dataJson` (3 per UTF-16 unit at worst). */
export function recordValueRoom(dataJson: string): number {
  return HEADER_BYTES + 3 * dataJson.length;
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
): number {
  writeHeader(out, version, createdAt, updatedAt);
  const { written } = encoder.encodeInto(dataJson, out.subarray(HEADER_BYTES));
  return HEADER_BYTES + written;
}

function writeHeader(out: Uint8Array, version: number, createdAt: number, updatedAt: number) {
  assert(Number.isSafeInteger(version) && version >= 0, "record version must be an offset");
  const view = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  out[0] = RECORD_FORMAT;
  view.setFloat64(1, version, true);
  view.setFloat64(9, createdAt, true);
  view.setFloat64(17, updatedAt, true);
}

/** Decodes a record value read from LMDB; asserts the layout, since a bad one means corruption. */
export function decodeRecordValue(pk: string, sk: string, value: Uint8Array): StoredRecord {
  assert(value.length >= HEADER_BYTES && value[0] === RECORD_FORMAT, "record value is corrupt");
  const view = new DataView(value.buffer, value.byteOffset, value.length);
  return {
    pk,
    sk,
    version: view.getFloat64(1, true),
    createdAt: view.getFloat64(9, true),
    updatedAt: view.getFloat64(17, true),
    dataJson: decoder.decode(value.subarray(HEADER_BYTES)),
  };
}
