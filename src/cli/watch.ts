/**
 * `watch`: the changefeed (`POST /records/watch`, Server-Sent Events, docs/api.md "Watch") printed
 * as one JSON line per event, `{"id","event","data"}`. A stream the node ends (a restart, a
 * hand-over, an overflow) is resumed from the last id it carried, so no change is missed or
 * printed twice; the command ends on SIGINT/SIGTERM, after `--count` events, or with `--once`
 * when the stream ends.
 *
 * @module
 */
// sse.ts, not watch/mod.ts: the watch component's mod.ts pulls in the server (see output.ts).
import { sleep } from "../util/sleep.ts";
import { readSse } from "../watch/sse.ts";
import type { Command } from "./args.ts";
import { answerError, unreachable } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";
import { parseExact } from "./output.ts";
import type { Context } from "./records.ts";

/** Pause before resuming an ended stream: the `retry:` the node sends (1000 ms). */
export const RESUME_DELAY_MS = 1_000;

/** Failed attempts in a row to resume a stream (one per `RESUME_DELAY_MS`) before exit 4. */
export const RESUME_ATTEMPTS_MAX = 30;

/** A watch's request body, resuming after `after` when given. */
export function watchBody(
  command: Extract<Command, { kind: "watch" }>,
  after: string | Readonly<Record<string, number>> | null,
): Record<string, unknown> {
  return {
    ...(command.pk === null ? {} : { pk: command.pk }),
    ...(command.skPrefix === null ? {} : { sk_prefix: command.skPrefix }),
    ...(command.partitions === null ? {} : { partitions: command.partitions }),
    ...(after === null ? {} : { after }),
  };
}

/** One printed line of an event: its data parsed exactly (as text if it is not JSON). */
export function eventLine(id: string | null, event: string, data: string): string {
  let value: unknown;
  try {
    value = parseExact(data);
  } catch {
    value = data;
  }
  return JSON.stringify({ id, event, data: value }) + "\n";
}

/** Whether a failed (re)connection is worth another try: the node is away or busy. */
function transient(error: CliError): boolean {
  return error.exitCode === EXIT.unreachable || /^(partition_unavailable|too_many_watchers|http_5)/
    .test(error.code);
}

/**
 * Opens the stream; resolves with its body, or throws: exit 4 when the node cannot be reached
 * within the timeout, the answer's problem (exit 1) otherwise.
 */
async function connect(
  ctx: Context,
  body: Record<string, unknown>,
  stop: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const timeoutMs = ctx.client.timeoutMs;
  const connecting = new AbortController();
  const timer = setTimeout(() => connecting.abort(new DOMException("", "TimeoutError")), timeoutMs);
  try {
    const response = await ctx.client.open("POST", "/records/watch", JSON.stringify(body), {
      signal: AbortSignal.any([stop, connecting.signal]),
      timeoutMs,
    });
    if (response.status !== 200 || response.body === null) {
      throw answerError(
        response.status,
        response.headers.get("content-type"),
        await response.text(),
      );
    }
    return response.body;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw unreachable(ctx.client.base + "/records/watch", error, timeoutMs);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `watch` until `stop` aborts (exit 0), `--count` events, or a failure it cannot resume. */
export async function watch(
  ctx: Context,
  command: Extract<Command, { kind: "watch" }>,
  stop: AbortSignal,
): Promise<void> {
  let after: string | Readonly<Record<string, number>> | null = command.after;
  let printed = 0;
  let failures = 0;
  let connected = false;
  while (!stop.aborted) {
    let stream: ReadableStream<Uint8Array>;
    try {
      stream = await connect(ctx, watchBody(command, after), stop);
    } catch (error) {
      if (stop.aborted) return;
      // The first connection fails at once: a script learns of a wrong URL or token now.
      if (!connected || !(error instanceof CliError) || !transient(error)) throw error;
      if (++failures >= RESUME_ATTEMPTS_MAX) throw error;
      await sleep(RESUME_DELAY_MS, stop);
      continue;
    }
    connected = true;
    failures = 0;
    try {
      for await (const event of readSse(stream, { signal: stop })) {
        if (event.id !== null) after = event.id;
        if (event.event === "") continue;
        ctx.io.out(eventLine(event.id, event.event, event.data));
        if (command.count !== null && ++printed >= command.count) return;
      }
    } catch {
      // A connection reset ends the stream like a close: resume below.
    }
    if (command.once || stop.aborted) return;
    await sleep(RESUME_DELAY_MS, stop);
  }
}
