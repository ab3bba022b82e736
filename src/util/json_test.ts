import { equal, ok, throws } from "node:assert/strict";
import {
  duplicateName,
  isRawJson,
  JSON_DEPTH_MAX,
  JsonRefusedError,
  parseJsonExact,
  scanJson,
} from "./json.ts";
import { seededRandom } from "../../tests/_helpers.ts";

const EDGE_NUMBERS = [
  "1e400",
  "-1e400",
  "1e-400",
  "9007199254740993",
  "-9007199254740993",
  "-0",
  "-0.0",
  "0.0",
  "1E5",
  "1e5",
  "1e+5",
  "0.1e-7",
  "1.50",
  "1e21",
  "123456789012345678901234567890",
  "1" + "0".repeat(399),
  "-" + "9".repeat(400),
  "0." + "3".repeat(40),
];

function roundTrip(text: string): string {
  return JSON.stringify(parseJsonExact(text));
}

Deno.test("parseJsonExact() keeps every edge number token as sent", () => {
  for (const token of EDGE_NUMBERS) {
    equal(roundTrip(token), token);
    equal(roundTrip(`[${token}]`), `[${token}]`);
    equal(roundTrip(`{"n":${token}}`), `{"n":${token}}`);
    // Plain JSON.parse changes each of them: the reason this module exists.
    ok(JSON.stringify(JSON.parse(token)) !== token, token);
  }
});

Deno.test("parseJsonExact() returns plain numbers when a double gives the token back", () => {
  const value = parseJsonExact('{"a":1,"b":-2.5,"c":[0,1e-7,123456789012345]}') as {
    a: unknown;
    c: unknown[];
  };
  equal(value.a, 1);
  equal(value.c[1], 1e-7);
  // Only the tokens that would change are kept raw; their neighbours stay numbers.
  const mixed = parseJsonExact("[1,1e400,2]") as unknown[];
  equal(mixed[0], 1);
  ok(isRawJson(mixed[1]));
  equal(mixed[2], 2);
});

Deno.test("parseJsonExact() keeps numbers in nested arrays and objects and minifies whitespace", () => {
  const text =
    ' \n{ "a" : [ 1e400 ,\t{ "b" : [ [ -0 ] , 1.50 ] } ] ,\r\n "c" : { "d" : 0.1e-7 } } ';
  equal(roundTrip(text), '{"a":[1e400,{"b":[[-0],1.50]}],"c":{"d":0.1e-7}}');
});

Deno.test("parseJsonExact() leaves number-like text inside strings alone", () => {
  const text = '{"s":"1e400, [-0] : 1.50","t":"\\"x\\":9007199254740993","u":["\\\\",1]}';
  equal(roundTrip(text), text);
  ok(scanJson(text).numbersExact, "the only number token is 1");
  equal(scanJson(text).members, 3);
});

Deno.test("parseJsonExact() keeps string values; their escapes may be written differently", () => {
  equal(roundTrip('["\\u0041\\/","\\ud800"]'), '["A/","\\ud800"]');
});

Deno.test("parseJsonExact() throws SyntaxError for text that is not JSON", () => {
  for (const text of ["", " ", "{", "[1,]", "01", "1.", "+1", "NaN", '{"a":1}x']) {
    throws(() => parseJsonExact(text), SyntaxError, text);
  }
});

Deno.test("parseJsonExact() refuses nesting deeper than JSON_DEPTH_MAX and takes it at the bound", () => {
  const nested = (depth: number) => "[".repeat(depth) + "1e400" + "]".repeat(depth);
  equal(roundTrip(nested(JSON_DEPTH_MAX)), nested(JSON_DEPTH_MAX));
  throws(() => parseJsonExact(nested(JSON_DEPTH_MAX + 1)), JsonRefusedError);
  throws(() => parseJsonExact(nested(100_000)), /nests 100000 levels deep/);
});

Deno.test("parseJsonExact() refuses a duplicate member name only when asked to", () => {
  const text = '{"a":1,"b":{"x":"k:v","x":2}}';
  equal(roundTrip(text), '{"a":1,"b":{"x":2}}');
  throws(() => parseJsonExact(text, { refuseDuplicates: true }), /member "x" twice/);
  // Same name written with an escape, and a duplicate at the top level.
  throws(
    () => parseJsonExact('{"a":1,"\\u0061":2}', { refuseDuplicates: true }),
    /member "a" twice/,
  );
  // Colons in strings, the same name in different objects, and names in arrays are not duplicates.
  const fine = '{"u":"http://h:1","o":[{"a":1},{"a":2}],"p":{"a":{"a":"a:a"}}}';
  equal(JSON.stringify(parseJsonExact(fine, { refuseDuplicates: true })), fine);
});

Deno.test("duplicateName() finds the repeated name of one object or null", () => {
  equal(duplicateName('{"a":{"b":1,"c":2},"d":[{"b":1}],"e":{"b":1,"b":2}}'), "b");
  equal(duplicateName('{"a":[1,"a",{"a":"a"}],"b":"a"}'), null);
  equal(duplicateName('[{"a":1},{"a":2}]'), null);
});

// A property test: random documents with random number tokens, strings full of JSON syntax and
// escapes, and whitespace everywhere. Seeded, so a failure reproduces.

interface Doc {
  /** The text as a client might send it. */
  source: string;
  /** What must come back: minified, numbers as sent, strings as JSON.stringify writes them. */
  expected: string;
  /** Member names in the text. */
  members: number;
}

function generator(random: () => number) {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const digits = (n: number) => Array.from({ length: n }, () => String(int(10))).join("");
  const ws = () => Array.from({ length: int(3) }, () => pick([" ", "\t", "\n", "\r"])).join("");

  function numberToken(): string {
    if (random() < 0.2) return pick(EDGE_NUMBERS);
    const length = random() < 0.8 ? 1 + int(17) : 1 + int(400);
    let token = (random() < 0.3 ? "-" : "") +
      (length === 1 ? digits(1) : `${1 + int(9)}${digits(length - 1)}`);
    if (random() < 0.4) token += `.${digits(1 + int(20))}`;
    if (random() < 0.3) token += `${pick(["e", "E"])}${pick(["", "+", "-"])}${1 + int(400)}`;
    return token;
  }

  function stringToken(): string {
    const pieces = [
      "a",
      "é",
      "😀",
      ":",
      ",",
      "[",
      "]",
      "{",
      "}",
      "-0",
      "1e400",
      " ",
      "\\\\",
      '\\"',
      "\\/",
      "\\n",
      "\\u0041",
      "\\ud83d\\ude00",
    ];
    let body = "";
    for (let n = int(6); n > 0; n--) body += pick(pieces);
    return `"${body}"`;
  }

  function value(depth: number): Doc {
    const r = random();
    if (depth < 5 && r < 0.2) {
      const items = Array.from({ length: int(4) }, () => value(depth + 1));
      return {
        source: `[${ws()}${items.map((d) => d.source).join(`${ws()},${ws()}`)}${ws()}]`,
        expected: `[${items.map((d) => d.expected).join(",")}]`,
        members: items.reduce((sum, d) => sum + d.members, 0),
      };
    }
    if (depth < 5 && r < 0.4) {
      const entries = Array.from({ length: int(4) }, (_, i) => {
        const name = stringToken();
        // Distinct names whatever the random part says: a suffix per position.
        const unique = `${name.slice(0, -1)}#${i}"`;
        return { name: unique, value: value(depth + 1) };
      });
      return {
        source: `{${ws()}${
          entries.map((e) => `${e.name}${ws()}:${ws()}${e.value.source}`).join(`${ws()},${ws()}`)
        }${ws()}}`,
        expected: `{${
          entries.map((e) => `${JSON.stringify(JSON.parse(e.name))}:${e.value.expected}`).join(",")
        }}`,
        members: entries.reduce((sum, e) => sum + 1 + e.value.members, 0),
      };
    }
    if (r < 0.7) {
      const token = numberToken();
      return { source: token, expected: token, members: 0 };
    }
    if (r < 0.9) {
      const token = stringToken();
      return { source: token, expected: JSON.stringify(JSON.parse(token)), members: 0 };
    }
    const literal = pick(["true", "false", "null"]);
    return { source: literal, expected: literal, members: 0 };
  }

  return () => {
    const doc = value(0);
    return { ...doc, source: `${ws()}${doc.source}${ws()}` };
  };
}

Deno.test("parseJsonExact() round-trips 3000 random documents, and scanJson() never misses a changed number", () => {
  const next = generator(seededRandom(9));
  let slow = 0;
  for (let i = 0; i < 3000; i++) {
    const doc = next();
    equal(roundTrip(doc.source), doc.expected, doc.source);
    const shape = scanJson(doc.source);
    equal(shape.members, doc.members, doc.source);
    if (shape.numbersExact) {
      // No false negative: when the scan lets the fast path through, plain parsing is exact.
      equal(JSON.stringify(JSON.parse(doc.source)), doc.expected, doc.source);
    } else slow++;
    equal(JSON.stringify(parseJsonExact(doc.source, { refuseDuplicates: true })), doc.expected);
  }
  // Both paths were exercised.
  ok(slow > 300 && slow < 2700, `slow path taken ${slow} times`);
});
