/**
 * A rolling deploy of a region (real Kafka, three real nodes gossiping over UDP, the way `fly
 * deploy` with `max_unavailable = 1` replaces them): each node in turn gets SIGTERM and starts again
 * on its own data folder, while clients read every key through the nodes that stay up, with the
 * offsets of the writes as `after` (read-your-writes, the API's consistency token). No read fails
 * and none misses a record: a stopping node keeps serving while its peers take its partitions over,
 * and a node that comes back serves a partition only once it has caught up.
 *
 * Without `after` a read during a rebalance may be answered from the copy the previous owner is
 * retiring, which stops at the revocation: eventually consistent, as any replica's read is; this
 * test holds the stronger promise `after` gives.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import {
  freshNamespace,
  mergeOffsets,
  needsKafka,
  startKafkaNode,
  waitForOffsets,
  waitForSplit,
} from "./_kafka.ts";
import type { TestNode } from "./_node.ts";

const PARTITIONS = 8;
const SECRET = "rolling-test-secret-0123456789";
const HOSTS = ["127.0.0.41", "127.0.0.42", "127.0.0.43"];
const API_PORT = 18_590;
const KEYS = 120;

function env(host: string): Record<string, string> {
  return {
    LISTEN_HOST: host,
    API_PORT: String(API_PORT),
    INTERNAL_PORT: String(API_PORT + 1),
    GOSSIP_PORT: String(API_PORT + 2),
    GOSSIP_PEERS: HOSTS.filter((h) => h !== host).map((h) => `${h}:${API_PORT + 2}`).join(","),
    GOSSIP_BROADCAST_MS: "200",
    CLUSTER_SECRET: SECRET,
    REGION: "local",
    INSTANCE_ID: `r${host.split(".").at(-1)}`,
    PROXY_TIMEOUT_MS: "1000",
    HANDOFF_TIMEOUT_MS: "20000",
    SHUTDOWN_TIMEOUT_MS: "30000",
    DRAIN_DELAY_MS: "1000",
  };
}

/** Reads of random keys through `targets()` (re-read each time), until stopped; bounded. */
function readLoad(
  targets: () => TestNode[],
  phase: () => string,
  after: Readonly<Record<string, number>>,
) {
  const state = { ok: 0, failures: [] as string[], running: true };
  const deadline = Date.now() + 240_000;
  const loops = [0, 1, 2, 3].map(async (i) => {
    for (let n = 0; state.running && n < 100_000 && Date.now() < deadline; n++) {
      const nodes = targets();
      const node = nodes[(n + i) % nodes.length]!;
      const keys = Array.from({ length: 4 }, () => `k${Math.floor(Math.random() * KEYS)}`);
      try {
        const result = await node.post("/records/get", {
          records: keys.map((pk) => ({ pk, sk: "s" })),
          after,
          // The longest a client may wait: a rebalance on a loaded machine takes seconds (heartbeats
          // every 3 s, then join and sync).
          wait_ms: 10_000,
        });
        if (result.status !== 200) {
          state.failures.push(`${phase()}: ${node.apiUrl} ${result.status} ${result.text}`);
        } else if (result.json.missing.length > 0) {
          state.failures.push(
            `${phase()} +${Date.now() % 100000}: ${node.apiUrl} missing ${
              JSON.stringify(
                result.json.missing.map((
                  m: { pk: string },
                ) => [m.pk, partitionOf(m.pk, PARTITIONS)]),
              )
            }`,
          );
        } else state.ok++;
      } catch (error) {
        state.failures.push(`${phase()}: ${node.apiUrl} ${error}`);
      }
    }
  });
  return {
    state,
    async stop() {
      state.running = false;
      await Promise.all(loops);
    },
  };
}

Deno.test({
  name:
    "a rolling restart of a region's nodes, one at a time, fails no read sent to the live nodes",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("rolling");
    const nodes: TestNode[] = [];
    /** Stopped for a restart: cleaned up last (that removes the data folder the new one used). */
    const stopped: TestNode[] = [];
    let load: ReturnType<typeof readLoad> | null = null;
    try {
      for (const host of HOSTS) nodes.push(await startKafkaNode(ns, "g", env(host)));
      await waitForSplit(nodes, PARTITIONS);
      const offsets: Record<string, number> = {};
      for (let i = 0; i < KEYS; i += 20) {
        const records = Array.from(
          { length: 20 },
          (_, j) => ({ pk: `k${i + j}`, sk: "s", data: i + j }),
        );
        // One record per put: a batch spans partitions only one pk at a time.
        for (const record of records) {
          const put = await nodes[0]!.post("/records/put", { records: [record] });
          assert.equal(put.status, 200, put.text);
          mergeOffsets(offsets, put.json.offsets);
        }
      }
      for (const node of nodes) await waitForOffsets(node, offsets);

      let restarting = -1;
      let phase = "steady";
      const phases: string[] = [];
      const mark = (p: string) => {
        phase = p;
        phases.push(`${p} @${Date.now() % 100000}`);
      };
      load = readLoad(() => nodes.filter((_, i) => i !== restarting), () => phase, offsets);
      for (let i = 0; i < nodes.length; i++) {
        await new Promise((r) => setTimeout(r, 500));
        restarting = i;
        const old = nodes[i]!;
        stopped.push(old);
        mark(`stopping ${HOSTS[i]}`);
        assert.equal(await old.stop("SIGTERM", 40_000), 0, old.logs.tail());
        mark(`starting ${HOSTS[i]}`);
        nodes[i] = await startKafkaNode(ns, "g", env(HOSTS[i]!), old.dbPath);
        mark(`rebalancing after ${HOSTS[i]}`);
        await waitForSplit(nodes, PARTITIONS);
        restarting = -1;
        mark("steady");
      }
      await new Promise((r) => setTimeout(r, 500));
      await load.stop();
      assert.deepEqual(load.state.failures.slice(0, 5), [], phases.join(", "));
      assert.ok(load.state.ok > 100, `only ${load.state.ok} reads`);
    } catch (error) {
      if (error instanceof Error) {
        for (const n of nodes) error.message += `\n--- ${n.apiUrl} ---\n${n.logs.tail(30)}`;
      }
      throw error;
    } finally {
      await load?.stop();
      await Promise.all(nodes.map((n) => n.cleanup()));
      for (const n of stopped) await n.cleanup();
    }
  },
});
