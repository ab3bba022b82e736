import { deepEqual, equal, ok } from "node:assert/strict";
import { loadConfig } from "../config/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { PartitionStore } from "../store/mod.ts";
import { chainOf, openStore, withTempDir, writeUpTo } from "../../tests/_helpers.ts";
import { encodeMutation, type LogRecord, nextChain } from "../apply/mod.ts";
import { listDir, MemoryObjectStore } from "./_test_util.ts";
import { type PeerSnapshotFetcher, Restorer } from "./restore.ts";
import { compress, encodeSegmentBody, segmentKey } from "./segment.ts";
import { createSnapshot, hashFile, type Manifest, snapshotStem } from "./snapshot.ts";

const NS = "test";

/**
 * Puts snapshots of partition `partition` at each of `offsets` (ascending) into `objects`, as
 * backups would, made from one store in `dir/source-p{partition}`. Resolves to their manifests.
 */
async function publish(
  objects: MemoryObjectStore,
  dir: string,
  partition: number,
  offsets: readonly number[],
  namespace = NS,
): Promise<Manifest[]> {
  const store = openStore(`${dir}/source-p${partition}`, partition, namespace);
  const manifests: Manifest[] = [];
  const never = new AbortController().signal;
  try {
    for (const offset of offsets) {
      await writeUpTo(store, offset);
      const path = `${dir}/publish.mdb`;
      const manifest = await createSnapshot(store, path, namespace, "node-b", Date.now());
      const stem = snapshotStem(NS, partition, offset);
      await objects.putFile(`${stem}.mdb`, path, never);
      await objects.putJson(`${stem}.json`, manifest, never);
      await Deno.remove(path);
      manifests.push(manifest);
    }
  } finally {
    await store.close();
  }
  objects.calls.length = 0;
  return manifests;
}

/**
 * A restorer of namespace "test" reading `objects` (and `peer`, when given), trying at most 3
 * snapshots (`BACKUP_KEEP`); `env` overrides those settings.
 */
function restorerOf(
  objects: MemoryObjectStore | null,
  peer: PeerSnapshotFetcher | null = null,
  env: Record<string, string> = {},
): { restorer: Restorer; metrics: Metrics } {
  const metrics = createMetrics();
  const config = loadConfig({
    NAMESPACE: NS,
    BACKUP_TIMEOUT_MS: "10000",
    BACKUP_KEEP: "3",
    ...env,
  });
  const restorer = new Restorer(objects, peer, {
    cluster: config.cluster,
    backup: config.backup,
    store: { lmdbMapBytes: 32 * 1024 * 1024 },
    changesRetainMs: 0,
    metrics,
    now: () => Date.now(),
  });
  return { restorer, metrics };
}

/** The restore counts by `source/result`, leaving out zeros. */
function restores(metrics: Metrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const source of ["s3", "peer"]) {
    for (const result of ["ok", "rejected", "failed", "unavailable"]) {
      const value = metrics.restores.labels(source, result).value;
      if (value > 0) out[`${source}/${result}`] = value;
    }
  }
  return out;
}

/** Flips one byte in the middle of an object. */
function corrupt(objects: MemoryObjectStore, key: string): void {
  const bytes = objects.objects.get(key);
  ok(bytes !== undefined, `${key} exists`);
  const copy = bytes.slice();
  copy[Math.floor(copy.length / 2)]! ^= 0xff;
  objects.objects.set(key, copy);
}

/** The offset recorded in the file at `path`. */
function offsetIn(path: string): number {
  try {
    return PartitionStore.readMeta(path).offset;
  } finally {
    Deno.removeSync(`${path}-lock`);
  }
}

/** A folder for restored files in `dir`, as the node's store folder would be. */
async function restoreDir(dir: string): Promise<string> {
  const out = `${dir}/db`;
  await Deno.mkdir(out, { recursive: true });
  return out;
}

Deno.test("fetch() restores the newest snapshot ahead of the local file and behind the log end", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const manifests = await publish(objects, dir, 0, [3, 6, 9]);
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    const fetched = await restorer.fetch(0, -1, 0, 100, db);
    ok(fetched !== null);
    equal(fetched.offset, 9);
    equal(fetched.source, "s3");
    ok(fetched.path.startsWith(`${db}/`), "the file is on the stores' file system");
    deepEqual(
      await Deno.readFile(fetched.path),
      objects.objects.get(`${snapshotStem(NS, 0, 9)}.mdb`),
    );
    deepEqual(PartitionStore.readMeta(fetched.path), {
      partition: 0,
      namespace: NS,
      offset: 9,
      chain: manifests[2]!.chain,
    });
    Deno.removeSync(`${fetched.path}-lock`);
    deepEqual(await listDir(db), [fetched.path.slice(db.length + 1)]);
    deepEqual(restores(metrics), { "s3/ok": 1 });
  });
});

Deno.test("fetch() ignores snapshots at or after the log end, which a reset log has not reached", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3, 6, 9]);
    const db = await restoreDir(dir);
    const { restorer } = restorerOf(objects);
    // The log's next offset is 9: offsets up to 8 exist, a snapshot at 9 is from another log.
    equal((await restorer.fetch(0, -1, 0, 9, db))?.offset, 6);
    equal((await restorer.fetch(0, -1, 0, 7, db))?.offset, 6);
    equal((await restorer.fetch(0, -1, 0, 5, db))?.offset, 3);
    equal(await restorer.fetch(0, -1, 0, 3, db), null);
    equal(await restorer.fetch(0, -1, 0, 0, db), null);
  });
});

Deno.test("fetch() returns null when no snapshot is newer than the local file", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3, 6, 9]);
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    equal((await restorer.fetch(0, 6, 0, 100, db))?.offset, 9);
    const before = await listDir(db);
    equal(await restorer.fetch(0, 9, 0, 100, db), null);
    equal(await restorer.fetch(0, 50, 0, 100, db), null);
    deepEqual(await listDir(db), before);
    equal(objects.count("getFile"), 1, "nothing was downloaded for the null answers");
    deepEqual(restores(metrics), { "s3/ok": 1 });
  });
});

Deno.test("fetch() returns null for a partition without snapshots", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 1, [3]);
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    equal(await restorer.fetch(0, -1, 0, 100, db), null);
    deepEqual(await listDir(db), []);
    deepEqual(restores(metrics), {});
  });
});

Deno.test("fetch() falls back to the next older snapshot when the newest is corrupted", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3, 6, 9]);
    corrupt(objects, `${snapshotStem(NS, 0, 9)}.mdb`);
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    const fetched = await restorer.fetch(0, -1, 0, 100, db);
    ok(fetched !== null);
    equal(fetched.offset, 6);
    equal(offsetIn(fetched.path), 6);
    deepEqual(restores(metrics), { "s3/ok": 1, "s3/rejected": 1 });
    deepEqual(await listDir(db), [fetched.path.slice(db.length + 1)], "the rejected file is gone");
  });
});

Deno.test("fetch() falls back when the newest manifest has no file or is not a manifest", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3, 6, 9]);
    objects.objects.delete(`${snapshotStem(NS, 0, 9)}.mdb`);
    objects.objects.set(`${snapshotStem(NS, 0, 6)}.json`, new TextEncoder().encode("{}"));
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    equal((await restorer.fetch(0, -1, 0, 100, db))?.offset, 3);
    deepEqual(restores(metrics), { "s3/ok": 1, "s3/rejected": 2 });
  });
});

Deno.test("fetch() tries at most attemptsMax snapshots", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3, 6, 9]);
    corrupt(objects, `${snapshotStem(NS, 0, 9)}.mdb`);
    corrupt(objects, `${snapshotStem(NS, 0, 6)}.mdb`);
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects, null, { BACKUP_KEEP: "2" });
    equal(await restorer.fetch(0, -1, 0, 100, db), null);
    equal(objects.count("getFile"), 2);
    deepEqual(restores(metrics), { "s3/rejected": 2 });
    deepEqual(await listDir(db), []);
  });
});

Deno.test("fetch() rejects a snapshot whose manifest describes another partition, namespace or offset", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3]);
    const stem = snapshotStem(NS, 0, 3);
    // A consistent snapshot + manifest of p1, at offset 8, of another namespace: each misfiled.
    const misfiled = [
      { partition: 1, namespace: NS, offset: 3 },
      { partition: 0, namespace: "other", offset: 3 },
      { partition: 0, namespace: NS, offset: 8 },
    ];
    for (const [i, m] of misfiled.entries()) {
      const other = new MemoryObjectStore();
      const [manifest] = await publish(
        other,
        `${dir}/other-${i}`,
        m.partition,
        [m.offset],
        m.namespace,
      );
      const from = snapshotStem(NS, m.partition, m.offset);
      objects.objects.set(`${stem}.mdb`, other.objects.get(`${from}.mdb`)!);
      await objects.putJson(`${stem}.json`, manifest, new AbortController().signal);
      const db = await restoreDir(`${dir}/other-${i}`);
      const { restorer, metrics } = restorerOf(objects);
      equal(await restorer.fetch(0, -1, 0, 100, db), null, JSON.stringify(m));
      deepEqual(restores(metrics), { "s3/rejected": 1 });
      deepEqual(await listDir(db), []);
    }
  });
});

Deno.test("fetch() gives up on S3 without trying older snapshots when a download fails", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3, 6, 9]);
    objects.failWith = (op) => op === "getFile" ? new Error("connection reset") : null;
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    equal(await restorer.fetch(0, -1, 0, 100, db), null);
    equal(objects.count("getFile"), 1);
    deepEqual(restores(metrics), { "s3/failed": 1 });
    deepEqual(await listDir(db), []);
  });
});

Deno.test("fetch() returns null without asking peers when S3 cannot list and the log can rebuild", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3]);
    objects.failWith = (op) => op === "list" ? new Error("S3 is down") : null;
    let asked = 0;
    const peer: PeerSnapshotFetcher = () => {
      asked++;
      return Promise.resolve(null);
    };
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects, peer);
    // The log still starts at the file's next offset (or before it).
    equal(await restorer.fetch(0, -1, 0, 100, db), null);
    equal(await restorer.fetch(0, 4, 5, 100, db), null);
    equal(await restorer.fetch(0, 4, 3, 100, db), null);
    equal(asked, 0);
    deepEqual(restores(metrics), { "s3/failed": 3 });
  });
});

/** A peer fetcher that copies a real snapshot of `partition` at `offset` made in `dir`. */
async function peerWith(
  dir: string,
  partition: number,
  offset: number,
  tamper: (bytes: Uint8Array, manifest: Manifest) => Manifest = (_, m) => m,
): Promise<{ peer: PeerSnapshotFetcher; asked: () => number }> {
  const store = openStore(`${dir}/peer-source`, partition, NS);
  const snapshot = `${dir}/peer-snapshot.mdb`;
  let manifest: Manifest;
  try {
    await writeUpTo(store, offset);
    manifest = await createSnapshot(store, snapshot, NS, "node-c", Date.now());
  } finally {
    await store.close();
  }
  const bytes = await Deno.readFile(snapshot);
  manifest = tamper(bytes, manifest);
  let asked = 0;
  const peer: PeerSnapshotFetcher = async (p, path) => {
    asked++;
    equal(p, partition);
    await Deno.writeFile(path, bytes);
    return manifest;
  };
  return { peer, asked: () => asked };
}

Deno.test("fetch() asks a peer only when the local file cannot reach the log start", async () => {
  await withTempDir(async (dir) => {
    const db = await restoreDir(dir);
    const { peer, asked } = await peerWith(dir, 0, 20);
    const { restorer, metrics } = restorerOf(null, peer);
    equal(await restorer.fetch(0, -1, 0, 100, db), null);
    equal(await restorer.fetch(0, 9, 10, 100, db), null);
    equal(asked(), 0);
    const fetched = await restorer.fetch(0, 9, 11, 100, db);
    equal(asked(), 1);
    ok(fetched !== null);
    equal(fetched.source, "peer");
    equal(fetched.offset, 20);
    equal(offsetIn(fetched.path), 20);
    deepEqual(restores(metrics), { "peer/ok": 1 });
  });
});

Deno.test("fetch() asks a peer when S3 has nothing that reaches far enough", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [3]);
    const db = await restoreDir(dir);
    const { peer, asked } = await peerWith(dir, 0, 20);
    const { restorer, metrics } = restorerOf(objects, peer);
    // Local file at 5, log starts at 10: the snapshot at 3 is behind the file, useless.
    const fetched = await restorer.fetch(0, 5, 10, 100, db);
    equal(fetched?.source, "peer");
    equal(asked(), 1);
    deepEqual(restores(metrics), { "peer/ok": 1 });
  });
});

Deno.test("fetch() asks a peer when S3 cannot list and the log cannot rebuild", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    objects.failWith = (op) => op === "list" ? new Error("S3 is down") : null;
    const db = await restoreDir(dir);
    const { peer } = await peerWith(dir, 0, 20);
    const { restorer, metrics } = restorerOf(objects, peer);
    equal((await restorer.fetch(0, -1, 10, 100, db))?.source, "peer");
    deepEqual(restores(metrics), { "s3/failed": 1, "peer/ok": 1 });
  });
});

Deno.test("fetch() rejects a corrupted peer snapshot and removes it", async () => {
  await withTempDir(async (dir) => {
    const db = await restoreDir(dir);
    const { peer } = await peerWith(dir, 0, 20, (bytes, m) => {
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      return m;
    });
    const { restorer, metrics } = restorerOf(null, peer);
    equal(await restorer.fetch(0, -1, 10, 100, db), null);
    deepEqual(restores(metrics), { "peer/rejected": 1 });
    deepEqual(await listDir(db), []);
  });
});

Deno.test("fetch() rejects a peer snapshot outside the local offset and the log end", async () => {
  await withTempDir(async (dir) => {
    const db = await restoreDir(dir);
    const { peer } = await peerWith(dir, 0, 20);
    const { restorer, metrics } = restorerOf(null, peer);
    equal(await restorer.fetch(0, -1, 10, 20, db), null, "at the log end");
    equal(await restorer.fetch(0, 20, 30, 100, db), null, "not ahead of the local file");
    deepEqual(restores(metrics), { "peer/rejected": 2 });
    deepEqual(await listDir(db), []);
  });
});

Deno.test("fetch() rejects a peer snapshot of another partition", async () => {
  await withTempDir(async (dir) => {
    const db = await restoreDir(dir);
    const { peer: other } = await peerWith(dir, 1, 20);
    const peer: PeerSnapshotFetcher = (_, path, signal) => other(1, path, signal);
    const { restorer, metrics } = restorerOf(null, peer);
    equal(await restorer.fetch(0, -1, 10, 100, db), null);
    deepEqual(restores(metrics), { "peer/rejected": 1 });
    deepEqual(await listDir(db), []);
  });
});

Deno.test("fetch() removes what a peer fetcher wrote before it gave up or failed", async () => {
  await withTempDir(async (dir) => {
    const db = await restoreDir(dir);
    const partial = new Uint8Array(1000).fill(7);
    const gaveUp: PeerSnapshotFetcher = async (_, path) => {
      await Deno.writeFile(path, partial);
      return null;
    };
    const threw: PeerSnapshotFetcher = async (_, path) => {
      await Deno.writeFile(path, partial);
      throw new Error("peer went away");
    };
    const first = restorerOf(null, gaveUp);
    equal(await first.restorer.fetch(0, -1, 10, 100, db), null);
    deepEqual(restores(first.metrics), { "peer/unavailable": 1 });
    deepEqual(await listDir(db), []);
    const second = restorerOf(null, threw);
    equal(await second.restorer.fetch(0, -1, 10, 100, db), null);
    deepEqual(restores(second.metrics), { "peer/failed": 1 });
    deepEqual(await listDir(db), []);
  });
});

Deno.test("fetch() rejects a peer file that is not a partition file despite a matching sha", async () => {
  await withTempDir(async (dir) => {
    const db = await restoreDir(dir);
    const junk = new TextEncoder().encode("<html>502 Bad Gateway</html>");
    const junkPath = `${dir}/junk`;
    await Deno.writeFile(junkPath, junk);
    const { sha256 } = await hashFile(junkPath);
    const peer: PeerSnapshotFetcher = async (_, path) => {
      await Deno.writeFile(path, junk);
      return {
        partition: 0,
        namespace: NS,
        offset: 20,
        chain: chainOf(20),
        sha256,
        bytes: junk.length,
        created_at: Date.now(),
        node: "node-c",
      };
    };
    const { restorer, metrics } = restorerOf(null, peer);
    equal(await restorer.fetch(0, -1, 10, 100, db), null);
    deepEqual(restores(metrics), { "peer/rejected": 1 });
    deepEqual(await listDir(db), []);
  });
});

/** Archives offsets `from`..`to` of partition 0 (puts of k{offset}) as one segment after `chain`. */
async function archiveRange(
  objects: MemoryObjectStore,
  from: number,
  to: number,
  chain: string,
): Promise<string> {
  const records: LogRecord[] = [];
  for (let o = from; o <= to; o++) {
    records.push({
      offset: o,
      timestamp: 1_796_000_000_000 + o,
      value: encodeMutation({
        v: 1,
        atomic: false,
        ops: [{ op: "put", pk: "pk", sk: `k${o}`, data: JSON.stringify({ o }) }],
      }),
    });
  }
  const { body, header } = encodeSegmentBody(0, from, chain, records);
  await objects.createBytes(segmentKey(NS, 0, from, to), await compress(body), live());
  let expected = chain;
  for (const r of records) expected = nextChain(expected, r.offset, r.value);
  equal(header.chainAfter, expected);
  return header.chainAfter;
}

const live = () => new AbortController().signal;

Deno.test("fetch() carries the newest snapshot on with the log archive when the log no longer starts where the file can go on", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [19]);
    const chain = await archiveRange(objects, 20, 49, chainOf(19));
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    // The log still starts at 15: the snapshot alone will do.
    const plain = await restorer.fetch(0, -1, 15, 60, db);
    equal(plain?.source, "s3");
    equal(plain?.offset, 19);
    await Deno.remove(plain!.path);
    // The log starts at 40: the snapshot and the archive up to 49.
    const fetched = await restorer.fetch(0, -1, 40, 60, db);
    ok(fetched !== null);
    equal(fetched.source, "archive");
    equal(fetched.offset, 49);
    const meta = PartitionStore.readMeta(fetched.path);
    Deno.removeSync(`${fetched.path}-lock`);
    equal(meta.chain, chain);
    equal(metrics.restores.labels("archive", "ok").value, 1);
    // Only the file is left in the store folder: no work folder.
    deepEqual(await listDir(db), [fetched.path.split("/").at(-1)!]);
  });
});

Deno.test("fetch() goes on from the local file's offset: the archive is not used when the snapshot plus archive end behind it", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    await publish(objects, dir, 0, [19]);
    await archiveRange(objects, 20, 29, chainOf(19));
    const db = await restoreDir(dir);
    const { restorer, metrics } = restorerOf(objects);
    equal(await restorer.fetch(0, 35, 40, 60, db), null);
    equal(metrics.restores.labels("archive", "unavailable").value, 1);
    deepEqual(await listDir(db), []);
  });
});
