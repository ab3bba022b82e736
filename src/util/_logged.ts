/**
 * Test helper: the log events a piece of code writes, captured from stdout and parsed.
 *
 * @module
 */

/** The events written to stdout while `fn` runs (awaited), parsed. */
export async function logged(fn: () => void | Promise<void>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const decoder = new TextDecoder();
  const original = Deno.stdout.writeSync;
  Deno.stdout.writeSync = (bytes: Uint8Array) => {
    lines.push(decoder.decode(bytes));
    return bytes.length;
  };
  try {
    await fn();
  } finally {
    Deno.stdout.writeSync = original;
  }
  return lines.join("").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}
