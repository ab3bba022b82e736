import { deepEqual, equal, ok } from "node:assert/strict";
import { reportDownload } from "./restore.ts";
import { logged } from "../util/_logged.ts";

Deno.test("reportDownload() logs restore_progress by the file's size while a snapshot downloads, until stopped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_restore_progress_" });
  const path = `${dir}/p2.mdb`;
  try {
    const events = await logged(async () => {
      const download = reportDownload(2, 41, path, 4000, 30);
      await new Promise((r) => setTimeout(r, 50)); // Not created yet: nothing to say.
      await Deno.writeFile(path, new Uint8Array(1000));
      await new Promise((r) => setTimeout(r, 45));
      download.stop();
      await new Promise((r) => setTimeout(r, 100));
    });
    const lines = events.filter((e) => e.event === "restore_progress");
    ok(lines.length >= 1 && lines.length <= 2, JSON.stringify(events));
    const { ts: _, per_second, eta_sec, ...line } = lines[0]!;
    deepEqual(line, {
      level: "info",
      event: "restore_progress",
      partition: 2,
      source: "s3",
      offset: 41,
      unit: "bytes",
      done: 1000,
      total: 4000,
    });
    ok(typeof per_second === "number" && per_second > 0);
    ok(typeof eta_sec === "number" && eta_sec >= 0);
    equal(events.length, lines.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
