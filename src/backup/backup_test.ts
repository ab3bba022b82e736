import { deepEqual, equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { loadConfig } from "../config/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import type { PartitionStore } from "../store/mod.ts";
import { openStore, withTempDir, writeUpTo } from "../../tests/_helpers.ts";
import { listDir, MemoryObjectStore } from "./_test_util.ts";
import { Backups, type BackupSource } from "./backup.ts";
import { segmentKey } from "./segment.ts";
import {
  latestKey,
  type Manifest,
  parseManifest,
  snapshotStem,
  verifySnapshot,
} from "./snapshot.ts";

const NS = "test";
const decoder = new TextDecoder();

/** A {@linkcode BackupSource} serving exactly the given stores. */
function sourceOf(stores: readonly PartitionStore[]): BackupSource {
  return { ownedServingStores: () => stores.map((s) => [s.partition, s]) };
}

/**
 * Backups of namespace "test" by node-a into `objects` (every 60 s, 3 kept, snapshots only: no
 * log archive), with scratch copies in `dir/scratch`; `env` overrides those settings.
 */
async function backupsIn(
  dir: string,
  objects: MemoryObjectStore,
  env: Record<string, string> = {},
  now: () => number = () => Date.now(),
): Promise<{ backups: Backups; metrics: Metrics; scratchDir: string }> {
  const metrics = createMetrics();
  const scratchDir = `${dir}/scratch`;
  await Deno.mkdir(scratchDir, { recursive: true });
  const config = loadConfig({
    NAMESPACE: NS,
    INSTANCE_ID: "node-a",
    BACKUP_INTERVAL_SEC: "60",
    BACKUP_KEEP: "3",
    BACKUP_TIMEOUT_MS: "10000",
    ARCHIVE: "0",
    ...env,
  });
  const backups = new Backups(objects, {
    cluster: config.cluster,
    node: config.node,
    backup: config.backup,
    archive: config.archive,
    scratchDir,
    metrics,
    now,
  });
  return { backups, metrics, scratchDir };
}

/** Opens one store per partition in `dir/db`, each at the given offset; closes them after `body`. */
async function withStores(
  dir: string,
  offsets: readonly number[],
  body: (stores: PartitionStore[]) => Promise<void>,
): Promise<void> {
  const stores = offsets.map((_, p) => openStore(`${dir}/db`, p, NS));
  try {
    for (let p = 0; p < offsets.length; p++) await writeUpTo(stores[p]!, offsets[p]!);
    await body(stores);
  } finally {
    for (const store of stores) await store.close();
  }
}

function manifestAt(objects: MemoryObjectStore, key: string): Manifest {
  const bytes = objects.objects.get(key);
  ok(bytes !== undefined, `${key} exists`);
  const manifest = parseManifest(JSON.parse(decoder.decode(bytes)));
  ok(manifest !== null, `${key} is a manifest`);
  return manifest;
}

function keysOf(partition: number, offset: number): string[] {
  const stem = snapshotStem(NS, partition, offset);
  return [`${stem}.json`, `${stem}.mdb`];
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const never = new AbortController().signal;

Deno.test("round() uploads the file, its manifest and latest.json of every owned serving partition", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics, scratchDir } = await backupsIn(dir, objects);
    await withStores(dir, [4, 2], async (stores) => {
      const before = Date.now() / 1000;
      await backups.round(sourceOf(stores), never);
      deepEqual(objects.keys(), [
        ...keysOf(0, 4),
        latestKey(NS, 0),
        ...keysOf(1, 2),
        latestKey(NS, 1),
      ]);
      let uploaded = 0;
      for (const store of stores) {
        const stem = snapshotStem(NS, store.partition, store.applied.offset);
        const manifest = manifestAt(objects, `${stem}.json`);
        equal(manifest.partition, store.partition);
        equal(manifest.namespace, NS);
        equal(manifest.offset, store.applied.offset);
        equal(manifest.chain, store.applied.chain);
        equal(manifest.node, "node-a");
        const file = objects.objects.get(`${stem}.mdb`)!;
        equal(manifest.bytes, file.length);
        equal(manifest.sha256, sha256(file));
        deepEqual(manifestAt(objects, latestKey(NS, store.partition)), manifest);
        // What was uploaded is a snapshot restore accepts.
        const restored = `${dir}/restored-p${store.partition}.mdb`;
        await Deno.writeFile(restored, file);
        await verifySnapshot(restored, manifest);
        uploaded += file.length;
        ok(metrics.backupLastSuccess.labels(String(store.partition)).value >= before);
      }
      equal(metrics.backupDuration.labels().count, 2);
      equal(metrics.backupBytes.labels().value, uploaded);
      equal(metrics.backupFailures.labels().value, 0);
      deepEqual(await listDir(scratchDir), []);
    });
  });
});

Deno.test("round() skips a partition with nothing applied yet", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics } = await backupsIn(dir, objects);
    await withStores(dir, [-1, 0], async (stores) => {
      await backups.round(sourceOf(stores), never);
      deepEqual(objects.keys(), [...keysOf(1, 0), latestKey(NS, 1)]);
      equal(metrics.backupDuration.labels().count, 1);
    });
  });
});

Deno.test("round() skips a partition whose offset did not move since its last backup", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups } = await backupsIn(dir, objects);
    await withStores(dir, [4, 2], async (stores) => {
      const source = sourceOf(stores);
      await backups.round(source, never);
      const calls = objects.calls.length;
      await backups.round(source, never);
      equal(objects.calls.length, calls, "an unchanged round touches nothing");
      await writeUpTo(stores[0]!, 5);
      await backups.round(source, never);
      deepEqual(
        objects.calls.slice(calls).filter((c) => c.op === "putFile").map((c) => c.key),
        [`${snapshotStem(NS, 0, 5)}.mdb`],
      );
      equal(manifestAt(objects, latestKey(NS, 0)).offset, 5);
    });
  });
});

Deno.test("round() keeps only the `keep` newest snapshots, deleting older files and manifests", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups } = await backupsIn(dir, objects, { BACKUP_KEEP: "2" });
    await withStores(dir, [0], async (stores) => {
      const source = sourceOf(stores);
      for (let offset = 0; offset <= 3; offset++) {
        await writeUpTo(stores[0]!, offset);
        await backups.round(source, never);
      }
      deepEqual(objects.keys(), [...keysOf(0, 2), ...keysOf(0, 3), latestKey(NS, 0)]);
      equal(manifestAt(objects, latestKey(NS, 0)).offset, 3);
    });
  });
});

Deno.test("round() deletes an old file whose manifest was never written", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics } = await backupsIn(dir, objects, { BACKUP_KEEP: "1" });
    await withStores(dir, [1], async (stores) => {
      const source = sourceOf(stores);
      // The file goes up, its manifest does not: the backup at offset 1 fails half-way.
      objects.failWith = (op) => op === "putJson" ? new Error("S3 is down") : null;
      await backups.round(source, never);
      equal(metrics.backupFailures.labels().value, 1);
      deepEqual(objects.keys(), [`${snapshotStem(NS, 0, 1)}.mdb`]);
      objects.failWith = () => null;
      await writeUpTo(stores[0]!, 2);
      await backups.round(source, never);
      deepEqual(objects.keys(), [...keysOf(0, 2), latestKey(NS, 0)]);
    });
  });
});

Deno.test("round() does not upload again a snapshot whose manifest is already there", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics, scratchDir } = await backupsIn(dir, objects);
    await withStores(dir, [4], async (stores) => {
      // Another replica backed up this very offset.
      const stem = snapshotStem(NS, 0, 4);
      const theirs = { ...(await otherReplicaManifest(dir)), offset: 4 };
      await objects.putJson(`${stem}.json`, theirs, never);
      await backups.round(sourceOf(stores), never);
      equal(objects.count("putFile"), 0);
      deepEqual(manifestAt(objects, `${stem}.json`), theirs);
      deepEqual(manifestAt(objects, latestKey(NS, 0)), theirs, "the pointer names their snapshot");
      equal(metrics.backupBytes.labels().value, 0);
      equal(metrics.backupFailures.labels().value, 0);
      ok(metrics.backupLastSuccess.labels("0").value > 0);
      deepEqual(await listDir(scratchDir), []);
      // And it counts as backed up: the next round leaves the partition alone.
      const calls = objects.calls.length;
      await backups.round(sourceOf(stores), never);
      equal(objects.calls.length, calls);
    });
  });
});

/** A manifest as another node would have written it for partition 0 of this namespace. */
async function otherReplicaManifest(dir: string): Promise<Manifest> {
  const objects = new MemoryObjectStore();
  const { backups } = await backupsIn(`${dir}/other`, objects, { INSTANCE_ID: "node-b" });
  const store = openStore(`${dir}/other/db`, 0, NS);
  try {
    await writeUpTo(store, 4);
    const manifest = await backups.backupPartition(0, store, never);
    ok(manifest !== null);
    return manifest;
  } finally {
    await store.close();
  }
}

Deno.test("round() does not move latest.json back to an older snapshot", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups } = await backupsIn(dir, objects);
    await withStores(dir, [2], async (stores) => {
      // A replica further ahead already pointed latest.json at offset 9.
      const ahead = { ...(await otherReplicaManifest(dir)), offset: 9 };
      await objects.putJson(latestKey(NS, 0), ahead, never);
      await backups.round(sourceOf(stores), never);
      equal(manifestAt(objects, `${snapshotStem(NS, 0, 2)}.json`).offset, 2);
      deepEqual(manifestAt(objects, latestKey(NS, 0)), ahead);
    });
  });
});

Deno.test("round() replaces a manifest at its offset that is not a manifest", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups } = await backupsIn(dir, objects);
    await withStores(dir, [4], async (stores) => {
      const stem = snapshotStem(NS, 0, 4);
      await objects.putJson(`${stem}.json`, { offset: 4 }, never);
      await backups.round(sourceOf(stores), never);
      equal(manifestAt(objects, `${stem}.json`).offset, 4);
      ok(objects.objects.has(`${stem}.mdb`));
    });
  });
});

Deno.test("round() moves latest.json on at the next round when only the pointer update failed", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics } = await backupsIn(dir, objects);
    await withStores(dir, [4], async (stores) => {
      const latest = latestKey(NS, 0);
      objects.failWith = (op, key) => op === "putJson" && key === latest ? new Error("503") : null;
      await backups.round(sourceOf(stores), never);
      equal(metrics.backupFailures.labels().value, 1);
      deepEqual(objects.keys(), keysOf(0, 4));
      objects.failWith = () => null;
      await backups.round(sourceOf(stores), never);
      equal(objects.count("putFile"), 1, "the snapshot itself is not uploaded again");
      equal(manifestAt(objects, latest).offset, 4);
    });
  });
});

Deno.test("round() counts a failed upload, removes its scratch copy and retries at the next round", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics, scratchDir } = await backupsIn(dir, objects);
    await withStores(dir, [4], async (stores) => {
      const source = sourceOf(stores);
      objects.failWith = (op) => op === "putFile" ? new Error("connection reset") : null;
      await backups.round(source, never);
      equal(metrics.backupFailures.labels().value, 1);
      equal(metrics.backupLastSuccess.labels("0").value, 0);
      equal(metrics.backupDuration.labels().count, 0);
      deepEqual(objects.keys(), []);
      deepEqual(await listDir(scratchDir), []);
      // Same offset, but it never made it: the next round tries again.
      objects.failWith = () => null;
      await backups.round(source, never);
      equal(metrics.backupFailures.labels().value, 1);
      ok(metrics.backupLastSuccess.labels("0").value > 0);
      deepEqual(objects.keys(), [...keysOf(0, 4), latestKey(NS, 0)]);
      deepEqual(await listDir(scratchDir), []);
    });
  });
});

Deno.test("round() goes on with the other partitions when one backup fails", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics } = await backupsIn(dir, objects);
    await withStores(dir, [4, 2], async (stores) => {
      objects.failWith = (op, key) =>
        op === "putFile" && key.startsWith(`${NS}/p0/`) ? new Error("slow down") : null;
      await backups.round(sourceOf(stores), never);
      equal(metrics.backupFailures.labels().value, 1);
      deepEqual(objects.keys(), [...keysOf(1, 2), latestKey(NS, 1)]);
    });
  });
});

Deno.test("backupPartition() counts a failed copy and leaves no scratch file", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, metrics, scratchDir } = await backupsIn(dir, objects);
    await withStores(dir, [4], async (stores) => {
      // The copy cannot be written: its folder is a file.
      await Deno.remove(scratchDir);
      await Deno.writeTextFile(scratchDir, "in the way");
      equal(await backups.backupPartition(0, stores[0]!, never), null);
      equal(metrics.backupFailures.labels().value, 1);
      deepEqual(objects.keys(), []);
      deepEqual(await listDir(dir), ["db", "scratch"]);
      equal(await Deno.readTextFile(scratchDir), "in the way");
    });
  });
});

Deno.test("run() backs up at once, then stops when its signal aborts", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups, scratchDir } = await backupsIn(dir, objects, { BACKUP_INTERVAL_SEC: "3600" });
    await Deno.remove(scratchDir);
    await withStores(dir, [4], async (stores) => {
      const stop = new AbortController();
      const running = backups.run(sourceOf(stores), stop.signal);
      for (let i = 0; i < 200 && !objects.objects.has(latestKey(NS, 0)); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      ok(objects.objects.has(latestKey(NS, 0)), "the first round ran without waiting");
      stop.abort();
      await running;
      deepEqual(await listDir(scratchDir), [], "run() created the scratch folder, left empty");
    });
  });
});

Deno.test("with the log archive, round() takes a full snapshot only when the last is BACKUP_FULL_INTERVAL_SEC old or the segments since reach BACKUP_FULL_PERCENT of it", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const clock = { now: 1_796_000_000_000 };
    const { backups } = await backupsIn(dir, objects, {
      ARCHIVE: "1",
      BACKUP_FULL_INTERVAL_SEC: "3600",
      BACKUP_FULL_PERCENT: "50",
    }, () => clock.now);
    await withStores(dir, [3], async (stores) => {
      const source = sourceOf(stores);
      await backups.round(source, never);
      const first = manifestAt(objects, latestKey(NS, 0));
      equal(first.offset, 3);
      // Changes since, archived in segments smaller than half the snapshot: no new snapshot.
      await writeUpTo(stores[0]!, 6);
      const half = Math.floor(first.bytes / 2);
      objects.objects.set(segmentKey(NS, 0, 0, 3), new Uint8Array(half * 4)); // before it: not counted
      objects.objects.set(segmentKey(NS, 0, 4, 5), new Uint8Array(half - 10));
      clock.now += 60_000;
      await backups.round(source, never);
      equal(manifestAt(objects, latestKey(NS, 0)).offset, 3);
      // The segments since reach half of it: a snapshot.
      objects.objects.set(segmentKey(NS, 0, 6, 6), new Uint8Array(20));
      await backups.round(source, never);
      equal(manifestAt(objects, latestKey(NS, 0)).offset, 6);
      // Nothing archived since, but an hour went by: a snapshot.
      await writeUpTo(stores[0]!, 7);
      clock.now += 3_600_000;
      await backups.round(source, never);
      equal(manifestAt(objects, latestKey(NS, 0)).offset, 7);
    });
  });
});

Deno.test("retention deletes the segments the oldest kept snapshot holds, and keeps every one after it", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups } = await backupsIn(dir, objects, { BACKUP_KEEP: "2" });
    const segments = [[0, 1], [2, 2], [3, 4], [5, 9]].map(([a, b]) => segmentKey(NS, 0, a!, b!));
    for (const key of segments) objects.objects.set(key, new Uint8Array(10));
    await withStores(dir, [0], async (stores) => {
      const source = sourceOf(stores);
      for (let offset = 0; offset <= 3; offset++) {
        await writeUpTo(stores[0]!, offset);
        await backups.round(source, never);
      }
      // Kept: snapshots at 2 and 3. Segments ending at or before 2 go; [3-4] and [5-9] stay.
      deepEqual(
        objects.keys(),
        [
          ...keysOf(0, 2),
          ...keysOf(0, 3),
          latestKey(NS, 0),
          segmentKey(NS, 0, 3, 4),
          segmentKey(NS, 0, 5, 9),
        ].sort(),
      );
    });
  });
});

Deno.test("retention keeps the archive's newest segment even when the oldest kept snapshot holds it: the archive goes on from it", async () => {
  await withTempDir(async (dir) => {
    const objects = new MemoryObjectStore();
    const { backups } = await backupsIn(dir, objects, { BACKUP_KEEP: "2" });
    const segments = [[0, 1], [2, 2]].map(([a, b]) => segmentKey(NS, 0, a!, b!));
    for (const key of segments) objects.objects.set(key, new Uint8Array(10));
    await withStores(dir, [0], async (stores) => {
      const source = sourceOf(stores);
      for (let offset = 0; offset <= 4; offset++) {
        await writeUpTo(stores[0]!, offset);
        await backups.round(source, never);
      }
      // Kept: snapshots at 3 and 4. Both segments end before 3, but [2-2] is where the archive
      // ends: an archive with no segment left would start over from offset 0.
      deepEqual(
        objects.keys(),
        [...keysOf(0, 3), ...keysOf(0, 4), latestKey(NS, 0), segmentKey(NS, 0, 2, 2)].sort(),
      );
    });
  });
});
