/**
 * The region's members as learned from gossip, with failure detection by silence: a member not
 * heard from for 3 broadcast intervals is not routed to; after 10 it is forgotten (DESIGN §6).
 */
import type { NodeState } from "./message.ts";

/** How a member looks from here. */
export type Health = "alive" | "leaving" | "suspect";

/** A peer in this region. */
export interface Member {
  readonly id: string;
  readonly group: string;
  /** `host:port` of its internal HTTP port. */
  readonly addr: string;
  readonly inc: number;
  readonly seq: number;
  readonly state: "alive" | "leaving";
  readonly serving: ReadonlySet<number>;
  /** Local clock (ms) when its last datagram arrived. */
  readonly seenAt: number;
  /** Where its datagrams come from, so we gossip back even without DNS or a static entry. */
  readonly gossipAddr: string;
}

/** What became of an observed state. */
export type Observed = "new" | "updated" | "stale" | "foreign" | "self";

/** Settings of the membership table. */
export interface MembershipOptions {
  /** This node's `node.instanceId`. */
  readonly instanceId: string;
  readonly namespace: string;
  readonly region: string;
  readonly partitions: number;
  /** `gossip.broadcastMs`: silence for 3 of them makes a member suspect, 10 forgets it. */
  readonly broadcastMs: number;
  /** Datagrams whose sender clock is further than this from ours are stale (replays). */
  readonly maxClockSkewMs: number;
  readonly now: () => number;
}

/** Members by id. */
export class Membership {
  private readonly members = new Map<string, Member>();
  /**
   * Where forgotten members' sequences stood. A datagram passes the clock check for up to
   * `maxClockSkewMs` after it was sent, longer than a member takes to be forgotten: without this,
   * a replay of a departed node's last datagram would bring it back as alive.
   */
  private readonly forgotten = new Map<string, { inc: number; seq: number; seenAt: number }>();

  constructor(private readonly options: MembershipOptions) {}

  /** Takes a verified state from `gossipAddr` into the table. */
  observe(state: NodeState, serving: ReadonlySet<number>, gossipAddr: string): Observed {
    const o = this.options;
    if (state.id === o.instanceId) return "self";
    if (
      state.namespace !== o.namespace || state.region !== o.region ||
      state.partitions !== o.partitions
    ) {
      return "foreign";
    }
    const now = o.now();
    if (Math.abs(now - state.ts) > o.maxClockSkewMs) return "stale";
    const known = this.members.get(state.id);
    const last = known ?? this.forgotten.get(state.id);
    if (last !== undefined) {
      if (state.inc < last.inc || (state.inc === last.inc && state.seq <= last.seq)) {
        return "stale";
      }
    }
    this.forgotten.delete(state.id);
    this.members.set(state.id, {
      id: state.id,
      group: state.group,
      addr: state.addr,
      inc: state.inc,
      seq: state.seq,
      state: state.state,
      serving,
      seenAt: now,
      gossipAddr,
    });
    return known === undefined ? "new" : "updated";
  }

  /** How a member looks now; null once it is to be forgotten. */
  health(member: Member): Health | null {
    const silentMs = this.options.now() - member.seenAt;
    if (silentMs > 10 * this.options.broadcastMs) return null;
    if (silentMs > 3 * this.options.broadcastMs) return "suspect";
    return member.state === "leaving" ? "leaving" : "alive";
  }

  /** Forgets members silent for 10 intervals; returns their ids. */
  prune(): string[] {
    const gone: string[] = [];
    for (const member of this.members.values()) {
      if (this.health(member) === null) {
        this.members.delete(member.id);
        this.forgotten.set(member.id, { inc: member.inc, seq: member.seq, seenAt: member.seenAt });
        gone.push(member.id);
      }
    }
    // A sender's clock may run up to maxClockSkewMs ahead: its datagrams pass the check until
    // twice that after they arrived.
    const now = this.options.now();
    for (const [id, last] of this.forgotten) {
      if (now - last.seenAt > 2 * this.options.maxClockSkewMs) this.forgotten.delete(id);
    }
    return gone;
  }

  /**
   * Peers to route a read of `partition` to, best first: alive ones in random order, then leaving
   * ones (they still serve while handing off). Suspect peers are never returned.
   */
  ownersOf(partition: number, random: () => number = Math.random): Member[] {
    const alive: Member[] = [];
    const leaving: Member[] = [];
    for (const member of this.members.values()) {
      if (!member.serving.has(partition)) continue;
      const health = this.health(member);
      if (health === "alive") alive.push(member);
      else if (health === "leaving") leaving.push(member);
    }
    shuffle(alive, random);
    shuffle(leaving, random);
    return alive.concat(leaving);
  }

  /**
   * Whether `partition` may be changing owners because a peer is leaving: a leaving peer still
   * names it, or no alive or leaving peer serves it while some peer is leaving. The news that a
   * peer took it over may then be a gossip round or two away.
   */
  handingOver(partition: number): boolean {
    let anyLeaving = false;
    let served = false;
    for (const member of this.members.values()) {
      const health = this.health(member);
      if (health === "leaving") {
        anyLeaving = true;
        if (member.serving.has(partition)) return true;
      } else if (health === "alive" && member.serving.has(partition)) served = true;
    }
    return anyLeaving && !served;
  }

  /** Whether some alive (not leaving, not suspect) peer serves `partition`. */
  servedElsewhere(partition: number): boolean {
    for (const member of this.members.values()) {
      if (member.serving.has(partition) && this.health(member) === "alive") return true;
    }
    return false;
  }

  /** Every member with its health, for status and metrics. */
  list(): { member: Member; health: Health }[] {
    const out: { member: Member; health: Health }[] = [];
    for (const member of this.members.values()) {
      const health = this.health(member);
      if (health !== null) out.push({ member, health });
    }
    return out.sort((a, b) => a.member.id < b.member.id ? -1 : 1);
  }
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
