/**
 * A seeded generator of `if` expressions for fuzzing: well-formed expressions from the jexl
 * grammar (every AST shape: literals, identifiers known and unknown, member access, filters,
 * arrays, objects, unary, binary, ternaries, transforms, calls, deep nesting) and broken ones
 * (token soup, truncation, splices, unbalanced quotes and brackets). Shared by the unit fuzz test
 * and by HTTP fuzzers; deterministic for a given seed (`seededRandom` of tests/_helpers.ts).
 */

import type { Random } from "../_helpers.ts";

const pick = <T>(random: Random, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)]!;

const IDENTIFIERS = ["pk", "sk", "data", "_version", "_created_at", "_updated_at", "null"];
const UNKNOWN = ["foo", "x", "undefined", "Data", "$a", "_", "é", "тест", "constructor"];
const FIELDS = ["n", "name", "tags", "nested", "on", "a", "b", "x", "length", "0", "__proto__"];
const BINARY = [
  "==",
  "!=",
  "<",
  "<=",
  ">",
  ">=",
  "in",
  "+",
  "-",
  "*",
  "/",
  "//",
  "%",
  "^",
  "&&",
  "||",
];
const STRINGS = [
  "''",
  '""',
  "'a'",
  '"ada"',
  "'it\\'s'",
  '"\\""',
  "'\\\\'",
  "'(['",
  "'é😀'",
  "'?:|'",
];
const NUMBERS = ["0", "1", "-1", "7", "1.5", ".5", "-0", "9007199254740993", "1" + "0".repeat(400)];
const SOUP = [
  ...BINARY,
  "!",
  "?",
  ":",
  "|",
  ".",
  ",",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  "'",
  '"',
  "\\",
  " ",
  "true",
  "false",
  "pk",
  "data",
  "foo",
  "1",
  "upper",
  "=",
  "&",
  "@",
  "#",
  "\n",
  "\u0000",
  "'a'",
];

/** Generation bounds: how deep well-formed expressions nest. */
export interface GenerateOptions {
  /** Deepest subtree of a well-formed expression; deeper ones are also made by `nest`. */
  readonly depthMax?: number;
}

/** A random expression that jexl's grammar can parse (not necessarily one we accept). */
export function wellFormed(random: Random, depth = 0, depthMax = 6): string {
  const leaf = depth >= depthMax || random() < 0.25;
  if (leaf) {
    const r = random();
    if (r < 0.3) return pick(random, IDENTIFIERS);
    if (r < 0.4) return pick(random, UNKNOWN);
    if (r < 0.55) return pick(random, NUMBERS);
    if (r < 0.7) return pick(random, STRINGS);
    if (r < 0.8) return random() < 0.5 ? "true" : "false";
    if (r < 0.9) return `.${pick(random, FIELDS)}`;
    return `data.${pick(random, FIELDS)}`;
  }
  const sub = () => wellFormed(random, depth + 1, depthMax);
  switch (Math.floor(random() * 12)) {
    case 0:
    case 1:
      return `${sub()} ${pick(random, BINARY)} ${sub()}`;
    case 2:
      return `!${sub()}`;
    case 3:
      return `(${sub()})`;
    case 4:
      return `${sub()} ? ${sub()} : ${sub()}`;
    case 5:
      return `data.${pick(random, FIELDS)}[${
        random() < 0.6 ? "." + pick(random, FIELDS) + " == " : ""
      }${sub()}]`;
    case 6:
      return `[${Array.from({ length: Math.floor(random() * 3) }, sub).join(", ")}]`;
    case 7:
      return `{${
        Array.from({ length: Math.floor(random() * 3) }, () =>
          `${pick(random, FIELDS.slice(0, 9))}: ${sub()}`)
          .join(", ")
      }}.${pick(random, FIELDS)}`;
    case 8:
      return `${pick(random, IDENTIFIERS)}.${pick(random, FIELDS)}`;
    case 9:
      return random() < 0.5 ? `${sub()}|upper` : `f(${sub()})`;
    case 10:
      return `${pick(random, STRINGS)}.${pick(random, FIELDS)}`;
    default:
      return `${sub()} ${pick(random, ["==", "!=", "<", ">=", "&&", "||"])} ${sub()}`;
  }
}

/** Random tokens from the grammar and around it, joined without regard to syntax. */
export function tokenSoup(random: Random, tokensMax = 24): string {
  const count = 1 + Math.floor(random() * tokensMax);
  let out = "";
  for (let i = 0; i < count; i++) {
    out += pick(random, SOUP) + (random() < 0.5 ? " " : "");
  }
  return out;
}

/** `inner` wrapped in `levels` of one nesting construct (brackets, `!`, `?`, chains). */
export function nest(random: Random, levels: number, inner = "true"): string {
  switch (Math.floor(random() * 6)) {
    case 0:
      return "(".repeat(levels) + inner + ")".repeat(levels);
    case 1:
      return "!".repeat(levels) + inner;
    case 2:
      return "true ? ".repeat(levels) + inner + " : false".repeat(random() < 0.5 ? levels : 0);
    case 3:
      return Array.from({ length: levels }, () => inner).join(" || ");
    case 4:
      return "data" + "[0]".repeat(levels) + " == 1";
    default:
      return "[".repeat(levels) + inner + "]".repeat(random() < 0.5 ? levels : 0) + " == 1";
  }
}

/**
 * One random `if` expression, valid or broken: well-formed trees, trees with a piece cut out or
 * spliced in, token soup, and deep nesting. `bytesMax` caps its UTF-16 length (a stand-in for
 * CONDITION_BYTES_MAX).
 */
export function randomCondition(random: Random, bytesMax = 1024): string {
  const r = random();
  let expression: string;
  if (r < 0.4) {
    expression = wellFormed(random);
  } else if (r < 0.6) {
    // Cut a random slice out of a well-formed expression: missing operands and branches.
    const whole = wellFormed(random);
    const from = Math.floor(random() * whole.length);
    const to = from + Math.floor(random() * (whole.length - from + 1));
    expression = whole.slice(0, from) + whole.slice(to);
  } else if (r < 0.75) {
    // Splice soup into a well-formed expression.
    const whole = wellFormed(random);
    const at = Math.floor(random() * (whole.length + 1));
    expression = whole.slice(0, at) + tokenSoup(random, 4) + whole.slice(at);
  } else if (r < 0.92) {
    expression = tokenSoup(random);
  } else {
    expression = nest(
      random,
      1 + Math.floor(random() * 200),
      random() < 0.5 ? "true" : wellFormed(random, 4),
    );
  }
  return expression.slice(0, bytesMax);
}
