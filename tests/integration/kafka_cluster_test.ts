/**
 * A region of three real nodes (one replica group, real Kafka) that discover each other through a
 * real DNS server (dnsmasq, Fly-style AAAA records) and gossip over UDP: every key is readable
 * from every node through one proxied hop, a graceful stop is routed around with zero failed
 * reads, a killed node within the detection bound, forged gossip is ignored, and a proxied read
 * with `after` waits on the owner.
 */
import assert from "node:assert/strict";
import { encodeBitmap, encodeState, type NodeState } from "../../src/cluster/mod.ts";
import { partitionOf } from "../../src/keys/mod.ts";
import { startDns } from "./_dns.ts";
import { HAS_DNSMASQ } from "./_dns.ts";
import {
  freshNamespace,
  KAFKA,
  mergeOffsets,
  servingPartitions,
  startKafkaNode,
  waitFor,
  waitForSplit,
} from "./_kafka.ts";
import type { TestNode } from "./_node.ts";
import { positionOf, WatchClient } from "./_watch.ts";

const PARTITIONS = 8;
const SECRET = "cluster-test-secret-0123456789";
const INTERVAL_MS = 200;
const DNS_NAME = "local.fsapp.internal";
const HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
const API_PORT = 18_190;
const INTERNAL_PORT = 18_191;
const GOSSIP_PORT = 18_192;
const KEYS = 240;

function clusterEnv(host: string, dns: string): Record<string, string> {
  return {
    LISTEN_HOST: host,
    API_PORT: String(API_PORT),
    INTERNAL_PORT: String(INTERNAL_PORT),
    GOSSIP_PORT: String(GOSSIP_PORT),
    REGION: "local",
    INSTANCE_ID: `n${host.split(".").at(-1)}`,
    CLUSTER_SECRET: SECRET,
    GOSSIP_DNS_NAME: DNS_NAME,
    GOSSIP_DNS_SERVER: dns,
    GOSSIP_DNS_INTERVAL_MS: "500",
    GOSSIP_BROADCAST_MS: String(INTERVAL_MS),
    PROXY_TIMEOUT_MS: "1000",
    HANDOFF_TIMEOUT_MS: "20000",
    SHUTDOWN_TIMEOUT_MS: "30000",
  };
}

interface Member {
  id: string;
  state: string;
  serving: number[];
}

async function members(node: TestNode): Promise<Member[]> {
  const result = await node.internal("/internal/status", { authorization: `Bearer ${SECRET}` });
  assert.equal(result.status, 200, result.text);
  return result.json.members;
}

/** Reads keys `k0…` in one multi-key get (spanning every partition) and returns what's missing. */
async function readAll(node: TestNode, count: number, after: Record<string, number> = {}) {
  const records = Array.from({ length: count }, (_, i) => ({ pk: `k${i}`, sk: "s" }));
  const result = await node.post("/records/get", { records, after, wait_ms: 10_000 });
  assert.equal(result.status, 200, `${node.apiUrl}: ${result.text}`);
  // Answers come in request order, whichever node held each partition.
  const found = result.json.records.map((r: { pk: string }) => r.pk);
  const expected = records.map((r) => r.pk).filter((pk) => found.includes(pk));
  assert.deepEqual(found, expected, "records are not in request order");
  return result.json.missing.map((m: { pk: string }) => m.pk) as string[];
}

interface ReadLoad {
  readonly ok: number;
  readonly failures: string[];
  stop(): Promise<void>;
}

/** Random multi-key reads against `targets` until stopped (bounded in count and time). */
function readLoad(targets: TestNode[], count: number): ReadLoad {
  const state = { ok: 0, failures: [] as string[], running: true };
  const deadline = Date.now() + 120_000;
  const loops = targets.flatMap((node) =>
    [0, 1].map(async () => {
      for (let n = 0; state.running && n < 50_000 && Date.now() < deadline; n++) {
        const keys = Array.from({ length: 8 }, () => `k${Math.floor(Math.random() * count)}`);
        try {
          const result = await node.post("/records/get", {
            records: keys.map((pk) => ({ pk, sk: "s" })),
            // No wait_ms: a read that meets the instant a stopping peer has closed a partition,
            // before this node's gossip view names the new owner, must still be answered (the
            // router follows a partition a leaving peer hands over for a few gossip rounds).
          });
          if (result.status !== 200) state.failures.push(`${result.status} ${result.text}`);
          else if (result.json.missing.length > 0) {
            state.failures.push(`missing ${JSON.stringify(result.json.missing)}`);
          } else state.ok++;
        } catch (error) {
          state.failures.push(String(error));
        }
      }
    })
  );
  return {
    get ok() {
      return state.ok;
    },
    get failures() {
      return state.failures;
    },
    async stop() {
      state.running = false;
      await Promise.all(loops);
    },
  };
}

async function sendDatagram(host: string, bytes: Uint8Array): Promise<void> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await socket.send(bytes, { transport: "udp", hostname: host, port: GOSSIP_PORT });
  } finally {
    socket.close();
  }
}

function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

Deno.test({
  name: "a region of three nodes found through DNS serves every key from every node",
  ignore: KAFKA === null || !HAS_DNSMASQ,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const ns = freshNamespace("cluster");
    const dns = await startDns(DNS_NAME, HOSTS);
    const nodes: TestNode[] = [];
    try {
      for (const host of HOSTS) {
        nodes.push(await startKafkaNode(ns, "g", clusterEnv(host, dns.address)));
      }
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
      await waitForSplit(nodes, PARTITIONS);
      const offsets: Record<string, number> = {};

      await t.step("members discover each other through DNS, not a static list", async () => {
        for (const node of nodes) {
          const seen = await waitFor("two alive members", 10_000, async () => {
            const m = await members(node);
            return m.filter((x) => x.state === "alive").length === 2 ? m : null;
          });
          assert.equal(seen.length, 2);
        }
        for (const node of nodes) {
          assert.ok(node.logs.all.some((l) => l.includes('"event":"gossip_dns_targets"')));
        }
      });

      await t.step("every key is readable from every node, proxied in one hop", async () => {
        for (let i = 0; i < KEYS; i += 40) {
          const records = Array.from({ length: 40 }, (_, j) => ({
            pk: `k${i + j}`,
            sk: "s",
            data: { n: i + j },
          }));
          const put = await nodes[i % 3]!.post("/records/put", { records });
          assert.equal(put.status, 200, put.text);
          mergeOffsets(offsets, put.json.offsets);
        }
        for (const node of nodes) assert.deepEqual(await readAll(node, KEYS, offsets), []);
        // A list of a pk held elsewhere is proxied too.
        const owned = await servingPartitions(a);
        const foreign = Array.from({ length: KEYS }, (_, i) => `k${i}`)
          .find((pk) => !owned.includes(partitionOf(pk, PARTITIONS)))!;
        const list = await a.post("/records/list", { pk: foreign });
        assert.equal(list.status, 200, list.text);
        assert.equal(list.json.records.length, 1);
        const metrics = (await a.internal("/metrics")).text;
        assert.ok(metric(metrics, 'firescroll_cluster_proxy_requests_total{result="ok"}') > 0);
      });

      await t.step(
        "a watch of every partition on one node streams all of them, proxied from their owners, and resumes on another node",
        async () => {
          const start = Array.from({ length: PARTITIONS }, (_, p) => `${p}:-1`).join(",");
          const all = await WatchClient.open(a.apiUrl, "", start);
          const owned = await servingPartitions(a);
          const foreign = Array.from({ length: 100 }, (_, i) => `w${i}`)
            .find((pk) => !owned.includes(partitionOf(pk, PARTITIONS)))!;
          const one = await WatchClient.open(a.apiUrl, `pk=${foreign}`);
          const expected: string[] = [];
          for (let i = 0; i < 24; i++) {
            const pk = i % 4 === 0 ? foreign : `w${i}`;
            const put = await nodes[i % 3]!.post("/records/put", {
              records: [{ pk, sk: `s${i}`, data: i }],
            });
            assert.equal(put.status, 200, put.text);
            expected.push(`${pk}/s${i}@${put.json.offsets[String(partitionOf(pk, PARTITIONS))]}`);
          }
          const seen = (w: WatchClient) =>
            w.events.filter((e) => (e.data.pk as string).startsWith("w"))
              .map((e) => `${e.data.pk}/${e.data.sk}@${e.data.version}`);
          await all.until("the burst", 20_000, () => seen(all).length >= expected.length);
          assert.deepEqual(seen(all).sort(), [...expected].sort());
          const ofForeign = expected.filter((c) => c.startsWith(`${foreign}/`));
          await one.until("the foreign pk's changes", 20_000, (e) => e.length >= ofForeign.length);
          assert.deepEqual(seen(one), ofForeign);
          // The ids are cursors of the log, the same on every node: resume on another one.
          const middle = all.events.find((e) => e.data.pk === foreign)!;
          await all.close();
          await one.close();
          const resumed = await WatchClient.open(b.apiUrl, "", middle.id);
          const put = await c.post("/records/put", {
            records: [{ pk: foreign, sk: "end", data: 0 }],
          });
          assert.equal(put.status, 200, put.text);
          await resumed.until("the rest", 20_000, (e) => e.some((x) => x.data.sk === "end"));
          // Exactly the changes after the id's cursor of their own partition, and the new one.
          const wanted = expected.filter((c) => {
            const pk = c.split("/")[0]!;
            const offset = Number(c.split("@")[1]);
            return offset > positionOf(middle.id, partitionOf(pk, PARTITIONS))[0];
          });
          const rest = seen(resumed);
          assert.deepEqual(rest.filter((c) => !c.includes("/end@")).sort(), wanted.sort());
          assert.equal(rest.filter((c) => c.includes("/end@")).length, 1);
          await resumed.close();
        },
      );

      await t.step(
        "history and reads of the past of a pk held elsewhere are proxied to its owner",
        async () => {
          const owned = await servingPartitions(a);
          const pk = Array.from({ length: 100 }, (_, i) => `past${i}`)
            .find((k) => !owned.includes(partitionOf(k, PARTITIONS)))!;
          const p = String(partitionOf(pk, PARTITIONS));
          const v1 = await b.post("/records/put", { records: [{ pk, sk: "s", data: "v1" }] });
          const v2 = await b.post("/records/put", { records: [{ pk, sk: "s", data: "v2" }] });
          assert.equal(v2.status, 200, v2.text);
          const at = { [p]: v2.json.offsets[p] };
          const history = await a.post("/records/history", {
            pk,
            sk: "s",
            after: at,
            wait_ms: 5000,
          });
          assert.equal(history.status, 200, history.text);
          assert.deepEqual(
            history.json.versions.map((v: { record: { data: string } }) => v.record.data),
            ["v2", "v1"],
          );
          const then = { [p]: v1.json.offsets[p] };
          const get = await a.post("/records/get", { records: [{ pk, sk: "s" }], as_of: then });
          assert.equal(get.status, 200, get.text);
          assert.equal(get.json.records[0].data, "v1");
          const list = await c.post("/records/list", { pk, as_of: then });
          assert.equal(list.status, 200, list.text);
          assert.deepEqual(list.json.records.map((r: { data: string }) => r.data), ["v1"]);
        },
      );

      await t.step("a proxied read with after waits on the owner for the offset", async () => {
        const owned = await servingPartitions(b);
        const pk = Array.from({ length: 100 }, (_, i) => `late${i}`)
          .find((k) => owned.includes(partitionOf(k, PARTITIONS)))!;
        const p = String(partitionOf(pk, PARTITIONS));
        const first = await a.post("/records/put", { records: [{ pk, sk: "s", data: 1 }] });
        const next = first.json.offsets[p] + 1;
        const started = Date.now();
        const parked = c.post("/records/get", {
          records: [{ pk, sk: "s" }],
          after: { [p]: next },
          wait_ms: 5000,
        });
        await new Promise((r) => setTimeout(r, 400));
        const second = await a.post("/records/put", { records: [{ pk, sk: "s", data: 2 }] });
        assert.equal(second.json.offsets[p], next);
        const result = await parked;
        assert.equal(result.status, 200, result.text);
        assert.equal(result.json.records[0].data, 2);
        assert.ok(Date.now() - started >= 350, "the read did not wait for the offset");
        const never = await c.post("/records/get", {
          records: [{ pk, sk: "s" }],
          after: { [p]: next + 1000 },
          wait_ms: 200,
        });
        assert.equal(never.status, 504, never.text);
        assert.equal(never.json.code, "not_caught_up");
      });

      await t.step("forged and unsigned gossip is dropped and changes nothing", async () => {
        const forged: NodeState = {
          v: 1,
          id: "evil",
          namespace: ns,
          region: "local",
          group: "g",
          addr: "127.0.0.1:9",
          inc: Date.now(),
          seq: 1,
          ts: Date.now(),
          state: "alive",
          partitions: PARTITIONS,
          serving: encodeBitmap(Array.from({ length: PARTITIONS }, (_, i) => i), PARTITIONS),
        };
        const before = (await a.internal("/metrics")).text;
        await sendDatagram(HOSTS[0]!, encodeState(forged, "not-the-cluster-secret-at-all"));
        await sendDatagram(HOSTS[0]!, new TextEncoder().encode(JSON.stringify(forged)));
        await waitFor("drops to be counted", 5000, async () => {
          const text = (await a.internal("/metrics")).text;
          const bad = 'firescroll_cluster_gossip_dropped_total{reason="bad_signature"}';
          const unsigned = 'firescroll_cluster_gossip_dropped_total{reason="unsigned"}';
          return metric(text, bad) > metric(before, bad) &&
              metric(text, unsigned) > metric(before, unsigned)
            ? true
            : null;
        });
        assert.ok(!(await members(a)).some((m) => m.id === "evil"));
        assert.deepEqual(await readAll(a, KEYS), []);
      });

      await t.step(
        "a node stopped gracefully is routed around with zero failed reads",
        async () => {
          const load = readLoad([a, b], KEYS);
          await new Promise((r) => setTimeout(r, 500));
          assert.equal(await c.stop("SIGTERM", 40_000), 0);
          assert.ok(c.logs.all.some((l) => l.includes('"event":"hand_off_done"')));
          await new Promise((r) => setTimeout(r, 2000));
          await load.stop();
          assert.deepEqual(load.failures.slice(0, 5), []);
          assert.ok(load.ok > 50, `only ${load.ok} reads`);
          await waitForSplit([a, b], PARTITIONS);
        },
      );

      await t.step("a killed node is routed around within the detection bound", async () => {
        const killedAt = Date.now();
        await b.kill();
        const detected = await waitFor("the killed node to be suspect", 10_000, async () => {
          const m = (await members(a)).find((x) => x.id === `n${HOSTS[1]!.split(".").at(-1)}`);
          return m === undefined || m.state === "suspect" ? Date.now() : null;
        });
        // 3 silent intervals, plus one interval and the poll for scheduling slack.
        assert.ok(detected - killedAt <= 5 * INTERVAL_MS + 500, `${detected - killedAt} ms`);
        // From then on reads never hang on the dead node: each answers fast, 200 or 503.
        for (let i = 0; i < 20; i++) {
          const started = Date.now();
          const result = await a.post("/records/get", {
            records: Array.from({ length: 16 }, (_, j) => ({ pk: `k${j}`, sk: "s" })),
          });
          assert.ok([200, 503].includes(result.status), result.text);
          if (result.status === 503) assert.equal(result.json.code, "partition_unavailable");
          assert.ok(Date.now() - started < 1000, "a read waited on the dead node");
        }
        // Kafka moves the partitions (session timeout) and the survivor serves every key.
        await waitFor("the survivor to serve every partition", 60_000, async () => {
          return (await servingPartitions(a)).length === PARTITIONS ? true : null;
        });
        assert.deepEqual(await readAll(a, KEYS, offsets), []);
      });
    } catch (error) {
      // The nodes' own account of what happened, for the failure report.
      if (error instanceof Error) {
        for (const n of nodes) error.message += `\n--- ${n.apiUrl} ---\n${n.logs.tail(40)}`;
      }
      throw error;
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      await dns.stop();
    }
  },
});
