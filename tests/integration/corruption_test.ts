/**
 * Damaged LMDB files at start (issue 9, defect 5), with real node processes: a partition file
 * damaged while the node was stopped is found before it is mapped, moved aside, counted, and
 * rebuilt (from the embedded log, or from an S3 snapshot plus the Kafka log) to the very same
 * chain, digest and records; the other partitions serve meanwhile. A damaged embedded log (the
 * only copy) stops the start with one clear line and a non-zero exit, never a segfault.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { freshNamespace, mergeOffsets, startKafkaNode, waitFor, waitForOffsets } from "./_kafka.ts";
import { partitionStatus, spawnNode, startNode, type TestNode } from "./_node.ts";
import { latestManifest, needsKafkaAndS3, s3Client, s3Env } from "./_s3.ts";

const PARTITIONS = 4;
const RECORDS = 400;
const PAGE = 4096;

type Damage = "header" | "leaf" | "middle";

/** The marker inside record `i`'s data: a unique string to find its bytes in a file. */
const marker = (i: number) => `mark-${String(i).padStart(4, "0")}-end`;

/** Writes RECORDS records `k{i}` in requests of 25 (many transactions per partition). */
async function writeAll(node: TestNode): Promise<Record<string, number>> {
  const offsets: Record<string, number> = {};
  for (let i = 0; i < RECORDS; i += 25) {
    const records = Array.from({ length: 25 }, (_, j) => ({
      pk: `k${i + j}`,
      sk: "s",
      data: { m: marker(i + j), pad: "p".repeat(60) },
    }));
    const result = await node.post("/records/put", { records });
    assert.equal(result.status, 200, result.text);
    mergeOffsets(offsets, result.json.offsets);
  }
  return offsets;
}

/** Every record, read after `offsets` were applied. */
async function readAll(node: TestNode, offsets: Record<string, number>): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < RECORDS; i += 50) {
    const keys = Array.from({ length: 50 }, (_, j) => ({ pk: `k${i + j}`, sk: "s" }));
    const result = await node.post("/records/get", {
      records: keys,
      after: offsets,
      wait_ms: 10_000,
    });
    assert.equal(result.status, 200, result.text);
    assert.equal(result.json.missing.length, 0, result.text);
    out.push(...result.json.records);
  }
  return out;
}

function indexesOf(haystack: Uint8Array, needle: string): number[] {
  const n = new TextEncoder().encode(needle);
  const out: number[] = [];
  outer: for (let i = 0; i + n.length <= haystack.length; i++) {
    for (let j = 0; j < n.length; j++) if (haystack[i + j] !== n[j]) continue outer;
    out.push(i);
  }
  return out;
}

/** Damages a closed file in place (its mtime changes, as any real damage's would). */
async function damage(path: string, kind: Damage, record: number): Promise<void> {
  const bytes = await Deno.readFile(path);
  if (kind === "header") {
    // The LMDB magic of the first meta page: lmdb-js crashes the process opening this.
    for (let i = 24; i < 28; i++) bytes[i]! ^= 0xff;
  } else if (kind === "leaf") {
    // One digit of a record's value, in every copy of its leaf page (stale copies linger in free
    // pages; the live one is among them): the page structure stays intact, only data changes.
    const at = indexesOf(bytes, marker(record));
    assert.ok(at.length > 0, `${marker(record)} is not in ${path}`);
    for (const i of at) bytes[i + 8]! ^= 0x01;
  } else {
    // The last byte of every page in the middle half: LMDB packs a page's nodes at its end.
    const pages = bytes.length / PAGE;
    for (let page = Math.floor(pages / 4); page < Math.ceil((3 * pages) / 4); page++) {
      bytes[page * PAGE + PAGE - 1]! ^= 0xff;
    }
  }
  await Deno.writeFile(path, bytes);
}

/** Names in `dir` starting with `prefix`. */
async function filesLike(dir: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(prefix)) out.push(entry.name);
  }
  return out.sort();
}

function events(node: TestNode, event: string): Record<string, unknown>[] {
  return node.logs.events().filter((e) => e.event === event);
}

/** Offset, chain, digest and record count of every partition. */
async function fingerprint(node: TestNode) {
  const status = await partitionStatus(node);
  const out: Record<string, unknown> = {};
  for (const [p, s] of Object.entries(status)) {
    const { offset, chain, digest, records } = s as unknown as Record<string, unknown>;
    assert.match(String(digest), /^[0-9a-f]{32}$/, `p${p} has no digest in /internal/status`);
    out[p] = { offset, chain, digest, records };
  }
  return out;
}

for (const kind of ["header", "leaf", "middle"] as const) {
  Deno.test({
    name:
      `embedded mode: a partition file with a damaged ${kind} is moved aside and rebuilt from the log to the same chain, digest and records`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const dbPath = await Deno.makeTempDir({ prefix: `firescroll_it_corrupt_${kind}_` });
      const env = { PARTITIONS: String(PARTITIONS) };
      const dir = `${dbPath}/default`;
      const target = partitionOf("k7", PARTITIONS);
      const file = `${dir}/p${target}.mdb`;
      const nodes: TestNode[] = [];
      try {
        const first = await startNode({ env, dbPath });
        nodes.push(first);
        const offsets = await writeAll(first);
        const records = await readAll(first, offsets);
        const before = await fingerprint(first);
        assert.equal(await first.stop(), 0);
        assert.deepEqual(await filesLike(dir, "clean-stop.json"), ["clean-stop.json"]);

        await damage(file, kind, 7);
        const second = await startNode({ env, dbPath, readyTimeoutMs: 60_000 });
        nodes.push(second);
        const corrupt = events(second, "partition_file_corrupt");
        assert.equal(corrupt.length, 1, second.logs.tail());
        assert.equal(corrupt[0]!.file, file);
        assert.equal(corrupt[0]!.partition, target);
        assert.equal(typeof corrupt[0]!.reason, "string");
        const aside = await filesLike(dir, `p${target}.mdb.corrupt-`);
        assert.ok(aside.some((n) => /^p\d+\.mdb\.corrupt-\d+$/.test(n)), aside.join(","));
        const metrics = (await second.internal("/metrics")).text;
        assert.match(metrics, /firescroll_store_corrupt_files_total\{kind="partition"\} 1\n/);
        assert.deepEqual(await readAll(second, offsets), records);
        assert.deepEqual(await fingerprint(second), before);
        assert.equal(await second.stop(), 0);

        // A clean stop after the rebuild: the next start trusts every file and verifies none.
        const third = await startNode({ env, dbPath });
        nodes.push(third);
        assert.equal(events(third, "partition_files_verified").length, 0, third.logs.tail());
        assert.deepEqual(await fingerprint(third), before);
      } finally {
        await Promise.all(nodes.map((n) => n.cleanup()));
        await Deno.remove(dbPath, { recursive: true }).catch(() => {});
      }
    },
  });
}

Deno.test({
  name: "embedded mode: after an unclean stop every file is verified and good files are kept",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_unclean_" });
    const env = { PARTITIONS: String(PARTITIONS) };
    const nodes: TestNode[] = [];
    try {
      const first = await startNode({ env, dbPath });
      nodes.push(first);
      const offsets = await writeAll(first);
      const records = await readAll(first, offsets);
      const before = await fingerprint(first);
      await first.kill();
      const second = await startNode({ env, dbPath, readyTimeoutMs: 60_000 });
      nodes.push(second);
      const verified = events(second, "partition_files_verified");
      assert.equal(verified.length, 1, second.logs.tail());
      assert.equal(verified[0]!.files, PARTITIONS);
      assert.equal(verified[0]!.damaged, 0);
      assert.equal(events(second, "partition_file_corrupt").length, 0);
      assert.deepEqual(await readAll(second, offsets), records);
      assert.deepEqual(await fingerprint(second), before);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "embedded mode: a damaged embedded log stops the start with one clear line and exit code 1",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_corrupt_log_" });
    const env = { PARTITIONS: String(PARTITIONS) };
    const logFile = `${dbPath}/default/log.mdb`;
    try {
      const first = await startNode({ env, dbPath });
      try {
        await writeAll(first);
        assert.equal(await first.stop(), 0);
      } finally {
        await first.cleanup();
      }
      await damage(logFile, "header", 0);
      const second = await spawnNode({ env, dbPath });
      try {
        const code = await second.exited;
        assert.equal(code, 1, second.logs.tail());
        const errors = second.logs.events().filter((e) => e.level === "error");
        assert.equal(errors.length, 1, second.logs.tail());
        assert.equal(errors[0]!.event, "embedded_log_corrupt");
        assert.equal(errors[0]!.file, logFile);
        assert.match(String(errors[0]!.error), /log\.mdb is damaged/);
        assert.match(
          String(errors[0]!.recovery),
          /restore the whole folder .* or move the whole folder aside/,
        );
        const stderr = second.logs.all.filter((l) => l.startsWith("stderr:"));
        assert.deepEqual(stderr, [], "no stack trace, no crash report");
        assert.ok(events(second as unknown as TestNode, "api_listening").length === 0);
      } finally {
        await second.cleanup();
      }
    } finally {
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "Kafka mode: a damaged partition file is rebuilt from its S3 snapshot and the log tail",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("damaged");
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_corrupt_kafka_" });
    const env = s3Env({ BACKUP: "1", ARCHIVE: "0", S3_RESTORE: "1", BACKUP_INTERVAL_SEC: "1" });
    const nodes: TestNode[] = [];
    const client = s3Client();
    try {
      const first = await startKafkaNode(ns, "g1", env, dbPath);
      nodes.push(first);
      const offsets = await writeAll(first);
      await waitForOffsets(first, offsets);
      const target = partitionOf("k7", 8);
      const status = await partitionStatus(first);
      await waitFor("a snapshot of every partition", 60_000, async () => {
        for (const [p, s] of Object.entries(status)) {
          const latest = await latestManifest(client, ns, Number(p));
          if (s.offset >= 0 && (latest === null || latest.offset < s.offset)) return null;
        }
        return true;
      });
      // Past the snapshot: the rebuild needs the log tail too.
      const tail = await first.post("/records/put", {
        records: [{ pk: "k7", sk: "s", data: { m: marker(7), pad: "tail" } }],
      });
      assert.equal(tail.status, 200, tail.text);
      mergeOffsets(offsets, tail.json.offsets);
      await waitForOffsets(first, offsets);
      const records = await readAll(first, offsets);
      const before = await fingerprint(first);
      assert.equal(await first.stop(), 0);

      const dir = `${dbPath}/${ns}`;
      await damage(`${dir}/p${target}.mdb`, "header", 0);
      const second = await startKafkaNode(ns, "g1", env, dbPath);
      nodes.push(second);
      const corrupt = events(second, "partition_file_corrupt");
      assert.equal(corrupt.length, 1, second.logs.tail());
      assert.equal(corrupt[0]!.partition, target);
      assert.equal((await filesLike(dir, `p${target}.mdb.corrupt-`)).length >= 1, true);
      const restored = events(second, "partition_restored");
      assert.deepEqual(restored.map((e) => [e.partition, e.source]), [[target, "s3"]]);
      await waitForOffsets(second, offsets);
      assert.deepEqual(await readAll(second, offsets), records);
      assert.deepEqual(await fingerprint(second), before);
      const metrics = (await second.internal("/metrics")).text;
      assert.match(metrics, /firescroll_store_corrupt_files_total\{kind="partition"\} 1\n/);
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});
