import { deepEqual, equal, ok } from "node:assert/strict";
import {
  CLEAN_STOP_FILE,
  needsVerify,
  parseCleanStop,
  stampOf,
  takeCleanStop,
  writeCleanStop,
} from "./clean_stop.ts";
import { withTempDir } from "../../tests/_helpers.ts";

Deno.test("without a clean-stop record every existing file needs verification", () => {
  ok(needsVerify(null, "p0.mdb", { size: 10, mtimeMs: 1 }));
  ok(!needsVerify(null, "p0.mdb", null), "an absent file needs nothing");
});

Deno.test("a clean-stop record vouches only for files unchanged since the stop", () => {
  const record = parseCleanStop(
    JSON.stringify({ version: 1, files: { "p0.mdb": { size: 10, mtimeMs: 5 } } }),
  );
  ok(record !== null);
  ok(!needsVerify(record, "p0.mdb", { size: 10, mtimeMs: 5 }));
  ok(needsVerify(record, "p0.mdb", { size: 11, mtimeMs: 5 }), "size changed");
  ok(needsVerify(record, "p0.mdb", { size: 10, mtimeMs: 6 }), "mtime changed");
  ok(needsVerify(record, "p1.mdb", { size: 10, mtimeMs: 5 }), "not in the record");
});

Deno.test("an unreadable clean-stop record counts as none", () => {
  equal(parseCleanStop("{"), null);
  equal(parseCleanStop("[]"), null);
  equal(parseCleanStop(JSON.stringify({ files: { "p0.mdb": { size: "1" } } })), null);
  equal(parseCleanStop(JSON.stringify({ files: { "../x": { size: 1, mtimeMs: 1 } } })), null);
});

Deno.test("takeCleanStop() returns the record written at the stop and removes it", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/p0.mdb`, "zero");
    await Deno.writeTextFile(`${dir}/log.mdb`, "log");
    await Deno.writeTextFile(`${dir}/p1.mdb.corrupt-1`, "aside");
    equal(takeCleanStop(dir), null, "no record before any stop");
    await writeCleanStop(dir);
    const record = takeCleanStop(dir);
    ok(record !== null);
    deepEqual([...record.keys()].sort(), ["log.mdb", "p0.mdb"]);
    deepEqual(record.get("p0.mdb"), stampOf(`${dir}/p0.mdb`));
    equal(stampOf(`${dir}/${CLEAN_STOP_FILE}`), null, "taken: a crash now leaves none");
    equal(takeCleanStop(dir), null);
  });
});
