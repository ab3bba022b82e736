import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { listQuery } from "../../tests/_helpers.ts";
import { createMetrics } from "../metrics/mod.ts";
import { CHAIN_ZERO, PartitionStore } from "../store/mod.ts";
import {
  applyBatch,
  type ApplyContext,
  applyDecodedBatch,
  type LogRecord,
  nextChain,
} from "./apply.ts";
import { ConditionCache } from "./conditions.ts";
import { decodeMutation, type Mutation } from "./message.ts";
import { encodePlain, plainOpCount } from "./plain.ts";
import { scanPlain } from "./plain_scan.ts";

const MAP_BYTES = 32 * 1024 * 1024;
const T0 = 1_796_000_000_000;
const encoder = new TextEncoder();
const DAY_MS = 86_400_000;

function mutation(m: Record<string, unknown>): Mutation {
  const decoded = decodeMutation(encoder.encode(JSON.stringify(m)));
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.mutation;
}

Deno.test("encodePlain: ops without conditions are plain; a condition or a multi-op atomic message is not", () => {
  const put = { op: "put", pk: "p", sk: "s", data: { a: 1 } };
  equal(plainOpCount(encodePlain(mutation({ v: 1, atomic: false, ops: [put, put] }))!), 2);
  equal(plainOpCount(encodePlain(mutation({ v: 1, atomic: true, ops: [put] }))!), 1);
  equal(plainOpCount(encodePlain(mutation({ v: 1, tick: true }))!), 0);
  equal(encodePlain(mutation({ v: 1, atomic: true, ops: [put, put] })), null);
  equal(encodePlain(mutation({ v: 1, atomic: false, ops: [put, { ...put, if: "true" }] })), null);
});

/**
 * A log that visits what apply decides per op: new keys, updates (created_at kept), deletes of
 * present, absent and expired-but-not-purged records, ttl_ms and expires_at (past and future),
 * expiries purged by later messages, atomic messages, conditions, ticks, poison, unicode and
 * numbers a double would change.
 */
function theLog(
  data = `{"n":1e400,"m":9007199254740993,"f":1.50,"s":"\\u00e9` + "\u{1F600}" + `\\n"}`,
): LogRecord[] {
  const values: unknown[] = [];
  for (let i = 0; i < 400; i++) {
    const key = { pk: `k${i % 23}`, sk: i % 3 === 0 ? "ü/§" : `s${i % 5}` };
    const data = "DATA";
    const r = i % 17;
    if (r === 0) values.push({ v: 1, atomic: false, ops: [{ op: "delete", ...key }] });
    else if (r === 1) {
      values.push({ v: 1, atomic: false, ops: [{ op: "put", ...key, data, ttl_ms: 1500 }] });
    } else if (r === 2) {
      values.push({
        v: 1,
        atomic: false,
        ops: [{ op: "put", ...key, data, expires_at: T0 - DAY_MS }],
      });
    } else if (r === 3) {
      values.push({
        v: 1,
        atomic: false,
        ops: [{ op: "put", ...key, data, expires_at: T0 + i * 900 }],
      });
    } else if (r === 4) values.push({ v: 1, atomic: true, ops: [{ op: "put", ...key, data }] });
    else if (r === 5) {
      values.push({
        v: 1,
        atomic: true,
        ops: [{ op: "put", ...key, data }, { op: "delete", ...key }, {
          op: "put",
          ...key,
          data: i,
        }],
      });
    } else if (r === 6) {
      values.push({
        v: 1,
        atomic: false,
        ops: [{ op: "put", ...key, data, if: "record == null" }],
      });
    } else if (r === 7) values.push({ v: 1, tick: true });
    else if (r === 8) values.push("not a mutation");
    else if (r === 9) {
      // Two ops on one key in one plain message, and a delete right after a put.
      values.push({
        v: 1,
        atomic: false,
        ops: [{ op: "put", ...key, data }, { op: "put", ...key, data: [i] }, {
          op: "delete",
          pk: key.pk,
          sk: "absent",
        }],
      });
    } else if (r === 10) {
      // A delete of a record expired but not yet purged (the next message purges it): a no-op.
      values.push({
        v: 1,
        atomic: false,
        ops: [{ op: "put", ...key, data, expires_at: T0 - DAY_MS }, { op: "delete", ...key }],
      });
    } else values.push({ v: 1, atomic: false, ops: [{ op: "put", ...key, data }] });
  }
  return values.map((v, i) => {
    // `data` with numbers a double would change (kept as sent), unicode and escapes: by default
    // not ASCII, so that applyBatch decodes every message the long way.
    const text = typeof v === "string"
      ? v
      : JSON.stringify(v).replaceAll(`"DATA"`, `{"i":${i},${data.slice(1)}`);
    return { offset: 3 * i, timestamp: T0 + i * 1000, value: encoder.encode(text) };
  });
}

async function withStore(body: (store: PartitionStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_plain_test_" });
  const store = PartitionStore.open({
    dir,
    namespace: "plain",
    partition: 1,
    mapBytes: MAP_BYTES,
    changesRetainMs: DAY_MS,
  });
  try {
    await body(store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a batch applied from plain ops and a given chain leaves the file byte for byte as applying its messages does", async () => {
  const log = theLog();
  const ctx = (): ApplyContext => ({
    conditions: new ConditionCache(100),
    metrics: createMetrics(),
    now: () => T0,
  });
  const state = (store: PartitionStore) => ({
    applied: store.applied,
    digest: store.digest,
    count: store.count(),
    changes: store.changesAfter({ offset: -1, index: null }, 10_000),
    records: Array.from({ length: 23 }, (_, k) => store.list(listQuery(`k${k}`)).records),
    history: store.historyOf("k1", "s1", null, 1000),
  });
  let want: ReturnType<typeof state> | null = null;
  await withStore(async (store) => {
    for (let i = 0; i < log.length; i += 50) await applyBatch(store, log.slice(i, i + 50), ctx());
    want = state(store);
  });
  await withStore(async (store) => {
    let chain = CHAIN_ZERO;
    let plainCount = 0;
    for (let i = 0; i < log.length; i += 50) {
      const records = log.slice(i, i + 50);
      const plain = records.map((r) => {
        chain = nextChain(chain, r.offset, r.value);
        const decoded = decodeMutation(r.value);
        const ops = decoded.ok ? encodePlain(decoded.mutation) : null;
        if (ops !== null) plainCount++;
        return ops;
      });
      await applyDecodedBatch(store, { records, plain, chain }, ctx());
    }
    // Most messages went the plain way; conditions, atomic pairs and poison did not.
    ok(plainCount > 300 && plainCount < 400, `${plainCount} plain messages`);
    const got = state(store);
    deepEqual(got, want);
  });
  // The log reached every branch it is meant to: expiries purged, records left.
  notEqual(want!.count, 0);
  ok(want!.changes.some((c) => c.kind === "expire"), "an expiry was purged");
  ok(want!.changes.some((c) => c.kind === "delete"), "a record was deleted");
});

Deno.test("messages applyBatch reads from their bytes leave the file as the same messages decoded the long way", async () => {
  const ctx = (): ApplyContext => ({
    conditions: new ConditionCache(100),
    metrics: createMetrics(),
    now: () => T0,
  });
  // ASCII data as JSON.stringify writes it: the scan takes every plain message (plain_scan.ts).
  const scanned = theLog(`{"n":1e400,"m":9007199254740993,"f":1.50,"s":"a\\u0001\\n\\"/"}`);
  // The same messages with a space after `"v":1,`: the scan declines them all.
  const spaced = scanned.map((r) => ({
    ...r,
    value: encoder.encode(new TextDecoder().decode(r.value).replace('"v":1,', '"v":1, ')),
  }));
  const taken = scanned.filter((r) => scanPlain(r.value)).length;
  ok(taken > 150, `the scan took ${taken} messages`);
  equal(spaced.filter((r) => scanPlain(r.value)).length, 0);
  const state = async (log: LogRecord[]) => {
    let out: unknown = null;
    await withStore(async (store) => {
      for (let i = 0; i < log.length; i += 50) {
        await applyBatch(store, log.slice(i, i + 50), ctx());
      }
      out = {
        // The chains differ with the bytes; the offset must not.
        offset: store.applied.offset,
        digest: store.digest,
        count: store.count(),
        changes: store.changesAfter({ offset: -1, index: null }, 10_000),
        records: Array.from({ length: 23 }, (_, k) => store.list(listQuery(`k${k}`)).records),
        history: store.historyOf("k1", "s1", null, 1000),
      };
    });
    return out;
  };
  deepEqual(await state(scanned), await state(spaced));
});
