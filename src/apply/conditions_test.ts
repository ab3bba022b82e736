import { equal, notEqual, ok, throws } from "node:assert/strict";
import type { StoredRecord } from "../store/mod.ts";
import { ConditionCache, ConditionError } from "./conditions.ts";

const RECORD: StoredRecord = {
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
