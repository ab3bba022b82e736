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
