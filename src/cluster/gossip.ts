/**
 * Gossip over UDP: every broadcast interval this node sends its signed state to every known
 * target — the static `GOSSIP_PEERS`, the AAAA records of the region's Fly internal DNS name
 * (re-resolved periodically), and every member it has heard from — and takes in theirs.
 */
import type { Metrics } from "../metrics/mod.ts";
import { errorMessage, log } from "../util/log.ts";
import { sleep } from "../util/sleep.ts";
import { bindOrThrow } from "../util/start_error.ts";
import { Membership } from "./membership.ts";
import { decodeBitmap, decodeState, encodeBitmap, encodeState, type NodeState } from "./message.ts";

/** Settings of the gossip loop. */
export interface GossipOptions {
  readonly selfId: string;
  readonly namespace: string;
  readonly region: string;
  readonly group: string;
  readonly partitions: number;
  readonly secret: string;
  /** Address the UDP socket binds to. */
  readonly bindHost: string;
  readonly port: number;
  readonly intervalMs: number;
  /** Static `host:port` targets. */
  readonly peers: readonly string[];
  /** DNS name whose AAAA records are the region's nodes (Fly: `<region>.<app>.internal`). */
  readonly dnsName: string | null;
  /** Resolver `host:port`, or null for the system's. */
  readonly dnsServer: string | null;
  readonly dnsIntervalMs: number;
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

  constructor(private readonly options: GossipOptions) {
    this.incarnation = options.now();
    this.membership = new Membership({
      selfId: options.selfId,
      namespace: options.namespace,
      region: options.region,
      partitions: options.partitions,
      intervalMs: options.intervalMs,
      maxClockSkewMs: Math.max(30_000, 20 * options.intervalMs),
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
    const { bindHost, port } = this.options;
    const socket = bindOrThrow(
      "gossip",
      bindHost,
      port,
      () => Deno.listenDatagram({ transport: "udp", hostname: bindHost, port }),
    );
    this.socket = socket;
    log("info", "gossip_listening", {
      hostname: this.options.bindHost,
      port: (socket.addr as Deno.NetAddr).port,
      peers: this.options.peers,
      dns: this.options.dnsName,
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
      id: this.options.selfId,
      namespace: this.options.namespace,
      region: this.options.region,
      group: this.options.group,
      addr: this.addr,
      inc: this.incarnation,
      seq: ++this.seq,
      ts: this.options.now(),
      state: this.leaving ? "leaving" : "alive",
      partitions: this.options.partitions,
      serving: encodeBitmap(this.servingNow(), this.options.partitions),
    };
  }

  private targets(): string[] {
    const all = new Set<string>(this.options.peers);
    for (const t of this.dnsTargets) all.add(t);
    for (const { member } of this.membership.list()) all.add(member.gossipAddr);
    return [...all].slice(0, this.options.targetsMax);
  }

  private async broadcast(): Promise<void> {
    const socket = this.socket;
    if (socket === null) return;
    const datagram = encodeState(this.state(), this.options.secret);
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
      await sleep(this.options.intervalMs, signal);
    }
  }

  private async dnsLoop(signal: AbortSignal): Promise<void> {
    const name = this.options.dnsName;
    if (name === null) return;
    const server = this.options.dnsServer === null ? null : splitHostPort(this.options.dnsServer);
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
        this.dnsTargets = records.map((ip) => joinHostPort(unmapIpv4(ip), this.options.port))
          .sort();
        const now = this.dnsTargets.join(",");
        if (now !== previous) log("info", "gossip_dns_targets", { name, targets: this.dnsTargets });
        previous = now;
      } catch (error) {
        if (signal.aborted) return;
        this.options.metrics.gossipDnsErrors.labels().inc();
        log("warn", "gossip_dns_failed", { name, error: errorMessage(error) });
      }
      await sleep(this.options.dnsIntervalMs, signal);
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
      const decoded = decodeState(datagram, this.options.secret);
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
