import assert from "node:assert/strict";
import { LEVELS, log, setLogLevel } from "./log.ts";
import { logged } from "./_logged.ts";

function eachLevel(): void {
  for (const level of LEVELS) log(level, `event_${level}`, { n: 1 });
}

Deno.test("log() writes info and above by default, as one JSON line each", async () => {
  const events = await logged(eachLevel);
  assert.deepEqual(events.map((e) => e.event), ["event_info", "event_warn", "event_error"]);
  const [info] = events;
  assert.equal(info!.level, "info");
  assert.equal(info!.n, 1);
  assert.match(String(info!.ts), /^\d{4}-\d{2}-\d{2}T/);
});

Deno.test("setLogLevel() drops the events below the level and keeps the rest", async () => {
  try {
    setLogLevel("warn");
    assert.deepEqual((await logged(eachLevel)).map((e) => e.level), ["warn", "error"]);
    setLogLevel("error");
    assert.deepEqual((await logged(eachLevel)).map((e) => e.level), ["error"]);
    setLogLevel("debug");
    assert.deepEqual((await logged(eachLevel)).map((e) => e.level), [
      "debug",
      "info",
      "warn",
      "error",
    ]);
  } finally {
    setLogLevel("info");
  }
  assert.deepEqual((await logged(eachLevel)).map((e) => e.level), ["info", "warn", "error"]);
});

Deno.test("setLogLevel() refuses a level that does not exist", () => {
  assert.throws(() => setLogLevel("verbose" as "info"), /no level "verbose"/);
});
