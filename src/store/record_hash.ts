/**
 * The per-record hash of the content digest: a 128-bit MurmurHash3 (x86_128 variant), written
 * here in plain JS. Not cryptographic, and it need not be: the digest finds damage and compares
 * replicas; nobody chooses records to collide with it. It is about ten times cheaper than a
 * sha256 through `node:crypto` (bench/RESULTS.md), which matters because every written record
 * is hashed once or twice.
 *
 * @module
 */
import { assert } from "../util/assert.ts";

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

/** Bytes of one record hash. */
export const RECORD_HASH_BYTES = 16;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Scratch input: u16 key length ‖ key ‖ value; grown when a record is larger. */
let scratch = new Uint8Array(64 * 1024);
/** The scratch as 32-bit words: MurmurHash3 reads its blocks as little-endian words. */
let scratchWords = new Int32Array(scratch.buffer);
assert(
  new Uint8Array(Uint32Array.of(1).buffer)[0] === 1,
  "the record hash reads words in the host's byte order, which must be little endian",
);

/**
 * The hash of one record: MurmurHash3 x86_128 (seed 0) of `u16be(key.length) ‖ key ‖ value`
 * (the length prefix keeps `(ab, c)` and `(a, bc)` apart). Uses `length`, not `byteLength`:
 * lmdb-js's fast reads return views whose `length` it narrows.
 */
export function recordHash(key: Uint8Array, value: Uint8Array): Uint8Array {
  murmur(key, value);
  const out = new Uint8Array(RECORD_HASH_BYTES);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) view.setUint32(4 * i, WORDS[i]! >>> 0, true);
  return out;
}

/**
 * XORs {@linkcode recordHash}`(key, value)` into `digest` (16 bytes) without allocating: the
 * write path's form (a put hashes the old record and the new one).
 */
export function xorRecordHash(digest: Uint8Array, key: Uint8Array, value: Uint8Array): void {
  murmur(key, value);
  for (let i = 0; i < 4; i++) {
    const word = WORDS[i]!;
    digest[4 * i] = digest[4 * i]! ^ (word & 0xff);
    digest[4 * i + 1] = digest[4 * i + 1]! ^ ((word >>> 8) & 0xff);
    digest[4 * i + 2] = digest[4 * i + 2]! ^ ((word >>> 16) & 0xff);
    digest[4 * i + 3] = digest[4 * i + 3]! ^ (word >>> 24);
  }
}

/** The four 32-bit words of the last {@linkcode murmur}, h1 first. */
const WORDS = new Int32Array(4);

/** MurmurHash3 x86_128 of `u16be(key.length) ‖ key ‖ value` into {@linkcode WORDS}. */
function murmur(key: Uint8Array, value: Uint8Array): void {
  const keyLength = key.length;
  const length = 2 + keyLength + value.length;
  if (length > scratch.length) {
    // Whole words: the word view needs a multiple of 4 bytes.
    scratch = new Uint8Array(Math.max(length + 3 - ((length + 3) & 3), 2 * scratch.length));
    scratchWords = new Int32Array(scratch.buffer);
  }
  const data = scratch;
  const words = scratchWords;
  data[0] = keyLength >>> 8;
  data[1] = keyLength & 0xff;
  for (let i = 0; i < keyLength; i++) data[2 + i] = key[i]!;
  // One native copy for the value, the larger part (a byte loop was half of the hash). A view
  // whose `length` lmdb-js narrowed is copied as far as that `length` only.
  const v = value.length;
  data.set(v === value.byteLength ? value : value.subarray(0, v), 2 + keyLength);
  let h1 = 0, h2 = 0, h3 = 0, h4 = 0;
  const blocks = length - (length & 15);
  for (let i = 0; i < blocks; i += 16) {
    const w = i >>> 2;
    let k1 = words[w]!;
    let k2 = words[w + 1]!;
    let k3 = words[w + 2]!;
    let k4 = words[w + 3]!;
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  const tail = length & 15;
  let k1 = 0, k2 = 0, k3 = 0, k4 = 0;
  for (let j = tail - 1; j >= 0; j--) {
    const byte = data[blocks + j]!;
    if (j >= 12) k4 |= byte << ((j - 12) * 8);
    else if (j >= 8) k3 |= byte << ((j - 8) * 8);
    else if (j >= 4) k2 |= byte << ((j - 4) * 8);
    else k1 |= byte << (j * 8);
  }
  if (tail > 12) h4 ^= Math.imul(rotl(Math.imul(k4, C4), 18), C1);
  if (tail > 8) h3 ^= Math.imul(rotl(Math.imul(k3, C3), 17), C4);
  if (tail > 4) h2 ^= Math.imul(rotl(Math.imul(k2, C2), 16), C3);
  if (tail > 0) h1 ^= Math.imul(rotl(Math.imul(k1, C1), 15), C2);
  h1 ^= length;
  h2 ^= length;
  h3 ^= length;
  h4 ^= length;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  WORDS[0] = h1;
  WORDS[1] = h2;
  WORDS[2] = h3;
  WORDS[3] = h4;
}
