/**
 * The read side of a node: answers get and list for any partition, from the local LMDB files
 * where this node serves the partition and through one region peer elsewhere (DESIGN §6, read
 * routing). The HTTP layer only parses, authorizes and serializes; every routing decision —
 * local, peer, or a retiring partition that must follow its new owner — is made here, on the
 * injected clock, with waits that end when the client goes away.
 *
 * A `Reader` holds no state of its own beyond its inputs, so each serving loop can hold one.
 *
 * @module
 */
import type { ConditionCache } from "../apply/mod.ts";
import type { ConfigLimits } from "../config/mod.ts";
import {
  type ListPage,
  type ListQuery,
  type Point,
  type StoredRecord,
  TooMuchHistoryError,
  type Version,
} from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { sleep } from "../util/sleep.ts";
import type { PeerReads } from "./ports.ts";

/** The consistency token of a read. */
export interface ReadAfter {
  /** partition → offset that must be applied before reading. */
  readonly after: ReadonlyMap<number, number>;
  /** How long to wait for it. */
  readonly waitMs: number;
}

/** A key of a get, with its partition. */
export interface GetKey {
  readonly pk: string;
  readonly sk: string;
  readonly partition: number;
}

/** A read of the past: the state after these offsets, or at this instant of log time. */
export type AsOf =
  | { readonly offsets: ReadonlyMap<number, number>; readonly ms?: undefined }
  | { readonly ms: number; readonly offsets?: undefined };

/** A validated `/records/get`. */
export interface GetRequest extends ReadAfter {
  readonly keys: readonly GetKey[];
  /** Read the past (history); absent: now. */
  readonly asOf?: AsOf;
}

/** A validated `/records/history`. */
export interface HistoryRequest extends ReadAfter {
  readonly pk: string;
  readonly sk: string;
  readonly partition: number;
  readonly limit: number;
  /** Only versions of offsets below this. */
  readonly beforeVersion: number | null;
}

/** A validated `/records/list`. */
export interface ListRequest extends ReadAfter {
  readonly pk: string;
  readonly partition: number;
  readonly skPrefix: string;
  readonly startAfter: string | null;
  readonly endBefore: string | null;
  readonly limit: number;
  readonly reverse: boolean;
  readonly filter: string | null;
  readonly stopOnFilter: boolean;
  /** Read the past (history); absent: now. */
  readonly asOf?: AsOf;
}

/** The reads of one partition's file: its store on the main thread, a read-only view elsewhere. */
export interface StoreReads {
  /** One record, or null. */
  get(pk: string, sk: string): StoredRecord | null;
  /** One record just after `offset` (null: absent), from its history. */
  getAt(pk: string, sk: string, offset: number): StoredRecord | null;
  /** One record at unix ms `at` of log time (null: absent), from its history. */
  getAtTime(pk: string, sk: string, at: number): StoredRecord | null;
  /** The versions of one record, newest first. */
  historyOf(pk: string, sk: string, beforeOffset: number | null, limit: number): Version[];
  /** Every change of every offset above this is in the change log. */
  readonly changesSince: number;
  /** The newest log timestamp of a change the change log no longer holds (-1: none). */
  readonly changesSinceTs: number;
  /** One page of a pk's records. */
  list(query: ListQuery): ListPage;
  /** One page of a pk's records as they were at `point`, from their history. */
  listAt(query: ListQuery, point: Point): ListPage;
  /** The last applied offset the reads see. */
  readonly applied: { readonly offset: number };
}

/** What a reader needs from the node that holds the partition files. */
export interface LocalPartitions {
  /** The store of a partition answered here (serving or retiring), or null. */
  servingStore(partition: number): StoreReads | null;
  /** Whether the partition is retiring here (revoked, no longer applied). */
  isRetiring(partition: number): boolean;
  /** Resolves once `partition` applied `offset`; 504 `not_caught_up` after `waitMs`. */
  waitForOffset(partition: number, offset: number, waitMs: number): Promise<void>;
  /** Compiled `filter` expressions. */
  readonly conditions: ConditionCache;
}

/** Settings of a reader. */
export interface ReaderOptions {
  /** The `limits` config section: `listScanMax` bounds the rows a list examines. */
  readonly limits: ConfigLimits;
  /** The node's clock. */
  readonly now: () => number;
}

/** Pause between looks while a read waits for a moving partition's new owner. */
const NEW_OWNER_POLL_MS = 25;

/**
 * The JSON text of `record` as a read at unix ms `now()` answers it: null when absent or expired
 * (an expired record is absent from its instant on, by this node's clock, until apply purges it).
 * The clock is read only for a record that expires.
 */
export function liveJson(record: StoredRecord | null, now: () => number): string | null {
  if (record === null || (record.expiresAt !== null && record.expiresAt <= now())) return null;
  return recordJson(record);
}

/**
 * The JSON text of a record; `data` is spliced in as stored, never re-serialized. A record that
 * expires says when (`expires_at`, unix ms).
 */
export function recordJson(r: StoredRecord): string {
  const expires = r.expiresAt === null ? "" : `,"expires_at":${r.expiresAt}`;
  return `{"pk":${JSON.stringify(r.pk)},"sk":${
    JSON.stringify(r.sk)
  },"data":${r.dataJson},"version":${r.version},"created_at":${r.createdAt},"updated_at":${r.updatedAt}${expires}}`;
}

/** The JSON of a list page. */
function pageJson(page: ListPage): string {
  return `{"records":[${page.records.map(recordJson).join(",")}],"next":${
    JSON.stringify(page.next)
  }}`;
}

/** 410 `history_expired`: a read of a point older than the change log holds. */
function expired(partition: number, what: string, point: number): OperationalError {
  return new OperationalError(
    "history_expired",
    `Cannot read partition ${partition} as of ${what} ${point}: its history is no longer kept (HISTORY_RETAIN_SEC)`,
    { partition },
  );
}

/** 503 `partition_unavailable`: a read of history where the partition's file is not (alone). */
function historyHere(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot read the history of partition ${partition}: it is read on a node that serves it`,
    { partition },
  );
}

/** 503 `partition_unavailable`: a read of a partition not served here. */
export function unavailable(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot read: partition ${partition} is not served by this node`,
    { partition },
  );
}

/** 503 `partition_unavailable`: a wait refused because the node is stopping. */
export function stoppingError(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot wait for partition ${partition}: the node is stopping`,
    { partition },
  );
}

/** 503 `partition_unavailable`: a wait on a retiring partition, which no longer applies here. */
export function movedError(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot wait for partition ${partition}: it moved to another node`,
    { partition },
  );
}

const NEVER = new AbortController().signal;

/** Answers reads for every partition: locally where served, else through `peers`. */
export class Reader {
  constructor(
    private readonly local: LocalPartitions,
    /** Region peers (cluster mode); null: reads of partitions not served here are 503. */
    private readonly peers: PeerReads | null,
    private readonly options: ReaderOptions,
  ) {}

  /**
   * `/records/get` as the client sees it: one record JSON (or null when absent) per key, in
   * request order. Local where served, proxied elsewhere; the signal `abort` gives (asked for
   * only when a read must wait: an HTTP request's signal is built on first use) ends waits early.
   */
  async get(
    request: GetRequest,
    abort: () => AbortSignal = () => NEVER,
  ): Promise<(string | null)[]> {
    const keys = request.keys;
    if (request.asOf !== undefined) return await this.getAsOf(request, request.asOf);
    if (request.after.size === 0) {
      // The common case: every key is local and nothing to wait for. No promises, one pass.
      const out = this.readAllLocal(keys, request);
      if (out !== null) return out;
    }
    const local: number[] = [];
    const remote: number[] = [];
    const localPartitions = new Set<number>();
    const moving = new Set<number>();
    const peers = this.peers;
    for (let i = 0; i < keys.length; i++) {
      const p = keys[i]!.partition;
      if (this.localStore(p, request) !== null) {
        local.push(i);
        localPartitions.add(p);
      } else if (peers === null) {
        throw unavailable(p);
      } else {
        remote.push(i);
        if (this.local.isRetiring(p)) moving.add(p);
      }
    }
    const out: (string | null)[] = new Array(keys.length).fill(null);
    const proxy = async (indexes: readonly number[]) => {
      if (indexes.length === 0 || peers === null) return;
      if (moving.size > 0) await this.awaitNewOwner(peers, moving, request.waitMs, abort());
      const answers = await peers.get(indexes.map((i) => keys[i]!), request.after, request.waitMs);
      for (let j = 0; j < indexes.length; j++) out[indexes[j]!] = answers[j]!;
    };
    // Both halves run at once; Promise.all settles both, so neither rejection goes unhandled.
    await Promise.all([proxy(remote), this.awaitAfter(request, localPartitions)]);
    // A partition that left this node during the waits is read where it went.
    const left = this.readLocal(keys, local, out);
    if (left.length > 0) {
      if (peers === null) throw unavailable(keys[left[0]!]!.partition);
      await proxy(left);
    }
    return out;
  }

  /**
   * A get of the past, from the partitions' history (served here only: the history of a
   * partition is read where its file is). 410 `history_expired` when the point is older than the
   * change log holds.
   */
  private async getAsOf(
    request: GetRequest,
    asOf: AsOf,
    proxy = true,
  ): Promise<(string | null)[]> {
    const out: (string | null)[] = new Array(request.keys.length).fill(null);
    const local = new Set<number>();
    const remote = new Map<number, number[]>();
    for (const [i, key] of request.keys.entries()) {
      const p = key.partition;
      if (this.local.servingStore(p) !== null) local.add(p);
      else if (!proxy || this.peers === null) throw historyHere(p);
      else remote.set(p, [...remote.get(p) ?? [], i]);
    }
    // A partition served elsewhere: one request per partition to a peer that serves it, which
    // reads its own history (never proxied again).
    const peers = this.peers;
    const proxied = [...remote].map(async ([p, indexes]) => {
      const body = JSON.stringify({
        records: indexes.map((i) => ({ pk: request.keys[i]!.pk, sk: request.keys[i]!.sk })),
        ...(asOf.ms !== undefined
          ? { as_of_ms: asOf.ms }
          : { as_of: Object.fromEntries(asOf.offsets) }),
        ...(request.after.has(p) ? { after: { [p]: request.after.get(p) } } : {}),
        wait_ms: request.waitMs,
      });
      const lines = (await peers!.past("get", p, body, request.waitMs)).split("\n");
      for (const [j, i] of indexes.entries()) {
        out[i] = lines[j] === undefined || lines[j] === "null" ? null : lines[j]!;
      }
    });
    await Promise.all([...proxied, this.awaitAfter(request, local)]);
    for (const [i, key] of request.keys.entries()) {
      if (local.has(key.partition)) out[i] = this.readAsOf(key, asOf);
    }
    return out;
  }

  /** One key of a get of the past, from its local partition's history. */
  private readAsOf(key: GetKey, asOf: AsOf): string | null {
    const store = this.local.servingStore(key.partition);
    if (store === null) throw historyHere(key.partition);
    if (asOf.ms !== undefined) {
      if (asOf.ms < store.changesSinceTs) throw expired(key.partition, "its log time", asOf.ms);
      return liveJson(store.getAtTime(key.pk, key.sk, asOf.ms), () => asOf.ms);
    }
    const offset = asOf.offsets.get(key.partition);
    // A partition without an entry, or at a point not reached yet, is read as it is now.
    if (offset === undefined || offset >= store.applied.offset) {
      return liveJson(store.get(key.pk, key.sk), this.options.now);
    }
    if (offset < store.changesSince) throw expired(key.partition, "offset", offset);
    const record = store.getAt(key.pk, key.sk, offset);
    // Expiry as of then is not known by offset: a record is shown until its purge.
    return record === null ? null : recordJson(record);
  }

  /** A list of the past, from the partition's history (served here only). */
  private async listAsOf(request: ListRequest, asOf: AsOf): Promise<string> {
    const p = request.partition;
    if (this.local.servingStore(p) === null) throw historyHere(p);
    await this.awaitAfter(request, [p]);
    const store = this.local.servingStore(p);
    if (store === null) throw historyHere(p);
    const query = this.listQuery(request);
    let point: Point;
    if (asOf.ms !== undefined) {
      if (asOf.ms < store.changesSinceTs) throw expired(p, "its log time", asOf.ms);
      point = { ms: asOf.ms };
    } else {
      const offset = asOf.offsets.get(p);
      if (offset === undefined || offset >= store.applied.offset) {
        return pageJson(store.list({ ...query, now: this.options.now() }));
      }
      if (offset < store.changesSince) throw expired(p, "offset", offset);
      point = { offset };
    }
    try {
      return pageJson(store.listAt(query, point));
    } catch (error) {
      if (!(error instanceof TooMuchHistoryError)) throw error;
      throw new OperationalError(
        "invalid_as_of",
        `Cannot list partition ${p} as of then: ${error.message} (LIST_SCAN_MAX); narrow sk_prefix`,
        { limit: error.scanned },
      );
    }
  }

  /** `/records/history`: the versions of one key, newest first, from where its file is served. */
  async history(request: HistoryRequest, body: unknown): Promise<string> {
    const p = request.partition;
    if (this.local.servingStore(p) === null && this.peers !== null) {
      return await this.peers.past("history", p, JSON.stringify(body), request.waitMs);
    }
    return await this.localHistory(request);
  }

  /** `/records/history` from the local file only (a peer's proxy target). */
  async localHistory(request: HistoryRequest): Promise<string> {
    const p = request.partition;
    if (this.local.servingStore(p) === null) throw historyHere(p);
    await this.awaitAfter(request, [p]);
    const store = this.local.servingStore(p);
    if (store === null) throw historyHere(p);
    const versions = store.historyOf(request.pk, request.sk, request.beforeVersion, request.limit);
    const items = versions.map(({ change }) => {
      const head = `{"change":"${change.kind}","version":${change.offset},"at":${change.timestamp}`;
      return change.record === null ? `${head}}` : `${head},"record":${recordJson(change.record)}}`;
    });
    const last = versions.at(-1);
    const more = last !== undefined && versions.length >= request.limit;
    return `{"versions":[${items.join(",")}],"next":${
      more ? last.change.offset : null
    },"since":${store.changesSince}}`;
  }

  /** `/records/list` as the client sees it: local if served, else proxied with the same body. */
  async list(request: ListRequest, body: unknown): Promise<string> {
    // A list of the past is read where the partition's file is (the body carries `as_of`).
    if (request.asOf !== undefined && this.local.servingStore(request.partition) !== null) {
      return await this.listAsOf(request, request.asOf);
    }
    if (request.asOf !== undefined && this.peers === null) throw historyHere(request.partition);
    const peers = this.peers;
    if (peers === null || this.localStore(request.partition, request) !== null) {
      const page = await this.listHere(request);
      if (page !== null) return page;
      // The partition left this node during the wait: read it where it went.
      if (peers === null) throw unavailable(request.partition);
    }
    return peers.list(request.partition, JSON.stringify(body), request.waitMs);
  }

  /**
   * A get answered from local files only (a peer's proxy target: never proxied again, which
   * is what makes the hop limit 1). 503 when a key's partition is not served here.
   */
  async localGet(request: GetRequest): Promise<(string | null)[]> {
    if (request.asOf !== undefined) return await this.getAsOf(request, request.asOf, false);
    const keys = request.keys;
    const partitions = new Set<number>();
    for (const key of keys) {
      if (this.local.servingStore(key.partition) === null) throw unavailable(key.partition);
      partitions.add(key.partition);
    }
    await this.awaitAfter(request, partitions);
    const out: (string | null)[] = new Array(keys.length).fill(null);
    const left = this.readLocal(keys, keys.map((_, i) => i), out);
    if (left.length > 0) throw unavailable(keys[left[0]!]!.partition);
    return out;
  }

  /** A list answered from the local file (JSON text); 503 when not served here. */
  async localList(request: ListRequest): Promise<string> {
    if (request.asOf !== undefined) return await this.listAsOf(request, request.asOf);
    const page = await this.listHere(request);
    if (page === null) throw unavailable(request.partition);
    return page;
  }

  /** A list page from the local file, or null when the partition is not (or no longer) here. */
  private async listHere(request: ListRequest): Promise<string | null> {
    if (this.local.servingStore(request.partition) === null) return null;
    await this.awaitAfter(request, [request.partition]);
    // Looked up again after the wait, and used for the whole page: one snapshot.
    const store = this.local.servingStore(request.partition);
    if (store === null) return null;
    return pageJson(store.list({ ...this.listQuery(request), now: this.options.now() }));
  }

  /** The store query of a list request (its filter compiled). */
  private listQuery(request: ListRequest): ListQuery {
    const conditions = this.local.conditions;
    const expression = request.filter;
    return {
      pk: request.pk,
      skPrefix: request.skPrefix,
      startAfter: request.startAfter,
      endBefore: request.endBefore,
      limit: request.limit,
      reverse: request.reverse,
      filter: expression === null ? null : (r) => conditions.evaluate(expression, r) === "true",
      stopOnFilter: request.stopOnFilter,
      scanMax: Math.max(this.options.limits.listScanMax, request.limit),
    };
  }

  /**
   * The store that answers a read of `partition` here, or null: when this node serves it, except
   * a retiring partition (revoked, no longer applied) that a peer already serves — the peer is
   * fresher — or whose copy is older than the read's `after`: only the new owner will ever reach
   * that offset. Looked up once per partition per synchronous step of a request: a serving thread
   * sees the main thread change partition states at any moment, and the store found is the one
   * read (a multi-key get sees one snapshot per partition).
   */
  private localStore(partition: number, read: ReadAfter): StoreReads | null {
    const store = this.local.servingStore(partition);
    if (store === null) return null;
    if (this.peers === null || !this.local.isRetiring(partition)) return store;
    if (this.peers.servedByAlivePeer(partition)) return null;
    return store.applied.offset >= (read.after.get(partition) ?? -1) ? store : null;
  }

  /** Every key read locally in one pass, or null when some key's partition is not read here. */
  private readAllLocal(keys: readonly GetKey[], read: ReadAfter): (string | null)[] | null {
    if (keys.length === 1) {
      const key = keys[0]!;
      const store = this.localStore(key.partition, read);
      if (store === null) return null;
      return [liveJson(store.get(key.pk, key.sk), this.options.now)];
    }
    const stores = new Map<number, StoreReads>();
    for (const key of keys) {
      if (stores.has(key.partition)) continue;
      const store = this.localStore(key.partition, read);
      if (store === null) return null;
      stores.set(key.partition, store);
    }
    const out: (string | null)[] = new Array(keys.length);
    const now = this.options.now;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      out[i] = liveJson(stores.get(key.partition)!.get(key.pk, key.sk), now);
    }
    return out;
  }

  /**
   * Reads the keys at `indexes` into `out` (record JSON or null), each partition's store looked
   * up once, after the waits; returns the indexes whose partition is no longer served here.
   */
  private readLocal(
    keys: readonly GetKey[],
    indexes: readonly number[],
    out: (string | null)[],
  ): number[] {
    const stores = new Map<number, StoreReads | null>();
    const left: number[] = [];
    const now = this.options.now;
    for (const i of indexes) {
      const key = keys[i]!;
      let store = stores.get(key.partition);
      if (store === undefined) {
        stores.set(key.partition, store = this.local.servingStore(key.partition));
      }
      if (store === null) {
        left.push(i);
        continue;
      }
      out[i] = liveJson(store.get(key.pk, key.sk), now);
    }
    return left;
  }

  /** Waits for the `after` offsets of the given (local) partitions. */
  private async awaitAfter(read: ReadAfter, partitions: Iterable<number>): Promise<void> {
    if (read.after.size === 0) return;
    const waits: Promise<void>[] = [];
    for (const p of partitions) {
      const offset = read.after.get(p);
      if (offset !== undefined) waits.push(this.local.waitForOffset(p, offset, read.waitMs));
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  /**
   * A partition changing owners: waits (within `waitMs`) until a live peer serves it, so a read
   * with `after` follows the partition to its new owner instead of failing at once.
   */
  private async awaitNewOwner(
    peers: PeerReads,
    partitions: ReadonlySet<number>,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    const now = this.options.now;
    const deadline = now() + waitMs;
    for (const p of partitions) {
      while (!peers.servedByAlivePeer(p) && now() < deadline && !signal.aborted) {
        await sleep(NEW_OWNER_POLL_MS, signal);
      }
    }
  }
}
