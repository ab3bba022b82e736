/**
 * Plain messages read straight from their bytes: a log value written the way `encodeMutation`
 * writes the API's mutations is checked in one pass over its bytes and its ops found as byte
 * ranges — no UTF-8 decode, no `JSON.parse`, no `JSON.stringify` of `data` — which is most of the
 * cost of decoding a message (bench/RESULTS.md).
 *
 * The scan accepts only bytes for which it is certain of what `decodeMutation` followed by
 * `PlainWriter.add` would give (the test holds the two paths to the same plain ops); anything
 * else it declines, and the message is decoded the long way, which alone decides what is poison.
 * What it accepts:
 *
 * - exactly `{"v":1,"atomic":true|false,"ops":[…]}`, no whitespace, nothing after;
 * - ops `{"op":"put","pk":…,"sk":…,"data":…}` with at most one of `,"ttl_ms":N` or
 *   `,"expires_at":N` after `data`, and `{"op":"delete","pk":…,"sk":…}`: no condition, and an
 *   atomic message of one op (the rule of `plain.ts`);
 * - well-formed UTF-8 (what the long way's fatal decoder takes: no overlong form, surrogate or
 *   code point past U+10FFFF), `pk` and `sk` without escapes and within their byte limits, the
 *   expiry a plain decimal integer in its range;
 * - `data` in the form `JSON.stringify` writes, so that its bytes are the bytes a record stores:
 *   no whitespace; strings with only the escapes `JSON.stringify` uses (`\"`, `\\`, `\b`, `\f`,
 *   `\n`, `\r`, `\t`, `\u00xx` for other control characters); any valid number token (the exact
 *   parse keeps every token as written); objects without a member named twice, without a member
 *   name that starts with a digit (V8 moves array-index names first) and without `__proto__`;
 *   nested at most {@linkcode SCAN_DEPTH_MAX} deep.
 *
 * @module
 */
import {
  EXPIRES_AT_MAX,
  MESSAGE_OPS_MAX,
  PK_BYTES_MAX,
  SK_BYTES_MAX,
  TTL_MS_MAX,
} from "../config/mod.ts";
import {
  BACKSLASH,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  COLON,
  COMMA,
  DOT,
  LOWER_E,
  MINUS,
  NINE,
  OPEN_BRACE,
  OPEN_BRACKET,
  PLUS,
  QUOTE,
  UPPER_E,
  ZERO,
} from "../util/json.ts";

/** Deepest nesting of `data` the scan takes; deeper data is decoded the long way. */
export const SCAN_DEPTH_MAX = 64;

/** Objects with more members than this are checked for a repeated name with a `Set`. */
const PAIRWISE_MEMBERS_MAX = 8;

const encoder = new TextEncoder();
const HEAD = encoder.encode('{"v":1,"atomic":');
const TRUE = encoder.encode("true");
const FALSE = encoder.encode("false");
const NULL = encoder.encode("null");
const OPS = encoder.encode(',"ops":[');
const PUT = encoder.encode('{"op":"put","pk":"');
const DELETE = encoder.encode('{"op":"delete","pk":"');
const SK = encoder.encode(',"sk":"');
const DATA = encoder.encode(',"data":');
const TTL = encoder.encode(',"ttl_ms":');
const EXPIRES_AT = encoder.encode(',"expires_at":');
const PROTO = encoder.encode("__proto__");

/** What {@linkcode scanPlain} found, per op: valid until the next scan. */
export interface ScannedOps {
  /** Ops of the message. */
  count: number;
  /** Per op: 0 put, 1 delete (`plain.ts`'s kinds). */
  kinds: Uint8Array;
  /** Per op: `plain.ts`'s expiry kind, and its value. */
  expiries: Uint8Array;
  expiryValues: Float64Array;
  /** Per op, byte ranges of the value: pk, sk (inside their quotes), data (a put's). */
  pkStarts: Uint32Array;
  pkEnds: Uint32Array;
  skStarts: Uint32Array;
  skEnds: Uint32Array;
  dataStarts: Uint32Array;
  dataEnds: Uint32Array;
}

/** The scan's output, reused: grown when a message has more ops than it holds. */
export const SCANNED: ScannedOps = scanned(16);

function scanned(capacity: number): ScannedOps {
  return {
    count: 0,
    kinds: new Uint8Array(capacity),
    expiries: new Uint8Array(capacity),
    expiryValues: new Float64Array(capacity),
    pkStarts: new Uint32Array(capacity),
    pkEnds: new Uint32Array(capacity),
    skStarts: new Uint32Array(capacity),
    skEnds: new Uint32Array(capacity),
    dataStarts: new Uint32Array(capacity),
    dataEnds: new Uint32Array(capacity),
  };
}

function grow(): void {
  const old = SCANNED;
  const next = scanned(2 * old.kinds.length);
  next.kinds.set(old.kinds);
  next.expiries.set(old.expiries);
  next.expiryValues.set(old.expiryValues);
  next.pkStarts.set(old.pkStarts);
  next.pkEnds.set(old.pkEnds);
  next.skStarts.set(old.skStarts);
  next.skEnds.set(old.skEnds);
  next.dataStarts.set(old.dataStarts);
  next.dataEnds.set(old.dataEnds);
  Object.assign(SCANNED, next);
}

/**
 * Scans log value `value`; returns true with its ops in {@linkcode SCANNED} when it is a plain
 * message in the form the module doc lists, false when it must be decoded the long way.
 */
export function scanPlain(value: Uint8Array): boolean {
  // A view whose `length` lmdb-js narrowed reads on past it: the scan must not.
  if (value.length !== value.byteLength) value = value.subarray(0, value.length);
  const end = value.length;
  namesTop = 0;
  let at = expect(value, 0, HEAD);
  if (at < 0) return false;
  let atomic: boolean;
  if (expect(value, at, TRUE) > 0) {
    atomic = true;
    at += TRUE.length;
  } else if (expect(value, at, FALSE) > 0) {
    atomic = false;
    at += FALSE.length;
  } else return false;
  at = expect(value, at, OPS);
  if (at < 0) return false;
  let count = 0;
  for (;;) {
    if (count === MESSAGE_OPS_MAX) return false;
    if (count === SCANNED.kinds.length) grow();
    at = scanOp(value, at, count);
    if (at < 0) return false;
    count++;
    if (value[at] === COMMA) {
      at++;
      continue;
    }
    if (value[at] !== CLOSE_BRACKET || value[at + 1] !== CLOSE_BRACE || at + 2 !== end) {
      return false;
    }
    break;
  }
  if (atomic && count > 1) return false;
  SCANNED.count = count;
  return true;
}

/** Scans op `index` starting at `at`; returns where it ends, or -1. */
function scanOp(value: Uint8Array, at: number, index: number): number {
  let kind: number;
  let from = expect(value, at, PUT);
  if (from > 0) kind = 0;
  else {
    from = expect(value, at, DELETE);
    if (from < 0) return -1;
    kind = 1;
  }
  const pkEnd = keyEnd(value, from, PK_BYTES_MAX);
  if (pkEnd <= from) return -1; // an empty pk is poison: the long way says so
  const skStart = expect(value, pkEnd + 1, SK);
  if (skStart < 0) return -1;
  const skEnd = keyEnd(value, skStart, SK_BYTES_MAX);
  if (skEnd < 0) return -1;
  const s = SCANNED;
  s.kinds[index] = kind;
  s.pkStarts[index] = from;
  s.pkEnds[index] = pkEnd;
  s.skStarts[index] = skStart;
  s.skEnds[index] = skEnd;
  s.expiries[index] = 0;
  s.expiryValues[index] = 0;
  at = skEnd + 1;
  if (kind === 1) {
    s.dataStarts[index] = 0;
    s.dataEnds[index] = 0;
    return value[at] === CLOSE_BRACE ? at + 1 : -1;
  }
  const dataStart = expect(value, at, DATA);
  if (dataStart < 0) return -1;
  const dataEnd = scanValue(value, dataStart, 1);
  if (dataEnd < 0) return -1;
  s.dataStarts[index] = dataStart;
  s.dataEnds[index] = dataEnd;
  at = dataEnd;
  if (value[at] === COMMA) {
    let expiry: number;
    let max: number;
    let digits = expect(value, at, TTL);
    if (digits > 0) {
      expiry = 1;
      max = TTL_MS_MAX;
    } else {
      digits = expect(value, at, EXPIRES_AT);
      if (digits < 0) return -1;
      expiry = 2;
      max = EXPIRES_AT_MAX;
    }
    const min = expiry === 1 ? 1 : 0;
    // A plain decimal integer: no sign, fraction or exponent, no leading zero, at most 16 digits
    // (EXPIRES_AT_MAX has 16). Both maxima are below 2^53, so a number within its range was
    // summed exactly, and one past it is refused however it rounded.
    let number = 0;
    at = digits;
    while (at < value.length && value[at]! >= ZERO && value[at]! <= NINE && at - digits < 17) {
      number = number * 10 + (value[at]! - ZERO);
      at++;
    }
    const length = at - digits;
    if (length === 0 || length > 16 || (length > 1 && value[digits] === ZERO)) return -1;
    if (number < min || number > max) return -1;
    s.expiries[index] = expiry;
    s.expiryValues[index] = number;
  }
  return value[at] === CLOSE_BRACE ? at + 1 : -1;
}

/** Where `bytes` ends when `value` holds it at `at`, or -1. */
function expect(value: Uint8Array, at: number, bytes: Uint8Array): number {
  if (at + bytes.length > value.length) return -1;
  for (let i = 0; i < bytes.length; i++) if (value[at + i] !== bytes[i]) return -1;
  return at + bytes.length;
}

/**
 * The closing quote of a key string whose text starts at `at`: UTF-8 without control characters
 * or escapes (so its bytes are the key's), at most `bytesMax` bytes; -1 otherwise.
 */
function keyEnd(value: Uint8Array, at: number, bytesMax: number): number {
  const limit = Math.min(value.length, at + bytesMax + 1);
  let i = at;
  while (i < limit) {
    const c = value[i]!;
    if (c === QUOTE) return i;
    if (c < 0x20 || c === BACKSLASH) return -1;
    if (c < 0x80) i++;
    else {
      const length = utf8Length(value, i, c);
      if (length < 0) return -1;
      i += length;
    }
  }
  return -1;
}

/**
 * The length of the well-formed UTF-8 sequence at `at` whose lead byte `c` is 0x80 or more, or -1
 * (the Unicode standard's table of well-formed byte sequences).
 */
function utf8Length(value: Uint8Array, at: number, c: number): number {
  if (c >= 0xc2 && c <= 0xdf) return continues(value[at + 1]) ? 2 : -1;
  const b = value[at + 1];
  if (b === undefined) return -1;
  if (c >= 0xe0 && c <= 0xef) {
    // E0: no overlong form; ED: no surrogate.
    if (b < (c === 0xe0 ? 0xa0 : 0x80) || b > (c === 0xed ? 0x9f : 0xbf)) return -1;
    return continues(value[at + 2]) ? 3 : -1;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // F0: no overlong form; F4: nothing past U+10FFFF.
    if (b < (c === 0xf0 ? 0x90 : 0x80) || b > (c === 0xf4 ? 0x8f : 0xbf)) return -1;
    return continues(value[at + 2]) && continues(value[at + 3]) ? 4 : -1;
  }
  return -1;
}

function continues(b: number | undefined): boolean {
  return b !== undefined && b >= 0x80 && b <= 0xbf;
}

/**
 * Scans one JSON value at `at`, nested `depth` deep, in `JSON.stringify`'s form; returns where it
 * ends, or -1.
 */
function scanValue(value: Uint8Array, at: number, depth: number): number {
  const c = value[at];
  if (c === QUOTE) return stringEnd(value, at + 1);
  if (c === OPEN_BRACE) return depth < SCAN_DEPTH_MAX ? scanObject(value, at + 1, depth) : -1;
  if (c === OPEN_BRACKET) return depth < SCAN_DEPTH_MAX ? scanArray(value, at + 1, depth) : -1;
  if (c === MINUS || (c !== undefined && c >= ZERO && c <= NINE)) return numberEnd(value, at);
  if (c === 0x74) return expect(value, at, TRUE);
  if (c === 0x66) return expect(value, at, FALSE);
  if (c === 0x6e) return expect(value, at, NULL);
  return -1;
}

/** Member names of the objects being scanned, as [start, end) pairs: one stack for all. */
let names = new Uint32Array(256);

function scanObject(value: Uint8Array, at: number, depth: number): number {
  if (value[at] === CLOSE_BRACE) return at + 1;
  // This object's names go above the enclosing objects'; a nested object takes its own off
  // when it is done.
  const base = namesTop;
  let members = 0;
  for (;;) {
    if (value[at] !== QUOTE) return -1;
    const nameEnd = stringEnd(value, at + 1);
    if (nameEnd < 0) return -1;
    const first = value[at + 1]!;
    // V8 orders array-index names first; a name starting with a digit may be one.
    if (first >= ZERO && first <= NINE) return -1;
    if (nameEnd - at === PROTO.length + 2 && expect(value, at + 1, PROTO) > 0) return -1;
    if (namesTop + 2 > names.length) {
      const grown = new Uint32Array(2 * names.length);
      grown.set(names);
      names = grown;
    }
    names[namesTop++] = at + 1;
    names[namesTop++] = nameEnd - 1;
    members++;
    if (value[nameEnd] !== COLON) return -1;
    at = scanValue(value, nameEnd + 1, depth + 1);
    if (at < 0) return -1;
    if (value[at] === COMMA) {
      at++;
      continue;
    }
    if (value[at] !== CLOSE_BRACE) return -1;
    break;
  }
  const unique = members <= PAIRWISE_MEMBERS_MAX
    ? namesDistinctPairwise(value, base)
    : namesDistinctBySet(value, base);
  namesTop = base;
  return unique ? at + 1 : -1;
}

/** The top of {@linkcode names}; a failed scan leaves it where it was (the next one resets it). */
let namesTop = 0;

function namesDistinctPairwise(value: Uint8Array, base: number): boolean {
  for (let i = base; i < namesTop; i += 2) {
    for (let j = i + 2; j < namesTop; j += 2) {
      if (sameBytes(value, names[i]!, names[i + 1]!, names[j]!, names[j + 1]!)) return false;
    }
  }
  return true;
}

function namesDistinctBySet(value: Uint8Array, base: number): boolean {
  const seen = new Set<string>();
  for (let i = base; i < namesTop; i += 2) {
    // One char per byte (any byte, as Latin-1): equal strings are equal bytes.
    let name = "";
    for (let k = names[i]!; k < names[i + 1]!; k++) name += String.fromCharCode(value[k]!);
    if (seen.has(name)) return false;
    seen.add(name);
  }
  return true;
}

function sameBytes(value: Uint8Array, a: number, aEnd: number, b: number, bEnd: number): boolean {
  if (aEnd - a !== bEnd - b) return false;
  for (let i = 0; i < aEnd - a; i++) if (value[a + i] !== value[b + i]) return false;
  return true;
}

function scanArray(value: Uint8Array, at: number, depth: number): number {
  if (value[at] === CLOSE_BRACKET) return at + 1;
  for (;;) {
    at = scanValue(value, at, depth + 1);
    if (at < 0) return -1;
    if (value[at] === COMMA) {
      at++;
      continue;
    }
    return value[at] === CLOSE_BRACKET ? at + 1 : -1;
  }
}

/**
 * The end (after the closing quote) of a string whose text starts at `at`, with only the escapes
 * `JSON.stringify` writes and well-formed UTF-8; -1 otherwise.
 */
function stringEnd(value: Uint8Array, at: number): number {
  const end = value.length;
  while (at < end) {
    const c = value[at]!;
    if (c === QUOTE) return at + 1;
    if (c < 0x20) return -1;
    if (c >= 0x80) {
      // JSON.stringify writes every well-formed character as it is, past ASCII too.
      const length = utf8Length(value, at, c);
      if (length < 0) return -1;
      at += length;
      continue;
    }
    if (c !== BACKSLASH) {
      at++;
      continue;
    }
    const e = value[at + 1];
    // \" \\ \b \f \n \r \t
    if (
      e === QUOTE || e === BACKSLASH || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 ||
      e === 0x74
    ) {
      at += 2;
      continue;
    }
    // \u00xx, lowercase, for a control character without a short escape.
    if (e !== 0x75 || value[at + 2] !== ZERO || value[at + 3] !== ZERO) return -1;
    const high = value[at + 4];
    const low = value[at + 5];
    if (high !== ZERO && high !== 0x31) return -1;
    const lowValue = low === undefined
      ? -1
      : low >= ZERO && low <= NINE
      ? low - ZERO
      : low >= 0x61 && low <= 0x66
      ? low - 0x61 + 10
      : -1;
    if (lowValue < 0) return -1;
    const code = (high === ZERO ? 0 : 16) + lowValue;
    if (code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d) {
      return -1;
    }
    at += 6;
  }
  return -1;
}

/** The end of a JSON number token at `at` (any valid token), or -1. */
function numberEnd(value: Uint8Array, at: number): number {
  if (value[at] === MINUS) at++;
  if (value[at] === ZERO) at++;
  else {
    const start = at;
    while (isDigit(value[at])) at++;
    if (at === start) return -1;
  }
  if (value[at] === DOT) {
    const start = ++at;
    while (isDigit(value[at])) at++;
    if (at === start) return -1;
  }
  if (value[at] === LOWER_E || value[at] === UPPER_E) {
    at++;
    if (value[at] === PLUS || value[at] === MINUS) at++;
    const start = at;
    while (isDigit(value[at])) at++;
    if (at === start) return -1;
  }
  return at;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE;
}
