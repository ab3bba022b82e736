/**
 * Replica groups against the real Kafka broker: partitions split within a group, full copies
 * across groups with equal hash chains, rebalancing, and read-your-writes across nodes.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import {
  freshNamespace,
  mergeOffsets,
  needsKafka,
  servingPartitions,
  startKafkaNode,
  waitFor,
  waitForOffsets,
  waitForSplit,
} from "./_kafka.ts";
import { assertProblem, partitionStatus, type TestNode } from "./_node.ts";

const PARTITIONS = 8;

/** Writes `count` records `k<i>` in requests of 25 and returns the highest offsets. */
async function writeRecords(
  node: TestNode,
  prefix: string,
  count: number,
): Promise<Record<string, number>> {
  const offsets: Record<string, number> = {};
  for (let i = 0; i < count; i += 25) {
    const records = [];
    for (let j = i; j < Math.min(count, i + 25); j++) {
      records.push({ pk: `${prefix}${j}`, sk: "s", data: { n: j } });
    }
    const result = await node.post("/records/put", { records });
    assert.equal(result.status, 200, result.text);
    mergeOffsets(offsets, result.json.offsets);
  }
  return offsets;
}

/** Reads `k<i>` from whichever node serves its partition; returns the keys not found. */
async function missingKeys(
  nodes: TestNode[],
  prefix: string,
  count: number,
  after: Record<string, number>,
): Promise<string[]> {
  const owners = new Map<number, TestNode>();
  for (const node of nodes) {
    for (const p of await servingPartitions(node)) owners.set(p, node);
  }
  const missing: string[] = [];
  for (let i = 0; i < count; i++) {
    const pk = `${prefix}${i}`;
    const owner = owners.get(partitionOf(pk, PARTITIONS));
    assert.ok(owner !== undefined, `no node serves the partition of ${pk}`);
    const result = await owner.post("/records/get", {
      records: [{ pk, sk: "s" }],
      after,
      wait_ms: 10_000,
    });
    assert.equal(result.status, 200, result.text);
    if (result.json.records.length !== 1 || result.json.records[0].data.n !== i) missing.push(pk);
  }
  return missing;
}

async function cleanupAll(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.cleanup()));
}

Deno.test({
  name: "two nodes of one replica group split the partitions and together hold every record",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("split");
    const nodes: TestNode[] = [];
    try {
      nodes.push(await startKafkaNode(ns, "g1"));
      nodes.push(await startKafkaNode(ns, "g1"));
      const [a, b] = await waitForSplit(nodes, PARTITIONS);
      assert.ok(a!.every((p) => !b!.includes(p)), "a partition is served twice in one group");
      const offsets = await writeRecords(nodes[1]!, "k", 200);
      assert.deepEqual(await missingKeys(nodes, "k", 200, offsets), []);
      // Without proxying (a later issue), a node answers only for its own partitions.
      const foreign = Array.from({ length: 200 }, (_, i) => `k${i}`)
        .find((pk) => b!.includes(partitionOf(pk, PARTITIONS)))!;
      const result = await nodes[0]!.post("/records/get", { records: [{ pk: foreign, sk: "s" }] });
      assertProblem(result, 503, "partition_unavailable");
    } finally {
      await cleanupAll(nodes);
    }
  },
});

Deno.test({
  name: "two replica groups each hold a full copy and their chains are equal at equal offsets",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("groups");
    const nodes: TestNode[] = [];
    try {
      nodes.push(await startKafkaNode(ns, "ga"));
      nodes.push(await startKafkaNode(ns, "gb"));
      const offsets = await writeRecords(nodes[0]!, "r", 150);
      // Conditional writes and deletes through the other node: both groups must judge alike.
      const more = await nodes[1]!.post("/records/put", {
        records: [
          { pk: "r1", sk: "s", data: { n: -1 }, if: "pk == null" }, // exists: skipped
          { pk: "r2", sk: "s", data: { n: 2, v: 2 }, if: "data.n == 2" }, // applies
          { pk: "new", sk: "s", data: { n: 0 }, if: "pk == null" }, // applies
        ],
      });
      assert.equal(more.status, 200, more.text);
      mergeOffsets(offsets, more.json.offsets);
      const del = await nodes[0]!.post("/records/delete", { records: [{ pk: "r3", sk: "s" }] });
      assert.equal(del.status, 200, del.text);
      mergeOffsets(offsets, del.json.offsets);
      await Promise.all(nodes.map((n) => waitForOffsets(n, offsets)));
      const [sa, sb] = await Promise.all(nodes.map((n) => partitionStatus(n)));
      assert.equal(Object.keys(sa!).length, PARTITIONS);
      for (let p = 0; p < PARTITIONS; p++) {
        const x = sa![String(p)]!;
        const y = sb![String(p)]!;
        assert.equal(x.offset, y.offset, `p${p} offsets differ`);
        assert.equal(x.chain, y.chain, `p${p} chains differ at offset ${x.offset}`);
        assert.equal(x.records, y.records, `p${p} record counts differ`);
      }
      // Caught up: no partition reports unread log messages.
      for (const node of nodes) {
        const metrics = (await node.internal("/metrics")).text;
        const lags = [
          ...metrics.matchAll(
            /^firescroll_apply_consumer_lag_messages\{partition="\d+"\} (\d+)$/gm,
          ),
        ];
        assert.ok(lags.length > 0, "no consumer lag gauge");
        assert.ok(lags.every((m) => m[1] === "0"), `lag left: ${lags.map((m) => m[0]).join(", ")}`);
      }
      const total = Object.values(sa!).reduce((n, s) => n + s.records, 0);
      assert.equal(total, 150 - 1 + 1); // 150 written, r3 deleted, "new" inserted
      for (const node of nodes) {
        const got = await node.post("/records/get", {
          records: [{ pk: "r1", sk: "s" }, { pk: "r2", sk: "s" }, { pk: "r3", sk: "s" }],
        });
        assert.deepEqual(got.json.records.map((r: { data: unknown }) => r.data), [
          { n: 1 },
          { n: 2, v: 2 },
        ]);
        assert.deepEqual(got.json.missing, [{ pk: "r3", sk: "s" }]);
      }
    } finally {
      await cleanupAll(nodes);
    }
  },
});

Deno.test({
  name: "adding and removing a node rebalances the group without losing a record",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("rebalance");
    const nodes: TestNode[] = [];
    try {
      const first = await startKafkaNode(ns, "g");
      nodes.push(first);
      const offsets = await writeRecords(first, "a", 120);
      const second = await startKafkaNode(ns, "g");
      nodes.push(second);
      await waitForSplit(nodes, PARTITIONS);
      mergeOffsets(offsets, await writeRecords(second, "b", 120));
      assert.deepEqual(await missingKeys(nodes, "a", 120, offsets), []);
      assert.deepEqual(await missingKeys(nodes, "b", 120, offsets), []);
      // A graceful stop leaves the group: the first node takes every partition back.
      assert.equal(await second.stop("SIGTERM"), 0);
      await waitFor("the remaining node to serve every partition", 60_000, async () => {
        const serving = await servingPartitions(first);
        return serving.length === PARTITIONS ? serving : null;
      });
      mergeOffsets(offsets, await writeRecords(first, "c", 60));
      assert.deepEqual(await missingKeys([first], "a", 120, offsets), []);
      assert.deepEqual(await missingKeys([first], "b", 120, offsets), []);
      assert.deepEqual(await missingKeys([first], "c", 60, offsets), []);
      const ready = await first.request("/readyz");
      assert.equal(ready.status, 200);
    } finally {
      await cleanupAll(nodes);
    }
  },
});

Deno.test({
  name: "a write on one node is readable on a node of another group with after and wait_ms",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("ryw");
    const nodes: TestNode[] = [];
    try {
      nodes.push(await startKafkaNode(ns, "g1"));
      nodes.push(await startKafkaNode(ns, "g2"));
      const [a, b] = nodes as [TestNode, TestNode];
      for (let i = 0; i < 20; i++) {
        const write = await a.post("/records/put", {
          records: [{ pk: `ryw${i}`, sk: "x", data: { i } }],
        });
        assert.equal(write.status, 200, write.text);
        const read = await b.post("/records/get", {
          records: [{ pk: `ryw${i}`, sk: "x" }],
          after: write.json.offsets,
          wait_ms: 5000,
        });
        assert.equal(read.status, 200, read.text);
        assert.deepEqual(read.json.records[0]?.data, { i });
        const list = await b.post("/records/list", {
          pk: `ryw${i}`,
          after: write.json.offsets,
          wait_ms: 5000,
        });
        assert.equal(list.json.records.length, 1);
      }
      // An offset no one has written yet times out with 504.
      const p = partitionOf("ryw0", PARTITIONS);
      const late = await b.post("/records/get", {
        records: [{ pk: "ryw0", sk: "x" }],
        after: { [String(p)]: 1_000_000 },
        wait_ms: 200,
      });
      assertProblem(late, 504, "not_caught_up");
    } finally {
      await cleanupAll(nodes);
    }
  },
});
