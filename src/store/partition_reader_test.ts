import { deepEqual, equal, notEqual, rejects, throws } from "node:assert/strict";
import { chainOf, listQuery as query, openStore, withTempDir } from "../../tests/_helpers.ts";
import { AssertionError } from "../util/assert.ts";
import {
  type ListQuery,
  PartitionReader,
  type PartitionStore,
  type StoredRecord,
  StoreMismatchError,
  storePath,
} from "./mod.ts";
import type { ReaderAnswer, ReaderRequest } from "./testdata/reader_worker.ts";

const PARTITION = 3;
const NAMESPACE = "test";

function openReader(dir: string, partition = PARTITION, namespace = NAMESPACE): PartitionReader {
  return PartitionReader.open({ dir, namespace, partition });
}

/** Puts `[pk, sk, data]` rows in one transaction that reaches `offset`. */
function putRows(
  store: PartitionStore,
  offset: number,
  rows: readonly (readonly [string, string, unknown])[],
): Promise<unknown> {
  return store.write((tx) => {
    for (const [pk, sk, data] of rows) {
      tx.put(pk, sk, JSON.stringify(data), offset, 1000 + offset, 2000 + offset);
    }
    return { offset, chain: chainOf(offset) };
  });
}

function sks(records: readonly StoredRecord[]): string[] {
  return records.map((r) => r.sk);
}

/** A PartitionReader in a real Worker thread (testdata/reader_worker.ts), one request at a time. */
class WorkerReader {
  private readonly worker = new Worker(
    new URL("./testdata/reader_worker.ts", import.meta.url),
    { type: "module" },
  );
  private pending: {
    resolve(answer: ReaderAnswer): void;
    reject(error: unknown): void;
  } | null = null;

  constructor() {
    this.worker.onmessage = (event: MessageEvent<ReaderAnswer>) => {
      const pending = this.pending;
      this.pending = null;
      pending?.resolve(event.data);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      const pending = this.pending;
      this.pending = null;
      pending?.reject(new Error(`reader worker failed: ${event.message}`));
    };
  }

  /** Posts a request without waiting for an answer (for `read` with `shared`). */
  post(request: ReaderRequest): void {
    this.worker.postMessage(request);
  }

  /** Posts a request and resolves with the worker's answer. */
  ask(request: ReaderRequest): Promise<ReaderAnswer> {
    if (this.pending !== null) throw new Error("Cannot ask: a request is already in flight");
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(request);
    });
  }

  /** Like {@linkcode ask}, failing unless the worker answered ok. */
  async read(request: ReaderRequest): Promise<{ offset: number; record: StoredRecord | null }> {
    const answer = await this.ask(request);
    if (answer.kind === "error") throw new Error(`${answer.name}: ${answer.message}`);
    return answer;
  }

  terminate(): void {
    this.worker.terminate();
  }
}

/** Runs `body` with a reader in a worker, terminated afterwards whatever happens. */
async function withWorkerReader(body: (worker: WorkerReader) => Promise<void>): Promise<void> {
  const worker = new WorkerReader();
  try {
    await body(worker);
  } finally {
    worker.terminate();
  }
}

Deno.test("a reader sees a store's commit after refresh() and not before", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    try {
      await putRows(store, 0, [["a", "1", { v: 1 }]]);
      const reader = openReader(dir);
      try {
        deepEqual(reader.applied, { offset: 0, chain: chainOf(0) });
        equal(reader.get("a", "1")?.dataJson, '{"v":1}');

        // Same event-loop turn as the reader's snapshot: lmdb-js still counts it as current.
        await store.write((tx) => {
          tx.delete("a", "1");
          tx.put("a", "2", '{"v":2}', 1, 1001, 2001);
          return { offset: 1, chain: chainOf(1) };
        });
        equal(reader.get("a", "1")?.dataJson, '{"v":1}', "the held snapshot still has a/1");
        equal(reader.get("a", "2"), null, "the held snapshot does not have a/2 yet");
        deepEqual(sks(reader.list(query("a")).records), ["1"]);
        equal(reader.applied.offset, 0);

        equal(reader.refresh(), 1);
        deepEqual(reader.applied, { offset: 1, chain: chainOf(1) });
        equal(reader.get("a", "1"), null);
        deepEqual(reader.get("a", "2"), {
          pk: "a",
          sk: "2",
          dataJson: '{"v":2}',
          version: 1,
          createdAt: 1001,
          updatedAt: 2001,
          expiresAt: null,
        });
        deepEqual(sks(reader.list(query("a")).records), ["2"]);

        // After release() the next read takes a fresh snapshot by itself.
        reader.release();
        await putRows(store, 2, [["a", "3", { v: 3 }]]);
        equal(reader.get("a", "3")?.dataJson, '{"v":3}');
        deepEqual(reader.applied, { offset: 2, chain: chainOf(2) });
        await putRows(store, 3, [["a", "4", { v: 4 }]]);
        equal(reader.get("a", "4"), null, "a read after release() holds its snapshot again");
      } finally {
        await reader.close();
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reader's gets and lists equal the store's for the same records", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    const skList = ["", "a", "a/b", "a/c", "ab", "b", "b1", "b2", "b3", "é", "z", "zz", "😀"];
    const rows: [string, string, unknown][] = [];
    for (const pk of ["p", "p2", "q"]) {
      skList.forEach((sk, i) => rows.push([pk, sk, { pk, sk, n: i, odd: i % 2 === 1 }]));
    }
    try {
      await putRows(store, 0, rows);
      const reader = openReader(dir);
      try {
        for (const [pk, sk] of rows) deepEqual(reader.get(pk, sk), store.get(pk, sk));
        equal(reader.get("p", "missing"), null);
        equal(reader.get("nobody", "a"), null);

        const odd = (r: StoredRecord) => (JSON.parse(r.dataJson) as { odd: boolean }).odd;
        const even = (r: StoredRecord) => !odd(r);
        const queries: ListQuery[] = [];
        for (const reverse of [false, true]) {
          queries.push(
            query("p", { reverse }),
            query("p", { reverse, skPrefix: "a" }),
            query("p", { reverse, skPrefix: "b" }),
            query("p", { reverse, skPrefix: "none" }),
            query("p", { reverse, startAfter: "a/c" }),
            query("p", { reverse, endBefore: "b2" }),
            query("p", {
              reverse,
              startAfter: reverse ? "z" : "a",
              endBefore: reverse ? "a" : "z",
            }),
            query("p", { reverse, skPrefix: "b", startAfter: "b1" }),
            query("p", { reverse, limit: 3 }),
            query("p", { reverse, limit: 3, startAfter: "ab" }),
            query("p", { reverse, limit: 2, scanMax: 4, filter: odd }),
            query("p", { reverse, filter: even, stopOnFilter: true }),
            query("p", { reverse, filter: odd }),
            query("p2", { reverse, skPrefix: "a/" }),
            query("empty", { reverse }),
          );
        }
        let nonEmpty = 0;
        for (const q of queries) {
          const page = reader.list(q);
          deepEqual(page, store.list(q), JSON.stringify({ ...q, filter: q.filter !== null }));
          if (page.records.length > 0) nonEmpty++;
        }
        equal(nonEmpty, queries.length - 4, "only the prefix and pk without records list nothing");

        // Paging with limit/next reaches the same records in the same pages.
        for (const reverse of [false, true]) {
          let startAfter: string | null = null;
          const seen: string[] = [];
          for (let pages = 0; pages < 20; pages++) {
            const q = query("p", { reverse, limit: 4, startAfter });
            const page = reader.list(q);
            deepEqual(page, store.list(q));
            seen.push(...sks(page.records));
            if (page.next === null) break;
            startAfter = page.next;
          }
          const all = sks(store.list(query("p", { reverse })).records);
          deepEqual(seen, all);
          equal(all.length, skList.length);
        }
      } finally {
        await reader.close();
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reader in a worker sees every commit the main thread awaited before asking", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    try {
      await withWorkerReader(async (worker) => {
        equal(
          (await worker.read({ kind: "open", dir, namespace: NAMESPACE, partition: PARTITION }))
            .offset,
          -1,
        );
        let stale = 0;
        for (let offset = 0; offset < 200; offset++) {
          await putRows(store, offset, [["pk", `k${offset}`, offset]]);
          const { offset: applied, record } = await worker.read({
            kind: "read",
            pk: "pk",
            sk: `k${offset}`,
          });
          if (applied !== offset || record?.dataJson !== String(offset)) stale++;
        }
        equal(stale, 0, "stale answers out of 200");
        await worker.read({ kind: "close" });
      });
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reader in a worker sees a commit as soon as write() returns, before the writer's task ends", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    try {
      await withWorkerReader(async (worker) => {
        await worker.read({ kind: "open", dir, namespace: NAMESPACE, partition: PARTITION });
        const shared = new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT));
        const seen: [number, number][] = [];
        for (let offset = 0; offset < 50; offset++) {
          const written = putRows(store, offset, [["pk", "k", offset]]);
          worker.post({ kind: "read", pk: "pk", sk: "k", shared });
          // Blocks this thread: no microtask checkpoint, no event-loop turn since the commit.
          // ("not-equal": the worker answered before this thread began to wait.)
          notEqual(Atomics.wait(shared, 0, offset, 5000), "timed-out");
          seen.push([Atomics.load(shared, 1), Atomics.load(shared, 2)]);
          await written;
        }
        deepEqual(seen, Array.from({ length: 50 }, (_, offset) => [offset, offset]));
        await worker.read({ kind: "close" });
      });
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reader in a worker outlives the store's close and sees the store reopened at the same path", async () => {
  await withTempDir(async (dir) => {
    let store = openStore(dir, PARTITION);
    try {
      await putRows(store, 0, [["pk", "a", 0]]);
      await withWorkerReader(async (worker) => {
        await worker.read({ kind: "open", dir, namespace: NAMESPACE, partition: PARTITION });
        await store.close();
        const afterClose = await worker.read({ kind: "read", pk: "pk", sk: "a" });
        equal(afterClose.offset, 0);
        equal(afterClose.record?.dataJson, "0");

        // lmdb-js hands the reopened store the environment the worker still holds.
        store = openStore(dir, PARTITION);
        equal(store.applied.offset, 0);
        await putRows(store, 1, [["pk", "b", 1]]);
        const afterReopen = await worker.read({ kind: "read", pk: "pk", sk: "b" });
        equal(afterReopen.offset, 1);
        equal(afterReopen.record?.dataJson, "1");
        await worker.read({ kind: "close" });
      });
      // The writes of the reopened store reached the file.
      await store.close();
      store = openStore(dir, PARTITION);
      equal(store.applied.offset, 1);
      equal(store.get("pk", "b")?.dataJson, "1");
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reader keeps reading its file after another file and lock take its path", async () => {
  await withTempDir(async (dir) => {
    const path = storePath(dir, PARTITION);
    let store = openStore(dir, PARTITION);
    await putRows(store, 0, [["pk", "a", "old"]]);
    const reader = openReader(dir);
    try {
      await store.close();
      // Another file of the same partition moves in with a fresh lock file, as node.ts does.
      const other = openStore(`${dir}/other`, PARTITION);
      await putRows(other, 5, [["pk", "a", "new"]]);
      await other.close();
      await Deno.rename(storePath(`${dir}/other`, PARTITION), path);
      await Deno.remove(`${path}-lock`);
      store = openStore(dir, PARTITION);
      await putRows(store, 6, [["pk", "a", "newer"]]);

      equal(reader.refresh(), 0);
      equal(reader.get("pk", "a")?.dataJson, '"old"');
      const fresh = openReader(dir);
      equal(fresh.applied.offset, 6);
      equal(fresh.get("pk", "a")?.dataJson, '"newer"');
      await fresh.close();
    } finally {
      await reader.close();
      await store.close();
    }
  });
});

Deno.test("a store cannot open a file that only a reader in this process holds open", async () => {
  // A hazard of lmdb-js's per-process environments (see partition_reader.ts), pinned here: the
  // store gets the reader's read-only environment, and the failed open leaves it mapped.
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    await putRows(store, 0, [["pk", "a", 0]]);
    await store.close();
    const reader = openReader(dir);
    throws(() => openStore(dir, PARTITION));
    await reader.close();
    throws(() => openStore(dir, PARTITION), "the read-only environment outlives the reader");
  });
});

Deno.test("opening a reader on a missing file throws and creates nothing", async () => {
  await withTempDir(async (dir) => {
    throws(() => openReader(dir), Deno.errors.NotFound);
    throws(() => openReader(`${dir}/missing`), Deno.errors.NotFound);
    deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  });
});

Deno.test("a reader refuses the file of another partition or namespace", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    try {
      await putRows(store, 0, [["pk", "a", 0]]);
      throws(() => openReader(dir, PARTITION, "other"), StoreMismatchError);
      await store.snapshotTo(storePath(dir, PARTITION + 1));
      throws(() => openReader(dir, PARTITION + 1), StoreMismatchError);
      await Deno.writeTextFile(storePath(dir, PARTITION + 2), "not an LMDB file".repeat(1000));
      throws(() => openReader(dir, PARTITION + 2), StoreMismatchError);
      // Refusing closed what it opened: a reader of the right partition still opens.
      const reader = openReader(dir);
      equal(reader.get("pk", "a")?.dataJson, "0");
      await reader.close();
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reader never modifies the file it reads", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    const rows: [string, string, unknown][] = [];
    for (let i = 0; i < 500; i++) rows.push(["pk", `k${i}`, { i }]);
    await putRows(store, 7, rows);
    await store.close();
    const path = storePath(dir, PARTITION);
    const before = await Deno.stat(path);
    const bytes = await Deno.readFile(path);

    const reader = openReader(dir);
    equal(reader.get("pk", "k9")?.dataJson, '{"i":9}');
    equal(reader.list(query("pk", { limit: 1000 })).records.length, 500);
    equal(reader.refresh(), 7);
    reader.release();
    deepEqual(reader.applied, { offset: 7, chain: chainOf(7) });
    await reader.close();

    const after = await Deno.stat(path);
    equal(after.size, before.size);
    equal(after.mtime?.getTime(), before.mtime?.getTime());
    deepEqual(await Deno.readFile(path), bytes);
  });
});

Deno.test("a closed reader refuses every further call", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, PARTITION);
    try {
      const reader = openReader(dir);
      await reader.close();
      throws(() => reader.get("pk", "a"), AssertionError);
      throws(() => reader.list(query("pk")), AssertionError);
      throws(() => reader.refresh(), AssertionError);
      throws(() => reader.release(), AssertionError);
      throws(() => reader.applied, AssertionError);
      await rejects(reader.close(), AssertionError);
      // The store's handle on the shared environment is untouched.
      await putRows(store, 0, [["pk", "a", 0]]);
      notEqual(store.get("pk", "a"), null);
    } finally {
      await store.close();
    }
  });
});
