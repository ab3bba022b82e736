/**
 * Serving threads in a region (real Kafka, two real nodes, gossip over UDP): on every serving
 * thread of one node, reads of the partitions its peer serves are proxied (get, list, and a get
 * with `after` the offsets another thread's write returned), and once the peer is gone, before
 * Kafka moves its partitions, the same reads answer 503 `partition_unavailable` at once.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { type Http1Connection, ThreadConnections } from "./_http1.ts";
import {
  freshNamespace,
  mergeOffsets,
  needsKafka,
  startKafkaNode,
  waitFor,
  waitForOffsets,
  waitForSplit,
} from "./_kafka.ts";
import type { TestNode } from "./_node.ts";

const PARTITIONS = 8;
const THREADS = 2;
const SECRET = "threads-test-secret-0123456789";
const HOSTS = ["127.0.0.31", "127.0.0.32"];
const API_PORT = 18_490;

function env(host: string, peer: string): Record<string, string> {
  return {
    LISTEN_HOST: host,
    API_PORT: String(API_PORT),
    INTERNAL_PORT: String(API_PORT + 1),
    GOSSIP_PORT: String(API_PORT + 2),
    GOSSIP_PEERS: `${peer}:${API_PORT + 2}`,
    GOSSIP_BROADCAST_MS: "200",
    CLUSTER_SECRET: SECRET,
    REGION: "local",
    INSTANCE_ID: `t${host.split(".").at(-1)}`,
    SERVE_THREADS: String(THREADS),
    PROXY_TIMEOUT_MS: "1000",
    // Long: after the peer dies, its partitions stay unowned for the 503 checks.
    KAFKA_SESSION_TIMEOUT_MS: "45000",
    HANDOFF_TIMEOUT_MS: "2000",
  };
}

async function peerState(node: TestNode, id: string): Promise<string | null> {
  const result = await node.internal("/internal/status", { authorization: `Bearer ${SECRET}` });
  assert.equal(result.status, 200, result.text);
  const members = result.json.members as { id: string; state: string }[];
  return members.find((m) => m.id === id)?.state ?? null;
}

Deno.test({
  name:
    "every serving thread proxies reads of a peer's partitions, and answers 503 once the peer is gone",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("threads");
    const nodes: TestNode[] = [];
    let pool: ThreadConnections | null = null;
    try {
      const a = await startKafkaNode(ns, "g", env(HOSTS[0]!, HOSTS[1]!));
      nodes.push(a);
      const b = await startKafkaNode(ns, "g", env(HOSTS[1]!, HOSTS[0]!));
      nodes.push(b);
      const [, onB] = await waitForSplit([a, b], PARTITIONS);
      assert.ok(onB !== undefined && onB.length > 0);
      // Keys of the peer's partitions, written through the peer.
      const keys = Array.from({ length: 200 }, (_, i) => `k${i}`)
        .filter((pk) => onB.includes(partitionOf(pk, PARTITIONS)))
        .slice(0, 12);
      assert.ok(keys.length >= 4, "some keys land on the peer");
      const offsets: Record<string, number> = {};
      for (const pk of keys) {
        const put = await b.post("/records/put", { records: [{ pk, sk: "s", data: { pk } }] });
        assert.equal(put.status, 200, put.text);
        mergeOffsets(offsets, put.json.offsets);
      }
      await waitForOffsets(b, offsets);
      await waitFor(
        "the region to see both nodes",
        10_000,
        async () => (await peerState(a, "t32")) === "alive" ? true : null,
      );

      pool = await ThreadConnections.open(API_PORT, THREADS, 1, HOSTS[0]);
      const on = (thread: number): Promise<Http1Connection> => pool!.on(thread);
      for (let thread = 1; thread <= THREADS; thread++) {
        const conn = await on(thread);
        const got = await conn.request("POST", "/records/get", {
          body: { records: keys.map((pk) => ({ pk, sk: "s" })) },
        });
        assert.equal(got.status, 200, `thread ${thread}: ${got.text}`);
        assert.deepEqual(got.json.records.map((r: { pk: string }) => r.pk), keys);
        assert.deepEqual(got.json.missing, []);
        const listed = await conn.request("POST", "/records/list", { body: { pk: keys[0] } });
        assert.equal(listed.status, 200, `thread ${thread}: ${listed.text}`);
        assert.deepEqual(listed.json.records.map((r: { sk: string }) => r.sk), ["s"]);
        // A write on this thread to a peer partition, read with `after` on the other thread:
        // the proxied read waits on the peer for the offset.
        const pk = keys[thread]!;
        const put = await conn.request("POST", "/records/put", {
          body: { records: [{ pk, sk: "s", data: { pk, thread } }] },
        });
        assert.equal(put.status, 200, `thread ${thread}: ${put.text}`);
        const other = await on(thread === 1 ? 2 : 1);
        const after = await other.request("POST", "/records/get", {
          body: { records: [{ pk, sk: "s" }], after: put.json.offsets, wait_ms: 5000 },
        });
        assert.equal(after.status, 200, after.text);
        assert.deepEqual(after.json.records[0].data, { pk, thread });
      }

      // The peer dies; Kafka keeps its partitions unowned until the session ends (45 s).
      await b.kill();
      await waitFor("the peer to be suspect", 10_000, async () => {
        const state = await peerState(a, "t32");
        return state === null || state === "suspect" ? true : null;
      });
      for (let thread = 1; thread <= THREADS; thread++) {
        const conn = await on(thread);
        const started = performance.now();
        const got = await conn.request("POST", "/records/get", {
          body: { records: [{ pk: keys[0], sk: "s" }] },
        });
        assert.equal(got.status, 503, `thread ${thread}: ${got.text}`);
        assert.equal(got.json.code, "partition_unavailable");
        const listed = await conn.request("POST", "/records/list", { body: { pk: keys[0] } });
        assert.equal(listed.status, 503, `thread ${thread}: ${listed.text}`);
        assert.equal(listed.json.code, "partition_unavailable");
        assert.ok(performance.now() - started < 3000, "a read waited on the dead peer");
      }
    } catch (error) {
      if (error instanceof Error) {
        for (const n of nodes) error.message += `\n--- ${n.apiUrl} ---\n${n.logs.tail(30)}`;
      }
      throw error;
    } finally {
      pool?.close();
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});
