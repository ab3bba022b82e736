/**
 * The command line of the client: `fs [global flags] <command> [arguments] [flags]`, read into a
 * typed {@linkcode Invocation} or refused with a usage error (exit 2) that names the argument.
 * Flags may come before or after the command's arguments, as `--name value` or `--name=value`;
 * `--` ends the flags (a sort key that starts with `-`). The environment supplies the defaults of
 * `--url`, `--token`, `--internal-url` and `--cluster-secret`.
 *
 * @module
 */
import { usageError } from "./exit.ts";

/** The public API's address when neither `--url` nor `FIRESCROLL_URL` names one (`API_PORT`). */
export const DEFAULT_URL = "http://127.0.0.1:8190";

/** The internal port's address when neither `--internal-url` nor the env names one. */
export const DEFAULT_INTERNAL_URL = "http://127.0.0.1:8191";

/** Records per request of `batch --split` by default: the node's `RECORDS_PER_REQUEST_MAX`. */
export const DEFAULT_CHUNK = 1000;

/** Most `--internal-url`s one `status` reads (one request each, all at once). */
export const INTERNAL_URLS_MAX = 64;

/** The commands, in the order the help lists them. */
export const COMMAND_NAMES = [
  "put",
  "get",
  "delete",
  "list",
  "batch",
  "watch",
  "status",
  "wait-ready",
  "backup",
  "help",
] as const;

/** A command's name. */
export type CommandName = typeof COMMAND_NAMES[number];

/** Flags every command takes. */
export interface Globals {
  /** Base URL of the public API, without a trailing slash. */
  readonly url: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  readonly token: string | null;
  /** Compact machine output (one JSON value or line per item) instead of the pretty default. */
  readonly json: boolean;
  /** `--timeout-ms`; null: the command's default. */
  readonly timeoutMs: number | null;
}

/** Where a JSON text comes from: the argument itself, standard input (`-`), a file (`@path`). */
export type Source =
  | { readonly from: "arg"; readonly text: string }
  | { readonly from: "stdin" }
  | { readonly from: "file"; readonly path: string };

/** Offsets by partition, as a write answers them (`after` of a read). */
export type Offsets = Readonly<Record<string, number>>;

/** What the command line asks for. */
export type Command =
  /** The help (of one command, or all); `requested` false: no command was given (exit 2). */
  | { readonly kind: "help"; readonly topic: CommandName | null; readonly requested: boolean }
  | { readonly kind: "version" }
  | {
    readonly kind: "put";
    readonly pk: string;
    readonly sk: string;
    readonly data: Source;
    readonly ttlMs: number | null;
    readonly expiresAt: number | null;
    readonly condition: string | null;
  }
  | {
    readonly kind: "get";
    readonly pk: string;
    readonly sk: string;
    readonly after: Offsets | null;
    readonly waitMs: number | null;
  }
  | {
    readonly kind: "delete";
    readonly pk: string;
    readonly sk: string;
    readonly condition: string | null;
  }
  | {
    readonly kind: "list";
    readonly pk: string;
    readonly skPrefix: string | null;
    readonly startAfter: string | null;
    readonly endBefore: string | null;
    readonly limit: number | null;
    readonly reverse: boolean;
    readonly condition: string | null;
    readonly ifStop: boolean;
    /** Follow `next` until the listing ends. */
    readonly all: boolean;
    readonly after: Offsets | null;
    readonly waitMs: number | null;
  }
  | {
    readonly kind: "batch";
    readonly body: Source;
    /** Send runs of puts and deletes to `/records/put` and `/records/delete` (not atomic). */
    readonly split: boolean;
    /** Most records per request with `split`. */
    readonly chunk: number;
  }
  | {
    readonly kind: "watch";
    readonly pk: string | null;
    readonly skPrefix: string | null;
    readonly partitions: readonly number[] | null;
    /** An event id (`5:42`, `0:17,1:-1`) or offsets by partition. */
    readonly after: string | Offsets | null;
    /** End (exit 0) after this many events. */
    readonly count: number | null;
    /** End (exit 0) when the stream ends instead of resuming it. */
    readonly once: boolean;
  }
  | {
    readonly kind: "status";
    readonly internalUrls: readonly string[];
    /** The nodes' `CLUSTER_SECRET`, sent as a bearer token to `/internal/status`. */
    readonly secret: string | null;
  }
  | { readonly kind: "wait-ready"; readonly intervalMs: number }
  | { readonly kind: "backup"; readonly action: "now" | "list" | "restore" | null };

/** A parsed command line. */
export interface Invocation {
  readonly globals: Globals;
  readonly command: Command;
}

type FlagKind = "string" | "integer" | "boolean" | "list";

const GLOBAL_FLAGS: Readonly<Record<string, FlagKind>> = {
  url: "string",
  token: "string",
  json: "boolean",
  "timeout-ms": "integer",
  help: "boolean",
  version: "boolean",
};

interface CommandSpec {
  /** Names of the positional arguments, for messages and the help. */
  readonly args: readonly string[];
  /** How many of `args` may be left out (from the end). */
  readonly optional: number;
  readonly flags: Readonly<Record<string, FlagKind>>;
}

const COMMANDS: Readonly<Record<CommandName, CommandSpec>> = {
  put: {
    args: ["pk", "sk", "data"],
    optional: 0,
    flags: { "ttl-ms": "integer", "expires-at": "integer", if: "string" },
  },
  get: { args: ["pk", "sk"], optional: 0, flags: { after: "string", "wait-ms": "integer" } },
  delete: { args: ["pk", "sk"], optional: 0, flags: { if: "string" } },
  list: {
    args: ["pk"],
    optional: 0,
    flags: {
      "sk-prefix": "string",
      "start-after": "string",
      "end-before": "string",
      limit: "integer",
      reverse: "boolean",
      if: "string",
      "if-stop": "boolean",
      all: "boolean",
      after: "string",
      "wait-ms": "integer",
    },
  },
  batch: { args: ["ops"], optional: 1, flags: { split: "boolean", chunk: "integer" } },
  watch: {
    args: [],
    optional: 0,
    flags: {
      pk: "string",
      "sk-prefix": "string",
      partitions: "list",
      after: "string",
      count: "integer",
      once: "boolean",
    },
  },
  status: { args: [], optional: 0, flags: { "internal-url": "list", "cluster-secret": "string" } },
  "wait-ready": { args: [], optional: 0, flags: { "interval-ms": "integer" } },
  backup: { args: ["action"], optional: 1, flags: {} },
  help: { args: ["command"], optional: 1, flags: {} },
};

/** The flags one command takes (besides the global ones), for the help. */
export function commandFlags(name: CommandName): readonly string[] {
  return Object.keys(COMMANDS[name].flags);
}

function isCommandName(name: string): name is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(name);
}

type FlagValue = string | boolean | string[];

/** The arguments split into positionals and flags, each flag checked against its command. */
interface Tokens {
  readonly command: CommandName | null;
  readonly positional: string[];
  readonly flags: Map<string, FlagValue>;
}

/** A positional argument, not a flag: `-` (stdin) and negative numbers (`-1` is JSON data). */
function isPositional(arg: string): boolean {
  return !arg.startsWith("-") || arg === "-" || /^-\d/.test(arg);
}

function tokenize(args: readonly string[]): Tokens {
  let command: CommandName | null = null;
  const positional: string[] = [];
  const flags = new Map<string, FlagValue>();
  let flagsEnded = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (flagsEnded || isPositional(arg)) {
      if (command === null && positional.length === 0) {
        if (!isCommandName(arg)) {
          throw usageError(`Cannot run ${JSON.stringify(arg)}: no such command (see fs help)`);
        }
        command = arg;
      } else positional.push(arg);
      continue;
    }
    if (arg === "--") {
      flagsEnded = true;
      continue;
    }
    if (arg === "-h") {
      flags.set("help", true);
      continue;
    }
    if (!arg.startsWith("--")) throw usageError(`Cannot use ${arg}: no such flag (see fs help)`);
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const kind = GLOBAL_FLAGS[name] ??
      (command === null ? undefined : COMMANDS[command].flags[name]);
    if (kind === undefined) {
      const where = command === null
        ? "before the command (command flags go after it)"
        : `with ${command}`;
      const help = command === null ? "fs help" : `fs help ${command}`;
      throw usageError(`Cannot use --${name} ${where}: no such flag (see ${help})`);
    }
    if (kind === "boolean") {
      if (eq >= 0) throw usageError(`Cannot use ${arg}: --${name} takes no value`);
      flags.set(name, true);
      continue;
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      const next = args[i + 1];
      if (next === undefined) throw usageError(`Cannot use --${name}: it needs a value`);
      value = next;
      i++;
    }
    if (kind === "list") {
      const list = flags.get(name);
      const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
      if (Array.isArray(list)) list.push(...items);
      else flags.set(name, items);
    } else {
      if (flags.has(name)) throw usageError(`Cannot use --${name}: given twice`);
      flags.set(name, value);
    }
  }
  return { command, positional, flags };
}

function stringFlag(flags: Map<string, FlagValue>, name: string): string | null {
  const value = flags.get(name);
  return typeof value === "string" ? value : null;
}

function boolFlag(flags: Map<string, FlagValue>, name: string): boolean {
  return flags.get(name) === true;
}

/** A strict decimal integer of at least `min`, or a usage error naming the flag. */
export function parseInteger(text: string, what: string, min: number): number {
  const value = /^-?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    throw usageError(`Cannot use ${what} ${JSON.stringify(text)}: must be an integer ≥ ${min}`);
  }
  return value;
}

function intFlag(flags: Map<string, FlagValue>, name: string, min: number): number | null {
  const text = stringFlag(flags, name);
  return text === null ? null : parseInteger(text, `--${name}`, min);
}

/** `-` is standard input, `@path` a file, anything else the JSON text itself. */
export function sourceOf(arg: string | undefined): Source {
  if (arg === undefined || arg === "-") return { from: "stdin" };
  if (arg.startsWith("@")) return { from: "file", path: arg.slice(1) };
  return { from: "arg", text: arg };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `--after` of a read: `{"<partition>": offset}`, or a write's whole answer
 * (`{"offsets": {…}}`), so `--after "$(fs put … --json)"` reads that write.
 */
export function parseOffsets(text: string, what: string): Offsets {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw usageError(`Cannot use ${what}: not JSON (expected {"<partition>": offset})`);
  }
  if (isObject(value) && isObject(value.offsets)) value = value.offsets;
  if (!isObject(value)) {
    throw usageError(`Cannot use ${what}: expected {"<partition>": offset}`);
  }
  for (const [partition, offset] of Object.entries(value)) {
    if (!/^\d+$/.test(partition) || !Number.isSafeInteger(offset)) {
      throw usageError(
        `Cannot use ${what}: ${JSON.stringify(partition)}: ${
          JSON.stringify(offset)
        } is not a partition and an offset`,
      );
    }
  }
  return value as Offsets;
}

/** An `http(s)://host[:port]` base URL without a trailing slash, or a usage error. */
export function parseBaseUrl(text: string, what: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(`Cannot use ${what} ${JSON.stringify(text)}: not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw usageError(`Cannot use ${what} ${JSON.stringify(text)}: must be http:// or https://`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw usageError(`Cannot use ${what} ${JSON.stringify(text)}: no query or fragment`);
  }
  return url.href.replace(/\/+$/, "");
}

function nonEmpty(value: string | undefined): string | null {
  return value === undefined || value === "" ? null : value;
}

function build(
  name: CommandName,
  positional: readonly string[],
  flags: Map<string, FlagValue>,
  env: (name: string) => string | undefined,
): Command {
  const spec = COMMANDS[name];
  const min = spec.args.length - spec.optional;
  if (positional.length < min || positional.length > spec.args.length) {
    const shape = spec.args.map((a, i) => i < min ? `<${a}>` : `[${a}]`).join(" ");
    throw usageError(
      `Cannot run ${name}: expected ${
        shape || "no arguments"
      }, got ${positional.length} (see fs help ${name})`,
    );
  }
  const [a, b, c] = positional;
  switch (name) {
    case "help": {
      if (a !== undefined && !isCommandName(a)) {
        throw usageError(`Cannot help with ${JSON.stringify(a)}: no such command`);
      }
      return { kind: "help", topic: a ?? null, requested: true };
    }
    case "put": {
      const ttlMs = intFlag(flags, "ttl-ms", 1);
      const expiresAt = intFlag(flags, "expires-at", 0);
      if (ttlMs !== null && expiresAt !== null) {
        throw usageError("Cannot put: give --ttl-ms or --expires-at, not both");
      }
      return {
        kind: "put",
        pk: a!,
        sk: b!,
        data: sourceOf(c!),
        ttlMs,
        expiresAt,
        condition: stringFlag(flags, "if"),
      };
    }
    case "get": {
      const after = stringFlag(flags, "after");
      return {
        kind: "get",
        pk: a!,
        sk: b!,
        after: after === null ? null : parseOffsets(after, "--after"),
        waitMs: intFlag(flags, "wait-ms", 0),
      };
    }
    case "delete":
      return { kind: "delete", pk: a!, sk: b!, condition: stringFlag(flags, "if") };
    case "list": {
      const after = stringFlag(flags, "after");
      return {
        kind: "list",
        pk: a!,
        skPrefix: stringFlag(flags, "sk-prefix"),
        startAfter: stringFlag(flags, "start-after"),
        endBefore: stringFlag(flags, "end-before"),
        limit: intFlag(flags, "limit", 1),
        reverse: boolFlag(flags, "reverse"),
        condition: stringFlag(flags, "if"),
        ifStop: boolFlag(flags, "if-stop"),
        all: boolFlag(flags, "all"),
        after: after === null ? null : parseOffsets(after, "--after"),
        waitMs: intFlag(flags, "wait-ms", 0),
      };
    }
    case "batch": {
      const chunk = intFlag(flags, "chunk", 1);
      const split = boolFlag(flags, "split");
      if (chunk !== null && !split) throw usageError("Cannot use --chunk without --split");
      return { kind: "batch", body: sourceOf(a), split, chunk: chunk ?? DEFAULT_CHUNK };
    }
    case "watch": {
      const after = stringFlag(flags, "after");
      const partitions = flags.get("partitions");
      return {
        kind: "watch",
        pk: stringFlag(flags, "pk"),
        skPrefix: stringFlag(flags, "sk-prefix"),
        partitions: Array.isArray(partitions)
          ? partitions.map((p) => parseInteger(p, "--partitions", 0))
          : null,
        after: after === null
          ? null
          : after.trimStart().startsWith("{")
          ? parseOffsets(after, "--after")
          : after,
        count: intFlag(flags, "count", 1),
        once: boolFlag(flags, "once"),
      };
    }
    case "status": {
      const given = flags.get("internal-url");
      const fromEnv = nonEmpty(env("FIRESCROLL_INTERNAL_URL"));
      const raw = Array.isArray(given)
        ? given
        : fromEnv === null
        ? [DEFAULT_INTERNAL_URL]
        : fromEnv.split(",").map((s) => s.trim()).filter((s) => s !== "");
      if (raw.length === 0) throw usageError("Cannot run status: --internal-url names no node");
      if (raw.length > INTERNAL_URLS_MAX) {
        throw usageError(`Cannot run status: more than ${INTERNAL_URLS_MAX} internal URLs`);
      }
      return {
        kind: "status",
        internalUrls: raw.map((u) => parseBaseUrl(u, "--internal-url")),
        secret: stringFlag(flags, "cluster-secret") ?? nonEmpty(env("CLUSTER_SECRET")),
      };
    }
    case "wait-ready":
      return { kind: "wait-ready", intervalMs: intFlag(flags, "interval-ms", 1) ?? 250 };
    case "backup": {
      if (a !== undefined && a !== "now" && a !== "list" && a !== "restore") {
        throw usageError(`Cannot run backup ${JSON.stringify(a)}: expected now, list or restore`);
      }
      return { kind: "backup", action: a ?? null };
    }
  }
}

/**
 * Reads the command line. `env` gives the environment's defaults (`FIRESCROLL_URL`,
 * `FIRESCROLL_TOKEN`, `FIRESCROLL_INTERNAL_URL`, `CLUSTER_SECRET`). Throws a usage
 * {@linkcode CliError} for anything it cannot use. `--help` wins over everything (the help of
 * the command it goes with, if any), then `--version`; no command at all asks for the help.
 */
export function parseArgs(
  args: readonly string[],
  env: (name: string) => string | undefined,
): Invocation {
  // --help and --version answer even when the rest of the line is wrong; help wins, as in main.ts.
  const end = args.indexOf("--");
  const options = end < 0 ? args : args.slice(0, end);
  const help = options.includes("--help") || options.includes("-h");
  if (options.includes("--version") && !help) {
    return { globals: defaultGlobals(env), command: VERSION };
  }
  let tokens: Tokens;
  try {
    tokens = tokenize(args);
  } catch (error) {
    if (help) {
      const name = options.find(isCommandName) ?? null;
      const command: Command = { kind: "help", topic: name, requested: true };
      return { globals: defaultGlobals(env), command };
    }
    throw error;
  }
  const { command, positional, flags } = tokens;
  if (boolFlag(flags, "help")) {
    const topic = command === "help" ? null : command;
    return { globals: defaultGlobals(env), command: { kind: "help", topic, requested: true } };
  }
  const url = stringFlag(flags, "url") ?? nonEmpty(env("FIRESCROLL_URL")) ?? DEFAULT_URL;
  const timeout = stringFlag(flags, "timeout-ms");
  const globals: Globals = {
    url: parseBaseUrl(url, flags.has("url") ? "--url" : "FIRESCROLL_URL"),
    token: stringFlag(flags, "token") ?? nonEmpty(env("FIRESCROLL_TOKEN")),
    json: boolFlag(flags, "json"),
    timeoutMs: timeout === null ? null : parseInteger(timeout, "--timeout-ms", 1),
  };
  if (command === null) {
    return { globals, command: { kind: "help", topic: null, requested: false } };
  }
  return { globals, command: build(command, positional, flags, env) };
}

const VERSION: Command = { kind: "version" };

function defaultGlobals(env: (name: string) => string | undefined): Globals {
  return {
    url: nonEmpty(env("FIRESCROLL_URL")) ?? DEFAULT_URL,
    token: null,
    json: false,
    timeoutMs: null,
  };
}
