import { equal, ok, rejects } from "node:assert/strict";
import { withTempDir } from "../../tests/_helpers.ts";
import { applyBatch, ConditionCache, encodeMutation, type LogRecord } from "../apply/mod.ts";
import { createMetrics } from "../metrics/mod.ts";
import { PartitionStore } from "../store/mod.ts";
import { MemoryObjectStore } from "./_test_util.ts";
import {
  type RestoreDecode,
  type RestorePoint,
  restoreToPoint,
  RestoreUnreachable,
} from "./replay.ts";
import { compress, encodeSegmentBody, SegmentCorruptError, segmentKey } from "./segment.ts";
import { createSnapshot, snapshotStem } from "./snapshot.ts";

const NS = "replay";
const P = 2;
const T0 = 1_796_000_000_000;
const MAP_BYTES = 32 * 1024 * 1024;
const live = () => new AbortController().signal;

/** 50 messages: puts of k{i % 7} (so later ones overwrite), a delete every tenth. */
function theLog(): LogRecord[] {
  return Array.from({ length: 50 }, (_, i) => ({
    offset: i,
    timestamp: T0 + i * 1000,
    value: encodeMutation({
      v: 1,
      atomic: false,
      ops: i % 10 === 9
        ? [{ op: "delete", pk: `k${i % 7}`, sk: "s" }]
        : [{ op: "put", pk: `k${i % 7}`, sk: "s", data: JSON.stringify({ i }) }],
    }),
  }));
}

function open(dir: string): PartitionStore {
  return PartitionStore.open({ dir, namespace: NS, partition: P, mapBytes: MAP_BYTES });
}

async function applyAll(store: PartitionStore, records: readonly LogRecord[]): Promise<void> {
  const ctx = { conditions: new ConditionCache(100), metrics: createMetrics(), now: () => T0 };
  if (records.length > 0) await applyBatch(store, records, ctx);
}

/** Chain and content digest of a file that applied the log through `offset`. */
async function reference(dir: string, offset: number): Promise<{ chain: string; digest: string }> {
  const store = open(`${dir}/ref-${offset}`);
  try {
    await applyAll(store, theLog().filter((r) => r.offset <= offset));
    return { chain: store.applied.chain, digest: store.digest };
  } finally {
    await store.close();
  }
}

/**
 * The bucket of a partition that was archived in three segments ([0-9], [10-29], [30-49]) and
 * snapshotted at offset 19.
 */
async function bucket(dir: string): Promise<MemoryObjectStore> {
  const objects = new MemoryObjectStore();
  const log = theLog();
  let chain = "0".repeat(64);
  for (const [first, last] of [[0, 9], [10, 29], [30, 49]] as const) {
    const { body, header } = encodeSegmentBody(P, first, chain, log.slice(first, last + 1));
    chain = header.chainAfter;
    await objects.createBytes(segmentKey(NS, P, first, last), await compress(body), live());
  }
  const store = open(`${dir}/snap-src`);
  try {
    await applyAll(store, log.slice(0, 20));
    const manifest = await createSnapshot(store, `${dir}/snap.mdb`, NS, "n1", T0 + 60_000);
    equal(manifest.log_ts, T0 + 19_000);
    const stem = snapshotStem(NS, P, 19);
    await objects.putFile(`${stem}.mdb`, `${dir}/snap.mdb`, live());
    await objects.putJson(`${stem}.json`, manifest, live());
  } finally {
    await store.close();
  }
  return objects;
}

async function restore(
  objects: MemoryObjectStore,
  dir: string,
  point: RestorePoint,
  decode: RestoreDecode = "inline",
) {
  const out = await Deno.makeTempDir({ dir });
  const restored = await restoreToPoint(objects, point, out, {
    namespace: NS,
    partition: P,
    mapBytes: MAP_BYTES,
    changesRetainMs: 0,
    metrics: createMetrics(),
    now: () => T0,
    decode,
  }, live());
  const store = open(out);
  try {
    return { ...restored, digest: store.digest, applied: store.applied };
  } finally {
    await store.close();
  }
}

Deno.test("restore to an offset: the snapshot before it, then the archive up to it; chain and content as if applied from the log", async () => {
  await withTempDir(async (dir) => {
    const objects = await bucket(dir);
    const got = await restore(objects, dir, { kind: "offset", offset: 35 });
    const want = await reference(dir, 35);
    equal(got.snapshot, 19);
    equal(got.replayed, 16);
    equal(got.offset, 35);
    equal(got.chain, want.chain);
    equal(got.applied.chain, want.chain);
    equal(got.digest, want.digest);
    equal(got.archiveEnd, 49);
  });
});

Deno.test("restore to a time inside a segment stops before the first message stamped later", async () => {
  await withTempDir(async (dir) => {
    const objects = await bucket(dir);
    const got = await restore(objects, dir, { kind: "time", time: T0 + 27_500 });
    const want = await reference(dir, 27);
    equal(got.offset, 27);
    equal(got.lastTimestamp, T0 + 27_000);
    equal(got.digest, want.digest);
    // A time before the snapshot's last message: it is not used.
    const early = await restore(objects, dir, { kind: "time", time: T0 + 5_200 });
    equal(early.snapshot, null);
    equal(early.offset, 5);
    equal(early.digest, (await reference(dir, 5)).digest);
  });
});

Deno.test("restore to the end of the archive, and to an offset before the only snapshot (from empty)", async () => {
  await withTempDir(async (dir) => {
    const objects = await bucket(dir);
    const latest = await restore(objects, dir, { kind: "latest" });
    equal(latest.offset, 49);
    equal(latest.digest, (await reference(dir, 49)).digest);
    const early = await restore(objects, dir, { kind: "offset", offset: 12 });
    equal(early.snapshot, null);
    equal(early.replayed, 13);
    equal(early.digest, (await reference(dir, 12)).digest);
  });
});

Deno.test("an offset past the archive, or behind a hole in it, is refused with restore_unreachable", async () => {
  await withTempDir(async (dir) => {
    const objects = await bucket(dir);
    await rejects(restore(objects, dir, { kind: "offset", offset: 60 }), (error) => {
      ok(error instanceof RestoreUnreachable);
      ok(error.message.includes("ends after offset 49"), error.message);
      return true;
    });
    await objects.delete([segmentKey(NS, P, 10, 29)], live());
    await rejects(restore(objects, dir, { kind: "offset", offset: 35 }), (error) => {
      ok(error instanceof RestoreUnreachable);
      ok(error.message.includes("has a hole after offset 19"), error.message);
      return true;
    });
  });
});

Deno.test("a damaged segment stops the restore; a damaged snapshot is skipped for the archive from empty", async () => {
  await withTempDir(async (dir) => {
    const objects = await bucket(dir);
    const stem = snapshotStem(NS, P, 19);
    const file = objects.objects.get(`${stem}.mdb`)!;
    file[file.length - 100] = file[file.length - 100]! ^ 0xff;
    const got = await restore(objects, dir, { kind: "offset", offset: 35 });
    equal(got.snapshot, null);
    equal(got.digest, (await reference(dir, 35)).digest);

    const key = segmentKey(NS, P, 30, 49);
    const segment = objects.objects.get(key)!;
    segment[segment.length - 20] = segment[segment.length - 20]! ^ 0xff;
    await rejects(
      restore(objects, dir, { kind: "offset", offset: 35 }),
      (error) => error instanceof SegmentCorruptError,
    );
  });
});

Deno.test("a restore decoding in a worker thread builds the same file as one decoding inline", async () => {
  await withTempDir(async (dir) => {
    const objects = await bucket(dir);
    const points: RestorePoint[] = [
      { kind: "offset", offset: 35 },
      { kind: "time", time: T0 + 27_500 },
      { kind: "offset", offset: 12 },
      { kind: "latest" },
    ];
    for (const point of points) {
      const inline = await restore(objects, dir, point, "inline");
      const thread = await restore(objects, dir, point, "thread");
      equal(inline.segmentsInWorker, 0);
      ok(thread.segmentsInWorker >= 1, JSON.stringify(point));
      for (const field of ["offset", "chain", "digest", "replayed", "lastTimestamp"] as const) {
        equal(thread[field], inline[field], `${field} at ${JSON.stringify(point)}`);
      }
    }
    // A damaged segment stops it there too.
    const key = segmentKey(NS, P, 30, 49);
    const segment = objects.objects.get(key)!;
    segment[segment.length - 20] = segment[segment.length - 20]! ^ 0xff;
    await rejects(
      restore(objects, dir, { kind: "latest" }, "thread"),
      (error) => error instanceof SegmentCorruptError,
    );
  });
});
