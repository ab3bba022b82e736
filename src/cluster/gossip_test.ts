import { deepEqual, equal, ok } from "node:assert/strict";
import { loadConfig } from "../config/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { Gossip, joinHostPort, splitHostPort, unmapIpv4 } from "./gossip.ts";
import type { Health } from "./membership.ts";
import { encodeState, type NodeState } from "./message.ts";

const SECRET = "gossip-test-secret-0123";
const PARTITIONS = 16;
const DNSMASQ = "/usr/sbin/dnsmasq";

/** A UDP port free on every given address right now (bound to :0, then released). */
function freeUdpPort(hostnames: string[] = ["127.0.0.1"]): number {
  for (let tries = 0; tries < 20; tries++) {
    const probe = Deno.listenDatagram({ transport: "udp", hostname: hostnames[0]!, port: 0 });
    const { port } = probe.addr as Deno.NetAddr;
    const others: Deno.DatagramConn[] = [];
    try {
      for (const hostname of hostnames.slice(1)) {
        others.push(Deno.listenDatagram({ transport: "udp", hostname, port }));
      }
      return port;
    } catch {
      // Taken on another address: try another port.
    } finally {
      probe.close();
      for (const other of others) other.close();
    }
  }
  throw new Error(`Cannot find a free UDP port on ${hostnames}`);
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`. */
async function waitFor(what: string, condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Agent {
  readonly gossip: Gossip;
  readonly metrics: Metrics;
  readonly serving: Set<number>;
  readonly port: number;
  stop(): Promise<void>;
}

interface AgentOptions {
  readonly id: string;
  readonly port: number;
  readonly peers?: readonly string[];
  readonly serving?: number[];
  readonly broadcastMs?: number;
  readonly bindHost?: string;
  readonly dnsName?: string;
  readonly dnsServer?: string;
}

/** A running gossip agent whose internal address is `<id>.internal:8191`. */
function startAgent(options: AgentOptions): Agent {
  const metrics = createMetrics();
  const serving = new Set(options.serving ?? []);
  const config = loadConfig({
    INSTANCE_ID: options.id,
    NAMESPACE: "default",
    REGION: "local",
    REPLICA_GROUP: `group-${options.id}`,
    PARTITIONS: String(PARTITIONS),
    CLUSTER_SECRET: SECRET,
    LISTEN_HOST: options.bindHost ?? "127.0.0.1",
    GOSSIP_PORT: String(options.port),
    GOSSIP_BROADCAST_MS: String(options.broadcastMs ?? 50),
    GOSSIP_PEERS: (options.peers ?? []).join(","),
    GOSSIP_DNS_NAME: options.dnsName ?? "",
    GOSSIP_DNS_SERVER: options.dnsServer ?? "",
    GOSSIP_DNS_INTERVAL_MS: "100",
  });
  const gossip = new Gossip({
    cluster: config.cluster,
    node: config.node,
    gossip: config.gossip,
    targetsMax: 16,
    metrics,
    now: () => Date.now(),
  });
  const controller = new AbortController();
  const running = gossip.run(`${options.id}.internal:8191`, () => serving, controller.signal);
  let stopped: Promise<void> | null = null;
  return {
    gossip,
    metrics,
    serving,
    port: options.port,
    stop: () => {
      controller.abort();
      return stopped ??= running;
    },
  };
}

function healthOf(agent: Agent, id: string): Health | undefined {
  return agent.gossip.membership.list().find(({ member }) => member.id === id)?.health;
}

function memberOf(agent: Agent, id: string) {
  return agent.gossip.membership.list().find(({ member }) => member.id === id)?.member;
}

/** The value of one sample in the rendered registry, 0 if absent. */
function sample(metrics: Metrics, name: string, labels = ""): number {
  const prefix = `${name}${labels} `;
  const line = metrics.registry.render().split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(prefix.length));
}

function dropped(metrics: Metrics, reason: string): number {
  return sample(metrics, "firescroll_cluster_gossip_dropped_total", `{reason="${reason}"}`);
}

function nodeState(overrides: Partial<NodeState> = {}): NodeState {
  const now = Date.now();
  return {
    v: 1,
    id: "crafted",
    namespace: "default",
    region: "local",
    group: "g",
    addr: "127.0.0.1:1",
    inc: now,
    seq: 1,
    ts: now,
    state: "alive",
    partitions: PARTITIONS,
    serving: btoa("\x01\x00"),
    ...overrides,
  };
}

Deno.test("splitHostPort() and joinHostPort() handle IPv4, IPv6 and names", () => {
  deepEqual(splitHostPort("127.0.0.1:8192"), { hostname: "127.0.0.1", port: 8192 });
  deepEqual(splitHostPort("[fdaa::3]:8192"), { hostname: "fdaa::3", port: 8192 });
  deepEqual(splitHostPort("node-2.internal:1"), { hostname: "node-2.internal", port: 1 });
  equal(joinHostPort("fdaa::3", 8192), "[fdaa::3]:8192");
  equal(joinHostPort("10.0.0.1", 8192), "10.0.0.1:8192");
  equal(unmapIpv4("::ffff:127.0.0.1"), "127.0.0.1");
  equal(unmapIpv4("::FFFF:10.1.2.3"), "10.1.2.3");
  equal(unmapIpv4("fdaa::3"), "fdaa::3");
});

Deno.test("two gossip agents with static peers find each other and exchange serving sets", async () => {
  const [portA, portB] = [freeUdpPort(), freeUdpPort()];
  const a = startAgent({ id: "a", port: portA, peers: [`127.0.0.1:${portB}`], serving: [1, 2] });
  const b = startAgent({ id: "b", port: portB, peers: [`127.0.0.1:${portA}`], serving: [3] });
  try {
    await waitFor(
      "a and b see each other alive",
      () => healthOf(a, "b") === "alive" && healthOf(b, "a") === "alive",
    );
    const seenByA = memberOf(a, "b")!;
    equal(seenByA.addr, "b.internal:8191");
    equal(seenByA.group, "group-b");
    equal(seenByA.gossipAddr, `127.0.0.1:${portB}`);
    deepEqual(seenByA.serving, new Set([3]));
    deepEqual(memberOf(b, "a")!.serving, new Set([1, 2]));
    deepEqual(a.gossip.membership.ownersOf(3).map((m) => m.id), ["b"]);
    equal(a.gossip.membership.servedElsewhere(1), false, "a does not count itself");

    b.serving.add(15);
    b.serving.delete(3);
    await waitFor("a sees b's new serving set", () => memberOf(a, "b")?.serving.has(15) === true);
    deepEqual(memberOf(a, "b")!.serving, new Set([15]));
    await waitFor(
      "the members gauge counts b",
      () => sample(a.metrics, "firescroll_cluster_gossip_members", '{state="alive"}') === 1,
    );
    equal(healthOf(a, "a"), undefined, "a never lists itself");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("an agent bound to :: (Fly's 6PN) talks to IPv4 and IPv6 peers on one socket", async () => {
  const [portA, portB, portC] = [freeUdpPort(["::"]), freeUdpPort(), freeUdpPort(["::1"])];
  const a = startAgent({ id: "a", port: portA, bindHost: "::", peers: [`127.0.0.1:${portB}`] });
  const b = startAgent({ id: "b", port: portB, peers: [`127.0.0.1:${portA}`] });
  const c = startAgent({ id: "c", port: portC, bindHost: "::1", peers: [`[::1]:${portA}`] });
  try {
    await waitFor(
      "a, b and c see each other through the dual-stack agent",
      () =>
        healthOf(a, "b") === "alive" && healthOf(b, "a") === "alive" &&
        healthOf(a, "c") === "alive" && healthOf(c, "a") === "alive",
    );
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }
});

Deno.test("a leaving announcement is seen at once, not at the next broadcast", async () => {
  const [portA, portB] = [freeUdpPort(), freeUdpPort()];
  // A 10 s interval: only the announcement itself can tell b in time.
  const b = startAgent({ id: "b", port: portB, broadcastMs: 10_000 });
  const a = startAgent({
    id: "a",
    port: portA,
    peers: [`127.0.0.1:${portB}`],
    serving: [4],
    broadcastMs: 10_000,
  });
  try {
    await waitFor("b sees a alive", () => healthOf(b, "a") === "alive");
    equal(b.gossip.membership.servedElsewhere(4), true);
    const started = performance.now();
    await a.gossip.announceLeaving();
    await waitFor("b sees a leaving", () => healthOf(b, "a") === "leaving", 1000);
    ok(performance.now() - started < 1000);
    equal(b.gossip.membership.servedElsewhere(4), false, "a leaving peer does not count");
    deepEqual(b.gossip.membership.ownersOf(4).map((m) => m.id), ["a"], "but still serves");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("a stopped agent turns suspect after about 3 intervals and is forgotten after 10", async () => {
  const intervalMs = 50;
  const [portA, portB] = [freeUdpPort(), freeUdpPort()];
  const a = startAgent({ id: "a", port: portA, peers: [`127.0.0.1:${portB}`], serving: [1] });
  const b = startAgent({ id: "b", port: portB, peers: [`127.0.0.1:${portA}`] });
  try {
    await waitFor("b sees a alive", () => healthOf(b, "a") === "alive");
    await a.stop();
    const stoppedAt = performance.now();
    await waitFor("b suspects a", () => healthOf(b, "a") === "suspect");
    const suspectAfterMs = performance.now() - stoppedAt;
    // a's last datagram left at most one interval before it stopped.
    ok(suspectAfterMs >= 2 * intervalMs, `suspect after ${suspectAfterMs} ms`);
    deepEqual(b.gossip.membership.ownersOf(1), [], "a suspect peer is not routed to");
    await waitFor(
      "the members gauge counts a as suspect",
      () => sample(b.metrics, "firescroll_cluster_gossip_members", '{state="suspect"}') === 1,
    );
    await waitFor("b forgets a", () => memberOf(b, "a") === undefined);
    const forgottenAfterMs = performance.now() - stoppedAt;
    ok(forgottenAfterMs >= 9 * intervalMs, `forgotten after ${forgottenAfterMs} ms`);
    await waitFor(
      "the members gauge forgets a",
      () => sample(b.metrics, "firescroll_cluster_gossip_members", '{state="suspect"}') === 0,
    );
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("an agent drops and counts forged, unsigned, oversized, foreign and replayed datagrams", async () => {
  const port = freeUdpPort();
  const agent = startAgent({ id: "a", port, broadcastMs: 10_000 });
  const raw = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  try {
    await raw.send(encodeState(nodeState({ id: "mallory" }), "not-the-cluster-secret"), to);
    await raw.send(new TextEncoder().encode(JSON.stringify(nodeState({ id: "mallory" }))), to);
    await raw.send(new Uint8Array(1500), to);
    await raw.send(encodeState(nodeState({ id: "abroad", region: "elsewhere" }), SECRET), to);
    const genuine = encodeState(nodeState({ id: "c" }), SECRET);
    await raw.send(genuine, to);
    await waitFor("c is taken in", () => healthOf(agent, "c") === "alive");
    await raw.send(genuine, to);
    await raw.send(genuine, to);
    await waitFor(
      "every bad datagram is counted",
      () =>
        dropped(agent.metrics, "bad_signature") === 1 &&
        dropped(agent.metrics, "unsigned") === 1 &&
        dropped(agent.metrics, "oversized") === 1 &&
        dropped(agent.metrics, "foreign") === 1 &&
        dropped(agent.metrics, "stale") === 2,
    );
    equal(dropped(agent.metrics, "malformed"), 0);
    deepEqual(agent.gossip.membership.list().map(({ member }) => member.id), ["c"]);
    const c = memberOf(agent, "c")!;
    equal(c.gossipAddr, `127.0.0.1:${(raw.addr as Deno.NetAddr).port}`);
    deepEqual(c.serving, new Set([0]));
  } finally {
    raw.close();
    await agent.stop();
  }
});

Deno.test("an agent drops a well-signed state whose bitmap is malformed", async () => {
  const port = freeUdpPort();
  const agent = startAgent({ id: "a", port, broadcastMs: 10_000 });
  const raw = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  try {
    await raw.send(encodeState(nodeState({ id: "c", serving: btoa("\x01") }), SECRET), to);
    await raw.send(encodeState(nodeState({ id: "d", serving: "not base64!" }), SECRET), to);
    await waitFor("both are counted", () => dropped(agent.metrics, "malformed") === 2);
    equal(agent.gossip.membership.list().length, 0);
  } finally {
    raw.close();
    await agent.stop();
  }
});

let hasDnsmasq = false;
try {
  hasDnsmasq = Deno.statSync(DNSMASQ).isFile;
} catch {
  // Not installed: the DNS discovery test is skipped.
}

Deno.test({
  name: "an agent finds its peers through the AAAA records of a DNS name",
  ignore: !hasDnsmasq,
  fn: async () => {
    const name = "local.app.internal";
    // Both agents gossip on the same port, as on Fly; 127.0.0.2 is loopback too.
    const gossipPort = freeUdpPort(["127.0.0.1", "127.0.0.2"]);
    const dnsPort = freeUdpPort();
    const dnsmasq = new Deno.Command(DNSMASQ, {
      args: [
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        `--port=${dnsPort}`,
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        // Several records for one name are several AAAA answers; IPv4-mapped ones are accepted.
        `--host-record=${name},::ffff:127.0.0.1`,
        `--host-record=${name},::ffff:127.0.0.2`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const agents: Agent[] = [];
    try {
      const nameServer = { ipAddr: "127.0.0.1", port: dnsPort };
      // Ask until dnsmasq answers, each query cut short (one sent before dnsmasq binds would wait
      // out the resolver's 5 s timeout). Not by binding the port to see it taken: that probe
      // could hold the port at the instant dnsmasq binds, and dnsmasq would exit.
      let records: string[] = [];
      for (let i = 0; i < 50 && records.length === 0; i++) {
        records = await Deno.resolveDns(name, "AAAA", {
          nameServer,
          signal: AbortSignal.timeout(200),
        }).catch(() => []);
      }
      deepEqual(records.sort(), ["::ffff:127.0.0.1", "::ffff:127.0.0.2"]);

      // Only a resolves the name; b knows nobody and can learn of a only from a's datagrams.
      const a = startAgent({
        id: "a",
        port: gossipPort,
        bindHost: "127.0.0.1",
        serving: [1],
        dnsName: name,
        dnsServer: `127.0.0.1:${dnsPort}`,
      });
      agents.push(a);
      const b = startAgent({ id: "b", port: gossipPort, bindHost: "127.0.0.2", serving: [2] });
      agents.push(b);
      await waitFor(
        "a and b see each other alive",
        () => healthOf(a, "b") === "alive" && healthOf(b, "a") === "alive",
      );
      deepEqual(memberOf(a, "b")!.serving, new Set([2]));
      deepEqual(memberOf(b, "a")!.serving, new Set([1]));
      equal(memberOf(b, "a")!.gossipAddr, `127.0.0.1:${gossipPort}`);
      equal(sample(a.metrics, "firescroll_cluster_gossip_dns_errors_total"), 0);
      equal(sample(a.metrics, "firescroll_cluster_gossip_send_errors_total"), 0);
      // a reaches b both as a DNS target and as a member it heard from: one datagram each time.
      await new Promise((resolve) => setTimeout(resolve, 200));
      equal(dropped(b.metrics, "stale"), 0, "b gets each of a's datagrams once");
    } finally {
      await Promise.all(agents.map((agent) => agent.stop()));
      try {
        dnsmasq.kill("SIGTERM");
      } catch {
        // Exited already: the assertions above said why.
      }
      await dnsmasq.status;
    }
  },
});
