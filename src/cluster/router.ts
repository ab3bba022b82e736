/**
 * Read routing for partitions this node does not serve: one proxied hop to a live peer of the
 * region that serves the partition (random choice, one retry on another peer), over the peer's
 * internal port with the cluster secret. The peer answers from its own LMDB and never proxies
 * again (hop limit 1), so a routing disagreement can cost a retry, never a loop.
 */
import type { ConfigCluster, ConfigGossip } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { PeerKey, PeerReads } from "../node/mod.ts";
import { assert } from "../util/assert.ts";
import { isErrorCode } from "../util/error_codes.ts";
import { OperationalError } from "../util/errors.ts";
import { sleep } from "../util/sleep.ts";
import type { Member, Membership } from "./membership.ts";

/** Internal route a peer serves a get on: body like `/records/get`, NDJSON answer. */
export const INTERNAL_GET_PATH = "/internal/records/get";
/** Internal route a peer serves a list on: body and answer like `/records/list`. */
export const INTERNAL_LIST_PATH = "/internal/records/list";
/** Internal route a peer serves a key's history on: body and answer like `/records/history`. */
export const INTERNAL_HISTORY_PATH = "/internal/records/history";
/** Internal route a peer serves a watch of its own partitions on: body like `/records/watch`. */
export const INTERNAL_WATCH_PATH = "/internal/records/watch";
/** Internal route prefix a peer streams a partition snapshot from (`…/{partition}`). */
export const INTERNAL_SNAPSHOT_PATH = "/internal/snapshots/";
/** Response header carrying the snapshot's manifest (JSON). */
export const MANIFEST_HEADER = "x-firescroll-manifest";

/** Pause between rounds while a read with `wait_ms` follows a partition to its new owner. */
const FOLLOW_MS = 50;
/**
 * Gossip rounds a read follows a partition that a leaving peer is handing over, whatever its
 * `wait_ms`: the stopping owner closes the partition once a peer took it over, and the news of
 * that may reach this node a round or two later.
 */
const HAND_OVER_ROUNDS = 3;

/** Internal get requests in flight to one peer before further reads wait and share one. */
const PEER_REQUESTS_MAX = 4;
/** Most keys in one shared internal request (well under any RECORDS_PER_REQUEST_MAX default). */
const COALESCE_KEYS_MAX = 500;

/** Reads waiting to share the next internal request to one peer. */
interface PeerQueue {
  inFlight: number;
  readonly waiting: {
    readonly records: readonly { pk: string; sk: string }[];
    readonly resolve: (lines: string[] | null) => void;
    readonly reject: (error: unknown) => void;
  }[];
}

/** A key to read through a peer, with its partition. */
export type RoutedKey = PeerKey;

/**
 * What the router is built from: its config sections whole — `cluster.secret` (the bearer of
 * every proxied call, required) and `gossip.proxyTimeoutMs` (bound on one call, plus its
 * `wait_ms`) — and what is injected.
 */
export interface RouterOptions {
  readonly cluster: ConfigCluster;
  readonly gossip: ConfigGossip;
  readonly metrics: Metrics;
  readonly random?: () => number;
  /** The node's clock (default: the wall clock). */
  readonly now?: () => number;
}

function unavailable(partition: number, detail: string): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot read: partition ${partition} ${detail}`,
    { partition },
  );
}

/**
 * A peer's problem that must reach the client as is (e.g. 504 `not_caught_up`), or null when
 * another peer should be tried: not a problem, `partition_unavailable`, or a code outside
 * the closed list of codes (a peer of another version), which this node cannot pass on.
 */
function fromProblem(text: string): OperationalError | null {
  let problem: { code?: unknown; detail?: unknown } | null = null;
  try {
    problem = JSON.parse(text);
  } catch {
    return null;
  }
  const code = problem?.code;
  if (!isErrorCode(code) || code === "partition_unavailable") return null;
  return new OperationalError(code, String(problem?.detail ?? code));
}

/** Proxies reads to region peers chosen from the gossip membership. */
export class Router implements PeerReads {
  private readonly random: () => number;
  private readonly now: () => number;
  /** Ends the pauses of reads following a moving partition (at {@linkcode close}). */
  private readonly closing = new AbortController();
  /** `cluster.secret`, asserted set. */
  private readonly secret: string;
  /** Shared internal get requests, per peer address. */
  private readonly queues = new Map<string, PeerQueue>();

  constructor(
    private readonly membership: Membership,
    private readonly options: RouterOptions,
  ) {
    assert(options.cluster.secret !== null, "the router needs CLUSTER_SECRET (checked by config)");
    this.secret = options.cluster.secret;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  /** Ends every pause of a read following a moving partition (the node is stopping). */
  close(): void {
    this.closing.abort();
  }

  /**
   * Runs `round` until it reports done or the read's `waitMs` runs out, pausing
   * {@linkcode FOLLOW_MS} between rounds: a read with `wait_ms` follows a partition that is
   * changing owners. The first round gets the client's wait as is; later rounds what is left.
   * When the first round fails while `handingOver()` (a leaving peer is handing the partition
   * over), the read follows for {@linkcode HAND_OVER_ROUNDS} gossip rounds whatever its `wait_ms`:
   * a rolling restart must not fail reads that arrive between the close and the news.
   */
  private async follow(
    waitMs: number,
    handingOver: () => boolean,
    round: (index: number, remainingMs: number) => Promise<boolean>,
  ): Promise<void> {
    const started = this.now();
    let deadline = started + waitMs;
    for (let index = 0;; index++) {
      const remainingMs = index === 0 ? waitMs : Math.max(0, deadline - this.now());
      if (await round(index, remainingMs)) return;
      if (index === 0 && handingOver()) {
        deadline = Math.max(deadline, started + HAND_OVER_ROUNDS * this.options.gossip.broadcastMs);
      }
      if (this.now() + FOLLOW_MS > deadline || this.closing.signal.aborted) return;
      await sleep(FOLLOW_MS, this.closing.signal);
    }
  }

  private async post(member: Member, path: string, body: string, waitMs: number) {
    return await fetch(`http://${member.addr}${path}`, {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${this.secret}`,
      },
      signal: AbortSignal.timeout(this.options.gossip.proxyTimeoutMs + waitMs),
    });
  }

  /**
   * Whether an alive (not leaving, not suspect) peer serves `partition`: then it is fresher than
   * a copy this node is retiring.
   */
  servedByAlivePeer(partition: number): boolean {
    return this.membership.servedElsewhere(partition);
  }

  /**
   * Reads `keys` (all of partitions this node does not serve) from peers. Partitions are grouped
   * by the peer chosen for them, one request per peer, in parallel; a partition whose peer fails
   * is retried once on another. Resolves to one record JSON (or null) per key, in order.
   */
  async get(
    keys: readonly RoutedKey[],
    after: ReadonlyMap<number, number>,
    waitMs: number,
  ): Promise<(string | null)[]> {
    const results: (string | null)[] = new Array(keys.length).fill(null);
    const byPartition = new Map<number, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const p = keys[i]!.partition;
      let list = byPartition.get(p);
      if (list === undefined) byPartition.set(p, list = []);
      list.push(i);
    }
    let pending = [...byPartition.keys()];
    const handingOver = () => pending.some((p) => this.membership.handingOver(p));
    await this.follow(waitMs, handingOver, async (round, remainingMs) => {
      const candidates = new Map<number, Member[]>();
      for (const p of pending) candidates.set(p, this.membership.ownersOf(p, this.random));
      if (round === 0) {
        const orphan = pending.find((p) => candidates.get(p)!.length === 0);
        if (orphan !== undefined && waitMs === 0 && !this.membership.handingOver(orphan)) {
          this.options.metrics.proxyRequests.labels("unavailable").inc();
          throw unavailable(orphan, "is not served by any node of this region");
        }
      }
      for (let attempt = 0; attempt < 2 && pending.length > 0; attempt++) {
        pending = await this.getAttempt(
          keys,
          byPartition,
          pending,
          candidates,
          attempt,
          after,
          remainingMs,
          results,
        );
      }
      return pending.length === 0;
    });
    if (pending.length > 0) {
      this.options.metrics.proxyRequests.labels("failed").inc(pending.length);
      throw unavailable(pending[0]!, "could not be read from any peer of this region");
    }
    return results;
  }

  /** One attempt for `pending` partitions on their `attempt`-th candidate; returns the failed. */
  private async getAttempt(
    keys: readonly RoutedKey[],
    byPartition: ReadonlyMap<number, number[]>,
    pending: readonly number[],
    candidates: ReadonlyMap<number, Member[]>,
    attempt: number,
    after: ReadonlyMap<number, number>,
    waitMs: number,
    results: (string | null)[],
  ): Promise<number[]> {
    const byMember = new Map<string, { member: Member; partitions: number[] }>();
    const failed: number[] = [];
    for (const p of pending) {
      const member = candidates.get(p)![attempt];
      if (member === undefined) {
        failed.push(p); // No other peer to retry on: it stays unread.
        continue;
      }
      let entry = byMember.get(member.id);
      if (entry === undefined) byMember.set(member.id, entry = { member, partitions: [] });
      entry.partitions.push(p);
    }
    // Counted when a retry is actually sent, not when there was no other peer to send it to.
    const routed = pending.length - failed.length;
    if (attempt > 0 && routed > 0) {
      this.options.metrics.proxyRequests.labels("retried").inc(routed);
    }
    await Promise.all([...byMember.values()].map(async ({ member, partitions }) => {
      const indexes = partitions.flatMap((p) => byPartition.get(p)!);
      const afterPart: Record<string, number> = {};
      for (const p of partitions) {
        const o = after.get(p);
        if (o !== undefined) afterPart[String(p)] = o;
      }
      const records = indexes.map((i) => ({ pk: keys[i]!.pk, sk: keys[i]!.sk }));
      let split: string[];
      if (waitMs === 0 && Object.keys(afterPart).length === 0) {
        // Nothing to wait for: share an internal request with other reads for this peer.
        split = await this.coalescedGet(member, records) ?? [];
      } else {
        const body = JSON.stringify({ records, after: afterPart, wait_ms: waitMs });
        const lines = await this.attempt(member, INTERNAL_GET_PATH, body, waitMs);
        split = lines === null ? [] : lines.split("\n");
      }
      if (split.length !== indexes.length) {
        failed.push(...partitions);
        return;
      }
      for (let j = 0; j < indexes.length; j++) {
        results[indexes[j]!] = split[j] === "null" ? null : split[j]!;
      }
    }));
    return failed;
  }

  /** Proxies one list (`body` as the client sent it, validated) to a peer serving `partition`. */
  list(partition: number, body: string, waitMs: number): Promise<string> {
    return this.forward(INTERNAL_LIST_PATH, partition, body, waitMs);
  }

  past(kind: "get" | "history", partition: number, body: string, waitMs: number): Promise<string> {
    const path = kind === "get" ? INTERNAL_GET_PATH : INTERNAL_HISTORY_PATH;
    return this.forward(path, partition, body, waitMs);
  }

  /** `body` to `path` on a peer serving `partition` (one retry on another; follows moves). */
  private async forward(
    path: string,
    partition: number,
    body: string,
    waitMs: number,
  ): Promise<string> {
    let answer: string | null = null;
    const handingOver = () => this.membership.handingOver(partition);
    await this.follow(waitMs, handingOver, async (round, remainingMs) => {
      const owners = this.membership.ownersOf(partition, this.random);
      if (owners.length === 0 && round === 0 && waitMs === 0 && !handingOver()) {
        this.options.metrics.proxyRequests.labels("unavailable").inc();
        throw unavailable(partition, "is not served by any node of this region");
      }
      for (let attempt = 0; attempt < 2 && attempt < owners.length; attempt++) {
        if (attempt > 0) this.options.metrics.proxyRequests.labels("retried").inc();
        answer = await this.attempt(owners[attempt]!, path, body, remainingMs);
        if (answer !== null) return true;
      }
      return false;
    });
    if (answer !== null) return answer;
    this.options.metrics.proxyRequests.labels("failed").inc();
    throw unavailable(partition, "could not be read from any peer of this region");
  }

  watchPeer(partition: number): Promise<string | null> {
    return Promise.resolve(this.membership.ownersOf(partition, this.random)[0]?.addr ?? null);
  }

  /**
   * Downloads a snapshot of `partition` from an alive peer that serves it into `path` (peer
   * bootstrap). Resolves to the manifest the peer sent (unverified: the caller verifies), or null
   * when no peer could provide one.
   */
  async fetchSnapshot(
    partition: number,
    path: string,
    signal: AbortSignal,
  ): Promise<unknown | null> {
    const owners = this.membership.ownersOf(partition, this.random)
      .filter((m) => this.membership.health(m) === "alive");
    for (const member of owners.slice(0, 2)) {
      try {
        const response = await fetch(`http://${member.addr}${INTERNAL_SNAPSHOT_PATH}${partition}`, {
          headers: { authorization: `Bearer ${this.secret}` },
          signal,
        });
        if (response.status !== 200 || response.body === null) {
          await response.body?.cancel();
          continue;
        }
        const manifest = JSON.parse(response.headers.get(MANIFEST_HEADER) ?? "null");
        const file = await Deno.open(path, { write: true, create: true, truncate: true });
        await response.body.pipeTo(file.writable, { signal });
        return manifest;
      } catch {
        // Next peer; the caller removes a partial file.
      }
    }
    return null;
  }

  /**
   * Reads `records` from `member` in a shared internal request: at most
   * {@linkcode PEER_REQUESTS_MAX} requests are in flight to one peer, and reads arriving
   * meanwhile travel together in the next one. Under load this turns many proxied reads into few
   * HTTP round trips. Resolves to one line per record, or null when the request failed.
   */
  private coalescedGet(
    member: Member,
    records: readonly { pk: string; sk: string }[],
  ): Promise<string[] | null> {
    let queue = this.queues.get(member.addr);
    if (queue === undefined) this.queues.set(member.addr, queue = { inFlight: 0, waiting: [] });
    const q = queue;
    return new Promise((resolve, reject) => {
      q.waiting.push({ records, resolve, reject });
      this.flush(member, q);
    });
  }

  private flush(member: Member, q: PeerQueue): void {
    while (q.inFlight < PEER_REQUESTS_MAX && q.waiting.length > 0) {
      let take = 0;
      let count = 0;
      while (
        take < q.waiting.length &&
        (take === 0 || count + q.waiting[take]!.records.length <= COALESCE_KEYS_MAX)
      ) {
        count += q.waiting[take]!.records.length;
        take++;
      }
      const batch = q.waiting.splice(0, take);
      q.inFlight++;
      const body = JSON.stringify({ records: batch.flatMap((w) => w.records) });
      this.attempt(member, INTERNAL_GET_PATH, body, 0).then((lines) => {
        const split = lines === null ? [] : lines.split("\n");
        if (split.length !== count) {
          for (const w of batch) w.resolve(null);
          return;
        }
        let at = 0;
        for (const w of batch) {
          w.resolve(split.slice(at, at + w.records.length));
          at += w.records.length;
        }
      }, (error) => {
        for (const w of batch) w.reject(error);
      }).finally(() => {
        q.inFlight--;
        if (q.inFlight === 0 && q.waiting.length === 0) this.queues.delete(member.addr);
        else this.flush(member, q);
      });
    }
  }

  /**
   * One proxied request: the body text on 200, null when another peer should be tried
   * (unreachable, timed out, or no longer serving). Other problems (504 `not_caught_up`, 400)
   * are the client's answer and are thrown.
   */
  private async attempt(
    member: Member,
    path: string,
    body: string,
    waitMs: number,
  ): Promise<string | null> {
    let response: Response;
    let text: string;
    try {
      response = await this.post(member, path, body, waitMs);
      text = await response.text();
    } catch {
      return null;
    }
    if (response.status === 200) {
      this.options.metrics.proxyRequests.labels("ok").inc();
      return text;
    }
    const problem = fromProblem(text);
    if (problem !== null && (response.status < 500 || problem.code === "not_caught_up")) {
      throw problem;
    }
    return null;
  }
}
