import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { listQuery as query } from "../../tests/_helpers.ts";
import { AssertionError } from "../util/assert.ts";
import {
  CHAIN_ZERO,
  type ListQuery,
  PartitionStore,
  type StoredRecord,
  StoreMismatchError,
  storePath,
} from "./mod.ts";

const MAP_BYTES = 32 * 1024 * 1024;
const encoder = new TextEncoder();

function chainOf(n: number): string {
  return n.toString(16).padStart(64, "0");
}

/** Runs `body` with a store in a fresh temp dir; closes it and removes the dir afterwards. */
async function withStore(
  body: (store: PartitionStore, dir: string) => Promise<void> | void,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_store_test_" });
  const store = PartitionStore.open({ dir, namespace: "test", partition: 3, mapBytes: MAP_BYTES });
  try {
    await body(store, dir);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Puts `data` at each `[pk, sk]` in one transaction that reaches `offset`. */
function putAll(
  store: PartitionStore,
  offset: number,
  keys: readonly (readonly [string, string])[],
  data: (pk: string, sk: string) => unknown = (pk, sk) => ({ pk, sk }),
) {
  return store.write((tx) => {
    for (const [pk, sk] of keys) {
      tx.put(pk, sk, JSON.stringify(data(pk, sk)), offset, 1000 + offset, 2000 + offset);
    }
    return { offset, chain: chainOf(offset) };
  });
}

function sks(records: readonly StoredRecord[]): string[] {
  return records.map((r) => r.sk);
}

function byUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** Pages through a list query to the end, checking every page's size and cursor. */
function listAll(store: PartitionStore, q: ListQuery): { sks: string[]; pages: number } {
  const out: string[] = [];
  let startAfter = q.startAfter;
  for (let pages = 1; pages < 1000; pages++) {
    const page = store.list({ ...q, startAfter });
    ok(page.records.length <= q.limit, "a page holds at most limit records");
    out.push(...sks(page.records));
    if (page.next === null) return { sks: out, pages };
    startAfter = page.next;
  }
  throw new Error("list paging did not end");
}

Deno.test("PartitionStore starts empty at offset -1 with the zero chain", async () => {
  await withStore((store) => {
    deepEqual(store.applied, { offset: -1, chain: CHAIN_ZERO });
    equal(store.get("p", "s"), null);
    equal(store.count(), 0);
    deepEqual(store.list(query("p")), { records: [], next: null });
  });
});

Deno.test("PartitionStore.write() puts, overwrites and deletes records", async () => {
  await withStore(async (store) => {
    const position = await store.write((tx) => {
      tx.put("p", "s", '{"a":[1,"x",null]}', 0, 111, 222);
      tx.put("p", "t", "null", 0, 111, 222);
      return { offset: 0, chain: chainOf(1) };
    });
    deepEqual(position, { offset: 0, chain: chainOf(1) });
    deepEqual(store.get("p", "s"), {
      pk: "p",
      sk: "s",
      dataJson: '{"a":[1,"x",null]}',
      version: 0,
      createdAt: 111,
      updatedAt: 222,
      expiresAt: null,
    });
    equal(store.get("p", "t")?.dataJson, "null");
    equal(store.count(), 2);

    await store.write((tx) => {
      tx.put("p", "s", '"v2"', 4, 111, 444);
      tx.delete("p", "t");
      tx.delete("p", "never-existed");
      return { offset: 4, chain: chainOf(2) };
    });
    deepEqual(store.get("p", "s"), {
      pk: "p",
      sk: "s",
      dataJson: '"v2"',
      version: 4,
      createdAt: 111,
      updatedAt: 444,
      expiresAt: null,
    });
    equal(store.get("p", "t"), null);
    equal(store.count(), 1);
    deepEqual(store.applied, { offset: 4, chain: chainOf(2) });
  });
});

Deno.test("PartitionStore.write() lets a transaction read its own writes", async () => {
  await withStore(async (store) => {
    const seen: (string | null)[] = [];
    await store.write((tx) => {
      seen.push(tx.get("p", "s")?.dataJson ?? null);
      tx.put("p", "s", "1", 0, 1, 1);
      seen.push(tx.get("p", "s")?.dataJson ?? null);
      tx.delete("p", "s");
      seen.push(tx.get("p", "s")?.dataJson ?? null);
      tx.put("p", "s", "2", 0, 1, 1);
      return { offset: 0, chain: chainOf(0) };
    });
    deepEqual(seen, [null, "1", null]);
    equal(store.get("p", "s")?.dataJson, "2");
  });
});

Deno.test("PartitionStore.write() returning null leaves the position unchanged", async () => {
  await withStore(async (store) => {
    await putAll(store, 2, [["p", "s"]]);
    deepEqual(await store.write(() => null), { offset: 2, chain: chainOf(2) });
    deepEqual(store.applied, { offset: 2, chain: chainOf(2) });
  });
});

Deno.test("PartitionStore keeps records, offset and chain across close and reopen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_store_test_" });
  try {
    const options = { dir, namespace: "test", partition: 7, mapBytes: MAP_BYTES };
    const first = PartitionStore.open(options);
    try {
      equal(first.path, storePath(dir, 7));
      await putAll(first, 9, [["p", "a"], ["p", "b"], ["q", "a"]]);
    } finally {
      await first.close();
    }
    const second = PartitionStore.open(options);
    try {
      deepEqual(second.applied, { offset: 9, chain: chainOf(9) });
      equal(second.count(), 3);
      deepEqual(sks(second.list(query("p")).records), ["a", "b"]);
      equal(second.get("q", "a")?.version, 9);
      // Offsets keep moving forward from where the file left off.
      await rejects(putAll(second, 9, [["p", "c"]]), AssertionError);
      await putAll(second, 10, [["p", "c"]]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PartitionStore.write() refuses an offset that does not move forward, writing nothing", async () => {
  await withStore(async (store) => {
    await putAll(store, 5, [["p", "a"]]);
    for (const offset of [5, 4, -1]) {
      await rejects(
        store.write((tx) => {
          tx.put("p", "rolled-back", "1", 5, 1, 1);
          tx.delete("p", "a");
          return { offset, chain: chainOf(99) };
        }),
        (error: unknown) => error instanceof AssertionError && /move forward/.test(error.message),
      );
    }
    // The failed transactions were rolled back whole: records, offset and chain.
    equal(store.get("p", "rolled-back"), null);
    equal(store.get("p", "a")?.version, 5);
    deepEqual(store.applied, { offset: 5, chain: chainOf(5) });
    // And the store still accepts the next offset.
    await putAll(store, 6, [["p", "b"]]);
    deepEqual(sks(store.list(query("p")).records), ["a", "b"]);
  });
});

Deno.test("PartitionStore.write() rolls back everything when the transaction body throws", async () => {
  await withStore(async (store) => {
    await putAll(store, 0, [["p", "a"]]);
    await rejects(
      store.write((tx) => {
        tx.put("p", "b", "1", 1, 1, 1);
        tx.delete("p", "a");
        throw new Error("boom");
      }),
      /boom/,
    );
    equal(store.get("p", "b"), null);
    equal(store.get("p", "a")?.version, 0);
    equal(store.count(), 1);
    deepEqual(store.applied, { offset: 0, chain: chainOf(0) });
  });
});

Deno.test("PartitionStore.write() refuses a write started inside another, which still commits", async () => {
  await withStore(async (store) => {
    let inner: Promise<unknown> | null = null;
    await store.write((tx) => {
      tx.put("p", "a", "1", 0, 1, 1);
      inner = putAll(store, 1, [["p", "b"]]);
      return { offset: 0, chain: chainOf(0) };
    });
    await rejects(inner!, /already has a write in flight/);
    equal(store.get("p", "a")?.version, 0);
    equal(store.get("p", "b"), null);
    deepEqual(store.applied, { offset: 0, chain: chainOf(0) });
  });
});

Deno.test("PartitionStore.open() refuses a file of another namespace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_store_test_" });
  try {
    await PartitionStore.open({ dir, namespace: "blue", partition: 0, mapBytes: MAP_BYTES })
      .close();
    throws(
      () => PartitionStore.open({ dir, namespace: "green", partition: 0, mapBytes: MAP_BYTES }),
      (error: unknown) =>
        error instanceof StoreMismatchError && error.code === "store_mismatch" &&
        /partition 0 of namespace blue, expected partition 0 of namespace green/.test(
          error.message,
        ),
    );
    // The refusal left the file usable by its owner.
    const again = PartitionStore.open({
      dir,
      namespace: "blue",
      partition: 0,
      mapBytes: MAP_BYTES,
    });
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PartitionStore.open() refuses a file of another partition", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_store_test_" });
  try {
    await PartitionStore.open({ dir, namespace: "ns", partition: 1, mapBytes: MAP_BYTES }).close();
    // An operator copies p1's file into p2's place.
    await Deno.rename(storePath(dir, 1), storePath(dir, 2));
    throws(
      () => PartitionStore.open({ dir, namespace: "ns", partition: 2, mapBytes: MAP_BYTES }),
      (error: unknown) =>
        error instanceof StoreMismatchError &&
        /holds partition 1 of namespace ns, expected partition 2/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PartitionStore.count() counts records across pks, after puts and deletes", async () => {
  await withStore(async (store) => {
    await putAll(store, 0, [["p", "a"], ["p", "b"], ["q", "a"], ["q", "b"]]);
    equal(store.count(), 4);
    await putAll(store, 1, [["p", "a"]]); // an overwrite does not add
    equal(store.count(), 4);
    await store.write((tx) => {
      tx.delete("p", "a");
      tx.delete("q", "b");
      return { offset: 2, chain: chainOf(2) };
    });
    equal(store.count(), 2);
  });
});

// Sort keys chosen so that UTF-8 order differs from JavaScript string order, with prefixes of each
// other and NUL characters; neighbouring pks hold records that must never leak into "p".
const SKS = ["", "\u0000", "a", "a\u0000", "aa", "ab", "abc", "b", "ba", "é", "€", "\uffff", "😀"];
const NEIGHBOURS: [string, string][] = [
  ["pp", "a"],
  ["p\u0000", "a"],
  ["o", "z"],
  ["q", ""],
  ["", "x"],
];

async function withListFixture(body: (store: PartitionStore) => void): Promise<void> {
  await withStore(async (store) => {
    const keys: [string, string][] = SKS.map((sk) => ["p", sk]);
    await putAll(store, 0, [...keys, ...NEIGHBOURS.filter(([pk]) => pk !== "")]);
    body(store);
  });
}

Deno.test("PartitionStore.list() returns one pk's records in UTF-8 order of sk", async () => {
  await withListFixture((store) => {
    const expected = [...SKS].sort(byUtf8);
    deepEqual(sks(store.list(query("p")).records), expected);
    deepEqual(sks(store.list(query("p", { reverse: true })).records), [...expected].reverse());
    // "\uffff" sorts before "😀" in UTF-8, after it in UTF-16.
    ok(expected.indexOf("\uffff") < expected.indexOf("😀"));
    const first = store.list(query("p", { limit: 1 })).records[0]!;
    deepEqual(first, {
      pk: "p",
      sk: "",
      dataJson: JSON.stringify({ pk: "p", sk: "" }),
      version: 0,
      createdAt: 1000,
      updatedAt: 2000,
      expiresAt: null,
    });
    deepEqual(store.list(query("nobody")), { records: [], next: null });
  });
});

Deno.test("PartitionStore.list() sk_prefix includes the exact match", async () => {
  await withListFixture((store) => {
    deepEqual(sks(store.list(query("p", { skPrefix: "a" })).records), [
      "a",
      "a\u0000",
      "aa",
      "ab",
      "abc",
    ]);
    deepEqual(sks(store.list(query("p", { skPrefix: "ab" })).records), ["ab", "abc"]);
    deepEqual(sks(store.list(query("p", { skPrefix: "abc" })).records), ["abc"]);
    deepEqual(sks(store.list(query("p", { skPrefix: "\u0000" })).records), ["\u0000"]);
    deepEqual(sks(store.list(query("p", { skPrefix: "😀" })).records), ["😀"]);
    deepEqual(sks(store.list(query("p", { skPrefix: "x" })).records), []);
    deepEqual(sks(store.list(query("p", { skPrefix: "a", reverse: true })).records), [
      "abc",
      "ab",
      "aa",
      "a\u0000",
      "a",
    ]);
  });
});

Deno.test("PartitionStore.list() start_after and end_before are exclusive, in both directions", async () => {
  await withListFixture((store) => {
    deepEqual(sks(store.list(query("p", { startAfter: "ab", endBefore: "é" })).records), [
      "abc",
      "b",
      "ba",
    ]);
    deepEqual(
      sks(store.list(query("p", { startAfter: "é", endBefore: "ab", reverse: true })).records),
      ["ba", "b", "abc"],
    );
    // A cursor that is not itself a key still bounds the range.
    deepEqual(sks(store.list(query("p", { startAfter: "a\u0001", endBefore: "b" })).records), [
      "aa",
      "ab",
      "abc",
    ]);
    // An empty start_after skips only the empty sort key.
    deepEqual(sks(store.list(query("p", { startAfter: "", limit: 2 })).records), [
      "\u0000",
      "a",
    ]);
    deepEqual(store.list(query("p", { startAfter: "b", endBefore: "b" })).records, []);
    deepEqual(store.list(query("p", { startAfter: "z", endBefore: "a" })).records, []);
  });
});

Deno.test("PartitionStore.list() pages with limit and next to the end for every range", async () => {
  await withListFixture((store) => {
    const sorted = [...SKS].sort(byUtf8);
    const prefixes = ["", "a", "ab", "é", "x", "\u0000"];
    const bounds = [null, "", "a", "aa", "a\u0001", "b", "é", "😀", "zz"];
    let checked = 0;
    for (const skPrefix of prefixes) {
      for (const startAfter of bounds) {
        for (const endBefore of bounds) {
          for (const reverse of [false, true]) {
            const inRange = sorted.filter((sk) =>
              sk.startsWith(skPrefix) &&
              (startAfter === null ||
                (reverse ? byUtf8(sk, startAfter) < 0 : byUtf8(sk, startAfter) > 0)) &&
              (endBefore === null ||
                (reverse ? byUtf8(sk, endBefore) > 0 : byUtf8(sk, endBefore) < 0))
            );
            const expected = reverse ? inRange.reverse() : inRange;
            for (const limit of [1, 2, 3, 100]) {
              const q = query("p", { skPrefix, startAfter, endBefore, reverse, limit });
              const label = JSON.stringify({ skPrefix, startAfter, endBefore, reverse, limit });
              const { sks: got, pages } = listAll(store, q);
              deepEqual(got, expected, label);
              equal(pages, Math.max(1, Math.ceil(expected.length / limit)), `pages of ${label}`);
              checked++;
            }
          }
        }
      }
    }
    equal(checked, prefixes.length * bounds.length * bounds.length * 2 * 4);
  });
});

Deno.test("PartitionStore.list() skips rows failing the filter, or stops at the first one", async () => {
  await withStore(async (store) => {
    const keys: [string, string][] = Array.from({ length: 10 }, (_, i) => ["p", `k${i}`]);
    await putAll(store, 0, keys, (_pk, sk) => ({ n: Number(sk.slice(1)) }));
    const n = (r: StoredRecord) => (JSON.parse(r.dataJson) as { n: number }).n;
    const even = (r: StoredRecord) => n(r) % 2 === 0;
    const small = (r: StoredRecord) => n(r) < 3;
    deepEqual(sks(store.list(query("p", { filter: even })).records), [
      "k0",
      "k2",
      "k4",
      "k6",
      "k8",
    ]);
    deepEqual(store.list(query("p", { filter: even, stopOnFilter: true })), {
      records: [store.get("p", "k0")!],
      next: null,
    });
    deepEqual(sks(store.list(query("p", { filter: small, stopOnFilter: true })).records), [
      "k0",
      "k1",
      "k2",
    ]);
    deepEqual(
      sks(store.list(query("p", { filter: small, stopOnFilter: true, reverse: true })).records),
      [],
    );
    // Filtered paging still reaches every match.
    deepEqual(listAll(store, query("p", { filter: even, limit: 2 })).sks, [
      "k0",
      "k2",
      "k4",
      "k6",
      "k8",
    ]);
  });
});

Deno.test("PartitionStore.list() stops after scanMax rows and returns a cursor to resume from", async () => {
  await withStore(async (store) => {
    const keys: [string, string][] = Array.from({ length: 20 }, (_, i) => [
      "p",
      `k${String(i).padStart(2, "0")}`,
    ]);
    await putAll(store, 0, keys, (_pk, sk) => ({ n: Number(sk.slice(1)) }));
    const rare = (r: StoredRecord) => (JSON.parse(r.dataJson) as { n: number }).n % 7 === 6;
    const page = store.list(query("p", { filter: rare, limit: 3, scanMax: 5 }));
    deepEqual(page, { records: [], next: "k04" });
    const second = store.list(
      query("p", { filter: rare, limit: 3, scanMax: 5, startAfter: "k04" }),
    );
    deepEqual(second, { records: [store.get("p", "k06")!], next: "k09" });
    deepEqual(listAll(store, query("p", { filter: rare, limit: 3, scanMax: 5 })), {
      sks: ["k06", "k13"],
      pages: 4,
    });
    deepEqual(listAll(store, query("p", { filter: rare, limit: 3, scanMax: 5, reverse: true })), {
      sks: ["k13", "k06"],
      pages: 4,
    });
    // Without a filter, scanMax never cuts below limit.
    equal(store.list(query("p", { limit: 5, scanMax: 5 })).records.length, 5);
  });
});
