/**
 * The command-line client of FireScroll for Deno (`deno task fs`, or one binary from
 * `deno compile`; docs/cli.md). It owns nothing of the server: it speaks the public HTTP API
 * (docs/api.md) and reads the internal port's `/internal/status`, like any client would.
 *
 * - `args.ts` reads the command line; `help.ts` is its help; `exit.ts` the exit codes.
 * - `client.ts` is HTTP with timeouts and problem answers; `output.ts` the streams and printing.
 * - One file per group of commands: `records.ts` (put, get, delete, list, batch), `watch.ts`,
 *   `status.ts`, `ready.ts` (wait-ready); `run.ts` dispatches and turns errors into exit codes.
 *
 * It imports single files of the server (`util/json.ts`, `util/sleep.ts`, `watch/sse.ts`,
 * `api/wire.ts` types, `version.ts`), never a component's mod.ts, so the compiled binary carries no LMDB or Kafka code.
 *
 * @module
 */
export {
  type Command,
  DEFAULT_INTERNAL_URL,
  DEFAULT_URL,
  type Globals,
  type Invocation,
  parseArgs,
} from "./args.ts";
export { CliError, EXIT, type ExitCode } from "./exit.ts";
export { denoIo, type Io } from "./output.ts";
export { execute, parse, run } from "./run.ts";
