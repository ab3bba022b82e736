/**
 * JSON parsing that keeps every number token as sent (DESIGN §3: `data` comes back exactly as
 * accepted). `JSON.parse` turns `1e400` into Infinity (stringified as `null`), `1e-400` into 0 and
 * `9007199254740993` into 9007199254740992. Values parsed here stringify back to the same tokens:
 * a number whose token `JSON.stringify` would not reproduce is kept as `JSON.rawJSON(token)`.
 *
 * The exact parse needs a reviver, which makes `JSON.parse` about 9x slower, so it runs only when
 * a cheap scan of the text finds a number token that a double would not give back (see
 * `scanJson`). Conditions still see doubles: they parse the stored text with plain `JSON.parse`.
 */
import { assert } from "./assert.ts";

/** Deepest nesting (arrays and objects) `parseJsonExact` takes; the exact parse recurses. */
export const JSON_DEPTH_MAX = 512;

/** JSON text that is valid but refused: nested too deep, or a duplicate member name. */
export class JsonRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JsonRefusedError";
  }
}

/** The ES2025 `JSON.rawJSON` API, which this TypeScript lib does not declare yet. */
interface RawJson {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
}
const Raw = JSON as unknown as RawJson;
assert(
  typeof Raw.rawJSON === "function" && typeof Raw.isRawJSON === "function",
  "this runtime must support JSON.rawJSON (V8 11.4+)",
);

/** Whether `value` is a number kept as its source token by `parseJsonExact`. */
export function isRawJson(value: unknown): boolean {
  return Raw.isRawJSON(value);
}

/** What one pass over valid JSON text finds outside its strings. */
export interface JsonShape {
  /** Member names in the text (duplicates counted): the colons outside strings. */
  readonly members: number;
  /** Deepest nesting of arrays and objects. */
  readonly depth: number;
  /** Every number token is what `JSON.stringify(JSON.parse(token))` gives back. */
  readonly numbersExact: boolean;
}

/** Character codes of JSON's syntax (also the bytes of UTF-8 JSON, for `apply/plain_scan.ts`). */
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const MINUS = 0x2d;
export const PLUS = 0x2b;
export const DOT = 0x2e;
export const ZERO = 0x30;
export const NINE = 0x39;
export const LOWER_E = 0x65;
export const UPPER_E = 0x45;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;

/** Index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  while (end > 0) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
  assert(false, "scanJson() is only given valid JSON: every string is closed");
}

/**
 * One pass over `text`, which must be valid JSON (`JSON.parse` accepted it).
 *
 * Why a number can not be missed (no false negative): outside strings, valid JSON holds only
 * structural characters, whitespace, the literals `true`/`false`/`null` and number tokens. Strings
 * are skipped whole (from an opening quote to the first quote preceded by an even number of
 * backslashes), so the scan is outside a string exactly when the text is. Outside strings a `-`
 * or a digit can only begin a number token (no literal contains one), and the token runs over
 * `[0-9.eE+-]` up to a character that can not be in a number (whitespace, `,`, `]`, `}` or the
 * end): so every token is seen, whole, once. A token is kept verbatim by plain parsing exactly when
 * `String(Number(token)) === token`, because `JSON.stringify` writes a finite number as
 * `String(number)` (and a non-finite one as `null`, which is never a number token). An integer of
 * at most 15 digits other than `-0` passes that test (no leading zeros in JSON, below 2^53), so it
 * is not converted; every other token is.
 */
export function scanJson(text: string): JsonShape {
  const length = text.length;
  let members = 0;
  let depth = 0;
  let depthMax = 0;
  let numbersExact = true;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i) + 1;
    } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      const start = i;
      let integer = true;
      i++;
      while (i < length) {
        const d = text.charCodeAt(i);
        if (d >= ZERO && d <= NINE) i++;
        else if (d === DOT || d === LOWER_E || d === UPPER_E || d === PLUS || d === MINUS) {
          integer = false;
          i++;
        } else break;
      }
      if (numbersExact) {
        const digits = i - start;
        const negativeZero = c === MINUS && digits === 2 && text.charCodeAt(start + 1) === ZERO;
        if (!integer || digits > 15 || negativeZero) {
          const token = text.slice(start, i);
          numbersExact = String(Number(token)) === token;
        }
      }
    } else {
      if (c === COLON) members++;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++depth > depthMax) depthMax = depth;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
      i++;
    }
  }
  return { members, depth: depthMax, numbersExact };
}

/** Member names of the objects in a `JSON.parse` result (duplicates in the text are lost). */
function parsedMembers(value: unknown): number {
  let count = 0;
  // An explicit stack: nesting is bounded by the caller, but recursion need not be trusted.
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === "object" && item !== null) stack.push(item);
    } else {
      const object = v as Record<string, unknown>;
      for (const key in object) {
        count++;
        const item = object[key];
        if (typeof item === "object" && item !== null) stack.push(item);
      }
    }
  }
  return count;
}

/** The first member name that occurs twice in one object of valid JSON `text`, or null. */
export function duplicateName(text: string): string | null {
  // Only on the error path: one Set per open object.
  const stack: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const names = stack[stack.length - 1];
      if (expectName && names) {
        const name = JSON.parse(text.slice(i, end + 1)) as string;
        if (names.has(name)) return name;
        names.add(name);
        expectName = false;
      }
      i = end;
    } else if (c === OPEN_BRACE) {
      stack.push(new Set());
      expectName = true;
    } else if (c === OPEN_BRACKET) stack.push(null);
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) stack.pop();
    else if (c === COMMA) expectName = stack[stack.length - 1] !== null;
  }
  return null;
}

function keepSource(
  _key: string,
  value: unknown,
  context?: { source?: string },
): unknown {
  if (typeof value !== "number") return value;
  const source = context?.source;
  assert(source !== undefined, "JSON.parse passes the source of every primitive to a reviver");
  return String(value) === source ? value : Raw.rawJSON(source);
}

/** Options of `parseJsonExact`. */
export interface ExactOptions {
  /** Refuse an object that names a member twice (`JSON.parse` keeps the last silently). */
  readonly refuseDuplicates?: boolean;
}

/**
 * Parses `text` so that `JSON.stringify` of the result gives back every number token as written
 * (whitespace aside; strings keep their value, their escapes may be written differently). Throws
 * `SyntaxError` for text that is not JSON and `JsonRefusedError` for text nested deeper than
 * `JSON_DEPTH_MAX` or, with `refuseDuplicates`, naming a member twice.
 */
export function parseJsonExact(text: string, options: ExactOptions = {}): unknown {
  const value: unknown = JSON.parse(text);
  const shape = scanJson(text);
  if (shape.depth > JSON_DEPTH_MAX) {
    throw new JsonRefusedError(`nests ${shape.depth} levels deep, more than ${JSON_DEPTH_MAX}`);
  }
  // The text names `shape.members` members and the parsed objects hold one per distinct name.
  if (options.refuseDuplicates && shape.members !== parsedMembers(value)) {
    const name = duplicateName(text);
    assert(name !== null, "a member lost by JSON.parse is a duplicate name");
    throw new JsonRefusedError(`names the member ${JSON.stringify(name)} twice in one object`);
  }
  if (shape.numbersExact) return value;
  return JSON.parse(text, keepSource);
}
