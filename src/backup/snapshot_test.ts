import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { open } from "lmdb";
import { chainOf, openStore, withTempDir, writeUpTo } from "../../tests/_helpers.ts";
import { listDir } from "./_test_util.ts";
import {
  createSnapshot,
  hashFile,
  latestKey,
  type Manifest,
  manifestOffsets,
  parseManifest,
  partitionPrefix,
  SnapshotRejected,
  snapshotStem,
  verifySnapshot,
} from "./snapshot.ts";

/** A store of partition 3 in `dir/live` at offset 7, snapshotted to `dir/snap.mdb`. */
async function snapshotOf(dir: string): Promise<{ path: string; manifest: Manifest }> {
  const store = openStore(`${dir}/live`, 3);
  try {
    await writeUpTo(store, 7);
    const path = `${dir}/snap.mdb`;
    return { path, manifest: await createSnapshot(store, path, "test", "node-a", Date.now()) };
  } finally {
    await store.close();
  }
}

/** Asserts that `promise` rejects with a {@linkcode SnapshotRejected} for `reason`. */
async function rejectedFor(promise: Promise<unknown>, reason: string): Promise<void> {
  await rejects(promise, (error: unknown) => {
    ok(error instanceof SnapshotRejected, `expected SnapshotRejected, got ${error}`);
    equal(error.code, "snapshot_rejected");
    equal(error.details.reason, reason);
    return true;
  });
}

/** Asserts that no LMDB lock file is left in `dir`. */
async function noLockFiles(dir: string): Promise<void> {
  const locks = (await listDir(dir)).filter((name) => name.endsWith("-lock"));
  deepEqual(locks, []);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

Deno.test("snapshotStem() names a snapshot {ns}/p{n}/ followed by its offset in 20 digits", () => {
  equal(partitionPrefix("orders", 3), "orders/p3/");
  equal(snapshotStem("orders", 3, 42), "orders/p3/00000000000000000042");
  equal(snapshotStem("orders", 12, 0), "orders/p12/00000000000000000000");
  equal(snapshotStem("orders", 0, Number.MAX_SAFE_INTEGER), "orders/p0/00009007199254740991");
  equal(latestKey("orders", 3), "orders/p3/latest.json");
});

Deno.test("partitionPrefix() of p1 is not a prefix of p10's keys", () => {
  ok(!snapshotStem("ns", 10, 5).startsWith(partitionPrefix("ns", 1)));
  ok(!latestKey("ns", 10).startsWith(partitionPrefix("ns", 1)));
});

Deno.test("manifestOffsets() sorts manifests newest first and ignores latest.json and files", () => {
  const keys = [
    `${snapshotStem("ns", 0, 9)}.json`,
    `${snapshotStem("ns", 0, 9)}.mdb`,
    latestKey("ns", 0),
    `${snapshotStem("ns", 0, 100)}.json`,
    `${snapshotStem("ns", 0, 1000)}.mdb`,
    `${snapshotStem("ns", 0, 10)}.json`,
    "ns/p0/42.json",
    "ns/p0/00000000000000000077.json.tmp",
  ];
  deepEqual(manifestOffsets(keys), [100, 10, 9]);
  deepEqual(manifestOffsets([]), []);
});

Deno.test("parseManifest() accepts a manifest as written by createSnapshot()", () => {
  const manifest: Manifest = {
    partition: 3,
    namespace: "test",
    offset: 7,
    chain: chainOf(7),
    sha256: "ab".repeat(32),
    bytes: 8192,
    created_at: 1_700_000_000_000,
    node: "node-a",
  };
  deepEqual(parseManifest(JSON.parse(JSON.stringify(manifest))), manifest);
});

Deno.test("parseManifest() rejects values that are not manifests", () => {
  const good = {
    partition: 3,
    namespace: "test",
    offset: 7,
    chain: chainOf(7),
    sha256: "ab".repeat(32),
    bytes: 8192,
    created_at: 1_700_000_000_000,
    node: "node-a",
  };
  const bad: unknown[] = [
    null,
    "manifest",
    42,
    [],
    {},
    { ...good, partition: "3" },
    { ...good, partition: 1.5 },
    { ...good, partition: -1 },
    { ...good, namespace: 7 },
    { ...good, offset: "7" },
    { ...good, offset: 7.5 },
    { ...good, offset: -2 },
    { ...good, chain: "00" },
    { ...good, chain: "Z".repeat(64) },
    { ...good, sha256: "ab".repeat(31) },
    { ...good, sha256: "AB".repeat(32) },
    { ...good, bytes: "8192" },
    { ...good, bytes: -1 },
    { ...good, bytes: 1.5 },
    { ...good, created_at: null },
    { ...good, node: undefined },
  ];
  for (const value of bad) equal(parseManifest(value), null, JSON.stringify(value));
});

Deno.test("createSnapshot() describes the copy of a live store: its offset, chain and bytes", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/live`, 3);
    try {
      await writeUpTo(store, 7);
      const path = `${dir}/snap.mdb`;
      const before = Date.now();
      const manifest = await createSnapshot(store, path, "test", "node-a", Date.now());
      equal(manifest.partition, 3);
      equal(manifest.namespace, "test");
      equal(manifest.offset, store.applied.offset);
      equal(manifest.chain, store.applied.chain);
      equal(manifest.node, "node-a");
      ok(manifest.created_at >= before && manifest.created_at <= Date.now());
      const bytes = await Deno.readFile(path);
      equal(manifest.bytes, bytes.length);
      equal(manifest.sha256, sha256(bytes));
      deepEqual(await hashFile(path), { sha256: manifest.sha256, bytes: manifest.bytes });
      deepEqual(parseManifest(JSON.parse(JSON.stringify(manifest))), manifest);
      await noLockFiles(dir);
    } finally {
      await store.close();
    }
  });
});

Deno.test("createSnapshot() copies the records, and the store keeps working after it", async () => {
  await withTempDir(async (dir) => {
    const { path } = await snapshotOf(dir);
    const copy = openStore(`${dir}/copy`, 3);
    await copy.close();
    await Deno.rename(path, `${dir}/copy/p3.mdb`);
    const reopened = openStore(`${dir}/copy`, 3);
    try {
      equal(reopened.applied.offset, 7);
      equal(reopened.count(), 8);
      equal(reopened.get("pk", "k5")?.dataJson, JSON.stringify({ offset: 5 }));
      await writeUpTo(reopened, 8);
      equal(reopened.applied.offset, 8);
    } finally {
      await reopened.close();
    }
  });
});

Deno.test("verifySnapshot() accepts a snapshot matching its manifest and returns its meta", async () => {
  await withTempDir(async (dir) => {
    const { path, manifest } = await snapshotOf(dir);
    const meta = await verifySnapshot(path, manifest);
    deepEqual(meta, { partition: 3, namespace: "test", offset: 7, chain: chainOf(7) });
    await noLockFiles(dir);
  });
});

Deno.test("verifySnapshot() rejects a truncated file for its size", async () => {
  await withTempDir(async (dir) => {
    const { path, manifest } = await snapshotOf(dir);
    await Deno.truncate(path, Math.floor(manifest.bytes / 2));
    await rejectedFor(verifySnapshot(path, manifest), "size");
    await noLockFiles(dir);
  });
});

Deno.test("verifySnapshot() rejects a file with one flipped byte for its checksum", async () => {
  await withTempDir(async (dir) => {
    const { path, manifest } = await snapshotOf(dir);
    const bytes = await Deno.readFile(path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await Deno.writeFile(path, bytes);
    await rejectedFor(verifySnapshot(path, manifest), "checksum");
    await noLockFiles(dir);
  });
});

Deno.test("verifySnapshot() rejects a manifest whose offset, chain, partition or namespace differ from the file's", async () => {
  await withTempDir(async (dir) => {
    const { path, manifest } = await snapshotOf(dir);
    const others: Manifest[] = [
      { ...manifest, offset: manifest.offset + 1 },
      { ...manifest, chain: chainOf(manifest.offset + 1) },
      { ...manifest, partition: manifest.partition + 1 },
      { ...manifest, namespace: "other" },
    ];
    for (const other of others) await rejectedFor(verifySnapshot(path, other), "meta");
    // The file itself was not touched: it still verifies against its own manifest.
    await verifySnapshot(path, manifest);
    await noLockFiles(dir);
  });
});

Deno.test("verifySnapshot() rejects files that are not LMDB files even when their sha matches", async () => {
  await withTempDir(async (dir) => {
    const { manifest } = await snapshotOf(dir);
    const patterned = new Uint8Array(manifest.bytes);
    for (let i = 0; i < patterned.length; i++) patterned[i] = (i * 31 + 7) & 0xff;
    const real = await Deno.readFile(`${dir}/snap.mdb`);
    const contents: Record<string, Uint8Array> = {
      empty: new Uint8Array(0),
      tiny: new Uint8Array([1, 2, 3]),
      zeros: new Uint8Array(manifest.bytes),
      patterned,
      text: new TextEncoder().encode("not a database\n".repeat(1000)),
      // A real header, cut short of its second meta page.
      "first page only": real.slice(0, 4096),
    };
    // lmdb-js crashes the process when LMDB refuses a file: reaching the asserts is the test.
    for (const [name, bytes] of Object.entries(contents)) {
      const path = `${dir}/${name.replaceAll(" ", "_")}.mdb`;
      await Deno.writeFile(path, bytes);
      const forged = { ...manifest, sha256: sha256(bytes), bytes: bytes.length };
      await rejectedFor(verifySnapshot(path, forged), "meta");
    }
    await noLockFiles(dir);
  });
});

Deno.test("verifySnapshot() rejects an LMDB file without FireScroll meta even when its sha matches", async () => {
  await withTempDir(async (dir) => {
    const { manifest } = await snapshotOf(dir);
    const path = `${dir}/foreign.mdb`;
    const env = open({ path });
    await env.put("hello", "world");
    await env.close();
    await Deno.remove(`${path}-lock`).catch(() => {});
    const { sha256, bytes } = await hashFile(path);
    await rejectedFor(verifySnapshot(path, { ...manifest, sha256, bytes }), "meta");
    await noLockFiles(dir);
  });
});
