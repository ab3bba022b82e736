/**
 * Watches (changefeeds): Server-Sent-Event streams of the changes apply makes, read from each
 * partition's change log (src/store/changes.ts). `hub.ts` serves them on one thread; `cursor.ts`
 * is the format of their event ids and resume cursors; `sse.ts` reads such a stream (clients).
 *
 * @module
 */
export { type Cursors, cursorText, formatId, parseId } from "./cursor.ts";
export {
  BATCH,
  type ChangeReads,
  WatchHub,
  watchHubFor,
  type WatchHubOptions,
  type WatchSource,
  type WatchSpec,
} from "./hub.ts";
export { readSse, type ReadSseOptions, SSE_LINE_CHARS_MAX, type SseEvent } from "./sse.ts";
