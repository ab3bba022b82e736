import { deepEqual, equal, notEqual, rejects } from "node:assert/strict";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { CHAIN_ZERO, PartitionStore, type StoredRecord } from "../store/mod.ts";
import { AssertionError } from "../util/assert.ts";
import { applyBatch, type ApplyContext, type LogRecord, nextChain } from "./apply.ts";
import { ConditionCache } from "./conditions.ts";

const MAP_BYTES = 32 * 1024 * 1024;
const NOW = 1_700_000_000_000;
const encoder = new TextEncoder();

interface Fixture {
  readonly store: PartitionStore;
  readonly ctx: ApplyContext;
  readonly metrics: Metrics;
  /** Applies `batch` and returns the position reached. */
  apply(batch: readonly LogRecord[]): ReturnType<typeof applyBatch>;
}

async function withFixture(body: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_apply_test_" });
  const store = PartitionStore.open({ dir, namespace: "test", partition: 5, mapBytes: MAP_BYTES });
  const metrics = createMetrics();
  const ctx: ApplyContext = { conditions: new ConditionCache(100), metrics, now: () => NOW };
  try {
    await body({ store, ctx, metrics, apply: (batch) => applyBatch(store, batch, ctx) });
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

interface OpIn {
  op: "put" | "delete";
  pk: string;
  sk: string;
  data?: unknown;
  if?: string;
}

function put(pk: string, sk: string, data: unknown, condition?: string): OpIn {
  return condition === undefined
    ? { op: "put", pk, sk, data }
    : { op: "put", pk, sk, data, if: condition };
}

function del(pk: string, sk: string, condition?: string): OpIn {
  return condition === undefined
    ? { op: "delete", pk, sk }
    : { op: "delete", pk, sk, if: condition };
}

function message(ops: OpIn[], atomic = false): Uint8Array {
  return encoder.encode(JSON.stringify({ v: 1, atomic, ops }));
}

/** A log record at `offset`, stamped `1_000_000 + 1000 × offset` unless told otherwise. */
function at(offset: number, value: Uint8Array, timestamp = 1_000_000 + offset * 1000): LogRecord {
  return { offset, timestamp, value };
}

function data(store: PartitionStore, pk: string, sk: string): unknown {
  const record = store.get(pk, sk);
  return record === null ? undefined : JSON.parse(record.dataJson);
}

/** Every record of `pks`, in list order. */
function contents(store: PartitionStore, pks: readonly string[]): StoredRecord[] {
  return pks.flatMap((pk) =>
    store.list({
      pk,
      skPrefix: "",
      startAfter: null,
      endBefore: null,
      limit: 10_000,
      reverse: false,
      filter: null,
      stopOnFilter: false,
      scanMax: 10_000,
    }).records
  );
}

function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

/** The hash chain step computed with WebCrypto, independently of apply's node:crypto code. */
async function webCryptoChain(
  previous: string,
  offset: number,
  value: Uint8Array,
): Promise<string> {
  const input = new Uint8Array(32 + 8 + value.length);
  input.set(hexToBytes(previous), 0);
  new DataView(input.buffer).setBigUint64(32, BigInt(offset), false);
  input.set(value, 40);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function counter(family: Metrics["conditionErrors"]): number {
  return family.labels().value;
}

Deno.test("applyBatch() writes a put with version = offset and both timestamps from the log", async () => {
  await withFixture(async ({ store, apply }) => {
    const position = await apply([at(0, message([put("p", "s", { n: 1 })]), 5_000)]);
    equal(position.offset, 0);
    deepEqual(store.get("p", "s"), {
      pk: "p",
      sk: "s",
      dataJson: '{"n":1}',
      version: 0,
      createdAt: 5_000,
      updatedAt: 5_000,
      expiresAt: null,
    });
    deepEqual(store.applied, position);
  });
});

Deno.test("applyBatch() keeps created_at on update and moves updated_at to the message timestamp", async () => {
  await withFixture(async ({ store, apply }) => {
    await apply([at(3, message([put("p", "s", 1)]), 5_000)]);
    await apply([at(8, message([put("p", "s", 2)]), 9_000)]);
    deepEqual(store.get("p", "s"), {
      pk: "p",
      sk: "s",
      dataJson: "2",
      version: 8,
      createdAt: 5_000,
      updatedAt: 9_000,
      expiresAt: null,
    });
    // A delete and a re-create starts a new life.
    await apply([
      at(9, message([del("p", "s")]), 10_000),
      at(10, message([put("p", "s", 3)]), 11_000),
    ]);
    equal(store.get("p", "s")?.createdAt, 11_000);
    equal(store.get("p", "s")?.version, 10);
  });
});

Deno.test("applyBatch() applies every op of a non-atomic message in one transaction", async () => {
  await withFixture(async ({ store, apply }) => {
    await apply([at(0, message([put("p", "a", 1), put("p", "b", 2), put("q", "a", 3)]))]);
    await apply([at(1, message([del("p", "a"), put("p", "c", [true]), del("nobody", "x")]))]);
    deepEqual(contents(store, ["p", "q"]).map((r) => [r.pk, r.sk, r.dataJson, r.version]), [
      ["p", "b", "2", 0],
      ["p", "c", "[true]", 1],
      ["q", "a", "3", 0],
    ]);
  });
});

Deno.test("applyBatch() inserts only when absent with `pk == null`", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    await apply([at(0, message([put("p", "s", "first", "pk == null")]))]);
    await apply([at(1, message([put("p", "s", "second", "pk == null")]))]);
    equal(data(store, "p", "s"), "first");
    equal(store.get("p", "s")?.version, 0);
    equal(counter(metrics.conditionFalse), 1);
    equal(counter(metrics.conditionErrors), 0);
    // The offset still advances past a message whose condition was false.
    equal(store.applied.offset, 1);
  });
});

Deno.test("applyBatch() compare-and-sets with `_version == N`", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    await apply([at(4, message([put("p", "s", "v4")]))]);
    await apply([
      at(5, message([put("p", "s", "stale", "_version == 3")])),
      at(6, message([put("p", "s", "v6", "_version == 4")])),
      at(7, message([put("p", "s", "lost race", "_version == 4")])),
    ]);
    equal(data(store, "p", "s"), "v6");
    equal(store.get("p", "s")?.version, 6);
    equal(counter(metrics.conditionFalse), 2);
  });
});

Deno.test("applyBatch() skips a delete whose condition is false", async () => {
  await withFixture(async ({ store, apply }) => {
    await apply([at(0, message([put("p", "s", { n: 1 })]))]);
    await apply([at(1, message([del("p", "s", "data.n == 2")]))]);
    equal(store.get("p", "s")?.version, 0);
    await apply([at(2, message([del("p", "s", "data.n == 1 && _version == 0")]))]);
    equal(store.get("p", "s"), null);
  });
});

Deno.test("applyBatch() judges conditions on data fields, keys and timestamps", async () => {
  await withFixture(async ({ store, apply }) => {
    await apply([
      at(0, message([put("p", "s", { n: 10, tags: ["blue"], owner: { id: 7 } })]), 500),
    ]);
    const attempts: [string, boolean][] = [
      ["data.n > 5", true],
      ["data.n > 10", false],
      ["'blue' in data.tags", true],
      ["data.tags[0] == 'red'", false],
      ["data.owner.id == 7 && sk == 's' && pk == 'p'", true],
      ["_created_at == 500", true],
      ["data.missing == null", true],
    ];
    let offset = 1;
    for (const [condition, holds] of attempts) {
      const before = store.get("p", "s")!;
      await apply([
        at(offset, message([put("p", "s", { ...JSON.parse(before.dataJson) }, condition)])),
      ]);
      equal(store.get("p", "s")!.version === offset, holds, condition);
      offset++;
    }
  });
});

Deno.test("applyBatch() counts a condition that fails to evaluate as false and as an error", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    await apply([at(0, message([put("p", "s", { n: 1 })]))]);
    await apply([at(1, message([put("p", "s", "changed", "data.list[0] == 1")]))]);
    deepEqual(data(store, "p", "s"), { n: 1 });
    equal(store.get("p", "s")?.version, 0);
    equal(counter(metrics.conditionErrors), 1);
    equal(counter(metrics.conditionFalse), 1);
    // A negation of an error is still an error, never a silent true.
    await apply([at(2, message([del("p", "s", "!(data.list[0] == 1)")]))]);
    equal(store.get("p", "s")?.version, 0);
    equal(counter(metrics.conditionErrors), 2);
  });
});

Deno.test("applyBatch() counts a condition that is not a boolean, or does not parse, as an error", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    await apply([at(0, message([put("p", "s", { n: 1 })]))]);
    // Foreign producers can put anything in `if`; the API would have refused these.
    await apply([
      at(1, message([put("p", "s", "x", "data.n")])),
      at(2, message([put("p", "s", "x", "data.n + 1")])),
      at(3, message([put("p", "s", "x", "pk ==")])),
      at(4, message([put("p", "s", "x", "now() > 0")])),
      at(5, message([put("p", "s", "x", "((")])),
    ]);
    equal(store.get("p", "s")?.version, 0);
    equal(counter(metrics.conditionErrors), 5);
    equal(counter(metrics.conditionFalse), 5);
    equal(store.applied.offset, 5);
  });
});

Deno.test("applyBatch() applies nothing of an atomic message when any condition is false", async () => {
  await withFixture(async ({ store, apply }) => {
    await apply([at(0, message([put("p", "a", 1), put("p", "b", 1)]))]);
    await apply([
      at(1, message([put("p", "a", 2), del("p", "b"), put("p", "c", 2, "data.n == 1")], true)),
    ]);
    deepEqual(contents(store, ["p"]).map((r) => [r.sk, r.dataJson, r.version]), [
      ["a", "1", 0],
      ["b", "1", 0],
    ]);
    // The same ops with every condition true apply together.
    await apply([
      at(2, message([put("p", "a", 2), del("p", "b"), put("p", "c", 2, "pk == null")], true)),
    ]);
    deepEqual(contents(store, ["p"]).map((r) => [r.sk, r.dataJson, r.version]), [
      ["a", "2", 2],
      ["c", "2", 2],
    ]);
  });
});

Deno.test("applyBatch() lets later ops of an atomic message see the staged effects of earlier ones", async () => {
  await withFixture(async ({ store, apply }) => {
    await apply([at(0, message([put("p", "a", { n: 1 })]))]);
    // Delete then insert-if-absent: the insert sees the staged delete.
    await apply([at(1, message([del("p", "a"), put("p", "a", { n: 2 }, "pk == null")], true))]);
    deepEqual(data(store, "p", "a"), { n: 2 });
    equal(store.get("p", "a")?.createdAt, at(1, new Uint8Array()).timestamp);
    // Put then a condition on the staged data.
    await apply([
      at(2, message([put("p", "a", { n: 3 }), put("p", "a", { n: 4 }, "data.n == 3")], true)),
    ]);
    deepEqual(data(store, "p", "a"), { n: 4 });
    // A put followed by insert-if-absent of the same key fails, so the whole message is dropped.
    await apply([at(3, message([put("p", "b", 1), put("p", "b", 2, "pk == null")], true))]);
    equal(store.get("p", "b"), null);
    deepEqual(data(store, "p", "a"), { n: 4 });
    // The staged version is the message's offset, visible to a later compare-and-set.
    await apply([at(4, message([put("p", "c", 1), put("p", "c", 2, "_version == 4")], true))]);
    equal(data(store, "p", "c"), 2);
  });
});

Deno.test("applyBatch() judges each op of a non-atomic message alone, seeing earlier ops", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    await apply([at(0, message([put("p", "a", 1)]))]);
    await apply([at(
      1,
      message([
        put("p", "a", 2, "pk == null"), // false: skipped alone
        put("p", "b", 2, "pk == null"), // true
        put("p", "b", 3, "pk == null"), // false: sees the previous op's write
        put("p", "c", 3, "data.x == 1"), // false
        del("p", "a", "data == 1"), // true
      ]),
    )]);
    deepEqual(contents(store, ["p"]).map((r) => [r.sk, r.dataJson, r.version]), [["b", "2", 1]]);
    equal(counter(metrics.conditionFalse), 3);
  });
});

Deno.test("applyBatch() is idempotent by offset: re-delivery changes nothing", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    const batch = [
      at(0, message([put("p", "a", 1)])),
      at(1, message([put("p", "a", 2, "_version == 0")])),
      at(2, message([put("p", "b", 1, "pk == null")])),
    ];
    const first = await apply(batch);
    const snapshot = contents(store, ["p"]);
    equal(metrics.appliedMessages.labels().value, 3);
    equal(metrics.applyTransactions.labels().value, 1, "one transaction for the batch");
    deepEqual(await apply(batch), first);
    deepEqual(await apply(batch.slice(1)), first);
    deepEqual(contents(store, ["p"]), snapshot);
    deepEqual(store.applied, first);
    equal(metrics.appliedMessages.labels().value, 3);
    equal(metrics.applyTransactions.labels().value, 1, "re-delivery commits nothing");
    equal(counter(metrics.conditionFalse), 0);
    // A batch overlapping the applied prefix applies only its new tail, once.
    const more = [...batch, at(3, message([put("p", "a", 3, "_version == 1")]))];
    const second = await apply(more);
    equal(second.offset, 3);
    equal(second.chain, nextChain(first.chain, 3, more[3]!.value));
    equal(data(store, "p", "a"), 3);
    equal(metrics.appliedMessages.labels().value, 4);
    equal(metrics.applyTransactions.labels().value, 2);
  });
});

Deno.test("applyBatch() refuses a batch whose new offsets go backwards, applying none of it", async () => {
  await withFixture(async ({ store, apply }) => {
    await rejects(
      apply([at(5, message([put("p", "a", 1)])), at(3, message([put("p", "b", 1)]))]),
      AssertionError,
    );
    equal(store.get("p", "a"), null);
    deepEqual(store.applied, { offset: -1, chain: CHAIN_ZERO });
  });
});

Deno.test("applyBatch() skips, counts and chains poison messages without stopping the batch", async () => {
  await withFixture(async ({ store, apply, metrics }) => {
    const poison = [
      encoder.encode("not json"),
      new Uint8Array([0xff, 0xfe, 0x00]),
      encoder.encode(JSON.stringify({ v: 2, atomic: false, ops: [put("p", "x", 1)] })),
      encoder.encode(JSON.stringify({ v: 1, atomic: false, ops: [] })),
      encoder.encode(
        JSON.stringify({ v: 1, atomic: false, ops: [{ op: "put", pk: "", sk: "s", data: 1 }] }),
      ),
    ];
    const batch = [
      at(0, message([put("p", "a", 1)])),
      ...poison.map((value, i) => at(1 + i, value)),
      at(6, message([put("p", "b", 2)])),
    ];
    const position = await apply(batch);
    equal(position.offset, 6);
    deepEqual(contents(store, ["p"]).map((r) => [r.sk, r.version]), [["a", 0], ["b", 6]]);
    equal(metrics.poisonMessages.labels().value, 5);
    equal(metrics.appliedMessages.labels().value, 7);
    let chain = CHAIN_ZERO;
    for (const record of batch) chain = await webCryptoChain(chain, record.offset, record.value);
    equal(position.chain, chain);
  });
});

Deno.test("applyBatch() chains sha256(previous ‖ u64be(offset) ‖ value), as WebCrypto computes it", async () => {
  await withFixture(async ({ store, apply }) => {
    const batches = [
      [at(0, message([put("p", "a", 1)])), at(1, message([put("p", "b", "é😀")]))],
      [at(7, message([del("p", "a")]))], // offsets may have gaps (Kafka compaction, transactions)
      [at(2 ** 40, message([put("p", "c", null)]))], // beyond 32 bits
    ];
    let chain = CHAIN_ZERO;
    for (const batch of batches) {
      const position = await apply(batch);
      for (const record of batch) chain = await webCryptoChain(chain, record.offset, record.value);
      deepEqual(position, { offset: batch.at(-1)!.offset, chain });
    }
    equal(store.get("p", "c")?.version, 2 ** 40);
    // The offset is part of the hash: the same bytes at another offset chain differently.
    notEqual(
      await webCryptoChain(CHAIN_ZERO, 0, batches[0]![0]!.value),
      await webCryptoChain(CHAIN_ZERO, 1, batches[0]![0]!.value),
    );
  });
});

Deno.test("applyBatch() brings two stores fed the same log to equal chains and contents", async () => {
  const log: LogRecord[] = [];
  const pks = ["p", "q", "r"];
  for (let offset = 0; offset < 60; offset++) {
    const pk = pks[offset % 3]!;
    const sk = `s${offset % 4}`;
    const ops = offset % 5 === 0 ? [del(pk, sk, "data.n > 10")] : [
      put(pk, sk, { n: offset }, offset % 2 === 0 ? "pk == null" : undefined),
      put(pk, "t", offset),
    ];
    log.push(
      at(offset, offset === 33 ? encoder.encode("garbage") : message(ops, offset % 3 === 0)),
    );
  }
  await withFixture(async (a) => {
    await withFixture(async (b) => {
      // Different batching and re-deliveries must not matter.
      await a.apply(log);
      for (let i = 0; i < log.length; i += 7) await b.apply(log.slice(Math.max(0, i - 3), i + 7));
      deepEqual(a.store.applied, b.store.applied);
      deepEqual(contents(a.store, pks), contents(b.store, pks));
      equal(a.store.count(), b.store.count());
    });
  });
});

Deno.test("applyBatch() updates the offset gauge and the lag histogram", async () => {
  await withFixture(async ({ apply, metrics }) => {
    await apply([
      at(0, message([put("p", "a", 1)]), NOW - 2_000),
      at(1, message([put("p", "a", 2)]), NOW - 500),
    ]);
    equal(metrics.appliedOffset.labels("5").value, 1);
    const lag = metrics.applyLag.labels();
    equal(lag.count, 2);
    equal(lag.sum, 2.5);
    const text = metrics.registry.render();
    equal(text.includes('firescroll_apply_offset{partition="5"} 1\n'), true);
    equal(text.includes("firescroll_apply_lag_seconds_count 2\n"), true);
  });
});

Deno.test("applyBatch() stores data with every number token as the message carries it", async () => {
  await withFixture(async ({ store, apply }) => {
    const huge = "9".repeat(400);
    const dataText =
      `{"a":1e400,"b":[1e-400,9007199254740993,-0,1E5,0.1e-7,1.50,${huge}],"s":"-0"}`;
    const value = encoder.encode(
      `{"v":1,"atomic":false,"ops":[{"op":"put","pk":"p","sk":"s","data":${dataText}},` +
        `{"op":"put","pk":"p","sk":"t","data":1e400,"if":"data == null"}]}`,
    );
    await apply([at(0, value)]);
    equal(store.get("p", "s")?.dataJson, dataText);
    equal(store.get("p", "t")?.dataJson, "1e400");
    // Conditions see doubles: 1.50 is 1.5 and 1E5 is 100000.
    await apply([at(1, message([put("p", "s", 2, "data.b[5] == 1.5 && data.b[3] == 100000")]))]);
    equal(store.get("p", "s")?.dataJson, "2");
  });
});
