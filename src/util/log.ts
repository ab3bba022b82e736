/**
 * Structured logs: one JSON line per state change on stdout. Never called per request on hot
 * paths.
 */

/** Severity of a log event. */
export type Level = "debug" | "info" | "warn" | "error";

const encoder = new TextEncoder();

/** Writes one event as a JSON line. `fields` must be JSON-serialisable. */
export function log(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ ts: new Date().toISOString(), level, event, ...fields }) + "\n";
  const bytes = encoder.encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** The message of an unknown thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
