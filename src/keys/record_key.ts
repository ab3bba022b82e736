/**
 * Record keys in LMDB: `u16be(len(pk)) ‖ utf8(pk) ‖ utf8(sk)`.
 *
 * The length prefix keeps every pk's records contiguous without reserving a separator byte (a pk
 * may contain any character, NUL included), and LMDB's memcmp order then sorts the records of one
 * pk by the UTF-8 bytes of `sk`, which is the order `/records/list` promises.
 */
import { PK_BYTES_MAX, RECORD_KEY_BYTES_MAX, SK_BYTES_MAX } from "../config/mod.ts";
import { writeUtf8 } from "./utf8.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Largest encoded key (a cluster-wide constant; fits LMDB's key limit, asserted at startup). */
export { RECORD_KEY_BYTES_MAX };

/** UTF-8 length of `s` without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Why a key cannot be stored, or null when it can. Shared by the API and the apply path. */
export function keyProblem(pk: unknown, sk: unknown): string | null {
  if (typeof pk !== "string") return "pk must be a string";
  if (typeof sk !== "string") return "sk must be a string";
  if (pk.length === 0) return "pk must not be empty";
  // A lone surrogate has no UTF-8 form: two different keys would encode to the same bytes.
  if (!pk.isWellFormed()) return "pk must not contain lone surrogates";
  if (!sk.isWellFormed()) return "sk must not contain lone surrogates";
  if (utf8Length(pk) > PK_BYTES_MAX) return `pk must be at most ${PK_BYTES_MAX} UTF-8 bytes`;
  if (utf8Length(sk) > SK_BYTES_MAX) return `sk must be at most ${SK_BYTES_MAX} UTF-8 bytes`;
  return null;
}

/** The prefix shared by every key of `pk`. */
export function pkPrefix(pk: string): Uint8Array {
  const pkBytes = encoder.encode(pk);
  const out = new Uint8Array(2 + pkBytes.length);
  out[0] = pkBytes.length >> 8;
  out[1] = pkBytes.length & 0xff;
  out.set(pkBytes, 2);
  return out;
}

/**
 * Writes the key of `[pk, sk]` into `out` (which needs `2 + 3 * (pk.length + sk.length)` bytes)
 * and returns its length: the read path's allocation-free form of {@linkcode encodeRecordKey}.
 */
export function writeRecordKey(out: Uint8Array, pk: string, sk: string): number {
  const pkEnd = writeUtf8(pk, out, 2);
  const pkLength = pkEnd - 2;
  out[0] = pkLength >> 8;
  out[1] = pkLength & 0xff;
  return writeUtf8(sk, out, pkEnd);
}

/** Encodes `[pk, sk]` as an LMDB key. Both must have passed {@linkcode keyProblem}. */
export function encodeRecordKey(pk: string, sk: string): Uint8Array {
  const pkBytes = encoder.encode(pk);
  const skBytes = encoder.encode(sk);
  const out = new Uint8Array(2 + pkBytes.length + skBytes.length);
  out[0] = pkBytes.length >> 8;
  out[1] = pkBytes.length & 0xff;
  out.set(pkBytes, 2);
  out.set(skBytes, 2 + pkBytes.length);
  return out;
}

/** Concatenates a pk prefix and the UTF-8 of a (partial) sort key. */
export function keyWithSk(prefix: Uint8Array, sk: string): Uint8Array {
  const skBytes = encoder.encode(sk);
  const out = new Uint8Array(prefix.length + skBytes.length);
  out.set(prefix, 0);
  out.set(skBytes, prefix.length);
  return out;
}

/** Decodes the sort key of an encoded key; `pkLength` is the pk's UTF-8 length. */
export function decodeSk(key: Uint8Array): string {
  const pkLength = (key[0]! << 8) | key[1]!;
  return decoder.decode(key.subarray(2 + pkLength));
}

/** Decodes both parts of an encoded key. */
export function decodeRecordKey(key: Uint8Array): { pk: string; sk: string } {
  const pkLength = (key[0]! << 8) | key[1]!;
  return {
    pk: decoder.decode(key.subarray(2, 2 + pkLength)),
    sk: decoder.decode(key.subarray(2 + pkLength)),
  };
}
