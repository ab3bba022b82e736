/**
 * Gossip over UDP: every broadcast interval this node sends its signed state to every known
 * target — the static `GOSSIP_PEERS`, the AAAA records of the region's Fly internal DNS name
 * (re-resolved periodically), and every member it has heard from — and takes in theirs.
 */
import type { ConfigCluster, ConfigGossip, ConfigNode } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { assert } from "../util/assert.ts";
import { errorMessage, log } from "../util/log.ts";
import { sleep } from "../util/sleep.ts";
import { bindOrThrow } from "../util/start_error.ts";
import { Membership } from "./membership.ts";
import { decodeBitmap, decodeState, encodeBitmap, encodeState, type NodeState } from "./message.ts";

/**
 * What the gossip agent is built from: its config sections whole — `cluster` (namespace,
 * partitions, and the secret that signs datagrams, required), `node` (instance id, region,
 * replica group, and `listenHost`, the address the UDP socket binds to), `gossip` (port, static
 * peers, DNS name and resolver, intervals) — and what is injected.
 */
export interface GossipOptions {
  readonly cluster: ConfigCluster;
  readonly node: ConfigNode;
  readonly gossip: ConfigGossip;
  /** Most targets kept (static + DNS + learned): bounds the work of one broadcast. */
  readonly targetsMax: number;
  readonly metrics: Metrics;
  readonly now: () => number;
}

/** Splits `host:port` / `[v6]:port`. */
export function splitHostPort(entry: string): { hostname: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(entry);
  if (match === null) throw new Error(`Cannot parse ${entry} as host:port`);
  return { hostname: match[1]!, port: Number(match[2]) };
}

/** `host:port` with IPv6 hosts bracketed. */
export function joinHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as plain IPv4, so IPv4 sockets can use it. */
export function unmapIpv4(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match === null ? address : match[1]!;
}

/** The gossip agent of one node. */
export class Gossip {
  readonly membership: Membership;
  private socket: Deno.DatagramConn | null = null;
  private readonly incarnation: number;
  private seq = 0;
  private leaving = false;
  private dnsTargets: string[] = [];
  private servingNow: () => Iterable<number> = () => [];
  private addr = "";
  /** The HMAC key of every datagram (`cluster.secret`, asserted set). */
  private readonly secret: string;

  constructor(private readonly options: GossipOptions) {
    const { cluster, node, gossip } = options;
    assert(cluster.secret !== null, "gossip needs CLUSTER_SECRET (checked by config)");
    this.secret = cluster.secret;
    this.incarnation = options.now();
    this.membership = new Membership({
      instanceId: node.instanceId,
      namespace: cluster.namespace,
      region: node.region,
      partitions: cluster.partitions,
      broadcastMs: gossip.broadcastMs,
      maxClockSkewMs: Math.max(30_000, 20 * gossip.broadcastMs),
      now: options.now,
    });
  }

  /**
   * Binds the socket and runs until `signal` aborts. `addr` is this node's internal
   * `host:port`; `serving` lists the partitions it serves right now.
   */
  async run(addr: string, serving: () => Iterable<number>, signal: AbortSignal): Promise<void> {
    this.addr = addr;
    this.servingNow = serving;
    const { listenHost } = this.options.node;
    const { port } = this.options.gossip;
    const socket = bindOrThrow(
      "gossip",
      listenHost,
      port,
      () => Deno.listenDatagram({ transport: "udp", hostname: listenHost, port }),
    );
    this.socket = socket;
    log("info", "gossip_listening", {
      hostname: listenHost,
      port: (socket.addr as Deno.NetAddr).port,
      peers: this.options.gossip.peers,
      dns: this.options.gossip.dnsName,
    });
    signal.addEventListener("abort", () => {
      try {
        socket.close();
      } catch { /* already closed */ }
    }, { once: true });
    await Promise.all([this.receive(socket), this.broadcastLoop(signal), this.dnsLoop(signal)]);
  }

  /** Sends `leaving` at once (peers then prefer others), and in every later broadcast. */
  async announceLeaving(): Promise<void> {
    this.leaving = true;
    await this.broadcast();
  }

  private state(): NodeState {
    return {
      v: 1,
      id: this.options.node.instanceId,
      namespace: this.options.cluster.namespace,
      region: this.options.node.region,
      group: this.options.node.replicaGroup,
      addr: this.addr,
      inc: this.incarnation,
      seq: ++this.seq,
      ts: this.options.now(),
      state: this.leaving ? "leaving" : "alive",
      partitions: this.options.cluster.partitions,
      serving: encodeBitmap(this.servingNow(), this.options.cluster.partitions),
    };
  }

  private targets(): string[] {
    const all = new Set<string>(this.options.gossip.peers);
    for (const t of this.dnsTargets) all.add(t);
    for (const { member } of this.membership.list()) all.add(member.gossipAddr);
    return [...all].slice(0, this.options.targetsMax);
  }

  private async broadcast(): Promise<void> {
    const socket = this.socket;
    if (socket === null) return;
    const datagram = encodeState(this.state(), this.secret);
    for (const target of this.targets()) {
      try {
        const { hostname, port } = splitHostPort(target);
        await socket.send(datagram, { transport: "udp", hostname: unmapIpv4(hostname), port });
      } catch {
        // An unreachable target is normal (a node that just left); failure detection handles it.
        this.options.metrics.gossipSendErrors.labels().inc();
      }
    }
  }

  private async broadcastLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.broadcast();
      const gone = this.membership.prune();
      for (const id of gone) log("info", "member_forgotten", { id });
      this.updateMetrics();
      await sleep(this.options.gossip.broadcastMs, signal);
    }
  }

  private async dnsLoop(signal: AbortSignal): Promise<void> {
    const name = this.options.gossip.dnsName;
    if (name === null) return;
    const server = this.options.gossip.dnsServer === null
      ? null
      : splitHostPort(this.options.gossip.dnsServer);
    let previous = "";
    while (!signal.aborted) {
      try {
        const records = await Deno.resolveDns(name, "AAAA", {
          ...(server === null
            ? {}
            : { nameServer: { ipAddr: server.hostname, port: server.port } }),
          signal,
        });
        // Unmapped like datagram sources, so a peer found both ways is one target, not two.
        this.dnsTargets = records.map((ip) => joinHostPort(unmapIpv4(ip), this.options.gossip.port))
          .sort();
        const now = this.dnsTargets.join(",");
        if (now !== previous) log("info", "gossip_dns_targets", { name, targets: this.dnsTargets });
        previous = now;
      } catch (error) {
        if (signal.aborted) return;
        this.options.metrics.gossipDnsErrors.labels().inc();
        log("warn", "gossip_dns_failed", { name, error: errorMessage(error) });
      }
      await sleep(this.options.gossip.dnsIntervalMs, signal);
    }
  }

  private async receive(socket: Deno.DatagramConn): Promise<void> {
    const dropped = this.options.metrics.gossipDropped;
    while (true) {
      let datagram: Uint8Array;
      let from: Deno.Addr;
      try {
        [datagram, from] = await socket.receive();
      } catch {
        return; // closed
      }
      const decoded = decodeState(datagram, this.secret);
      if (!decoded.ok) {
        dropped.labels(decoded.reason).inc();
        continue;
      }
      const serving = decodeBitmap(decoded.state.serving, decoded.state.partitions);
      if (serving === null) {
        dropped.labels("malformed").inc();
        continue;
      }
      const source = from as Deno.NetAddr;
      const state = decoded.state;
      const observed = this.membership.observe(
        state,
        serving,
        joinHostPort(unmapIpv4(source.hostname), source.port),
      );
      if (observed === "stale" || observed === "foreign") dropped.labels(observed).inc();
      else if (observed === "new") {
        log("info", "member_joined", { id: state.id, group: state.group, addr: state.addr });
      }
    }
  }

  private updateMetrics(): void {
    const counts = { alive: 0, leaving: 0, suspect: 0 };
    for (const { health } of this.membership.list()) counts[health]++;
    for (const [state, n] of Object.entries(counts)) {
      this.options.metrics.gossipMembers.labels(state).set(n);
    }
  }
}
