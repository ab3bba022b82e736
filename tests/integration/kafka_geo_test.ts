/**
 * A far region against the real broker: a node whose every Kafka round trip goes through a
 * latency proxy (toxiproxy, `FIRESCROLL_TEST_FAR_RTT_MS`, 100 ms; scripts/test.sh gives the broker a
 * listener advertised at the proxy) beside a near node. Behaviour, not timings: the far node
 * catches up and serves, reads what the near region writes, writes back, and stays in its
 * consumer group while it works (no rejoin). bench/far_start.sh measures the times.
 */
import assert from "node:assert/strict";
import { freshNamespace, KAFKA, mergeOffsets, put, startKafkaNode } from "./_kafka.ts";
import type { TestNode } from "./_node.ts";

const FAR = Deno.env.get("FIRESCROLL_TEST_KAFKA_FAR") ?? null;
const needsFar = {
  ignore: KAFKA === null || FAR === null,
  sanitizeOps: false,
  sanitizeResources: false,
};

/** `firescroll_kafka_requests_total{client="consumer",api="JoinGroup"}` of `node`. */
async function joins(node: TestNode): Promise<number> {
  const text = (await node.internal("/metrics")).text;
  const m = /^firescroll_kafka_requests_total\{client="consumer",api="JoinGroup"\} (\d+)$/m.exec(
    text,
  );
  return m === null ? 0 : Number(m[1]);
}

/** Gets `keys` (sk "s") from `node` once it has applied `after`; asserts none is missing. */
async function assertPresent(node: TestNode, keys: string[], after: Record<string, number>) {
  const result = await node.post("/records/get", {
    records: keys.map((pk) => ({ pk, sk: "s" })),
    after,
    wait_ms: 10_000,
  });
  assert.equal(result.status, 200, result.text);
  assert.deepEqual(result.json.missing, [], `missing on ${node.apiUrl}`);
  return result.json.records as { pk: string; data: unknown }[];
}

Deno.test({
  name:
    "a far region (every Kafka round trip through a latency proxy) catches up, serves, reads and writes across regions, and stays in its group",
  ...needsFar,
  fn: async () => {
    const ns = freshNamespace("geo");
    const nodes: TestNode[] = [];
    try {
      const near = await startKafkaNode(ns, "near");
      nodes.push(near);
      // Written before the far region exists: it starts by catching up.
      const before: Record<string, number> = {};
      const keys = Array.from({ length: 40 }, (_, i) => `before-${i}`);
      for (const pk of keys) {
        const written = await put(near, pk, "s", { pk });
        assert.equal(written.status, 200, written.text);
        mergeOffsets(before, written.json.offsets);
      }

      const far = await startKafkaNode(ns, "far", { KAFKA_SEEDS: FAR! });
      nodes.push(far);
      const joinedOnce = await joins(far);
      assert.ok(joinedOnce >= 1, "the far node joined its group");
      await assertPresent(far, keys, before);

      const fromNear = await put(near, "from-near", "s", { region: "near" });
      assert.equal(fromNear.status, 200, fromNear.text);
      const [seenFar] = await assertPresent(far, ["from-near"], fromNear.json.offsets);
      assert.deepEqual(seenFar!.data, { region: "near" });

      const fromFar = await put(far, "from-far", "s", { region: "far" });
      assert.equal(fromFar.status, 200, fromFar.text);
      const [seenNear] = await assertPresent(near, ["from-far"], fromFar.json.offsets);
      assert.deepEqual(seenNear!.data, { region: "far" });

      assert.equal(await joins(far), joinedOnce, "the far node never rejoined its group");
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});
