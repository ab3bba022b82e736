import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { openStore, withTempDir, writeUpTo } from "../../tests/_helpers.ts";
import { ConditionCache } from "../apply/mod.ts";
import { loadConfig } from "../config/mod.ts";
import type { PartitionStore } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import type { PeerKey, PeerReads } from "./ports.ts";
import { type GetRequest, type LocalPartitions, Reader } from "./reader.ts";

/** Lists examine at most 100 rows. */
const LIMITS = loadConfig({ LIST_LIMIT_MAX: "100", LIST_SCAN_MAX: "100" }).limits;

/** Local partitions: `serving` and `retiring` stores by partition, as the node would hold them. */
class Local implements LocalPartitions {
  readonly conditions = new ConditionCache(10, 1024);
  readonly serving = new Map<number, PartitionStore>();
  readonly retiring = new Map<number, PartitionStore>();
  readonly waited: [number, number][] = [];

  servingStore(partition: number): PartitionStore | null {
    return this.serving.get(partition) ?? this.retiring.get(partition) ?? null;
  }
  isRetiring(partition: number): boolean {
    return this.retiring.has(partition);
  }
  waitForOffset(partition: number, offset: number): Promise<void> {
    this.waited.push([partition, offset]);
    const applied = this.servingStore(partition)!.applied.offset;
    return applied >= offset
      ? Promise.resolve()
      : Promise.reject(new OperationalError("not_caught_up", `p${partition} at ${applied}`));
  }
}

/** Peers: which partitions a live peer serves, and what each proxied read asked. */
class Peers implements PeerReads {
  readonly alive = new Set<number>();
  readonly gets: PeerKey[][] = [];
  readonly lists: number[] = [];

  servedByAlivePeer(partition: number): boolean {
    return this.alive.has(partition);
  }
  get(keys: readonly PeerKey[]): Promise<(string | null)[]> {
    this.gets.push([...keys]);
    return Promise.resolve(keys.map((k) => `"peer ${k.pk}/${k.sk}"`));
  }
  list(partition: number): Promise<string> {
    this.lists.push(partition);
    return Promise.resolve('{"records":[],"next":null,"from":"peer"}');
  }
  past(): Promise<string> {
    return Promise.reject(new Error("no history through peers in these tests"));
  }
  watchPeer(): Promise<string | null> {
    return Promise.resolve(null);
  }
}

function getOf(keys: [string, string, number][], after: [number, number][] = [], waitMs = 0) {
  const request: GetRequest = {
    keys: keys.map(([pk, sk, partition]) => ({ pk, sk, partition })),
    after: new Map(after),
    waitMs,
  };
  return request;
}

function listOf(partition: number, after: [number, number][] = []) {
  return {
    pk: "pk",
    partition,
    skPrefix: "",
    startAfter: null,
    endBefore: null,
    limit: 10,
    reverse: false,
    filter: null,
    stopOnFilter: false,
    after: new Map(after),
    waitMs: 0,
  };
}

async function withStores(
  fn: (local: Local, stores: PartitionStore[]) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const stores = [0, 1].map((p) => openStore(dir, p));
    try {
      for (const s of stores) await writeUpTo(s, 2); // records pk/k0 … pk/k2, offset 2
      await fn(new Local(), stores);
    } finally {
      for (const s of stores) await s.close();
    }
  }, "reader_");
}

Deno.test("Reader.get() answers served partitions locally and proxies the rest in one call", async () => {
  await withStores(async (local, [s0]) => {
    local.serving.set(0, s0!);
    const peers = new Peers();
    const reader = new Reader(local, peers, { limits: LIMITS, now: () => 0 });
    const out = await reader.get(getOf([["pk", "k1", 0], ["a", "b", 1], ["pk", "nope", 0]]));
    equal(JSON.parse(out[0]!).sk, "k1");
    equal(out[1], '"peer a/b"');
    equal(out[2], null);
    deepEqual(peers.gets, [[{ pk: "a", sk: "b", partition: 1 }]]);
  });
});

Deno.test("Reader without peers: a partition not served here is 503 partition_unavailable", async () => {
  await withStores(async (local, [s0]) => {
    local.serving.set(0, s0!);
    const reader = new Reader(local, null, { limits: LIMITS, now: () => 0 });
    await rejects(reader.get(getOf([["a", "b", 1]])), { code: "partition_unavailable" });
    await rejects(reader.list(listOf(1), {}), { code: "partition_unavailable" });
    const page = JSON.parse(await reader.list(listOf(0), {}));
    deepEqual(page.records.map((r: { sk: string }) => r.sk), ["k0", "k1", "k2"]);
  });
});

Deno.test("Reader: a retiring partition is read here only while no live peer serves it and it holds `after`", async () => {
  await withStores(async (local, [s0]) => {
    local.retiring.set(0, s0!);
    const peers = new Peers();
    const reader = new Reader(local, peers, { limits: LIMITS, now: () => 0 });
    // No peer yet, the copy holds offset 2: read here.
    equal(JSON.parse((await reader.get(getOf([["pk", "k0", 0]])))[0]!).sk, "k0");
    await reader.list(listOf(0, [[0, 2]]), {});
    deepEqual([peers.gets.length, peers.lists.length], [0, 0]);
    // `after` past the retiring copy: only the new owner gets there.
    await reader.list(listOf(0, [[0, 3]]), {});
    deepEqual(peers.lists, [0]);
    // A live peer serves it: the peer is fresher.
    peers.alive.add(0);
    equal((await reader.get(getOf([["pk", "k0", 0]])))[0], '"peer pk/k0"');
  });
});

Deno.test("Reader.get() waits for a moving partition's new owner on its clock, and stops when the client leaves", async () => {
  await withStores(async (local, [s0]) => {
    local.retiring.set(0, s0!);
    const peers = new Peers();
    let clock = 0;
    const reader = new Reader(local, peers, { limits: LIMITS, now: () => clock });
    // `after` 5 is past the retiring copy: the read follows the partition to its new owner.
    setTimeout(() => peers.alive.add(0), 60);
    const started = performance.now();
    const out = await reader.get(getOf([["pk", "k0", 0]], [[0, 5]], 1000));
    equal(out[0], '"peer pk/k0"');
    ok(performance.now() - started >= 50, "it waited for the peer");
    // The client goes away: the wait ends at once, although the clock never moves.
    peers.alive.clear();
    const gone = new AbortController();
    setTimeout(() => gone.abort(), 30);
    const t = performance.now();
    await reader.get(getOf([["pk", "k0", 0]], [[0, 5]], 10_000), () => gone.signal);
    ok(performance.now() - t < 2000, "an aborted read stops waiting");
    // The clock ends the wait too.
    const late = reader.get(getOf([["pk", "k0", 0]], [[0, 5]], 100));
    clock = 200;
    equal((await late)[0], '"peer pk/k0"', "after the wait, the peers are asked anyway");
  });
});

Deno.test("Reader.localGet() never proxies and waits for `after` on local partitions only", async () => {
  await withStores(async (local, [s0, s1]) => {
    local.serving.set(0, s0!);
    local.serving.set(1, s1!);
    const peers = new Peers();
    const reader = new Reader(local, peers, { limits: LIMITS, now: () => 0 });
    const out = await reader.localGet(getOf([["pk", "k2", 1]], [[1, 2], [0, 9]]));
    equal(JSON.parse(out[0]!).sk, "k2");
    deepEqual(local.waited, [[1, 2]], "the after of a partition not read is ignored");
    await rejects(reader.localGet(getOf([["pk", "k2", 1]], [[1, 3]])), { code: "not_caught_up" });
    local.serving.delete(1);
    await rejects(reader.localGet(getOf([["pk", "k2", 1]])), { code: "partition_unavailable" });
    deepEqual(peers.gets, []);
  });
});
