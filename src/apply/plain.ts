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
import type { Mutation, PutOp } from "./message.ts";

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
 * `mutation`'s ops as plain ops, or null when it is not plain (see the module doc). `data` is
 * written as apply writes it ({@linkcode dataJsonOf}).
 */
export function encodePlain(mutation: Mutation): Uint8Array | null {
  const ops = mutation.ops;
  if (mutation.atomic && ops.length > 1) return null;
  const datas: (string | null)[] = [];
  let room = 4;
  for (const op of ops) {
    if (op.if !== undefined) return null;
    const data = op.op === "put" ? dataJsonOf(op) : null;
    datas.push(data);
    // 3 UTF-8 bytes per UTF-16 unit at worst.
    room += 2 + 8 + 2 + 2 + 3 * (op.pk.length + op.sk.length) + 4 +
      (data === null ? 0 : 3 * data.length);
  }
  const out = new Uint8Array(room);
  const view = new DataView(out.buffer);
  view.setUint32(0, ops.length);
  let at = 4;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const data = datas[i]!;
    out[at] = op.op === "put" ? PLAIN_PUT : PLAIN_DELETE;
    const expiry = op.op === "put" ? expiryKind(op) : EXPIRY_NONE;
    out[at + 1] = expiry;
    at += 2;
    if (expiry !== EXPIRY_NONE) {
      view.setFloat64(at, expiryValue(op as PutOp));
      at += 8;
    }
    const keyLength = writeRecordKey(out.subarray(at + 2), op.pk, op.sk);
    view.setUint16(at, keyLength);
    at += 2 + keyLength;
    if (data !== null) {
      const { written } = encoder.encodeInto(data, out.subarray(at + 4));
      view.setUint32(at, written);
      at += 4 + written;
    }
  }
  return out.subarray(0, at);
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
