import { deepEqual, equal, match, throws } from "node:assert/strict";
import {
  type Command,
  DEFAULT_CHUNK,
  DEFAULT_INTERNAL_URL,
  DEFAULT_URL,
  type Invocation,
  parseArgs,
  sourceOf,
} from "./args.ts";
import { CliError, EXIT } from "./exit.ts";

const NO_ENV = (_: string) => undefined;

function parse(args: string[], env: Record<string, string> = {}): Invocation {
  return parseArgs(args, (name) => env[name]);
}

function command(args: string[], env: Record<string, string> = {}): Command {
  return parse(args, env).command;
}

/** Asserts a usage error (exit 2) whose message matches `pattern`. */
function refused(args: string[], pattern: RegExp): void {
  throws(() => parseArgs(args, NO_ENV), (error: unknown) => {
    equal((error as CliError).exitCode, EXIT.usage);
    equal((error as CliError).code, "usage");
    match((error as CliError).message, pattern);
    return error instanceof CliError;
  });
}

Deno.test("parseArgs() reads put with its key, its data and its flags in any order", () => {
  deepEqual(command(["put", "dns:a", "A", '{"ip":"192.0.2.7"}']), {
    kind: "put",
    pk: "dns:a",
    sk: "A",
    data: { from: "arg", text: '{"ip":"192.0.2.7"}' },
    ttlMs: null,
    expiresAt: null,
    condition: null,
  });
  deepEqual(
    command(["--json", "put", "--ttl-ms", "60000", "p", "s", "--if=pk == null", "1"]),
    {
      kind: "put",
      pk: "p",
      sk: "s",
      data: { from: "arg", text: "1" },
      ttlMs: 60000,
      expiresAt: null,
      condition: "pk == null",
    },
  );
  equal(parse(["--json", "put", "p", "s", "1"]).globals.json, true);
});

Deno.test("parseArgs() takes data from stdin for -, from a file for @path, and -1 as JSON", () => {
  deepEqual(sourceOf("-"), { from: "stdin" });
  deepEqual(sourceOf(undefined), { from: "stdin" });
  deepEqual(sourceOf("@/tmp/x.json"), { from: "file", path: "/tmp/x.json" });
  const put = command(["put", "p", "s", "-1"]) as Extract<Command, { kind: "put" }>;
  deepEqual(put.data, { from: "arg", text: "-1" });
  const stdin = command(["put", "p", "s", "-"]) as Extract<Command, { kind: "put" }>;
  deepEqual(stdin.data, { from: "stdin" });
});

Deno.test("parseArgs() ends flags at --, so a sort key may start with a dash", () => {
  deepEqual(command(["get", "--", "p", "--weird"]), {
    kind: "get",
    pk: "p",
    sk: "--weird",
    after: null,
    waitMs: null,
  });
});

Deno.test("parseArgs() reads --after as offsets, or as a write's whole answer", () => {
  const get = command(["get", "p", "s", "--after", '{"3":12}', "--wait-ms", "2000"]);
  deepEqual(get, { kind: "get", pk: "p", sk: "s", after: { "3": 12 }, waitMs: 2000 });
  const fromPut = command(["get", "p", "s", "--after", '{"offsets":{"0":4,"2":9}}']);
  deepEqual((fromPut as Extract<Command, { kind: "get" }>).after, { "0": 4, "2": 9 });
  refused(["get", "p", "s", "--after", "12"], /--after: expected \{"<partition>": offset\}/);
  refused(["get", "p", "s", "--after", '{"x":1}'], /not a partition and an offset/);
  refused(["get", "p", "s", "--after", "{"], /not JSON/);
});

Deno.test("parseArgs() reads list's flags and --all", () => {
  deepEqual(
    command([
      "list",
      "p",
      "--sk-prefix",
      "A",
      "--limit",
      "5",
      "--all",
      "--reverse",
      "--start-after",
      "A1",
      "--end-before",
      "Z",
      "--if",
      "data.on == true",
      "--if-stop",
    ]),
    {
      kind: "list",
      pk: "p",
      skPrefix: "A",
      startAfter: "A1",
      endBefore: "Z",
      limit: 5,
      reverse: true,
      condition: "data.on == true",
      ifStop: true,
      all: true,
      after: null,
      waitMs: null,
    },
  );
  refused(["list", "p", "--limit", "0"], /--limit "0": must be an integer ≥ 1/);
  refused(["list", "p", "--limit", "1.5"], /must be an integer/);
  refused(["list", "p", "--limit"], /--limit: it needs a value/);
  refused(["list", "p", "--all=yes"], /--all takes no value/);
  refused(["list", "p", "--limit", "1", "--limit", "2"], /--limit: given twice/);
});

Deno.test("parseArgs() reads batch from an argument, a file or stdin, atomic unless --split", () => {
  deepEqual(command(["batch"]), {
    kind: "batch",
    body: { from: "stdin" },
    split: false,
    chunk: DEFAULT_CHUNK,
  });
  deepEqual(command(["batch", "-"]), {
    kind: "batch",
    body: { from: "stdin" },
    split: false,
    chunk: DEFAULT_CHUNK,
  });
  deepEqual(command(["batch", "[]", "--split", "--chunk", "10"]), {
    kind: "batch",
    body: { from: "arg", text: "[]" },
    split: true,
    chunk: 10,
  });
  refused(["batch", "--chunk", "10"], /--chunk without --split/);
});

Deno.test("parseArgs() reads watch's filters, a resume id or offsets, and its stop conditions", () => {
  deepEqual(command(["watch", "--pk", "p", "--after", "5:42", "--count", "3", "--once"]), {
    kind: "watch",
    pk: "p",
    skPrefix: null,
    partitions: null,
    after: "5:42",
    count: 3,
    once: true,
  });
  const many = command(["watch", "--partitions", "0,2", "--partitions", "5", "--after", '{"0":3}']);
  deepEqual((many as Extract<Command, { kind: "watch" }>).partitions, [0, 2, 5]);
  deepEqual((many as Extract<Command, { kind: "watch" }>).after, { "0": 3 });
  refused(["watch", "--partitions", "x"], /--partitions "x"/);
  refused(["watch", "extra"], /Cannot run watch: expected no arguments, got 1/);
});

Deno.test("parseArgs() reads status's internal URLs (repeated, comma lists, env) and secret", () => {
  deepEqual(command(["status"]), {
    kind: "status",
    internalUrls: [DEFAULT_INTERNAL_URL],
    secret: null,
  });
  deepEqual(
    command([
      "status",
      "--internal-url",
      "http://a:8191/,http://b:8191",
      "--internal-url=http://c:8191",
    ]),
    {
      kind: "status",
      internalUrls: ["http://a:8191", "http://b:8191", "http://c:8191"],
      secret: null,
    },
  );
  deepEqual(
    command(["status"], { FIRESCROLL_INTERNAL_URL: "http://x:1, http://y:2", CLUSTER_SECRET: "s" }),
    { kind: "status", internalUrls: ["http://x:1", "http://y:2"], secret: "s" },
  );
  const flagWins = command(["status", "--cluster-secret", "f"], { CLUSTER_SECRET: "s" });
  equal((flagWins as Extract<Command, { kind: "status" }>).secret, "f");
  refused(["status", "--internal-url", "ftp://x"], /must be http:\/\/ or https:\/\//);
});

Deno.test("parseArgs() takes --url and --token from flags, else FIRESCROLL_URL and _TOKEN", () => {
  deepEqual(parse(["get", "p", "s"]).globals, {
    url: DEFAULT_URL,
    token: null,
    json: false,
    timeoutMs: null,
  });
  deepEqual(
    parse(["get", "p", "s"], { FIRESCROLL_URL: "https://fs.example/", FIRESCROLL_TOKEN: "t" })
      .globals,
    { url: "https://fs.example", token: "t", json: false, timeoutMs: null },
  );
  deepEqual(
    parse(["--url", "http://h:1", "get", "p", "s", "--token", "x", "--timeout-ms", "500"], {
      FIRESCROLL_URL: "http://env:2",
      FIRESCROLL_TOKEN: "env",
    }).globals,
    { url: "http://h:1", token: "x", json: false, timeoutMs: 500 },
  );
  equal(parse(["get", "p", "s"], { FIRESCROLL_TOKEN: "" }).globals.token, null);
  refused(["--url", "localhost:8190", "get", "p", "s"], /--url "localhost:8190"/);
});

Deno.test("parseArgs() answers --help and --version even on a line that is otherwise wrong", () => {
  deepEqual(command(["--version"]), { kind: "version" });
  deepEqual(command(["get", "--version"]), { kind: "version" });
  deepEqual(command(["--help"]), { kind: "help", topic: null, requested: true });
  deepEqual(command(["help"]), { kind: "help", topic: null, requested: true });
  deepEqual(command(["help", "list"]), { kind: "help", topic: "list", requested: true });
  deepEqual(command(["list", "-h"]), { kind: "help", topic: "list", requested: true });
  deepEqual(command(["list", "--bogus", "--help"]), {
    kind: "help",
    topic: "list",
    requested: true,
  });
  deepEqual(command(["--help", "--version"]), { kind: "help", topic: null, requested: true });
  deepEqual(command(["--help"], { FIRESCROLL_URL: "not a url" }), {
    kind: "help",
    topic: null,
    requested: true,
  });
  // After --, a --version is a sort key.
  deepEqual(command(["get", "p", "--", "--version"]), {
    kind: "get",
    pk: "p",
    sk: "--version",
    after: null,
    waitMs: null,
  });
  // No command: the help, on stderr with exit 2 (run.ts).
  deepEqual(command([]), { kind: "help", topic: null, requested: false });
});

Deno.test("parseArgs() refuses unknown commands and flags, and wrong argument counts", () => {
  refused(["frobnicate"], /Cannot run "frobnicate": no such command/);
  refused(["get", "p"], /Cannot run get: expected <pk> <sk>, got 1/);
  refused(["get", "p", "s", "t"], /got 3/);
  refused(["put", "p", "s"], /expected <pk> <sk> <data>/);
  refused(["get", "p", "s", "--sk-prefix", "x"], /--sk-prefix with get: no such flag/);
  refused(["--limit", "3", "list", "p"], /--limit before the command/);
  refused(["get", "p", "s", "-x"], /-x: no such flag/);
  refused(["help", "nope"], /Cannot help with "nope"/);
  refused(["backup", "later"], /expected now, list or restore/);
  refused(["put", "p", "s", "1", "--ttl-ms", "5", "--expires-at", "9"], /not both/);
});

Deno.test("parseArgs() reads backup's action and wait-ready's interval", () => {
  deepEqual(command(["backup", "now"]), { kind: "backup", action: "now" });
  deepEqual(command(["backup"]), { kind: "backup", action: null });
  deepEqual(command(["wait-ready"]), { kind: "wait-ready", intervalMs: 250 });
  deepEqual(command(["wait-ready", "--interval-ms", "10"]), { kind: "wait-ready", intervalMs: 10 });
});
