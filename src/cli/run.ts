/**
 * The one place where a command line becomes an exit code: parse, run the command, and turn every
 * {@linkcode CliError} into its stderr line and exit code. Anything else thrown is a bug and
 * crashes loudly.
 *
 * @module
 */
import { VERSION } from "../version.ts";
import { type Invocation, parseArgs } from "./args.ts";
import { Client, REQUEST_TIMEOUT_MS } from "./client.ts";
import { CliError, EXIT, type ExitCode } from "./exit.ts";
import { commandHelp, generalHelp } from "./help.ts";
import type { Io } from "./output.ts";
import { READY_TIMEOUT_MS, waitReady } from "./ready.ts";
import { batch, type Context, del, get, list, put } from "./records.ts";
import { status } from "./status.ts";
import { watch } from "./watch.ts";

/** Parses `args`; on a usage error prints it and returns exit 2 instead. */
export function parse(args: readonly string[], io: Io): Invocation | ExitCode {
  try {
    return parseArgs(args, io.env);
  } catch (error) {
    if (error instanceof CliError) {
      io.err(`${error.line}\n`);
      return error.exitCode;
    }
    throw error;
  }
}

const BACKUP_TEXT = "Cannot run backup: nodes have no backup HTTP API. Backups run on each " +
  "node's schedule (BACKUP=1, BACKUP_INTERVAL_SEC; see the firescroll_backup_* metrics); restore " +
  "a partition file with `deno task restore --partition N --to <offset|time|latest> --out DIR` " +
  "(docs/operations.md)";

async function dispatch(
  { globals, command }: Invocation,
  io: Io,
  stop: AbortSignal,
): Promise<ExitCode> {
  const timeoutMs = globals.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const ctx: Context = { globals, io, client: new Client(globals.url, globals.token, timeoutMs) };
  switch (command.kind) {
    case "help":
      if (command.requested) {
        io.out(command.topic === null ? generalHelp(VERSION) : commandHelp(command.topic));
        return EXIT.ok;
      }
      io.err(generalHelp(VERSION));
      return EXIT.usage;
    case "version":
      io.out(`fs ${VERSION}\n`);
      return EXIT.ok;
    case "put":
      await put(ctx, command);
      return EXIT.ok;
    case "get":
      await get(ctx, command);
      return EXIT.ok;
    case "delete":
      await del(ctx, command);
      return EXIT.ok;
    case "list":
      await list(ctx, command);
      return EXIT.ok;
    case "batch":
      await batch(ctx, command);
      return EXIT.ok;
    case "watch":
      await watch(ctx, command, stop);
      return EXIT.ok;
    case "status":
      return await status(io, globals.json, command, timeoutMs);
    case "wait-ready": {
      const total = globals.timeoutMs ?? READY_TIMEOUT_MS;
      await waitReady(io, globals.json, ctx.client, command.intervalMs, total);
      return EXIT.ok;
    }
    case "backup":
      throw new CliError(EXIT.usage, "usage", BACKUP_TEXT);
  }
}

/**
 * Runs a parsed command line; resolves with the exit code. `stop` ends a `watch` (SIGINT,
 * SIGTERM); other commands finish or time out on their own.
 */
export async function execute(
  invocation: Invocation,
  io: Io,
  stop: AbortSignal = new AbortController().signal,
): Promise<ExitCode> {
  try {
    return await dispatch(invocation, io, stop);
  } catch (error) {
    if (error instanceof CliError) {
      io.err(`${error.line}\n`);
      return error.exitCode;
    }
    throw error;
  }
}

/** Parses and runs `args`: the whole client, minus the process. */
export async function run(
  args: readonly string[],
  io: Io,
  stop?: AbortSignal,
): Promise<ExitCode> {
  const invocation = parse(args, io);
  if (typeof invocation === "number") return invocation;
  return await execute(invocation, io, stop);
}
