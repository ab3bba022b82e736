/**
 * Unsigned 64-bit big-endian integers in byte keys and records (log offsets, unix ms), without
 * BigInt: the values are safe integers, so the high word is at most 2^21.
 *
 * @module
 */

/** Writes `value` (a safe integer ≥ 0) at `at` of `view`, big endian. */
export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x1_0000_0000));
  view.setUint32(at + 4, value >>> 0);
}

/** Reads what {@linkcode setU64} wrote. */
export function getU64(view: DataView, at: number): number {
  return view.getUint32(at) * 0x1_0000_0000 + view.getUint32(at + 4);
}

/**
 * Writes `value` (a safe integer ≥ 0) at `at` of `out`, big endian, byte by byte: on hot paths,
 * where a DataView per call is a measurable cost.
 */
export function writeU64(out: Uint8Array, at: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  const low = value >>> 0;
  out[at] = high >>> 24;
  out[at + 1] = (high >>> 16) & 0xff;
  out[at + 2] = (high >>> 8) & 0xff;
  out[at + 3] = high & 0xff;
  out[at + 4] = low >>> 24;
  out[at + 5] = (low >>> 16) & 0xff;
  out[at + 6] = (low >>> 8) & 0xff;
  out[at + 7] = low & 0xff;
}

/**
 * Reads what {@linkcode writeU64} wrote, byte by byte: no DataView, whose `.buffer` would make V8
 * move a small array's bytes off its heap (an allocation per call).
 */
export function readU64(bytes: Uint8Array, at: number): number {
  const high = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
  const low = ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) |
    bytes[at + 7]!) >>> 0;
  return high * 0x1_0000_0000 + low;
}
