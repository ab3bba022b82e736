/**
 * A reader of `text/event-stream` bodies (the WHATWG "server-sent events" parsing rules), for
 * clients of `/records/watch`: the tests, the benchmarks, the CLI.
 *
 * @module
 */

/** One dispatch of the stream. */
export interface SseEvent {
  /** The `event:` type (`message` when none); `""` for a dispatch without data (an id update). */
  readonly event: string;
  /** The `data:` lines joined by `\n`. */
  readonly data: string;
  /** The last event id at this dispatch (`id:` of this or an earlier frame), or null. */
  readonly id: string | null;
}

/** Longest line accepted; a longer one ends the read with an error (a stream gone wrong). */
export const SSE_LINE_CHARS_MAX = 64 * 1024 * 1024;

/** How to read a stream. */
export interface ReadSseOptions {
  /** Aborting it ends the read (a read that waits included) and cancels the body. */
  readonly signal?: AbortSignal;
  /** Called with each comment line's text (after the `:`), which is otherwise skipped. */
  readonly onComment?: (text: string) => void;
}

/** The events of `body`, as they arrive. Ending the iteration cancels the body. */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  options: ReadSseOptions = {},
): AsyncGenerator<SseEvent> {
  const { signal, onComment } = options;
  const decoder = new TextDecoder();
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  if (signal?.aborted) cancel();
  let buffer = "";
  let data: string[] = [];
  let type = "";
  let id: string | null = null;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      while (true) {
        const end = buffer.indexOf("\n", start);
        if (end < 0) break;
        let line = buffer.slice(start, end);
        start = end + 1;
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          yield data.length === 0
            ? { event: "", data: "", id }
            : { event: type === "" ? "message" : type, data: data.join("\n"), id };
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) {
          onComment?.(line.slice(1).trimStart());
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") data.push(text);
        else if (field === "event") type = text;
        else if (field === "id" && !text.includes("\0")) id = text;
      }
      buffer = buffer.slice(start);
      if (buffer.length > SSE_LINE_CHARS_MAX) {
        throw new Error(`an event-stream line is longer than ${SSE_LINE_CHARS_MAX} characters`);
      }
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    await reader.cancel().catch(() => {});
  }
}
