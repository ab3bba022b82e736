import { deepEqual, equal, notEqual, ok, throws } from "node:assert/strict";
import type { StoredRecord } from "../store/mod.ts";
import {
  CONDITION_DEPTH_MAX,
  CONDITION_FILTER_NODES_MAX,
  CONDITION_IDENTIFIERS,
  ConditionCache,
  ConditionError,
} from "./conditions.ts";

const RECORD: StoredRecord = {
  expiresAt: null,
  pk: "user",
  sk: "42",
  dataJson: JSON.stringify({ n: 7, name: "ada", tags: ["a", "b"], nested: { on: true } }),
  version: 12,
  createdAt: 1_000,
  updatedAt: 2_000,
};

function rejected(cache: ConditionCache, expression: string, reason: RegExp): void {
  throws(
    () => cache.compile(expression),
    (error: unknown) =>
      error instanceof ConditionError && error.code === "invalid_condition" &&
      reason.test(error.message),
    expression,
  );
}

Deno.test("ConditionCache.compile() accepts boolean expressions over the record", () => {
  const cache = new ConditionCache(100);
  for (
    const expression of [
      "pk == null",
      "pk != null",
      "_version == 41",
      "_created_at < _updated_at",
      "data.n > 5 && data.name == 'ada'",
      "!(data.n == 1) || sk >= '4'",
      "'a' in data.tags",
      "data.nested.on ? true : false",
      "true",
      "data.n + 1 == 8",
    ]
  ) {
    ok(cache.compile(expression), expression);
  }
});

Deno.test("ConditionCache.compile() rejects syntax errors", () => {
  const cache = new ConditionCache(100);
  // "((", "" and "   " used to escape as a TypeError (a 500) instead of a ConditionError.
  for (const expression of ["pk ==", "((", "(", "data.n >", "== 1", "data..n == 1", "", "   "]) {
    rejected(cache, expression, /^Cannot parse condition: /);
  }
  rejected(cache, "pk == = 1", /^Cannot parse condition: /);
});

Deno.test("ConditionCache.compile() rejects function and transform calls", () => {
  const cache = new ConditionCache(100);
  rejected(cache, "now() > 1", /functions and transforms are not available \(now\)/);
  rejected(cache, "data.name|upper == 'ADA'", /not available \(upper\)/);
  rejected(cache, "data.n > 1 && (data.tags|length) == 2", /not available \(length\)/);
  rejected(cache, "x(y(1)) == 1", /not available/);
});

Deno.test("ConditionCache.compile() rejects expressions that are not boolean", () => {
  const cache = new ConditionCache(100);
  for (
    const expression of [
      "data.n",
      "data.n + 1",
      "1",
      "'yes'",
      "null",
      "data.n && data.name",
      "data.n == 1 || data.name",
      "data.on ? 1 : true",
      "[true]",
      "{a: true}",
    ]
  ) {
    rejected(cache, expression, /must evaluate to a boolean/);
  }
});

Deno.test("ConditionCache.evaluate() judges conditions against the stored record", () => {
  const cache = new ConditionCache(100);
  const cases: [string, string][] = [
    ["pk == null", "false"],
    ["pk == 'user' && sk == '42'", "true"],
    ["_version == 12", "true"],
    ["_version == 11", "false"],
    ["_created_at == 1000 && _updated_at == 2000", "true"],
    ["data.n > 5", "true"],
    ["data.n > 7", "false"],
    ["'b' in data.tags", "true"],
    ["data.tags[1] == 'b'", "true"],
    ["data.nested.on == true", "true"],
    ["data.missing.deeper == 1", "false"],
    ["data.missing[0] == 1", "error"],
    ["data.n", "error"],
    ["pk ==", "error"],
    ["now() > 0", "error"],
  ];
  for (const [expression, verdict] of cases) {
    equal(cache.evaluate(expression, RECORD), verdict, expression);
  }
});

Deno.test("ConditionCache.evaluate() sees every field as null when the record is absent", () => {
  const cache = new ConditionCache(100);
  equal(cache.evaluate("pk == null", null), "true");
  equal(cache.evaluate("pk == null && sk == null && data == null", null), "true");
  equal(
    cache.evaluate("_version == null && _created_at == null && _updated_at == null", null),
    "true",
  );
  equal(cache.evaluate("_version == 0", null), "false");
  equal(cache.evaluate("data.n > 5", null), "false");
});

Deno.test("ConditionCache.compile() returns the cached compilation of a repeated expression", () => {
  const cache = new ConditionCache(10);
  const first = cache.compile("data.n > 1");
  equal(cache.compile("data.n > 1"), first);
  // Rejections are cached too: the same error every time, without re-parsing.
  let error: unknown;
  try {
    cache.compile("((");
  } catch (e) {
    error = e;
  }
  throws(() => cache.compile("(("), (e: unknown) => e === error);
});

Deno.test("ConditionCache holds at most entriesMax compiled expressions", () => {
  const cache = new ConditionCache(2);
  const a = cache.compile("data.a == 1");
  const b = cache.compile("data.b == 1");
  equal(cache.compile("data.a == 1"), a);
  equal(cache.compile("data.b == 1"), b);
  cache.compile("data.c == 1"); // evicts the oldest entry, data.a
  notEqual(cache.compile("data.a == 1"), a);
  const size = (cache as unknown as { cache: Map<string, unknown> }).cache.size;
  equal(size, 2);
  for (let i = 0; i < 1000; i++) cache.evaluate(`data.n == ${i}`, RECORD);
  equal((cache as unknown as { cache: Map<string, unknown> }).cache.size, 2);
  // Eviction never changes a verdict.
  equal(cache.evaluate("data.n == 7", RECORD), "true");
});

/** The ConditionError `compile` throws for `expression` (failing if it throws anything else). */
function errorOf(cache: ConditionCache, expression: string): ConditionError {
  try {
    cache.compile(expression);
  } catch (error) {
    ok(error instanceof ConditionError, `${expression}: ${error}`);
    return error;
  }
  throw new Error(`${expression} was accepted`);
}

Deno.test("ConditionCache.compile() rejects a ternary with a missing branch instead of throwing a TypeError", () => {
  const cache = new ConditionCache(100);
  // The first three were 500 internal_error on every route that takes an `if`.
  for (
    const expression of [
      "true ? :",
      "'a' ? :",
      "pk ? : true",
      "pk == null ? true :",
      "pk == null ?: false",
      "true ? (true ? : false) : false",
      "pk == null ? () : true",
    ]
  ) {
    rejected(cache, expression, /^Cannot parse condition: /);
  }
});

Deno.test("ConditionCache.compile() rejects every other missing operand as a parse error", () => {
  const cache = new ConditionCache(100);
  for (
    const expression of [
      "()",
      "() == 1",
      "!()",
      "pk == ()",
      "data[] == 1",
      "data[()] == 1",
      "{a: } == 1",
      "{a: ()} == 1",
      "[1][0] == 1",
      "([1])[0] == 1",
      "(()) && true",
      "data.a[.x == ()] == 1",
    ]
  ) {
    rejected(cache, expression, /^Cannot parse condition: /);
  }
});

Deno.test("ConditionCache.compile() accepts empty arrays and objects and member access on literals", () => {
  const cache = new ConditionCache(100);
  const cases: [string, string][] = [
    ["[] == []", "false"],
    ["{} != {}", "true"],
    ["data.tags != []", "true"],
    ["[,] == 1", "false"],
    ["[()] == []", "false"],
    ["'a'.b == null", "true"],
    ["'abc'.length == 3", "true"],
    ["{a: [1, 2]}.a[1] == 2", "true"],
    // jexl reads a member of an array from its first element.
    ["[1, 2].length == null", "true"],
    ["[{a: 1}].a == 1", "true"],
    ["{a: 1}.a == 1", "true"],
    ["{a: {b: [true]}}.a.b[0] == true", "true"],
    ["true.x == null", "true"],
    ["(1).x == null", "true"],
    ["data['name'] == 'ada'", "true"],
    ['data["nested"].on != false', "true"],
    ["data.tags[.x == 1][0] == null", "true"],
    ["data.missing[.x == 1] == []", "false"],
  ];
  for (const [expression, verdict] of cases) {
    ok(cache.compile(expression), expression);
    equal(cache.evaluate(expression, RECORD), verdict, expression);
  }
});

Deno.test("ConditionCache.compile() rejects transforms and calls wherever they appear", () => {
  const cache = new ConditionCache(100);
  rejected(cache, "data|upper", /not available \(upper\)/);
  rejected(cache, "data.name|upper(1) == 'ADA'", /not available \(upper\)/);
  rejected(cache, "data.f() == 1", /not available \(f\)/);
  rejected(cache, "[f()] == 1", /not available \(f\)/);
  rejected(cache, "{a: g(1)}.a == 1", /not available \(g\)/);
  rejected(cache, "data.tags[.x|lower == 'a'] == 1", /not available \(lower\)/);
  rejected(cache, "true ? h() : false", /not available \(h\)/);
});

Deno.test("ConditionCache.compile() rejects unknown top-level identifiers, naming them and the allowed ones", () => {
  const cache = new ConditionCache(100);
  const cases: [string, string][] = [
    ["foo.bar == 1", "foo"],
    ["foo == 1", "foo"],
    ["undefined == null", "undefined"],
    ["Pk != null", "Pk"],
    ["Data.n == 1", "Data"],
    [".foo == 1", "foo"],
    ["pk == null && version == 1", "version"],
    ["data.tags[x == 1] == []", "x"],
    ["data.tags[(.x == 1)] == []", "x"],
    ["[nope] == []", "nope"],
  ];
  for (const [expression, name] of cases) {
    const error = errorOf(cache, expression);
    equal(error.details.identifier, name, expression);
    deepEqual(error.details.allowed, [...CONDITION_IDENTIFIERS]);
    ok(error.message.includes(`'${name}'`), error.message);
    ok(error.message.includes("pk, sk, data, _created_at, _updated_at, _version, null"));
  }
  // Fields of data, members of anything, relative names inside element filters are all fine.
  for (
    const expression of [
      "data.anything == 1",
      "data['x'] == 1",
      "data.a.b.c == null",
      "data.items[.x == 1] == []",
      "data.items[.pk == 'a'][0].x == 1",
      "'a'.foo == null",
      ".pk == 'user'",
      "null == null",
    ]
  ) {
    ok(cache.compile(expression), expression);
  }
});

Deno.test("ConditionCache.evaluate() still judges an unknown identifier already in the log as before", () => {
  const cache = new ConditionCache(100);
  // Refused for new requests, but a message accepted by an older version must get the verdict
  // it always got, so that replicas on two versions agree.
  equal(cache.evaluate("foo.bar == 1", RECORD), "false");
  equal(cache.evaluate("foo == null", RECORD), "true");
  throws(() => cache.compile("foo.bar == 1"), ConditionError);
  equal(cache.evaluate("foo.bar == 1", RECORD), "false");
});

Deno.test("ConditionCache.compile() rejects number literals that are not finite as doubles", () => {
  const cache = new ConditionCache(100);
  const huge = "9".repeat(400);
  rejected(cache, `data.n == ${huge}`, /too large for a double/);
  rejected(cache, `data.n > -${huge}`, /too large for a double/);
  rejected(cache, `{a: ${huge}}.a == 1`, /too large for a double/);
  rejected(cache, `${huge}.5 > 1`, /too large for a double/);
  // 308 digits is still finite; 2^53 + 1 is accepted and compared as the double 2^53.
  ok(cache.compile(`data.n < ${"9".repeat(308)}`));
  const big: StoredRecord = { ...RECORD, dataJson: '{"n":9007199254740992}' };
  equal(cache.evaluate("data.n == 9007199254740993", big), "true");
  equal(cache.evaluate("data.n == 0.000001", { ...RECORD, dataJson: '{"n":1e-6}' }), "true");
});

Deno.test("ConditionCache.compile() bounds nesting at CONDITION_DEPTH_MAX levels", () => {
  const cache = new ConditionCache(100);
  const parens = (n: number) => "(".repeat(n) + "true" + ")".repeat(n);
  ok(cache.compile(parens(CONDITION_DEPTH_MAX)));
  rejected(cache, parens(CONDITION_DEPTH_MAX + 1), /nested deeper than 64 levels/);
  equal(errorOf(cache, parens(CONDITION_DEPTH_MAX + 1)).details.limit, CONDITION_DEPTH_MAX);
  // Brackets inside a string literal are not nesting.
  ok(cache.compile(`sk != '${"(".repeat(100)}'`));
  // A chain of n comparisons joined by || is n + 1 levels deep.
  const chain = (n: number) => Array.from({ length: n }, (_, i) => `sk == '${i}'`).join(" || ");
  ok(cache.compile(chain(CONDITION_DEPTH_MAX - 1)));
  rejected(cache, chain(CONDITION_DEPTH_MAX), /nested deeper/);
  // At 64 KiB (the largest CONDITION_BYTES_MAX) nothing escapes as a RangeError.
  const size = 64 * 1024;
  for (
    const expression of [
      "(".repeat(size),
      "(".repeat(size / 2) + "true" + ")".repeat(size / 2),
      "[".repeat(size),
      "{a:".repeat(size / 3),
      "!".repeat(size - 4) + "true",
      "1" + "+1".repeat(size / 2 - 1) + " == 2",
      "data" + ".a".repeat(size / 2 - 2) + " == 1",
      "data" + "[0]".repeat(size / 3 - 2) + " == 1",
      "true ? ".repeat(size / 7) + "true",
    ]
  ) {
    throws(() => cache.compile(expression), ConditionError, expression.slice(0, 20));
  }
  // Deep trees that jexl parses (an older version could have accepted a shallower one): the
  // apply-time evaluation answers "error" (stack exhausted) instead of throwing.
  for (const expression of ["!".repeat(size - 4) + "true", "1" + "+1".repeat(size / 2) + " == 2"]) {
    equal(cache.evaluate(expression, RECORD), "error");
  }
  // 64 KiB of minus signs is one negative literal.
  equal(cache.evaluate("-".repeat(size) + "1 == -1", RECORD), "true");
});

Deno.test("ConditionCache.compile() bounds the per-element cost of element filters", () => {
  const cache = new ConditionCache(100);
  rejected(cache, "data.a[.b[.c == 1] == []] == []", /cannot hold another element filter/);
  rejected(cache, "data.a[.x == data.n] == []", /cannot read data/);
  rejected(cache, "data.a[.data.a == 1] == []", /cannot read data/);
  rejected(cache, "data.a[1 in .data] == []", /cannot read data/);
  // A static index inside an element filter and the record's small fields are fine.
  ok(cache.compile("data.a[.b[0] == sk] == []"));
  ok(cache.compile("data.a[.b == 1][.c == 2] == []"));
  const terms = (n: number) => Array.from({ length: n }, () => ".x").join(" + ");
  // n identifiers and n - 1 operators, plus the comparison and its literal.
  const fits = Math.floor((CONDITION_FILTER_NODES_MAX - 1) / 2);
  ok(cache.compile(`data.a[${terms(fits)} == 1] == []`));
  rejected(cache, `data.a[${terms(fits + 1)} == 1] == []`, /element filters hold more than 16/);
});

Deno.test("ConditionCache.evaluate() pins JavaScript comparisons with null and missing fields", () => {
  const cache = new ConditionCache(100);
  const record: StoredRecord = { ...RECORD, dataJson: '{"n":5,"zero":0,"nil":null,"s":"a"}' };
  // [left, op, right, verdict]: data.missing is undefined, data.nil and absent-record fields null.
  const cases: [string, string, string, string][] = [
    ["data.nil", "==", "null", "true"],
    ["data.nil", "!=", "null", "false"],
    ["data.nil", "==", "data.missing", "true"],
    ["data.nil", "==", "0", "false"],
    ["data.nil", "==", "false", "false"],
    ["data.nil", "==", "''", "false"],
    ["data.nil", "<", "5", "true"],
    ["data.nil", "<=", "5", "true"],
    ["data.nil", ">", "5", "false"],
    ["data.nil", ">=", "5", "false"],
    ["data.nil", "<", "0", "false"],
    ["data.nil", "<=", "0", "true"],
    ["data.nil", ">=", "0", "true"],
    ["data.nil", ">", "-1", "true"],
    ["data.nil", "<", "'a'", "false"],
    ["data.nil", ">=", "'a'", "false"],
    ["data.missing", "==", "null", "true"],
    ["data.missing", "!=", "null", "false"],
    ["data.missing", "==", "0", "false"],
    ["data.missing", "!=", "5", "true"],
    ["data.missing", "<", "5", "false"],
    ["data.missing", "<=", "5", "false"],
    ["data.missing", ">", "5", "false"],
    ["data.missing", ">=", "5", "false"],
    ["data.missing", "<=", "0", "false"],
    ["data.missing", "==", "false", "false"],
    ["data.missing", "==", "''", "false"],
    ["data.missing", "<", "0", "false"],
    ["data.missing", ">", "-1", "false"],
    ["data.missing", ">=", "0", "false"],
    ["data.missing", "<", "'a'", "false"],
    ["data.missing", ">=", "'a'", "false"],
    ["data.nil", "!=", "5", "true"],
    ["data.missing.deeper", "==", "null", "true"],
    ["data.zero", "==", "null", "false"],
    ["data.n", ">", "null", "true"],
  ];
  for (const [left, op, right, verdict] of cases) {
    const expression = `${left} ${op} ${right}`;
    equal(cache.evaluate(expression, record), verdict, expression);
  }
  // An absent record: every field is null, so data.x is undefined.
  const absent: [string, string][] = [
    ["_version < 5", "true"],
    ["_version > 5", "false"],
    ["_version >= 0", "true"],
    ["_version == 0", "false"],
    ["pk == null", "true"],
    ["pk != null && _version < 5", "false"],
    ["data.n < 5", "false"],
    ["data.n == null", "true"],
    ["data.n != 5", "true"],
    ["data[0] == 1", "error"],
  ];
  for (const [expression, verdict] of absent) {
    equal(cache.evaluate(expression, null), verdict, expression);
  }
});

Deno.test("ConditionCache keeps at most charsMax of expression text, evicting the oldest", () => {
  const cache = new ConditionCache(1000, 64);
  const long = (n: number) => `pk == '${"x".repeat(n)}'`;
  cache.compile(long(20)); // 28 chars
  cache.compile(long(21)); // 29 chars: 57 in all
  const stats = () => (cache as unknown as { cache: Map<string, unknown>; chars: number });
  equal(stats().cache.size, 2);
  cache.compile(long(22)); // 30 more would make 87: the oldest goes
  equal(stats().cache.size, 2);
  equal(stats().chars, 29 + 30);
  ok(!stats().cache.has(long(20)));
  // One expression longer than the bound is still compiled (alone in the cache).
  cache.compile(long(100));
  equal(stats().cache.size, 1);
});
