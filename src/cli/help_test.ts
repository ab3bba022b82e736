import { deepEqual, match, ok } from "node:assert/strict";
import { COMMAND_NAMES, commandFlags } from "./args.ts";
import { commandHelp, generalHelp, TOPICS } from "./help.ts";

Deno.test("each command's help documents exactly the flags the parser takes", () => {
  for (const name of COMMAND_NAMES) {
    deepEqual(Object.keys(TOPICS[name].flags).sort(), [...commandFlags(name)].sort(), name);
    const text = commandHelp(name);
    for (const flag of commandFlags(name)) ok(text.includes(`--${flag}`), `${name} --${flag}`);
  }
});

Deno.test("generalHelp() lists every command, the global flags and every exit code", () => {
  const text = generalHelp("9.9.9");
  match(text, /^fs 9\.9\.9: /);
  for (const name of COMMAND_NAMES) match(text, new RegExp(`^  ${name}\\b`, "m"));
  for (const flag of ["--url", "--token", "--json", "--timeout-ms", "--version", "--help"]) {
    ok(text.includes(flag), flag);
  }
  for (const code of [0, 1, 2, 3, 4]) match(text, new RegExp(`^  ${code}  `, "m"));
  match(text, /FIRESCROLL_URL or http:\/\/127\.0\.0\.1:8190/);
});

Deno.test("the backup help says there is no backup HTTP API and names deno task restore", () => {
  const text = commandHelp("backup");
  match(text, /no backup HTTP API/);
  match(text, /deno task restore/);
});
