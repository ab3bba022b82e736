/**
 * `firescroll_kafka_requests_total{client,api}` against the real broker: what a start and a write
 * cost in Kafka requests (round trips), the figure a far region pays for.
 */
import assert from "node:assert/strict";
import { freshNamespace, needsKafka, put, startKafkaNode, waitForOffsets } from "./_kafka.ts";
import type { TestNode } from "./_node.ts";

/** Every `firescroll_kafka_requests_total` sample, keyed `client/api`. */
async function kafkaRequests(node: TestNode): Promise<Map<string, number>> {
  const text = (await node.internal("/metrics")).text;
  const counts = new Map<string, number>();
  const sample = /^firescroll_kafka_requests_total\{client="([^"]+)",api="([^"]+)"\} (\d+)$/gm;
  for (const m of text.matchAll(sample)) counts.set(`${m[1]}/${m[2]}`, Number(m[3]));
  return counts;
}

Deno.test({
  name:
    "firescroll_kafka_requests_total counts a start's requests (the guard reads with one Fetch), and one write is one Produce",
  ...needsKafka,
  fn: async () => {
    const namespace = freshNamespace("requests");
    const node = await startKafkaNode(namespace, "g1");
    try {
      const started = await kafkaRequests(node);
      // A start: metadata, topics, the producer's id, the consumer group's join (each at least
      // once: a broker that has just started makes the node retry its start).
      const seen = JSON.stringify([...started]);
      assert.ok((started.get("admin/Metadata") ?? 0) >= 1, seen);
      assert.ok((started.get("producer/InitProducerId") ?? 0) >= 1, seen);
      assert.ok((started.get("consumer/JoinGroup") ?? 0) >= 1, seen);
      // The partition-count record is read with one Fetch on a bare connection, not through a
      // consumer group of its own (which cost 14 requests, each a round trip to a far broker).
      assert.ok((started.get("reader/Fetch") ?? 0) >= 1, seen);
      assert.equal(started.get("reader/JoinGroup"), undefined, seen);
      assert.equal(started.get("admin/DeleteGroups"), undefined, seen);
      const produced = started.get("producer/Produce") ?? 0;
      assert.ok(produced >= 1, `the partition-count record: ${seen}`);

      const written = await put(node, "pk", "sk", { n: 1 });
      assert.equal(written.status, 200, written.text);
      await waitForOffsets(node, written.json.offsets);
      const after = await kafkaRequests(node);
      assert.equal(
        after.get("producer/Produce"),
        produced + 1,
        "one put while idle is one produce request",
      );
      assert.ok(
        (after.get("consumer/Fetch") ?? 0) > (started.get("consumer/Fetch") ?? 0),
        "the write came back through a fetch",
      );

      // A start in a namespace that exists: the topics' metadata comes from the reader's one
      // Metadata request (the admin client asks nothing), and the consumer reads from the offsets
      // it seeks to without asking Kafka for committed or default offsets first.
      const second = await startKafkaNode(namespace, "g2");
      try {
        const counts = await kafkaRequests(second);
        const seen2 = JSON.stringify([...counts]);
        assert.ok((counts.get("reader/Metadata") ?? 0) >= 1, seen2);
        assert.equal(counts.get("admin/Metadata"), undefined, seen2);
        assert.equal(counts.get("consumer/OffsetFetch"), undefined, seen2);
        assert.equal(counts.get("consumer/ListOffsets"), undefined, seen2);
        assert.equal(counts.get("producer/Produce"), undefined, seen2);
        const read = await second.post("/records/get", {
          records: [{ pk: "pk", sk: "sk" }],
          after: written.json.offsets,
          wait_ms: 10_000,
        });
        assert.equal(read.status, 200, read.text);
        assert.deepEqual(read.json.records[0]?.data, { n: 1 });
      } finally {
        await second.cleanup();
      }
    } finally {
      await node.cleanup();
    }
  },
});
