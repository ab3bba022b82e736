import assert from "node:assert/strict";
import { LEVELS, log, setLogLevel } from "./log.ts";

/** The events `fn` writes to stdout, parsed. */
function written(fn: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const decoder = new TextDecoder();
  const original = Deno.stdout.writeSync;
  Deno.stdout.writeSync = (bytes: Uint8Array) => {
    lines.push(decoder.decode(bytes));
    return bytes.length;
  };
  try {
    fn();
  } finally {
    Deno.stdout.writeSync = original;
  }
  return lines.join("").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

function eachLevel(): void {
  for (const level of LEVELS) log(level, `event_${level}`, { n: 1 });
}

Deno.test("log() writes info and above by default, as one JSON line each", () => {
  const events = written(eachLevel);
  assert.deepEqual(events.map((e) => e.event), ["event_info", "event_warn", "event_error"]);
  const [info] = events;
  assert.equal(info!.level, "info");
  assert.equal(info!.n, 1);
  assert.match(String(info!.ts), /^\d{4}-\d{2}-\d{2}T/);
});

Deno.test("setLogLevel() drops the events below the level and keeps the rest", () => {
  try {
    setLogLevel("warn");
    assert.deepEqual(written(eachLevel).map((e) => e.level), ["warn", "error"]);
    setLogLevel("error");
    assert.deepEqual(written(eachLevel).map((e) => e.level), ["error"]);
    setLogLevel("debug");
    assert.deepEqual(written(eachLevel).map((e) => e.level), ["debug", "info", "warn", "error"]);
  } finally {
    setLogLevel("info");
  }
  assert.deepEqual(written(eachLevel).map((e) => e.level), ["info", "warn", "error"]);
});

Deno.test("setLogLevel() refuses a level that does not exist", () => {
  assert.throws(() => setLogLevel("verbose" as "info"), /no level "verbose"/);
});
