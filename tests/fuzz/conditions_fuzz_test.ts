/**
 * Fuzz test: random `if` expressions, valid and broken, go through ConditionCache.compile (the
 * accept-time check of every write and list route) and evaluate (apply time). compile may only
 * throw ConditionError, and an accepted expression always evaluates to a verdict without throwing.
 *
 * Reproduce a failure with the seed it prints: `FUZZ_SEED=<seed> deno test -A
 * tests/fuzz/conditions_fuzz_test.ts`; run longer with `FUZZ_CASES`.
 */
import { equal, fail, ok } from "node:assert/strict";
import { ConditionCache, ConditionError } from "../../src/apply/mod.ts";
import type { StoredRecord } from "../../src/store/mod.ts";
import { seededRandom } from "../_helpers.ts";
import { randomCondition } from "./_conditions.ts";

/** `deno task fuzz` sets FUZZ_LONG=1: a random seed (printed in the test name) and more cases. */
const LONG = Deno.env.get("FUZZ_LONG") === "1";
const SEED = Number(
  Deno.env.get("FUZZ_SEED") ?? (LONG ? Math.floor(Math.random() * 2 ** 31) : 0xc0_4d17),
);
const CASES = Number(Deno.env.get("FUZZ_CASES") ?? (LONG ? 300_000 : 20_000));

const RECORDS: (StoredRecord | null)[] = [
  null,
  {
    pk: "user",
    sk: "42",
    dataJson: JSON.stringify({
      n: 7,
      name: "ada",
      tags: ["a", "b", 0, null, { x: 1 }],
      nested: { on: true, a: [1, 2, 3] },
      x: null,
    }),
    version: 12,
    createdAt: 1_000,
    updatedAt: 2_000,
    expiresAt: null,
  },
  {
    pk: "p",
    sk: "",
    dataJson: '[0,0,0,false,"",null]',
    version: 0,
    createdAt: 0,
    updatedAt: 0,
    expiresAt: null,
  },
  { pk: "p", sk: "s", dataJson: '"text"', version: 1, createdAt: 1, updatedAt: 1, expiresAt: null },
];

Deno.test(`ConditionCache.compile() throws only ConditionError and accepted conditions always evaluate (seed ${SEED}, ${CASES} cases)`, () => {
  ok(
    Number.isSafeInteger(SEED) && Number.isSafeInteger(CASES),
    "FUZZ_SEED and FUZZ_CASES are integers",
  );
  const random = seededRandom(SEED);
  // A small cache, so eviction and re-compilation are exercised too.
  const cache = new ConditionCache(512);
  let accepted = 0;
  for (let i = 0; i < CASES; i++) {
    const expression = randomCondition(random);
    const where = `FUZZ_SEED=${SEED} case ${i}: ${JSON.stringify(expression)}`;
    let isAccepted = true;
    try {
      cache.compile(expression);
    } catch (error) {
      if (!(error instanceof ConditionError)) fail(`${where}: compile threw ${error}`);
      equal(error.code, "invalid_condition", where);
      isAccepted = false;
    }
    for (const record of RECORDS) {
      let verdict: string;
      try {
        verdict = cache.evaluate(expression, record);
      } catch (error) {
        fail(`${where}: evaluate threw ${error}`);
      }
      if (!["true", "false", "error"].includes(verdict)) fail(`${where}: verdict ${verdict}`);
    }
    if (isAccepted) accepted++;
  }
  // The generator must keep producing both kinds, or the test proves little.
  ok(accepted > CASES / 20, `FUZZ_SEED=${SEED}: only ${accepted} of ${CASES} accepted`);
  ok(accepted < CASES * 0.9, `FUZZ_SEED=${SEED}: ${accepted} of ${CASES} accepted`);
});
