import { deepEqual, equal } from "node:assert/strict";
import { chainOf, openLoggingStore, withTempDir } from "../../tests/_helpers.ts";
import { changeKey, decodeChange, encodeChange, pruneBudget } from "./changes.ts";
import { type Change, PartitionReader, PartitionStore } from "./mod.ts";
import { encodeRecordKey } from "../keys/mod.ts";
import { encodeRecordValue } from "./record_codec.ts";

const HOUR = 3_600_000;

function open(dir: string, retainMs = HOUR): PartitionStore {
  return openLoggingStore(dir, retainMs);
}

type Op = readonly ["put", string, string, unknown] | readonly ["delete", string, string];

/** Applies one transaction of messages `[offset, timestamp, ops]`. */
function apply(store: PartitionStore, messages: readonly [number, number, readonly Op[]][]) {
  return store.write((tx) => {
    for (const [offset, timestamp, ops] of messages) {
      tx.message(offset, timestamp, ops.length);
      for (const op of ops) {
        if (op[0] === "put") {
          const current = tx.get(op[1], op[2]);
          const created = current?.createdAt ?? timestamp;
          tx.put(op[1], op[2], JSON.stringify(op[3]), offset, created, timestamp);
        } else tx.delete(op[1], op[2]);
      }
    }
    const last = messages[messages.length - 1]![0];
    return { offset: last, chain: chainOf(last) };
  });
}

/** A change as [offset, index, last, kind, pk, sk, data or null]. */
function brief(c: Change): unknown[] {
  return [c.offset, c.index, c.last, c.kind, c.pk, c.sk, c.record && JSON.parse(c.record.dataJson)];
}

Deno.test("apply records each put and each delete of an existing record, in log order, the last of each message flagged", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir);
    try {
      equal(store.changesSince, -1);
      await apply(store, [
        [0, 1000, [["put", "a", "1", { v: 1 }], ["put", "a", "2", { v: 2 }]]],
        [1, 1001, [["delete", "a", "1"], ["delete", "a", "missing"]]],
      ]);
      await apply(store, [[2, 1002, [["put", "a", "2", { v: 3 }]]]]);
      const all = store.changesAfter({ offset: -1, index: null }, 100);
      deepEqual(all.map(brief), [
        [0, 0, false, "put", "a", "1", { v: 1 }],
        [0, 1, true, "put", "a", "2", { v: 2 }],
        [1, 0, true, "delete", "a", "1", null],
        [2, 0, true, "put", "a", "2", { v: 3 }],
      ]);
      equal(all[3]!.record!.version, 2);
      equal(all[3]!.record!.createdAt, 1000);
      equal(all[3]!.timestamp, 1002);
      // After a whole message, after one change inside one, and bounded by the limit.
      deepEqual(store.changesAfter({ offset: 0, index: null }, 100).map((c) => c.offset), [1, 2]);
      deepEqual(store.changesAfter({ offset: 0, index: 0 }, 100).map((c) => [c.offset, c.index]), [
        [0, 1],
        [1, 0],
        [2, 0],
      ]);
      deepEqual(store.changesAfter({ offset: -1, index: null }, 2).length, 2);
      deepEqual(store.changesAfter({ offset: 2, index: null }, 100), []);
      equal(store.changesSince, -1);
      // A reader on another handle sees the same rows.
      const reader = PartitionReader.open({ dir, namespace: "test", partition: 0 });
      try {
        deepEqual(reader.changesAfter({ offset: -1, index: null }, 100).map(brief), all.map(brief));
        equal(reader.changesSince, -1);
      } finally {
        await reader.close();
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("changes older than the retention are pruned before a newer message, by log time, and changes_since follows", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir, 1000);
    try {
      await apply(store, [[0, 10_000, [["put", "a", "1", 1]]], [1, 10_500, [[
        "put",
        "a",
        "2",
        2,
      ]]]]);
      // 11_400 - 1000 = 10_400: offset 0 (10_000) is older, offset 1 (10_500) is not.
      await apply(store, [[2, 11_400, [["put", "a", "3", 3]]]]);
      deepEqual(store.changesAfter({ offset: -1, index: null }, 100).map((c) => c.offset), [1, 2]);
      equal(store.changesSince, 0);
      // Reopened, the file says the same.
      await store.close();
      const again = open(dir, 1000);
      try {
        equal(again.changesSince, 0);
        await apply(again, [[3, 20_000, [["put", "a", "4", 4]]]]);
        deepEqual(again.changesAfter({ offset: -1, index: null }, 100).map((c) => c.offset), [3]);
        equal(again.changesSince, 2);
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("pruning removes at most its budget per message, so one message's work is bounded", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir, 1000);
    try {
      const many = pruneBudget(1) + 10;
      const ops: Op[] = Array.from({ length: many }, (_, i) => ["put", "a", `k${i}`, i] as const);
      await apply(store, [[0, 0, ops]]);
      await apply(store, [[1, 5000, [["put", "b", "x", 1]]]]);
      const left = store.changesAfter({ offset: -1, index: null }, 10_000);
      // The budget of a one-op message, taken from the oldest; the rest goes with the next one.
      equal(left.length, many - pruneBudget(1) + 1);
      equal(left[0]!.index, pruneBudget(1));
      equal(store.changesSince, 0);
      await apply(store, [[2, 5001, [["put", "b", "y", 1]]]]);
      deepEqual(store.changesAfter({ offset: -1, index: null }, 100).map((c) => c.offset), [1, 2]);
    } finally {
      await store.close();
    }
  });
});

Deno.test("with retention 0 nothing is recorded and the log is whole only from the newest offset", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir, 0);
    try {
      await apply(store, [[4, 1000, [["put", "a", "1", 1]]]]);
      deepEqual(store.changesAfter({ offset: -1, index: null }, 100), []);
      equal(store.changesSince, 4);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a change row round-trips, with its previous value kept after the new one", () => {
  const key = encodeRecordKey("pk é", "sk");
  const value = encodeRecordValue('{"a":1}', 7, 5, 6);
  const previous = encodeRecordValue('{"a":0}', 3, 5, 5);
  const row = encodeChange("put", true, 6, key, value, previous);
  const change = decodeChange(changeKey(2 ** 40 + 7, 70_000), row);
  deepEqual(
    [change.offset, change.index, change.last, change.kind, change.pk, change.sk, change.timestamp],
    [2 ** 40 + 7, 70_000, true, "put", "pk é", "sk", 6],
  );
  equal(change.record!.dataJson, '{"a":1}');
  equal(change.record!.version, 7);
  const deleted = decodeChange(changeKey(1, 0), encodeChange("delete", false, 9, key, null, value));
  equal(deleted.record, null);
  equal(deleted.kind, "delete");
});
