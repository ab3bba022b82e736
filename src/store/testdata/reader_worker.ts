/**
 * A Worker for partition_reader_test.ts: holds one {@linkcode PartitionReader} in its own thread
 * and answers the test's requests one at a time, as a serving thread would read its partitions.
 *
 * A `read` refreshes the reader, then gets one record. With `shared`, the answer goes through
 * shared memory instead of a message (`[answers so far, applied offset, record version or -1]`,
 * then `Atomics.notify` on slot 0), so a test can wait for it without leaving its task.
 *
 * @module
 */
import { PartitionReader } from "../partition_reader.ts";
import type { StoredRecord } from "../record_codec.ts";

/** What the test asks the worker. */
export type ReaderRequest =
  | {
    readonly kind: "open";
    readonly dir: string;
    readonly namespace: string;
    readonly partition: number;
  }
  | {
    readonly kind: "read";
    readonly pk: string;
    readonly sk: string;
    readonly shared?: Int32Array;
  }
  | { readonly kind: "close" };

/** What the worker answers: the reader's applied offset and the record read, or why it failed. */
export type ReaderAnswer =
  | { readonly kind: "ok"; readonly offset: number; readonly record: StoredRecord | null }
  | { readonly kind: "error"; readonly name: string; readonly message: string };

// A worker's global scope; the file is type-checked as a window script.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ReaderRequest>) => void) | null;
  postMessage(message: ReaderAnswer): void;
};

let reader: PartitionReader | null = null;

function open(): PartitionReader {
  if (reader === null) throw new Error("Cannot read: no reader is open");
  return reader;
}

async function answer(request: ReaderRequest): Promise<ReaderAnswer | null> {
  switch (request.kind) {
    case "open": {
      reader = PartitionReader.open(request);
      return { kind: "ok", offset: reader.applied.offset, record: null };
    }
    case "read": {
      const offset = open().refresh();
      const record = open().get(request.pk, request.sk);
      if (request.shared === undefined) return { kind: "ok", offset, record };
      Atomics.store(request.shared, 1, offset);
      Atomics.store(request.shared, 2, record === null ? -1 : record.version);
      Atomics.add(request.shared, 0, 1);
      Atomics.notify(request.shared, 0);
      return null;
    }
    case "close": {
      const closing = open();
      reader = null;
      await closing.close();
      return { kind: "ok", offset: -1, record: null };
    }
  }
}

scope.onmessage = (event) => {
  answer(event.data).then(
    (reply) => {
      if (reply !== null) scope.postMessage(reply);
    },
    (error: unknown) => {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      scope.postMessage({ kind: "error", name, message });
    },
  );
};
