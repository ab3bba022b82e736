/**
 * The read path: answer from the local LMDB files what this node serves, and route the rest
 * through the cluster router (one hop). The internal port's proxy targets use the local half
 * only, which is what makes the hop limit 1.
 */
import type { Router } from "../cluster/mod.ts";
import type { Node } from "../node/mod.ts";
import type { StoredRecord } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import type { GetKey, GetRequest, ListRequest, ReadAfter } from "./requests.ts";

/** The JSON text of a record; `data` is spliced in as stored, never re-serialized. */
export function recordJson(r: StoredRecord): string {
  return `{"pk":${JSON.stringify(r.pk)},"sk":${
    JSON.stringify(r.sk)
  },"data":${r.dataJson},"version":${r.version},"created_at":${r.createdAt},"updated_at":${r.updatedAt}}`;
}

function unavailable(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot read: partition ${partition} is not served by this node`,
    { partition },
  );
}

/** Waits for the `after` offsets of the given (local) partitions. */
async function awaitAfter(
  node: Node,
  read: ReadAfter,
  partitions: Iterable<number>,
): Promise<void> {
  if (read.after.size === 0) return;
  const waits: Promise<void>[] = [];
  for (const p of partitions) {
    const offset = read.after.get(p);
    if (offset !== undefined) waits.push(node.waitForOffset(p, offset, read.waitMs));
  }
  if (waits.length > 0) await Promise.all(waits);
}

/**
 * Reads keys of locally served partitions into `out` (record JSON or null, by key index). Runs
 * synchronously after the waits, so each partition is read from one LMDB snapshot.
 */
function readLocal(
  node: Node,
  keys: readonly GetKey[],
  indexes: readonly number[],
  out: (string | null)[],
) {
  for (const i of indexes) {
    const key = keys[i]!;
    const store = node.servingStore(key.partition);
    if (store === null) throw unavailable(key.partition);
    const record = store.get(key.pk, key.sk);
    out[i] = record === null ? null : recordJson(record);
  }
}

/**
 * Whether a read of `partition` is answered here: when this node serves it, except a retiring
 * partition (revoked, no longer applied) that a peer already serves — the peer is fresher — or
 * whose copy is older than the read's `after`: only the new owner will ever reach that offset.
 */
function readsLocally(
  node: Node,
  router: Router | null,
  partition: number,
  read: ReadAfter,
): boolean {
  const store = node.servingStore(partition);
  if (store === null) return false;
  if (router === null || !node.isRetiring(partition)) return true;
  if (router.servedByAlivePeer(partition)) return false;
  return store.applied.offset >= (read.after.get(partition) ?? -1);
}

/**
 * A partition changing owners: waits (within `wait_ms`) until a live peer serves it, so a read
 * with `after` follows the partition to its new owner instead of failing at once.
 */
async function awaitNewOwner(router: Router, partitions: Set<number>, read: ReadAfter) {
  const deadline = Date.now() + read.waitMs;
  for (const p of partitions) {
    while (!router.servedByAlivePeer(p) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** `/records/get` as the client sees it: local where served, proxied elsewhere. */
export async function routedGet(
  node: Node,
  router: Router | null,
  request: GetRequest,
): Promise<string> {
  const keys = request.keys;
  if (
    request.after.size === 0 && keys.every((k) => readsLocally(node, router, k.partition, request))
  ) {
    // The common case: every key is local and nothing to wait for. No promises, one pass.
    const out: (string | null)[] = new Array(keys.length);
    readLocal(node, keys, keys.map((_, i) => i), out);
    return getResponse(keys, out);
  }
  const local: number[] = [];
  const remote: number[] = [];
  const localPartitions = new Set<number>();
  const moving = new Set<number>();
  for (let i = 0; i < keys.length; i++) {
    const p = keys[i]!.partition;
    if (readsLocally(node, router, p, request)) {
      local.push(i);
      localPartitions.add(p);
    } else if (router === null) {
      throw unavailable(p);
    } else {
      remote.push(i);
      if (node.isRetiring(p)) moving.add(p);
    }
  }
  const out: (string | null)[] = new Array(keys.length).fill(null);
  const proxy = async () => {
    if (remote.length === 0) return;
    if (moving.size > 0) await awaitNewOwner(router!, moving, request);
    const answers = await router!.get(remote.map((i) => keys[i]!), request.after, request.waitMs);
    for (let j = 0; j < remote.length; j++) out[remote[j]!] = answers[j]!;
  };
  // Both halves run at once; Promise.all settles both, so neither rejection goes unhandled.
  await Promise.all([proxy(), awaitAfter(node, request, localPartitions)]);
  readLocal(node, keys, local, out);
  return getResponse(keys, out);
}

/** The JSON of a get response: records found, in request order, and the keys missing. */
function getResponse(keys: readonly GetKey[], out: readonly (string | null)[]): string {
  let records = "";
  let missing = "";
  for (let i = 0; i < keys.length; i++) {
    const record = out[i];
    if (record === null || record === undefined) {
      const key = keys[i]!;
      missing += `${missing === "" ? "" : ","}{"pk":${JSON.stringify(key.pk)},"sk":${
        JSON.stringify(key.sk)
      }}`;
    } else {
      records += (records === "" ? "" : ",") + record;
    }
  }
  return `{"records":[${records}],"missing":[${missing}]}`;
}

/** The internal proxy target of a get: local partitions only, one line per key (`null` if absent). */
export async function localGetLines(node: Node, request: GetRequest): Promise<string> {
  const keys = request.keys;
  const partitions = new Set<number>();
  for (const key of keys) {
    if (node.servingStore(key.partition) === null) throw unavailable(key.partition);
    partitions.add(key.partition);
  }
  await awaitAfter(node, request, partitions);
  const out: (string | null)[] = new Array(keys.length).fill(null);
  readLocal(node, keys, keys.map((_, i) => i), out);
  return out.map((r) => r ?? "null").join("\n");
}

/** A list answered from the local file; 503 when this node does not serve the partition. */
export async function localList(node: Node, request: ListRequest): Promise<string> {
  if (node.servingStore(request.partition) === null) throw unavailable(request.partition);
  await awaitAfter(node, request, [request.partition]);
  const store = node.servingStore(request.partition);
  if (store === null) throw unavailable(request.partition);
  const conditions = node.conditions;
  const expression = request.filter;
  const page = store.list({
    pk: request.pk,
    skPrefix: request.skPrefix,
    startAfter: request.startAfter,
    endBefore: request.endBefore,
    limit: request.limit,
    reverse: request.reverse,
    filter: expression === null ? null : (r) => conditions.evaluate(expression, r) === "true",
    stopOnFilter: request.stopOnFilter,
    scanMax: Math.max(node.config.listScanMax, request.limit),
  });
  const records = page.records.map(recordJson).join(",");
  return `{"records":[${records}],"next":${JSON.stringify(page.next)}}`;
}

/** `/records/list` as the client sees it: local if served, else proxied with the same body. */
export function routedList(
  node: Node,
  router: Router | null,
  request: ListRequest,
  body: unknown,
): Promise<string> {
  if (router === null || readsLocally(node, router, request.partition, request)) {
    return localList(node, request);
  }
  return router.list(request.partition, JSON.stringify(body), request.waitMs);
}
