import { deepEqual, equal, match, ok } from "node:assert/strict";
import { SETTINGS } from "./settings.ts";
import { parseArgs, usage } from "./usage.ts";

Deno.test("parseArgs() reads --takeover, --version, --help and -h, and refuses anything else", () => {
  deepEqual(parseArgs([]), { kind: "run", takeover: false });
  deepEqual(parseArgs(["--takeover"]), { kind: "run", takeover: true });
  deepEqual(parseArgs(["--version"]), { kind: "version" });
  deepEqual(parseArgs(["--help"]), { kind: "help" });
  deepEqual(parseArgs(["-h", "--version"]), { kind: "help" });
  deepEqual(parseArgs(["--takeover", "--help"]), { kind: "help" });
  const bad = parseArgs(["--takeover", "--port=1"]);
  equal(bad.kind, "invalid");
  match((bad as { message: string }).message, /unknown argument "--port=1".*--help/);
  equal(parseArgs(["--help", "extra"]).kind, "invalid");
});

Deno.test("usage() names the program, its commands and options, and the configuration doc", () => {
  const text = usage("9.9.9");
  match(text, /^firescroll 9\.9\.9: FireScroll for Deno/);
  for (const needed of ["npm start", "npm test", "--takeover", "--version", "--help"]) {
    ok(text.includes(needed), needed);
  }
  ok(text.includes("docs/configuration.md"));
});

Deno.test("usage() lists every variable of the settings table with its default and its doc", () => {
  const text = usage("9.9.9");
  const lines = text.split("\n");
  for (const s of SETTINGS) {
    const at = lines.findIndex((l) => l.startsWith(`  ${s.env} `));
    ok(at >= 0, `${s.env} is not listed`);
    const entry = lines[at]! + "\n" + (lines[at + 1] ?? "");
    ok(entry.includes(s.doc.replaceAll("`", "")), `${s.env}'s doc`);
  }
  match(text, /\n {2}PARTITIONS +16 +log partitions/);
  match(text, /\n {2}LMDB_MAP_BYTES +1 GiB /);
  match(text, /\n {2}KAFKA_SEEDS +unset /);
  match(text, /\n {2}BACKUP +0 /);
  match(text, /\n {2}LOG_LEVEL +info /);
  match(text, /\n {2}REGION +FLY_REGION, else local\n/);
});
