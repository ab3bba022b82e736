import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { decodeMutation, encodeMutation, type LogRecord } from "../apply/mod.ts";
import type { AppendRequest } from "../node/mod.ts";
import { MemoryObjectStore } from "./_test_util.ts";
import { rebuildPartition, RebuildRefused, type RebuildTarget } from "./rebuild_log.ts";
import { compress, encodeSegmentBody, segmentKey } from "./segment.ts";

const NS = "rebuild";
const live = () => new AbortController().signal;

/** A new topic's partition in memory: offsets from 0, DeleteRecords moves its start. */
class MemoryTopic implements RebuildTarget {
  readonly values: Uint8Array[] = [];
  low = 0;

  append(messages: readonly AppendRequest[]): Promise<number[]> {
    return Promise.resolve(messages.map((m) => this.values.push(m.value) - 1));
  }

  partitionOffsets(): Promise<{ low: number; high: number }> {
    return Promise.resolve({ low: this.low, high: this.values.length });
  }

  deleteBefore(_partition: number, offset: number): Promise<void> {
    this.low = offset;
    return Promise.resolve();
  }
}

function put(offset: number): LogRecord {
  return {
    offset,
    timestamp: 1_796_000_000_000 + offset,
    value: encodeMutation({
      v: 1,
      atomic: false,
      ops: [{ op: "put", pk: `k${offset}`, sk: "s", data: String(offset) }],
    }),
  };
}

/** Archives offsets [from, to] of partition 0 in segments of `size`, each after the last. */
async function archived(objects: MemoryObjectStore, from: number, to: number, size: number) {
  let chain = "0".repeat(64);
  for (let first = from; first <= to; first += size) {
    const last = Math.min(to, first + size - 1);
    const records = Array.from({ length: last - first + 1 }, (_, i) => put(first + i));
    const { body, header } = encodeSegmentBody(0, first, chain, records);
    chain = header.chainAfter;
    await objects.createBytes(segmentKey(NS, 0, first, last), await compress(body), live());
  }
}

Deno.test("rebuildPartition() writes every archived message back at its offset", async () => {
  const objects = new MemoryObjectStore();
  await archived(objects, 0, 2_499, 700);
  const topic = new MemoryTopic();
  const done = await rebuildPartition(objects, topic, NS, 0, live());
  deepEqual(done, { partition: 0, first: 0, last: 2_499, messages: 2_500, pads: 0 });
  equal(topic.values.length, 2_500);
  deepEqual(topic.values[1234], put(1234).value);
});

Deno.test("rebuildPartition() pads the offsets before a pruned archive's start and deletes them", async () => {
  const objects = new MemoryObjectStore();
  await archived(objects, 300, 999, 250);
  const topic = new MemoryTopic();
  const done = await rebuildPartition(objects, topic, NS, 0, live());
  deepEqual(done, { partition: 0, first: 300, last: 999, messages: 700, pads: 300 });
  equal(topic.low, 300);
  deepEqual(topic.values[300], put(300).value);
  // The pads are ticks: no ops.
  const pad = decodeMutation(topic.values[0]!);
  ok(pad.ok && pad.mutation.ops.length === 0);
});

Deno.test("rebuildPartition() refuses a topic that is not empty and an archive with a hole", async () => {
  const objects = new MemoryObjectStore();
  await archived(objects, 0, 99, 25);
  const used = new MemoryTopic();
  used.values.push(new Uint8Array(1));
  await rejects(rebuildPartition(objects, used, NS, 0, live()), RebuildRefused);
  await objects.delete([segmentKey(NS, 0, 25, 49)], live());
  await rejects(
    rebuildPartition(objects, new MemoryTopic(), NS, 0, live()),
    (error: Error) => error instanceof RebuildRefused && /hole at 25–49/.test(error.message),
  );
  const empty = await rebuildPartition(new MemoryObjectStore(), new MemoryTopic(), NS, 0, live());
  deepEqual(empty, { partition: 0, first: null, last: null, messages: 0, pads: 0 });
});
