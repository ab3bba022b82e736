/**
 * UTF-8 encoding into a caller's buffer, in plain JavaScript: for the short keys of the read path
 * this beats `TextEncoder` (no call into the runtime, no allocation). Keys are well-formed
 * (`keyProblem` rejects lone surrogates); a lone surrogate would be written as U+FFFD, exactly
 * like `TextEncoder`.
 */

/**
 * Writes the UTF-8 of `s` into `out` at `at`; returns the end offset. `out` must have room for
 * `3 * s.length` bytes from `at` (the worst case).
 */
export function writeUtf8(s: string, out: Uint8Array, at: number): number {
  let i = 0;
  const n = s.length;
  while (i < n) {
    let c = s.charCodeAt(i++);
    if (c < 0x80) {
      out[at++] = c;
    } else if (c < 0x800) {
      out[at++] = 0xc0 | (c >> 6);
      out[at++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = i < n ? s.charCodeAt(i) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        out[at++] = 0xf0 | (c >> 18);
        out[at++] = 0x80 | ((c >> 12) & 0x3f);
        out[at++] = 0x80 | ((c >> 6) & 0x3f);
        out[at++] = 0x80 | (c & 0x3f);
      } else {
        out[at++] = 0xef; // U+FFFD
        out[at++] = 0xbf;
        out[at++] = 0xbd;
      }
    } else {
      out[at++] = 0xe0 | (c >> 12);
      out[at++] = 0x80 | ((c >> 6) & 0x3f);
      out[at++] = 0x80 | (c & 0x3f);
    }
  }
  return at;
}
