import { deepEqual, equal, ok } from "node:assert/strict";
import { openLoggingStore, withTempDir } from "../../tests/_helpers.ts";
import { createMetrics } from "../metrics/mod.ts";
import { PartitionStore } from "../store/mod.ts";
import { applyBatch, type ApplyContext, type LogRecord } from "./apply.ts";
import { ConditionCache } from "./conditions.ts";
import { decodeMutation, encodeTick } from "./message.ts";

const encoder = new TextEncoder();
const HOUR = 3_600_000;

function open(dir: string, retainMs = HOUR): PartitionStore {
  return openLoggingStore(dir, retainMs);
}

const ctx = (): ApplyContext => ({
  conditions: new ConditionCache(100),
  metrics: createMetrics(),
  now: () => 0,
});

function msg(ops: Record<string, unknown>[], offset: number, timestamp: number): LogRecord {
  return { offset, timestamp, value: encoder.encode(JSON.stringify({ v: 1, atomic: false, ops })) };
}

function tick(offset: number, timestamp: number): LogRecord {
  return { offset, timestamp, value: encodeTick() };
}

/** The change log as `kind pk/sk@offset:index`. */
function changes(store: PartitionStore): string[] {
  return store.changesAfter({ offset: -1, index: null }, 1000)
    .map((c) => `${c.kind} ${c.pk}/${c.sk}@${c.offset}:${c.index}`);
}

Deno.test("a put with ttl_ms expires at its message's timestamp plus ttl_ms, judged by each later message's timestamp", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir);
    const c = ctx();
    try {
      await applyBatch(store, [
        msg([{ op: "put", pk: "a", sk: "1", data: 1, ttl_ms: 1000 }], 0, 10_000),
      ], c);
      equal(store.get("a", "1")!.expiresAt, 11_000);
      // One ms before the instant the record is there for a condition; at the instant it is not.
      await applyBatch(store, [
        msg([{ op: "put", pk: "a", sk: "1", data: "early", if: "pk == null" }], 1, 10_999),
      ], c);
      equal(store.get("a", "1")!.dataJson, "1", "at 10 999 the record is still there");
      await applyBatch(store, [msg([{ op: "put", pk: "a", sk: "2", data: 2 }], 2, 10_999)], c);
      equal(store.count(), 2);
      // The message at the instant purges it first (an expire change at its offset, index 0).
      await applyBatch(store, [
        msg([{ op: "put", pk: "a", sk: "1", data: "new", if: "pk == null" }], 3, 11_000),
      ], c);
      deepEqual(changes(store), [
        "put a/1@0:0",
        "put a/2@2:0",
        "expire a/1@3:0",
        "put a/1@3:1",
      ]);
      const fresh = store.get("a", "1")!;
      equal(fresh.dataJson, '"new"');
      equal(fresh.createdAt, 11_000, "a put over an expired record creates it anew");
      equal(fresh.expiresAt, null);
      equal(store.earliestExpiry(), null);
    } finally {
      await store.close();
    }
  });
});

Deno.test("expires_at is an absolute instant; an overwrite without one makes the record permanent", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir);
    const c = ctx();
    try {
      await applyBatch(store, [
        msg([{ op: "put", pk: "a", sk: "1", data: 1, expires_at: 50_000 }], 0, 10_000),
        msg([{ op: "put", pk: "a", sk: "2", data: 2, expires_at: 20_000 }], 1, 10_000),
      ], c);
      equal(store.earliestExpiry(), 20_000);
      await applyBatch(store, [msg([{ op: "put", pk: "a", sk: "2", data: 3 }], 2, 10_001)], c);
      equal(store.earliestExpiry(), 50_000);
      await applyBatch(store, [tick(3, 60_000)], c);
      equal(store.get("a", "1"), null);
      equal(store.get("a", "2")!.dataJson, "3");
      equal(store.earliestExpiry(), null);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a delete of an expired record that is not yet purged changes nothing: its purge says expire", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir);
    const c = ctx();
    try {
      // Offsets 0 and 1 in one transaction: the purge runs before message 1 only if due by then.
      await applyBatch(
        store,
        [msg([{ op: "put", pk: "a", sk: "1", data: 1, ttl_ms: 5 }], 0, 100)],
        c,
      );
      // At 104 it is live: no purge; the delete at 200 finds it expired (by 105) and leaves it.
      await applyBatch(store, [msg([{ op: "put", pk: "b", sk: "1", data: 1 }], 1, 104)], c);
      equal(store.count(), 2);
      await applyBatch(store, [msg([{ op: "delete", pk: "a", sk: "1" }], 2, 200)], c);
      deepEqual(changes(store), ["put a/1@0:0", "put b/1@1:0", "expire a/1@2:0"]);
      equal(store.count(), 1);
    } finally {
      await store.close();
    }
  });
});

Deno.test("replicas applying the same log in different batches end with the same records, digests, change logs and histories, pruned or not", async () => {
  await withTempDir(async (dir) => {
    const log: LogRecord[] = [];
    for (let i = 0; i < 60; i++) {
      const ops = [
        {
          op: "put",
          pk: `k${i % 7}`,
          sk: `s${i % 5}`,
          data: i,
          ...(i % 3 === 0 ? { ttl_ms: 20 + (i % 4) * 10 } : {}),
        },
        ...(i % 4 === 0 ? [{ op: "delete", pk: `k${(i + 3) % 7}`, sk: `s${(i + 1) % 5}` }] : []),
      ];
      log.push(i % 10 === 9 ? tick(i, 1000 + i * 7) : msg(ops, i, 1000 + i * 7));
    }
    // The log spans 413 ms of log time: with 150 ms kept, history is pruned as it goes.
    for (const retainMs of [HOUR, 150]) {
      const one = open(`${dir}/one-${retainMs}`, retainMs);
      const many = open(`${dir}/many-${retainMs}`, retainMs);
      try {
        for (const record of log) await applyBatch(one, [record], ctx());
        for (let i = 0; i < log.length; i += 13) {
          await applyBatch(many, log.slice(i, i + 13), ctx());
        }
        equal(one.digest, many.digest);
        equal(one.count(), many.count());
        deepEqual(changes(one), changes(many));
        equal(one.changesSince, many.changesSince);
        ok(changes(one).some((c) => c.startsWith("expire ")), "the log purged something");
        for (let k = 0; k < 7; k++) {
          for (let s = 0; s < 5; s++) {
            const versions = (store: PartitionStore) =>
              store.historyOf(`k${k}`, `s${s}`, null, 100).map((v) => v.change.offset);
            deepEqual(versions(one), versions(many), `history of k${k}/s${s}`);
          }
        }
        if (retainMs === HOUR) equal(one.changesSince, -1);
        else ok(one.changesSince > 0, "history was pruned");
      } finally {
        await one.close();
        await many.close();
      }
    }
  });
});

Deno.test("the purge before one message is bounded; the rest goes with the next ones, the same on every replica", async () => {
  await withTempDir(async (dir) => {
    const store = open(dir);
    const c = ctx();
    try {
      const ops = Array.from(
        { length: 1100 },
        (_, i) => ({ op: "put", pk: "a", sk: `${i}`, data: i, ttl_ms: 1 }),
      );
      await applyBatch(store, [msg(ops, 0, 0)], c);
      await applyBatch(store, [tick(1, 10)], c);
      // 1024 + 2 × 0 ops for a tick.
      equal(store.count(), 1100 - 1024);
      await applyBatch(store, [tick(2, 11)], c);
      equal(store.count(), 0);
    } finally {
      await store.close();
    }
  });
});

Deno.test("the message format takes ttl_ms or expires_at on a put, and a tick; anything else is poison", () => {
  const decode = (value: unknown) => decodeMutation(encoder.encode(JSON.stringify(value)));
  ok(decode({ v: 1, atomic: false, ops: [{ op: "put", pk: "a", sk: "", data: 1, ttl_ms: 5 }] }).ok);
  ok(
    decode({ v: 1, atomic: false, ops: [{ op: "put", pk: "a", sk: "", data: 1, expires_at: 0 }] })
      .ok,
  );
  ok(decode({ v: 1, tick: true }).ok);
  for (
    const op of [
      { op: "put", pk: "a", sk: "", data: 1, ttl_ms: 0 },
      { op: "put", pk: "a", sk: "", data: 1, ttl_ms: 1.5 },
      { op: "put", pk: "a", sk: "", data: 1, ttl_ms: "5" },
      { op: "put", pk: "a", sk: "", data: 1, expires_at: -1 },
      { op: "put", pk: "a", sk: "", data: 1, ttl_ms: 5, expires_at: 5 },
      { op: "delete", pk: "a", sk: "", ttl_ms: 5 },
    ]
  ) {
    equal(decode({ v: 1, atomic: false, ops: [op] }).ok, false, JSON.stringify(op));
  }
});
