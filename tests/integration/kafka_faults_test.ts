/**
 * Faults against the real Kafka broker: a node killed with SIGKILL under write load, a broker
 * restart mid-load, a poison message from a foreign producer, and partition-count mismatches.
 */
import assert from "node:assert/strict";
import { topicNames } from "../../src/log/mod.ts";
import { partitionOf } from "../../src/keys/mod.ts";
import {
  createTopic,
  freshNamespace,
  KAFKA,
  KAFKA_OWNED,
  kcatProduce,
  mergeOffsets,
  needsKafka,
  restartBroker,
  startKafkaNode,
  waitForOffsets,
} from "./_kafka.ts";
import { partitionStatus, spawnNode, type TestNode } from "./_node.ts";

const PARTITIONS = 8;

interface Load {
  /** Keys whose put was acknowledged (200), with the offsets returned. */
  readonly acked: string[];
  readonly offsets: Record<string, number>;
  /** Status codes of failed writes, with counts. */
  readonly failures: Map<string, number>;
  stop(): Promise<void>;
}

/**
 * A steady write load: `workers` loops each putting one record at a time to the nodes in turn,
 * until stopped or `maxRequests` are sent. Bounded in count and time.
 */
function writeLoad(
  targets: () => TestNode[],
  label: string,
  workers = 4,
  maxRequests = 20_000,
): Load {
  const acked: string[] = [];
  const offsets: Record<string, number> = {};
  const failures = new Map<string, number>();
  let running = true;
  let sent = 0;
  const deadline = Date.now() + 120_000;
  const loops = Array.from({ length: workers }, async (_, w) => {
    let i = 0;
    while (running && sent < maxRequests && Date.now() < deadline) {
      const nodes = targets();
      const node = nodes[(w + i) % nodes.length]!;
      const pk = `${label}-${w}-${i++}`;
      sent++;
      try {
        const result = await node.post("/records/put", { records: [{ pk, sk: "s", data: { w } }] });
        if (result.status === 200) {
          acked.push(pk);
          mergeOffsets(offsets, result.json.offsets);
        } else {
          const key = `${result.status} ${result.json?.code}`;
          failures.set(key, (failures.get(key) ?? 0) + 1);
        }
      } catch {
        // The connection to a killed node fails: the write is unacknowledged.
        failures.set("connection", (failures.get("connection") ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  return {
    acked,
    offsets,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Asserts every acknowledged key is readable on `node` (all partitions are local to it). */
async function assertAllPresent(node: TestNode, keys: string[], after: Record<string, number>) {
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    const result = await node.post("/records/get", {
      records: batch.map((pk) => ({ pk, sk: "s" })),
      after,
      wait_ms: 10_000,
    });
    assert.equal(result.status, 200, result.text);
    assert.deepEqual(result.json.missing, [], `acknowledged writes missing on ${node.apiUrl}`);
  }
}

async function assertChainsEqual(a: TestNode, b: TestNode): Promise<void> {
  const [sa, sb] = await Promise.all([partitionStatus(a), partitionStatus(b)]);
  for (let p = 0; p < PARTITIONS; p++) {
    assert.equal(sa[String(p)]!.offset, sb[String(p)]!.offset, `p${p} offsets differ`);
    assert.equal(sa[String(p)]!.chain, sb[String(p)]!.chain, `p${p} chains differ`);
    // The data too, not only the log bytes: equal content digests.
    const da = (sa[String(p)] as unknown as { digest?: string }).digest;
    const db = (sb[String(p)] as unknown as { digest?: string }).digest;
    assert.ok(da !== undefined && da === db, `p${p} digests differ (${da} vs ${db})`);
  }
}

Deno.test({
  name: "a node killed with SIGKILL under write load restarts with every acknowledged write",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("kill");
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_kill_" });
    const nodes: TestNode[] = [];
    try {
      let victim = await startKafkaNode(ns, "g1", {}, dbPath);
      const witness = await startKafkaNode(ns, "g2");
      nodes.push(victim, witness);
      let live = [victim, witness];
      // 16 writers: many appends share each produce request, so the kill cuts requests that
      // carry several acknowledged-or-not writes at once.
      const load = writeLoad(() => live, "kill", 16, 100_000);
      await new Promise((r) => setTimeout(r, 1500));
      await victim.kill();
      live = [witness];
      const ackedAtKill = load.acked.length;
      await new Promise((r) => setTimeout(r, 1500));
      victim = await startKafkaNode(ns, "g1", {}, dbPath);
      nodes.push(victim);
      live = [victim, witness];
      await new Promise((r) => setTimeout(r, 1000));
      await load.stop();
      assert.ok(ackedAtKill > 20, `too little load before the kill (${ackedAtKill})`);
      assert.ok(load.acked.length > ackedAtKill, "no write was acknowledged after the kill");
      await Promise.all([
        waitForOffsets(victim, load.offsets),
        waitForOffsets(witness, load.offsets),
      ]);
      await assertAllPresent(victim, load.acked, load.offsets);
      await assertAllPresent(witness, load.acked, load.offsets);
      await assertChainsEqual(victim, witness);
      // Each message is applied once: record counts match exactly, nothing doubled or lost.
      const status = await partitionStatus(victim);
      const records = Object.values(status).reduce((n, s) => n + s.records, 0);
      assert.ok(records >= load.acked.length, `${records} records < ${load.acked.length} acked`);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "a broker restart mid-load fails writes with 503 at worst and loses nothing acknowledged",
  ...needsKafka,
  ignore: KAFKA === null || !KAFKA_OWNED,
  fn: async () => {
    const ns = freshNamespace("broker");
    const nodes: TestNode[] = [];
    try {
      const a = await startKafkaNode(ns, "g1");
      const b = await startKafkaNode(ns, "g2");
      nodes.push(a, b);
      const load = writeLoad(() => [a, b], "broker");
      await new Promise((r) => setTimeout(r, 1000));
      const before = load.acked.length;
      await restartBroker();
      await new Promise((r) => setTimeout(r, 3000));
      const afterRestart = load.acked.length;
      await new Promise((r) => setTimeout(r, 2000));
      await load.stop();
      assert.ok(before > 10, "no load before the restart");
      assert.ok(load.acked.length > afterRestart, "writes did not recover after the restart");
      for (const key of load.failures.keys()) {
        assert.match(key, /^503 log_unavailable$/, `unexpected failure ${key}`);
      }
      await Promise.all([waitForOffsets(a, load.offsets), waitForOffsets(b, load.offsets)]);
      await assertAllPresent(a, load.acked, load.offsets);
      await assertAllPresent(b, load.acked, load.offsets);
      await assertChainsEqual(a, b);
      for (const node of nodes) assert.equal((await node.request("/readyz")).status, 200);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});

Deno.test({
  name: "a poison message produced with kcat is skipped identically by every replica",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("poison");
    const nodes: TestNode[] = [];
    try {
      const a = await startKafkaNode(ns, "g1");
      const b = await startKafkaNode(ns, "g2");
      nodes.push(a, b);
      const pk = "victim";
      const partition = partitionOf(pk, PARTITIONS);
      const first = await a.post("/records/put", { records: [{ pk, sk: "1", data: 1 }] });
      assert.equal(first.status, 200, first.text);
      await kcatProduce(topicNames(ns).mutations, partition, "this is not a mutation");
      await kcatProduce(topicNames(ns).mutations, partition, '{"v":1,"atomic":false,"ops":[]}');
      const last = await b.post("/records/put", { records: [{ pk, sk: "2", data: 2 }] });
      assert.equal(last.status, 200, last.text);
      const offsets = last.json.offsets;
      assert.equal(offsets[String(partition)], first.json.offsets[String(partition)] + 3);
      for (const node of nodes) {
        const list = await node.post("/records/list", { pk, after: offsets, wait_ms: 10_000 });
        assert.equal(list.status, 200, list.text);
        assert.deepEqual(list.json.records.map((r: { sk: string }) => r.sk), ["1", "2"]);
        const metrics = (await node.internal("/metrics")).text;
        assert.match(metrics, /^firescroll_apply_poison_messages_total 2$/m);
        assert.ok(node.logs.all.some((l) => l.includes('"event":"poison_message"')));
      }
      await assertChainsEqual(a, b);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});

Deno.test({
  name: "a node whose PARTITIONS differs from its namespace's refuses to start, saying why",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("count");
    const nodes: TestNode[] = [];
    try {
      nodes.push(await startKafkaNode(ns, "g1"));
      const wrong = await spawnNode({
        env: {
          KAFKA_SEEDS: KAFKA!,
          NAMESPACE: ns,
          REPLICA_GROUP: "g1",
          PARTITIONS: "4",
        },
      });
      try {
        const code = await wrong.exited;
        assert.notEqual(code, 0);
        const text = wrong.logs.all.join("\n");
        assert.match(text, /has 8 partitions but PARTITIONS=4/);
      } finally {
        await wrong.cleanup();
      }
      // A mutations topic created by someone else with another count is refused too.
      const other = freshNamespace("count2");
      await createTopic(topicNames(other).mutations, 3);
      const mismatched = await spawnNode({
        env: { KAFKA_SEEDS: KAFKA!, NAMESPACE: other, PARTITIONS: "8" },
      });
      try {
        assert.notEqual(await mismatched.exited, 0);
        assert.match(mismatched.logs.all.join("\n"), /has 3 partitions but PARTITIONS=8/);
      } finally {
        await mismatched.cleanup();
      }
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});
