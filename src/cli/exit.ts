/**
 * The exit codes of the command-line client, a contract scripts rely on (docs/cli.md), and the one
 * error type that carries them to `main.ts`.
 *
 * @module
 */

/** Every exit code the client uses, and nothing else. */
export const EXIT = {
  /** The command did what it was asked. */
  ok: 0,
  /** The server answered with a problem (or `get` found no record): `error: <code>: <detail>`. */
  problem: 1,
  /** The command line is wrong: unknown command or flag, missing argument, input that is not JSON. */
  usage: 2,
  /** `status`: two nodes at the same offset of a partition disagree on its chain or digest. */
  divergence: 3,
  /** A node could not be reached, or did not answer (or become ready) in time. */
  unreachable: 4,
} as const;

/** One of {@linkcode EXIT}'s values. */
export type ExitCode = typeof EXIT[keyof typeof EXIT];

/**
 * A failure the client reports as one stderr line, `error: <code>: <detail>`, and an exit code.
 * `code` is the server's problem code when the server answered with one.
 */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: ExitCode;
  /** A stable snake_case code: the problem's `code`, or one of the client's own. */
  readonly code: string;

  constructor(exitCode: ExitCode, code: string, detail: string) {
    super(detail);
    this.name = "CliError";
    this.exitCode = exitCode;
    this.code = code;
  }

  /** The stderr line (without its newline). */
  get line(): string {
    return `error: ${this.code}: ${this.message}`;
  }
}

/** A usage error (exit 2): `detail` says what is wrong with the command line. */
export function usageError(detail: string): CliError {
  return new CliError(EXIT.usage, "usage", detail);
}
