import { deepEqual, equal, ok } from "node:assert/strict";
import type { Mutation } from "../apply/mod.ts";
import { buildNode } from "../app.ts";
import { createMetrics } from "../metrics/mod.ts";
import { open as lmdbOpen } from "lmdb";
import { StartError } from "../util/start_error.ts";
import { CHAIN_ZERO, writeCleanStop } from "../store/mod.ts";
import type { PartitionStatus } from "./node.ts";
import type { FetchedSnapshot, SnapshotSource } from "./ports.ts";
import {
  chainOf,
  openStore,
  TEST_MAP_BYTES,
  testConfig,
  withInProcessNode,
  writeUpTo,
} from "../../tests/_helpers.ts";

const NS = "default";
const MAP_BYTES = TEST_MAP_BYTES;
/** The environment of every node here (the data folder and map size come from testConfig). */
const ENV = { PARTITIONS: "3", UNOWNED_RETAIN_SEC: "60" };

/** The status without the content digests (checked by the store's own tests). */
function withoutDigests(
  status: Record<string, PartitionStatus>,
): Record<string, Omit<PartitionStatus, "digest">> {
  const out: Record<string, Omit<PartitionStatus, "digest">> = {};
  for (const [p, { digest, ...rest }] of Object.entries(status)) {
    ok(/^[0-9a-f]{32}$/.test(digest), `p${p} digest ${digest}`);
    out[p] = rest;
  }
  return out;
}

/** Leaves a partition file at `offset` in `dir`, as a previous run of the node would have. */
async function leaveFile(dir: string, partition: number, offset: number): Promise<void> {
  const store = openStore(dir, partition, NS);
  await writeUpTo(store, offset);
  await store.close();
}

/** Writes a snapshot of `partition` at `offset` to `path`, made from a store in `scratch`. */
async function snapshotAt(
  scratch: string,
  partition: number,
  offset: number,
  path: string,
): Promise<void> {
  const store = openStore(scratch, partition, NS);
  try {
    await writeUpTo(store, offset);
    await store.snapshotTo(path);
  } finally {
    await store.close();
  }
}

interface FetchCall {
  readonly partition: number;
  readonly localOffset: number;
  readonly logStart: number;
  readonly logEnd: number;
  readonly dir: string;
}

/** A {@linkcode SnapshotSource} handing out the given snapshots once each, recording its calls. */
function sourceOf(
  snapshots: ReadonlyMap<number, FetchedSnapshot>,
): SnapshotSource & { calls: FetchCall[] } {
  const calls: FetchCall[] = [];
  return {
    calls,
    fetch(partition, localOffset, logStart, logEnd, dir) {
      calls.push({ partition, localOffset, logStart, logEnd, dir });
      return Promise.resolve(snapshots.get(partition) ?? null);
    },
  };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function storeFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  return names.sort();
}

Deno.test("assigned() swaps a restored snapshot in for the local file and serves from its offset", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  try {
    const storeDir = `${root}/${NS}`;
    await leaveFile(storeDir, 0, 2);
    const path = `${storeDir}/.restore-p0-test.mdb`;
    await snapshotAt(`${root}/elsewhere`, 0, 6, path);
    const source = sourceOf(new Map([[0, { path, offset: 6, source: "s3" as const }]]));
    await withInProcessNode({ snapshots: source, env: ENV, dir: root }, async (node) => {
      equal(node.storeDir, storeDir);
      const starts = await node.assigned([0], new Map([[0, 7]]), new Map([[0, 0]]));
      deepEqual([...starts], [[0, 7]]);
      deepEqual(source.calls, [{
        partition: 0,
        localOffset: 2,
        logStart: 0,
        logEnd: 7,
        dir: storeDir,
      }]);
      deepEqual(withoutDigests(node.status()), {
        "0": { state: "serving", offset: 6, chain: chainOf(6), records: 7 },
      });
      equal(node.servingStore(0)?.get("pk", "k6")?.dataJson, JSON.stringify({ offset: 6 }));
      ok(node.ready);
      ok(!(await exists(path)), "the snapshot was moved, not copied");
      deepEqual((await storeFiles(storeDir)).filter((n) => n.startsWith(".")), []);
    });
    // The swap is durable: the partition file itself is now the snapshot.
    const reopened = openStore(storeDir, 0, NS);
    equal(reopened.applied.offset, 6);
    await reopened.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("assigned() keeps the local file when no snapshot is further along", async () => {
  const source = sourceOf(new Map());
  await withInProcessNode({ snapshots: source, env: ENV }, async (node) => {
    await leaveFile(node.storeDir, 1, 4);
    const starts = await node.assigned([0, 1], new Map([[0, 0], [1, 9]]));
    deepEqual([...starts], [[0, 0], [1, 5]]);
    deepEqual(source.calls.map((c) => [c.partition, c.localOffset, c.logStart, c.logEnd]), [
      [0, -1, 0, 0],
      [1, 4, 0, 9],
    ]);
    deepEqual(withoutDigests(node.status()), {
      "0": { state: "serving", offset: -1, chain: CHAIN_ZERO, records: 0 },
      "1": { state: "catching_up", offset: 4, chain: chainOf(4), records: 5 },
    });
    ok(!node.ready, "p1 is still catching up");
  });
});

Deno.test("assigned() blocks a partition the local file and snapshots cannot bring to the log start", async () => {
  await withInProcessNode({ snapshots: sourceOf(new Map()), env: ENV }, async (node) => {
    await leaveFile(node.storeDir, 0, 3);
    // The log forgot everything before 10; the file ends at 3 and no snapshot exists.
    await node.assigned([0, 1], new Map([[0, 20], [1, 0]]), new Map([[0, 10], [1, 0]]));
    const status = node.status()["0"]!;
    equal(status.state, "catching_up");
    equal(status.offset, 3);
    ok(status.blocked !== undefined && /starts at offset 10/.test(status.blocked), status.blocked);
    equal(node.status()["1"]!.blocked, undefined);
    equal(node.servingStore(0), null);
    deepEqual(node.servingPartitions(), [1]);
    deepEqual(node.ownedServingStores().map(([p]) => p), [1]);
    ok(!node.ready);
    equal(node.metrics.partitionsBlocked.labels().value, 1);
    // Even once the log delivers up to its end, a blocked partition is not served.
    await node.deliver(0, [], 20);
    equal(node.status()["0"]!.state, "catching_up");
  });
});

Deno.test("assigned() blocks a partition whose newest snapshot still ends before the log start", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  try {
    const path = `${root}/${NS}/.restore-p0-test.mdb`;
    await snapshotAt(`${root}/elsewhere`, 0, 5, path);
    const source = sourceOf(new Map([[0, { path, offset: 5, source: "peer" as const }]]));
    await withInProcessNode({ snapshots: source, env: ENV, dir: root }, async (node) => {
      await node.assigned([0], new Map([[0, 20]]), new Map([[0, 10]]));
      const status = node.status()["0"]!;
      equal(status.offset, 5, "the snapshot was still taken: it is further along");
      equal(status.state, "catching_up");
      ok(status.blocked !== undefined);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("assigned() does not block a partition whose snapshot reaches the log start", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  try {
    const path = `${root}/${NS}/.restore-p0-test.mdb`;
    await snapshotAt(`${root}/elsewhere`, 0, 9, path);
    const source = sourceOf(new Map([[0, { path, offset: 9, source: "s3" as const }]]));
    await withInProcessNode({ snapshots: source, env: ENV, dir: root }, async (node) => {
      const starts = await node.assigned([0], new Map([[0, 20]]), new Map([[0, 10]]));
      deepEqual([...starts], [[0, 10]]);
      deepEqual(withoutDigests(node.status())["0"], {
        state: "catching_up",
        offset: 9,
        chain: chainOf(9),
        records: 10,
      });
      equal(node.metrics.partitionsBlocked.labels().value, 0);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** A put of `("user", "u{i}")` into the only partition. */
function put(i: number): Map<number, Mutation> {
  return new Map([[0, {
    v: 1,
    atomic: false,
    ops: [{ op: "put", pk: "user", sk: `u${i}`, data: { i } }],
  }]]);
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  ok(condition(), `timed out waiting for ${what}`);
}

Deno.test("a node restored from a snapshot catches up from the embedded log to the same chain", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  const env = { PARTITIONS: "1" };
  try {
    const saved = `${root}/saved.mdb`;
    let before: unknown;
    // First life: ten writes through the log, a snapshot taken after the sixth.
    await withInProcessNode({ env: { ...ENV, ...env }, dir: root }, async (node) => {
      await node.open();
      node.consume();
      await until("ready", () => node.ready);
      for (let i = 0; i < 10; i++) {
        const offsets = await node.write(put(i));
        await node.waitForOffset(0, offsets["0"]!, 5000);
        if (i === 5) await node.servingStore(0)!.snapshotTo(saved);
      }
      before = node.status();
    });
    // The partition file is lost; the log is not, and a snapshot at offset 5 is offered.
    const storeDir = `${root}/${NS}`;
    await Deno.remove(`${storeDir}/p0.mdb`);
    await Deno.remove(`${storeDir}/p0.mdb-lock`).catch(() => {});
    await Deno.rename(saved, `${storeDir}/.restore-p0-test.mdb`);
    const snapshot = { path: `${storeDir}/.restore-p0-test.mdb`, offset: 5, source: "s3" as const };
    const source = sourceOf(new Map([[0, snapshot]]));
    await withInProcessNode(
      { snapshots: source, env: { ...ENV, ...env }, dir: root },
      async (node) => {
        await node.open();
        node.consume();
        await until("ready", () => node.ready);
        deepEqual(source.calls, [{
          partition: 0,
          localOffset: -1,
          logStart: 0,
          logEnd: 10,
          dir: storeDir,
        }]);
        deepEqual(node.status(), before);
        equal(node.servingStore(0)?.get("user", "u9")?.dataJson, JSON.stringify({ i: 9 }));
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweepUnowned() deletes an unowned file only UNOWNED_RETAIN_SEC after first seeing it", async () => {
  await withInProcessNode({ env: ENV }, async (node) => {
    await leaveFile(node.storeDir, 1, 0);
    await leaveFile(node.storeDir, 2, 0);
    await node.assigned([0], new Map([[0, 0]]));
    const t0 = 1_000_000;
    await node.sweepUnowned(t0);
    await node.sweepUnowned(t0 + 59_999);
    deepEqual(await storeFiles(node.storeDir), [
      "p0.mdb",
      "p0.mdb-lock",
      "p1.mdb",
      "p1.mdb-lock",
      "p2.mdb",
      "p2.mdb-lock",
    ]);
    await node.sweepUnowned(t0 + 60_000);
    deepEqual(await storeFiles(node.storeDir), ["p0.mdb", "p0.mdb-lock"]);
    // An owned partition's file is never swept, however long it has been there.
    await node.sweepUnowned(t0 + 10 * 60_000);
    deepEqual(await storeFiles(node.storeDir), ["p0.mdb", "p0.mdb-lock"]);
  });
});

Deno.test("sweepUnowned() keeps a file whose partition came back, and counts afresh after", async () => {
  await withInProcessNode({ env: ENV }, async (node) => {
    await leaveFile(node.storeDir, 1, 3);
    const t0 = 1_000_000;
    await node.sweepUnowned(t0);
    await node.assigned([1], new Map([[1, 4]]));
    await node.sweepUnowned(t0 + 120_000);
    ok(await exists(`${node.storeDir}/p1.mdb`), "owned again: kept");
    await node.revoked([1]);
    // Revoked now (the node's own clock): kept for the retention from here, then deleted.
    const revokedAt = Date.now();
    await node.sweepUnowned(revokedAt + 59_000);
    ok(await exists(`${node.storeDir}/p1.mdb`), "revoked less than 60 s ago: kept");
    await node.sweepUnowned(Date.now() + 60_000);
    ok(!(await exists(`${node.storeDir}/p1.mdb`)), "revoked 60 s ago: deleted");
  });
});

Deno.test("sweepUnowned() with no retention deletes at the second sweep", async () => {
  await withInProcessNode({ env: { ...ENV, UNOWNED_RETAIN_SEC: "0" } }, async (node) => {
    await leaveFile(node.storeDir, 2, 0);
    await node.sweepUnowned(5);
    ok(await exists(`${node.storeDir}/p2.mdb`), "first seen: kept until the next sweep");
    await node.sweepUnowned(5);
    ok(!(await exists(`${node.storeDir}/p2.mdb`)));
  });
});

/** The moved-aside copies of partition `p` in `dir` (their lock files moved with them). */
async function movedAside(dir: string, p: number): Promise<string[]> {
  const names = await storeFiles(dir);
  const files = names.filter((n) => new RegExp(`^p${p}\\.mdb\\.corrupt-\\d+$`).test(n));
  for (const f of files) ok(names.includes(`${f}-lock`), `${f}-lock moved with it`);
  return files;
}

Deno.test("after an unclean stop assigned() verifies each file, moves a damaged one aside and keeps the good ones", async () => {
  await withInProcessNode({ env: ENV }, async (node) => {
    await leaveFile(node.storeDir, 0, 4);
    await leaveFile(node.storeDir, 1, 2);
    const p1 = `${node.storeDir}/p1.mdb`;
    const bytes = await Deno.readFile(p1);
    bytes[24]! ^= 0xff; // the LMDB magic: lmdb-js would crash this process opening it
    await Deno.writeFile(p1, bytes);
    // No clean-stop record in the folder: the previous stop was not clean.
    await node.assigned([0, 1, 2], new Map([[0, 5], [1, 0], [2, 0]]));
    const status = node.status();
    equal(status["0"]!.offset, 4, "the good file is kept");
    equal(status["1"]!.offset, -1, "the damaged one is replaced by an empty file");
    equal((await movedAside(node.storeDir, 1)).length, 1);
    equal(node.metrics.storeCorruptFiles.labels("partition").value, 1);
  });
});

Deno.test("assigned() moves a file that a clean stop vouched for but that fails to open aside", async () => {
  await withInProcessNode({ env: ENV }, async (node) => {
    await leaveFile(node.storeDir, 0, 4);
    const raw = lmdbOpen({ path: `${node.storeDir}/p0.mdb`, maxDbs: 4, mapSize: MAP_BYTES });
    await raw.openDB<unknown, string>({ name: "meta", encoding: "json" }).put("offset", 40);
    await raw.close();
    // Recorded after the damage, so only the failed open can reveal it.
    await writeCleanStop(node.storeDir);
    await node.open();
    await node.assigned([0, 1, 2], new Map([[0, 0], [1, 0], [2, 0]]));
    equal(node.status()["0"]!.offset, -1);
    equal((await movedAside(node.storeDir, 0)).length, 1);
    equal(node.metrics.storeCorruptFiles.labels("partition").value, 1);
  });
});

Deno.test("stop() leaves a clean-stop record that the next open() takes", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  try {
    await withInProcessNode({ env: ENV, dir: root }, async (node) => {
      await node.open();
      await node.assigned([0, 1, 2], new Map([[0, 0], [1, 0], [2, 0]]));
    });
    const dir = `${root}/${NS}`;
    ok(await exists(`${dir}/clean-stop.json`));
    await withInProcessNode({ env: ENV, dir: root }, async (node) => {
      await node.open();
      ok(!(await exists(`${dir}/clean-stop.json`)), "taken at start: a crash now leaves none");
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("open() stops with embedded_log_corrupt when the embedded log fails to open even after a clean stop", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  try {
    await withInProcessNode({ env: ENV, dir: root }, (node) => node.open());
    const dir = `${root}/${NS}`;
    // A meta value that no longer parses: the open throws instead of crashing.
    const raw = lmdbOpen({ path: `${dir}/log.mdb`, maxDbs: 2, mapSize: MAP_BYTES });
    await raw.openDB<Uint8Array, string>({ name: "meta", encoding: "binary" })
      .put("partitions", new TextEncoder().encode("{{"));
    await raw.close();
    await writeCleanStop(dir); // vouches for the damaged file: only the failed open reveals it
    const node = buildNode(testConfig(root, ENV), createMetrics(), null);
    const error = await node.open().then(() => null, (e) => e);
    ok(error instanceof StartError, String(error));
    equal(error.event, "embedded_log_corrupt");
    equal(error.fields.file, `${dir}/log.mdb`);
    equal(node.metrics.storeCorruptFiles.labels("log").value, 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("freeze() applies what was appended, then refuses appends, applies nothing and leaves the clean-stop record to the successor", async () => {
  const root = await Deno.makeTempDir({ prefix: "firescroll_node_test_" });
  try {
    await withInProcessNode({ env: { ...ENV, PARTITIONS: "1" }, dir: root }, async (node) => {
      await node.open();
      node.consume();
      await until("ready", () => node.ready);
      // Appended but not yet waited for: freeze() waits until it is applied.
      const offsets = await node.write(put(0));
      await node.freeze(5000, true);
      equal(node.servingStore(0)?.applied.offset, offsets["0"]);
      const record = `${root}/${NS}/clean-stop.json`;
      ok(await exists(record), "the record the successor starts from");
      // The log is the successor's now: a write here is refused, never appended.
      let code: string | undefined;
      await node.write(put(1)).catch((error) => code = error.code);
      equal(code, "log_unavailable");
      // Plain reads go on from the files as they were.
      equal(node.servingStore(0)?.get("user", "u0")?.dataJson, JSON.stringify({ i: 0 }));
      // The successor takes the record at its start; this node's stop must not write another.
      await Deno.remove(record);
      await node.stop({ sync: false });
      await node.closeLeftFiles();
      equal(await exists(record), false, "a stop after freeze() writes nothing in the folder");
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
