/**
 * Snapshots against the real S3 server and the real Kafka broker: a wiped disk restored from S3,
 * deletes that stay deleted, a new replica group joining after Kafka deleted the log's start, a
 * corrupted snapshot falling back, and peer bootstrap while S3 is down. Snapshots alone
 * (`ARCHIVE=0`): the log archive and restores to a point are in archive_test.ts.
 */
import assert from "node:assert/strict";
import { topicNames } from "../../src/log/mod.ts";
import { freshNamespace, mergeOffsets, startKafkaNode, waitFor, waitForOffsets } from "./_kafka.ts";
import { partitionStatus, spawnNode, type TestNode } from "./_node.ts";
import {
  createShortRetentionTopic,
  latestManifest,
  listKeys,
  logStartOffsets,
  needsKafkaAndS3,
  overwrite,
  s3Client,
  s3Env,
  s3Server,
} from "./_s3.ts";

const PARTITIONS = 8;
const SECRET = "backup-test-secret-0123456789";

/** Writes `count` records `{prefix}{i}` in requests of 25; returns the highest offsets. */
async function write(node: TestNode, prefix: string, count: number) {
  const offsets: Record<string, number> = {};
  for (let i = 0; i < count; i += 25) {
    const records = Array.from({ length: Math.min(25, count - i) }, (_, j) => ({
      pk: `${prefix}${i + j}`,
      sk: "s",
      data: { n: i + j },
    }));
    const result = await node.post("/records/put", { records });
    assert.equal(result.status, 200, result.text);
    mergeOffsets(offsets, result.json.offsets);
  }
  return offsets;
}

/** Waits until S3 holds a snapshot of every partition at (at least) the node's current offsets. */
async function waitForBackups(node: TestNode, namespace: string): Promise<void> {
  const client = s3Client();
  const status = await partitionStatus(node);
  await waitFor("snapshots of every partition", 30_000, async () => {
    for (const [p, s] of Object.entries(status)) {
      if (s.offset < 0) continue;
      const latest = await latestManifest(client, namespace, Number(p));
      if (latest === null || latest.offset < s.offset) return null;
    }
    return true;
  });
}

/** Asserts two nodes hold the same partitions at the same offsets with the same chains. */
async function assertSameState(a: TestNode, b: TestNode): Promise<void> {
  const [sa, sb] = await Promise.all([partitionStatus(a), partitionStatus(b)]);
  for (let p = 0; p < PARTITIONS; p++) {
    const x = sa[String(p)]!;
    const y = sb[String(p)]!;
    assert.equal(x.offset, y.offset, `p${p} offsets differ`);
    assert.equal(x.chain, y.chain, `p${p} chains differ`);
    assert.equal(x.records, y.records, `p${p} record counts differ`);
  }
}

/** Asserts `keys` are all present (or all absent) on `node`. */
async function assertKeys(node: TestNode, keys: string[], present: boolean, after = {}) {
  const result = await node.post("/records/get", {
    records: keys.map((pk) => ({ pk, sk: "s" })),
    after,
    wait_ms: 10_000,
  });
  assert.equal(result.status, 200, result.text);
  if (present) assert.deepEqual(result.json.missing.length, 0, JSON.stringify(result.json.missing));
  else assert.equal(result.json.records.length, 0, JSON.stringify(result.json.records));
}

function logged(node: TestNode, event: string): Record<string, unknown>[] {
  return node.logs.events().filter((e) => e.event === event);
}

const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

Deno.test({
  name: "a wiped node restores from S3, catches up, and matches a replica that never stopped",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("wipe");
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_wipe_" });
    const nodes: TestNode[] = [];
    const backupEnv = s3Env({
      BACKUP: "1",
      ARCHIVE: "0",
      S3_RESTORE: "1",
      BACKUP_INTERVAL_SEC: "1",
    });
    try {
      let a = await startKafkaNode(ns, "g1", backupEnv, dbPath);
      const reference = await startKafkaNode(ns, "g2");
      nodes.push(a, reference);
      const offsets = await write(a, "k", 200);
      // Deleted before the snapshot: must stay deleted after the restore.
      const del = await a.post("/records/delete", {
        records: keys("k", 20).map((pk) => ({ pk, sk: "s" })),
      });
      mergeOffsets(offsets, del.json.offsets);
      await waitForOffsets(a, offsets);
      await waitForBackups(a, ns);
      assert.equal(await a.stop(), 0);
      await Deno.remove(dbPath, { recursive: true });
      // More writes while it is gone: the restored node must take them from the log.
      mergeOffsets(offsets, await write(reference, "m", 50));
      a = await startKafkaNode(ns, "g1", backupEnv, dbPath);
      nodes.push(a);
      const restored = logged(a, "partition_restored");
      assert.ok(restored.length >= PARTITIONS - 1, `only ${restored.length} partitions restored`);
      assert.ok(restored.every((e) => e.source === "s3"));
      await Promise.all([waitForOffsets(a, offsets), waitForOffsets(reference, offsets)]);
      await assertSameState(a, reference);
      await assertKeys(a, keys("k", 200).slice(20), true, offsets);
      await assertKeys(a, keys("k", 20), false);
      await assertKeys(a, keys("m", 50), true, offsets);
      const metrics = (await a.internal("/metrics")).text;
      assert.match(metrics, /firescroll_backup_restores_total\{source="s3",result="ok"\} [1-9]/);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "a new replica group joins after Kafka deleted the log's start and still gets every record",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("retention");
    const topic = topicNames(ns).mutations;
    await createShortRetentionTopic(topic, PARTITIONS);
    const nodes: TestNode[] = [];
    try {
      const a = await startKafkaNode(
        ns,
        "g1",
        s3Env({ BACKUP: "1", ARCHIVE: "0", BACKUP_INTERVAL_SEC: "1" }),
      );
      nodes.push(a);
      const offsets = await write(a, "r", 200);
      // Keep writing while segments roll and retention deletes them.
      await waitFor("Kafka to delete the first offsets of every partition", 60_000, async () => {
        mergeOffsets(offsets, await write(a, `t${Date.now()}-`, 16));
        const starts = await logStartOffsets(topic);
        return [...starts.values()].filter((o) => o > 0).length === PARTITIONS ? true : null;
      });
      await waitForOffsets(a, offsets);
      await waitForBackups(a, ns);

      // Without snapshots the log cannot rebuild the partitions: not served, and it says why.
      const orphan = await spawnNode({
        env: {
          KAFKA_SEEDS: Deno.env.get("FIRESCROLL_TEST_KAFKA")!,
          NAMESPACE: ns,
          REPLICA_GROUP: "g3",
          PARTITIONS: String(PARTITIONS),
        },
      });
      try {
        await waitFor("the orphan node to report blocked partitions", 30_000, () => {
          return Promise.resolve(
            orphan.logs.events().some((e) => e.event === "partition_blocked") ? true : null,
          );
        });
      } finally {
        await orphan.cleanup();
      }

      const b = await startKafkaNode(ns, "g2", s3Env({ S3_RESTORE: "1" }));
      nodes.push(b);
      assert.equal(logged(b, "partition_restored").length, PARTITIONS, b.logs.tail());
      await waitForOffsets(b, offsets);
      await assertSameState(a, b);
      await assertKeys(b, keys("r", 200), true, offsets);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});

Deno.test({
  name: "a corrupted snapshot is rejected and the next older one is restored instead",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("corrupt");
    const nodes: TestNode[] = [];
    const client = s3Client();
    try {
      const a = await startKafkaNode(
        ns,
        "g1",
        s3Env({ BACKUP: "1", ARCHIVE: "0", BACKUP_INTERVAL_SEC: "1", BACKUP_KEEP: "3" }),
      );
      nodes.push(a);
      const offsets = await write(a, "c", 100);
      await waitForOffsets(a, offsets);
      await waitForBackups(a, ns);
      mergeOffsets(offsets, await write(a, "d", 100));
      await waitForOffsets(a, offsets);
      await waitForBackups(a, ns);
      // Corrupt the newest snapshot of partition 0 (same key, other bytes).
      const files = (await listKeys(client, `${ns}/p0/`)).filter((k) => k.endsWith(".mdb"));
      assert.ok(files.length >= 2, `p0 has ${files.length} snapshots`);
      await overwrite(client, files.at(-1)!, crypto.getRandomValues(new Uint8Array(4096)));

      const b = await startKafkaNode(ns, "g2", s3Env({ S3_RESTORE: "1" }));
      nodes.push(b);
      const rejected = b.logs.events().filter((e) =>
        e.event === "snapshot_rejected" && e.partition === 0
      );
      assert.equal(rejected.length, 1, b.logs.tail());
      const p0 = logged(b, "partition_restored").find((e) => e.partition === 0);
      assert.ok(p0 !== undefined, "partition 0 was not restored from the older snapshot");
      assert.ok(Number(p0.to_offset) < Number(files.at(-1)!.slice(-24, -4)));
      await waitForOffsets(b, offsets);
      await assertSameState(a, b);
      await assertKeys(b, [...keys("c", 100), ...keys("d", 100)], true, offsets);
      const metrics = (await b.internal("/metrics")).text;
      assert.match(metrics, /firescroll_backup_restores_total\{source="s3",result="rejected"\} 1/);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});

Deno.test({
  name: "with S3 down, a new node bootstraps its partitions from a region peer",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("peer");
    const topic = topicNames(ns).mutations;
    await createShortRetentionTopic(topic, PARTITIONS);
    const nodes: TestNode[] = [];
    const cluster = (host: string, peer: string) => ({
      LISTEN_HOST: host,
      API_PORT: "18390",
      INTERNAL_PORT: "18391",
      GOSSIP_PORT: "18392",
      GOSSIP_PEERS: `${peer}:18392`,
      GOSSIP_BROADCAST_MS: "200",
      CLUSTER_SECRET: SECRET,
      REGION: "local",
    });
    let s3Stopped = false;
    try {
      const a = await startKafkaNode(ns, "g1", cluster("127.0.0.21", "127.0.0.22"));
      nodes.push(a);
      const offsets = await write(a, "p", 150);
      await waitFor("Kafka to delete the first offsets of every partition", 60_000, async () => {
        mergeOffsets(offsets, await write(a, `u${Date.now()}-`, 16));
        const starts = await logStartOffsets(topic);
        return [...starts.values()].filter((o) => o > 0).length === PARTITIONS ? true : null;
      });
      await waitForOffsets(a, offsets);
      await s3Server("stop");
      s3Stopped = true;
      const b = await startKafkaNode(ns, "g2", {
        ...cluster("127.0.0.22", "127.0.0.21"),
        ...s3Env({ S3_RESTORE: "1", BACKUP_TIMEOUT_MS: "5000" }),
      });
      nodes.push(b);
      const restored = logged(b, "partition_restored");
      assert.equal(restored.length, PARTITIONS, b.logs.tail());
      assert.ok(restored.every((e) => e.source === "peer"));
      await waitForOffsets(b, offsets);
      await assertSameState(a, b);
      await assertKeys(b, keys("p", 150), true, offsets);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      if (s3Stopped) await s3Server("start");
    }
  },
});
