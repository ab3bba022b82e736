/**
 * Event ids and resume cursors of a watch stream.
 *
 * An id is the stream's position in every partition it watches: a comma-separated list of
 * `<partition>:<offset>` (after every change of that offset) or `<partition>:<offset>:<index>`
 * (after change `index` of that offset's message, when a message made several changes and the
 * stream stopped inside it). A watch of one pk is one partition, so its ids are the plain
 * `<partition>:<offset>`. A client resumes by sending the last id back (`Last-Event-ID`, which an
 * `EventSource` does by itself, or `after`), and gets exactly the changes after it.
 *
 * @module
 */
import type { ChangeCursor } from "../store/mod.ts";

/** A stream's position: one cursor per watched partition. */
export type Cursors = Map<number, ChangeCursor>;

/** `partition`'s part of an id. */
export function cursorText(partition: number, cursor: ChangeCursor): string {
  return cursor.index === null
    ? `${partition}:${cursor.offset}`
    : `${partition}:${cursor.offset}:${cursor.index}`;
}

/** The id of a stream at `cursors`, partitions in ascending order. */
export function formatId(cursors: ReadonlyMap<number, ChangeCursor>): string {
  let out = "";
  for (const partition of [...cursors.keys()].sort((a, b) => a - b)) {
    out += (out === "" ? "" : ",") + cursorText(partition, cursors.get(partition)!);
  }
  return out;
}

const ENTRY = /^(\d{1,10}):(-1|\d{1,16})(?::(\d{1,10}))?$/;

/**
 * Parses an id (see the module doc) of a namespace with `partitions` partitions; throws a
 * message (the caller's 400) when it is not one. At most one entry per partition.
 */
export function parseId(text: string, partitions: number): Cursors {
  const cursors: Cursors = new Map();
  const entries = text.split(",");
  if (entries.length > partitions) {
    throw new Error(`it has ${entries.length} entries, more than the ${partitions} partitions`);
  }
  for (const entry of entries) {
    const match = ENTRY.exec(entry.trim());
    if (match === null) {
      throw new Error(`"${entry}" is not <partition>:<offset> or <partition>:<offset>:<index>`);
    }
    const partition = Number(match[1]);
    const offset = Number(match[2]);
    const index = match[3] === undefined ? null : Number(match[3]);
    if (partition >= partitions) {
      throw new Error(`partition ${partition} is not in [0, ${partitions - 1}]`);
    }
    if (!Number.isSafeInteger(offset)) throw new Error(`offset ${match[2]} is too large`);
    if (index !== null && (index > 0xffff_ffff || offset < 0)) {
      throw new Error(`"${entry}" has an index out of range`);
    }
    if (cursors.has(partition)) throw new Error(`partition ${partition} appears twice`);
    cursors.set(partition, { offset, index });
  }
  return cursors;
}
