import { equal, match } from "node:assert/strict";
import { VERSION } from "./version.ts";

Deno.test("the version is semver, and deno.json and package.json carry the same one", () => {
  match(VERSION, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  for (const file of ["../deno.json", "../package.json"]) {
    const json = JSON.parse(Deno.readTextFileSync(new URL(file, import.meta.url)));
    equal(json.version, VERSION, file);
  }
});
