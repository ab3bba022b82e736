/**
 * Plain ops: a decoded message's ops as the bytes apply writes — each op's encoded record key,
 * its `data` as the UTF-8 JSON a record stores, its expiry — so that decoding (UTF-8, JSON,
 * validation, `JSON.stringify` of `data`) can run on another thread than apply (a restore's
 * decoding worker, `backup/replay_decode.ts`) and cross to it as one buffer.
 *
 * Only messages whose ops need nothing but the current record's head are plain: no op has a
 * condition, and an atomic message has one op (an atomic message judges later ops against its
 * staged records, which may differ from the stored ones). Any other message stays a log value and
 * is decoded where it applies.
 *
 * Layout (big endian): `u32 ops` then per op `u8 kind (0 put, 1 delete) ‖ u8 expiry (0 none,
 * 1 ttl_ms, 2 expires_at) ‖ [f64 expiry value] ‖ u16 key length ‖ key ‖ [put: u32 data length ‖
 * data]`.
 *
 * @module
 */
import { writeRecordKey } from "../keys/mod.ts";
import { assert } from "../util/assert.ts";
import type { Mutation, PutOp } from "./message.ts";
import { SCANNED, scanPlain } from "./plain_scan.ts";

const encoder = new TextEncoder();

/** Kinds of a plain op. */
export const PLAIN_PUT = 0;
export const PLAIN_DELETE = 1;
/** Expiry kinds of a plain put. */
export const EXPIRY_NONE = 0;
export const EXPIRY_TTL = 1;
export const EXPIRY_AT = 2;

/**
 * The JSON a put's record stores: `decodeMutation` kept each number as `JSON.rawJSON(token)`
 * where a double would change it, so this writes the tokens as the client sent them (DESIGN §3).
 */
export function dataJsonOf(op: PutOp): string {
  return JSON.stringify(op.data);
}

/** The expiry kind of a put. */
export function expiryKind(op: PutOp): number {
  if (op.ttl_ms !== undefined) return EXPIRY_TTL;
  return op.expires_at !== undefined ? EXPIRY_AT : EXPIRY_NONE;
}

/** The number that goes with {@linkcode expiryKind} (0 for none). */
export function expiryValue(op: PutOp): number {
  return op.ttl_ms ?? op.expires_at ?? 0;
}

/**
 * Plain ops of many messages, appended to one growing buffer: a segment's worth costs no
 * allocation per message (a restore's decoding worker writes ~10^5 of them a second).
 */
export class PlainWriter {
  private buffer: Uint8Array;
  private view: DataView;
  private end = 0;

  constructor(bytes = 64 * 1024) {
    this.buffer = new Uint8Array(bytes);
    this.view = new DataView(this.buffer.buffer);
  }

  /** Bytes written so far: where the next message's ops start. */
  get length(): number {
    return this.end;
  }

  /** What was written, `[0, length)` (a view: valid until the next `add`). */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.end);
  }

  /**
   * Appends `mutation`'s ops as plain ops and returns true, or returns false and writes nothing
   * when it is not plain (see the module doc). `data` is written as apply writes it
   * ({@linkcode dataJsonOf}).
   */
  add(mutation: Mutation): boolean {
    const ops = mutation.ops;
    if (mutation.atomic && ops.length > 1) return false;
    for (const op of ops) if (op.if !== undefined) return false;
    const start = this.end;
    this.room(4);
    this.view.setUint32(this.end, ops.length);
    this.end += 4;
    for (const op of ops) {
      const data = op.op === "put" ? dataJsonOf(op) : null;
      // 3 UTF-8 bytes per UTF-16 unit at worst.
      this.room(
        2 + 8 + 2 + 3 * (op.pk.length + op.sk.length) + 4 + (data === null ? 0 : 3 * data.length),
      );
      const out = this.buffer;
      let at = op.op === "put"
        ? this.opHead(this.end, PLAIN_PUT, expiryKind(op), expiryValue(op))
        : this.opHead(this.end, PLAIN_DELETE, EXPIRY_NONE, 0);
      const keyLength = writeRecordKey(out.subarray(at + 2), op.pk, op.sk);
      this.view.setUint16(at, keyLength);
      at += 2 + keyLength;
      if (data !== null) {
        const { written } = encoder.encodeInto(data, out.subarray(at + 4));
        this.view.setUint32(at, written);
        at += 4 + written;
      }
      this.end = at;
    }
    assert(this.end > start, "plain ops are never empty");
    return true;
  }

  /**
   * Appends log value `value`'s ops as plain ops and returns true when {@linkcode scanPlain}
   * takes it (no decode: its keys and `data` are copied from its bytes); returns false and
   * writes nothing otherwise — the value is then decoded and given to {@linkcode add}, or
   * applied as a mutation.
   */
  addValue(value: Uint8Array): boolean {
    if (!scanPlain(value)) return false;
    const s = SCANNED;
    let bytes = 4;
    for (let i = 0; i < s.count; i++) {
      bytes += 2 + 8 + 2 + 2 + (s.pkEnds[i]! - s.pkStarts[i]!) + (s.skEnds[i]! - s.skStarts[i]!) +
        4 + (s.dataEnds[i]! - s.dataStarts[i]!);
    }
    this.room(bytes);
    const out = this.buffer;
    const view = this.view;
    let at = this.end;
    view.setUint32(at, s.count);
    at += 4;
    for (let i = 0; i < s.count; i++) {
      const kind = s.kinds[i]!;
      at = this.opHead(at, kind, s.expiries[i]!, s.expiryValues[i]!);
      // The record key (keys/record_key.ts): u16be(pk bytes) ‖ pk ‖ sk — UTF-8 without escapes in
      // the value, so its bytes.
      const pk = s.pkEnds[i]! - s.pkStarts[i]!;
      const sk = s.skEnds[i]! - s.skStarts[i]!;
      view.setUint16(at, 2 + pk + sk);
      out[at + 2] = pk >>> 8;
      out[at + 3] = pk & 0xff;
      at += 4;
      for (let k = s.pkStarts[i]!; k < s.pkEnds[i]!; k++) out[at++] = value[k]!;
      for (let k = s.skStarts[i]!; k < s.skEnds[i]!; k++) out[at++] = value[k]!;
      if (kind === PLAIN_PUT) {
        const data = s.dataEnds[i]! - s.dataStarts[i]!;
        view.setUint32(at, data);
        out.set(value.subarray(s.dataStarts[i]!, s.dataEnds[i]!), at + 4);
        at += 4 + data;
      }
    }
    this.end = at;
    return true;
  }

  /** Writes an op's kind and expiry at `at` (room made); returns where its key goes. */
  private opHead(at: number, kind: number, expiry: number, expiryValue: number): number {
    this.buffer[at] = kind;
    this.buffer[at + 1] = expiry;
    if (expiry === EXPIRY_NONE) return at + 2;
    this.view.setFloat64(at + 2, expiryValue);
    return at + 10;
  }

  /** Forgets what was written: the next message's ops start at 0. */
  reset(): void {
    this.end = 0;
  }

  /** Makes room for `bytes` more. */
  private room(bytes: number): void {
    if (this.end + bytes <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(2 * this.buffer.length, this.end + bytes));
    grown.set(this.buffer.subarray(0, this.end));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }
}

/** `mutation`'s ops as plain ops (a copy), or null when it is not plain. */
export function encodePlain(mutation: Mutation): Uint8Array | null {
  const writer = new PlainWriter(256);
  return writer.add(mutation) ? writer.bytes().slice() : null;
}

/** One plain op, as {@linkcode readPlainOp} reads it: views of the plain bytes. */
export interface PlainOp {
  kind: number;
  expiry: number;
  expiryValue: number;
  key: Uint8Array;
  /** UTF-8 JSON of `data` (a delete: empty). */
  data: Uint8Array;
}

/** The number of ops of plain bytes. */
export function plainOpCount(plain: Uint8Array): number {
  return new DataView(plain.buffer, plain.byteOffset, plain.length).getUint32(0);
}

const EMPTY = new Uint8Array(0);

/**
 * Reads the op at byte `at` of `plain` (4 for the first) into `op` and returns where the next
 * one starts.
 */
export function readPlainOp(plain: Uint8Array, view: DataView, at: number, op: PlainOp): number {
  op.kind = plain[at]!;
  op.expiry = plain[at + 1]!;
  at += 2;
  if (op.expiry !== EXPIRY_NONE) {
    op.expiryValue = view.getFloat64(at);
    at += 8;
  }
  const keyLength = view.getUint16(at);
  op.key = plain.subarray(at + 2, at + 2 + keyLength);
  at += 2 + keyLength;
  if (op.kind === PLAIN_PUT) {
    const dataLength = view.getUint32(at);
    op.data = plain.subarray(at + 4, at + 4 + dataLength);
    return at + 4 + dataLength;
  }
  op.data = EMPTY;
  return at;
}
