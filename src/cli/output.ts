/**
 * What the client reads and writes: standard streams, files and the environment behind one
 * {@linkcode Io} (so commands run in tests without a process), JSON that keeps every number as the
 * server sent it, and aligned text tables.
 *
 * @module
 */
// The client imports single files of other components, not their mod.ts: a mod.ts would pull the
// server (LMDB, kafkajs) into `deno compile`'s binary. These two import nothing but an assert.
import { JsonRefusedError, parseJsonExact } from "../util/json.ts";
import { usageError } from "./exit.ts";

/** The process around a command. */
export interface Io {
  /** Writes `text` to standard output as is. */
  out(text: string): void;
  /** Writes `text` to standard error as is. */
  err(text: string): void;
  /** All of standard input as text. */
  readStdin(): Promise<string>;
  /** A file's text. */
  readFile(path: string): Promise<string>;
  /** An environment variable. */
  env(name: string): string | undefined;
}

const encoder = new TextEncoder();

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  try {
    while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
  } catch (error) {
    // The reader went away (`fs list … | head`): like a C program on SIGPIPE, stop quietly.
    if (error instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    throw error;
  }
}

/** The real process: Deno's standard streams, files and environment. */
export const denoIo: Io = {
  out: (text) => writeAll(Deno.stdout, text),
  err: (text) => writeAll(Deno.stderr, text),
  readStdin: () => {
    // `fs batch` with no argument at a prompt would otherwise seem to hang.
    if (Deno.stdin.isTerminal()) {
      writeAll(Deno.stderr, "reading JSON from stdin (Ctrl-D ends it)\n");
    }
    return new Response(Deno.stdin.readable).text();
  },
  readFile: (path) => Deno.readTextFile(path),
  env: (name) => Deno.env.get(name),
};

/**
 * Parses JSON so that `JSON.stringify` gives every number token back as written (`1e400`,
 * `9007199254740993`, `1.50`): records print exactly as the server stores them.
 */
export function parseExact(text: string): unknown {
  return parseJsonExact(text);
}

/**
 * Parses JSON the user gave (an argument, stdin, a file) as the server will: numbers exact, a
 * member named twice or nesting deeper than 512 refused. Not JSON: a usage error naming `what`.
 */
export function parseInput(text: string, what: string): unknown {
  try {
    return parseJsonExact(text, { refuseDuplicates: true });
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof JsonRefusedError) {
      throw usageError(`Cannot read ${what}: ${error.message}`);
    }
    throw error;
  }
}

/** A value as output: one compact line with `--json`, indented otherwise. */
export function render(value: unknown, json: boolean): string {
  return (json ? JSON.stringify(value) : JSON.stringify(value, null, 2)) + "\n";
}

/** A string as a table cell: as is when it is printable and has no spaces, JSON-quoted if not. */
export function cell(text: string): string {
  return text !== "" && /^[^\s\p{C}"]+$/u.test(text) ? text : JSON.stringify(text);
}

/**
 * Text columns padded to their widest cell, two spaces apart; the last column is not padded.
 * `widths` (updated in place) carries widths from one call to the next, so pages of one listing
 * line up as far as their cells allow.
 */
export function tableLines(rows: readonly (readonly string[])[], widths: number[] = []): string {
  for (const row of rows) {
    for (let i = 0; i < row.length - 1; i++) {
      widths[i] = Math.max(widths[i] ?? 0, row[i]!.length);
    }
  }
  let out = "";
  for (const row of rows) {
    out += row.map((c, i) => i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join("  ")
      .trimEnd() + "\n";
  }
  return out;
}
