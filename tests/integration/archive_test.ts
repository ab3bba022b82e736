/**
 * The log archive against the real S3 server and the real Kafka broker (issue 15): continuous
 * across a node's restart and a rebalance between two nodes, a deleted segment put back byte for
 * byte, restores to an offset and to a time inside a segment (`deno task restore`), a
 * time-travel replica (`S3_RESTORE_TO`) that serves a past point read-only, the topic-loss drill,
 * and retention that never deletes what a kept snapshot needs.
 */
import assert from "node:assert/strict";
import { DeleteObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { nextChain } from "../../src/apply/mod.ts";
import {
  archiveHoles,
  archiveSegments,
  decodeSegmentBody,
  decompress,
  type Segment,
} from "../../src/backup/mod.ts";
import { topicNames } from "../../src/log/mod.ts";
import { CHAIN_ZERO, PartitionStore } from "../../src/store/mod.ts";
import {
  freshNamespace,
  KAFKA,
  mergeOffsets,
  startKafkaNode,
  waitFor,
  waitForOffsets,
  waitForSplit,
} from "./_kafka.ts";
import { partitionStatus, REPO_ROOT, run, startNode, type TestNode } from "./_node.ts";
import {
  createShortRetentionTopic,
  listKeys,
  logStartOffsets,
  needsKafkaAndS3,
  S3_BUCKET,
  s3Client,
  s3Env,
} from "./_s3.ts";

const PARTITIONS = 8;

/** A node's environment: backups with the archive, one-second segments, holes checked often. */
function archiveEnv(extra: Record<string, string> = {}): Record<string, string> {
  return s3Env({
    BACKUP: "1",
    BACKUP_INTERVAL_SEC: "1",
    ARCHIVE_SEGMENT_SEC: "1",
    ARCHIVE_CHECK_SEC: "2",
    // archive_segment lines: what a failing test shows of the archive.
    LOG_LEVEL: "debug",
    ...extra,
  });
}

/** Writes `count` records `{prefix}{i}` (one request per 10); returns the highest offsets. */
async function write(node: TestNode, prefix: string, count: number) {
  const offsets: Record<string, number> = {};
  for (let i = 0; i < count; i += 10) {
    const records = Array.from({ length: Math.min(10, count - i) }, (_, j) => ({
      pk: `${prefix}${i + j}`,
      sk: "s",
      data: { n: i + j, prefix },
    }));
    const result = await node.post("/records/put", { records });
    assert.equal(result.status, 200, result.text);
    mergeOffsets(offsets, result.json.offsets);
  }
  return offsets;
}

async function objectBytes(key: string): Promise<Uint8Array | null> {
  try {
    const result = await s3Client().send(new GetObjectCommand({ Bucket: S3_BUCKET, Key: key }));
    return await result.Body!.transformToByteArray();
  } catch {
    return null;
  }
}

/** Every segment of a partition, downloaded and verified, by first offset. */
async function segmentsOf(ns: string, partition: number): Promise<Segment[]> {
  const refs = archiveSegments(await listKeys(s3Client(), `${ns}/p${partition}/log/`));
  const out: Segment[] = [];
  for (const ref of refs) {
    const bytes = await objectBytes(ref.key);
    assert.ok(bytes !== null, `${ref.key} vanished`);
    out.push(decodeSegmentBody(await decompress(bytes)));
  }
  return out;
}

/** Waits until each partition's archive reaches the offset the node applied. */
async function waitForArchive(node: TestNode, ns: string): Promise<void> {
  const status = await partitionStatus(node);
  await waitFor("the archive to reach the applied offsets", 30_000, async () => {
    for (const [p, s] of Object.entries(status)) {
      if (s.offset < 0) continue;
      const refs = archiveSegments(await listKeys(s3Client(), `${ns}/p${p}/log/`));
      if (refs.reduce((end, r) => Math.max(end, r.last), -1) < s.offset) return null;
    }
    return true;
  });
}

/**
 * Asserts each partition's archive is one chain from offset 0 with no hole and no overlap, and
 * ends at `chains` (each partition's offset and chain as a node applied them).
 */
async function assertArchive(
  ns: string,
  chains: Record<string, { offset: number; chain: string }>,
): Promise<void> {
  for (const [p, applied] of Object.entries(chains)) {
    if (applied.offset < 0) continue;
    const segments = await segmentsOf(ns, Number(p));
    let chain = CHAIN_ZERO;
    let next = 0;
    for (const s of segments) {
      assert.equal(s.first, next, `p${p}: segment ${s.first}-${s.last} after ${next - 1}`);
      assert.equal(s.chainBefore, chain, `p${p}: segment ${s.first}-${s.last} breaks the chain`);
      chain = s.chainAfter;
      next = s.last + 1;
    }
    assert.ok(next - 1 >= applied.offset, `p${p}: archive ends at ${next - 1}`);
    // The archive's chain at the node's offset is the node's.
    let at = CHAIN_ZERO;
    for (const r of segments.flatMap((s) => s.records)) {
      if (r.offset > applied.offset) break;
      at = nextChain(at, r.offset, r.value);
    }
    assert.equal(at, applied.chain, `p${p}: archive chain differs from the applied one`);
  }
}

/** Runs `deno task restore` (the module it runs) and returns its exit code and output. */
function restoreCommand(ns: string, args: string[], env: Record<string, string> = {}) {
  return run(Deno.execPath(), [
    "run",
    "--allow-all",
    `${REPO_ROOT}src/backup/restore_main.ts`,
    ...args,
  ], {
    env: { ...archiveEnv(), NAMESPACE: ns, PARTITIONS: String(PARTITIONS), ...env },
  });
}

/** Runs `--rebuild-log` once more, which must be refused: its stderr. */
async function rebuildCommandRefused(ns: string): Promise<string> {
  const result = await restoreCommand(ns, ["--rebuild-log", "--partition", "0"], {
    KAFKA_SEEDS: KAFKA!,
  });
  assert.equal(result.code, 1, result.stdout);
  return result.stderr;
}

/** A time-travel replica of `ns` at `to`: no Kafka, S3 alone. */
function timeTravelNode(ns: string, to: string): Promise<TestNode> {
  return startNode({
    env: s3Env({ NAMESPACE: ns, PARTITIONS: String(PARTITIONS), S3_RESTORE_TO: to }),
    readyTimeoutMs: 60_000,
  });
}

Deno.test({
  name:
    "the log archive stays one chain across a restart and a rebalance, puts back a deleted segment, and restores to an offset and to a time inside a segment",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("archive");
    const nodes: TestNode[] = [];
    const dbA = await Deno.makeTempDir({ prefix: "firescroll_it_archive_a_" });
    try {
      let a = await startKafkaNode(ns, "g", archiveEnv(), dbA);
      nodes.push(a);
      const offsets = await write(a, "a", 100);
      await new Promise((r) => setTimeout(r, 1200)); // a later time bucket: more segments
      mergeOffsets(offsets, await write(a, "b", 100));
      await waitForOffsets(a, offsets);
      await waitForArchive(a, ns);
      await assertArchive(ns, await partitionStatus(a));

      // A restart goes on from where the archive is.
      assert.equal(await a.stop(), 0);
      a = await startKafkaNode(ns, "g", archiveEnv(), dbA);
      nodes.push(a);
      mergeOffsets(offsets, await write(a, "c", 60));
      await waitForOffsets(a, offsets);
      await waitForArchive(a, ns);
      await assertArchive(ns, await partitionStatus(a));

      // A second node takes half the partitions, then all of them: each goes on from S3.
      const b = await startKafkaNode(ns, "g", archiveEnv());
      nodes.push(b);
      await waitForSplit([a, b], PARTITIONS);
      mergeOffsets(offsets, await write(a, "d", 60));
      await waitForOffsets(a, offsets);
      await waitForOffsets(b, offsets);
      assert.equal(await a.stop(), 0);
      await waitFor("b to serve every partition", 60_000, async () => {
        const s = await partitionStatus(b);
        return Object.values(s).filter((x) => x.state === "serving").length === PARTITIONS
          ? true
          : null;
      });
      mergeOffsets(offsets, await write(b, "e", 60));
      await waitForOffsets(b, offsets);
      await waitForArchive(b, ns);
      const final = await partitionStatus(b);
      await assertArchive(ns, final);
      const exists = (await b.internal("/metrics")).text;
      assert.match(exists, /firescroll_archive_segments_total\{result="uploaded"\} [1-9]/);

      // A deleted segment is found and put back from the log, the same bytes.
      const p = Number(
        Object.entries(final).sort((x, y) => y[1].offset - x[1].offset)[0]![0],
      );
      const refs = archiveSegments(await listKeys(s3Client(), `${ns}/p${p}/log/`));
      assert.ok(refs.length >= 3, `p${p} has ${refs.length} segments`);
      const gone = refs[1]!;
      const before = await objectBytes(gone.key);
      await s3Client().send(new DeleteObjectCommand({ Bucket: S3_BUCKET, Key: gone.key }));
      assert.equal(
        archiveHoles(archiveSegments(await listKeys(s3Client(), `${ns}/p${p}/log/`))).length,
        1,
      );
      await waitFor("the deleted segment to be put back", 20_000, async () => {
        return await objectBytes(gone.key) === null ? null : true;
      });
      assert.deepEqual(await objectBytes(gone.key), before);
      assert.match(
        (await b.internal("/metrics")).text,
        /firescroll_archive_repairs_total [1-9]/,
      );

      // Restore to an offset inside a segment, and to a time inside one.
      const segments = await segmentsOf(ns, p);
      const records = segments.flatMap((s) => s.records);
      const target = records[Math.floor(records.length / 2)]!;
      let chainAt = CHAIN_ZERO;
      for (const r of records) {
        chainAt = nextChain(chainAt, r.offset, r.value);
        if (r.offset === target.offset) break;
      }
      const out = await Deno.makeTempDir({ prefix: "firescroll_it_restore_" });
      try {
        const byOffset = await restoreCommand(ns, [
          "--partition",
          String(p),
          "--to",
          String(target.offset),
          "--out",
          `${out}/by-offset`,
        ], { S3_RESTORE_DECODE: "thread" });
        assert.equal(byOffset.code, 0, byOffset.stderr);
        const line = JSON.parse(byOffset.stdout.trim().split("\n").at(-1)!);
        assert.equal(line.offset, target.offset);
        assert.equal(line.chain, chainAt);
        // Decoded by a worker thread that downloaded the segments from S3 itself (unless a
        // snapshot was at the very offset: then nothing was replayed).
        assert.equal(line.segments_decoded_in_worker > 0, line.replayed > 0, byOffset.stdout);
        const meta = PartitionStore.readMeta(`${out}/by-offset/p${p}.mdb`);
        assert.deepEqual([meta.offset, meta.chain], [target.offset, chainAt]);

        // A time: every message up to the first one stamped later.
        const firstLater = records.findIndex((r) => r.timestamp > target.timestamp);
        const expected = firstLater < 0 ? records.at(-1)! : records[firstLater - 1]!;
        const byTime = await restoreCommand(ns, [
          "--partition",
          String(p),
          "--to",
          new Date(target.timestamp).toISOString(),
          "--out",
          `${out}/by-time`,
        ]);
        assert.equal(byTime.code, 0, byTime.stderr);
        assert.equal(JSON.parse(byTime.stdout.trim()).offset, expected.offset);
        assert.equal(JSON.parse(byTime.stdout.trim()).segments_decoded_in_worker, 0);

        // Past the archive: refused, exit 1, and no file.
        const past = await restoreCommand(ns, [
          "--partition",
          String(p),
          "--to",
          String(final[String(p)]!.offset + 1000),
          "--out",
          `${out}/past`,
        ]);
        assert.equal(past.code, 1, past.stdout);
        assert.match(past.stderr, /archive ends after offset/);
        const usage = await restoreCommand(ns, ["--partition", "x"]);
        assert.equal(usage.code, 2);

        // Every partition, two at a time in threads of their own and one after the other in
        // the command's thread: the same files, each at the archive's end.
        for (const threads of ["2", "1"]) {
          const all = await restoreCommand(ns, [
            "--partition",
            "all",
            "--to",
            "latest",
            "--out",
            `${out}/all-${threads}`,
          ], { S3_RESTORE_THREADS: threads });
          assert.equal(all.code, 0, all.stderr);
          const lines = all.stdout.trim().split("\n").map((l) => JSON.parse(l));
          assert.deepEqual(
            lines.map((l) => l.partition).sort((a, b) => a - b),
            Object.keys(final).map(Number).sort((a, b) => a - b),
          );
          for (const l of lines) {
            assert.equal(l.chain, final[String(l.partition)]!.chain, `p${l.partition}`);
            const meta = PartitionStore.readMeta(`${out}/all-${threads}/p${l.partition}.mdb`);
            assert.equal(meta.chain, l.chain);
          }
        }
        // A point one partition cannot reach fails the whole command, naming that partition.
        const allPast = await restoreCommand(ns, [
          "--partition",
          "all",
          "--to",
          JSON.stringify({ [p]: final[String(p)]!.offset + 1000 }),
          "--out",
          `${out}/all-past`,
        ], { S3_RESTORE_THREADS: "2" });
        assert.equal(allPast.code, 1, allPast.stdout);
        assert.match(allPast.stderr, new RegExp(`^partition ${p}: .*archive ends after offset`));
      } finally {
        await Deno.remove(out, { recursive: true });
      }

      // A time-travel replica at that offset of p (the other partitions at the archive's end).
      const tt = await timeTravelNode(ns, JSON.stringify({ [p]: target.offset }));
      nodes.push(tt);
      const ttStatus = await partitionStatus(tt);
      assert.equal(ttStatus[String(p)]!.offset, target.offset);
      assert.equal(ttStatus[String(p)]!.chain, chainAt);
      for (const [q, s] of Object.entries(final)) {
        if (Number(q) !== p) assert.equal(ttStatus[q]!.chain, s.chain, `p${q}`);
      }
      const put = await tt.post("/records/put", { records: [{ pk: "x", sk: "s", data: 1 }] });
      assert.equal(put.status, 409, put.text);
      assert.equal(put.json.code, "read_only");
      await tt.cleanup();

      // The drill: the topic is lost; a new node from S3 alone serves every archived record.
      const deleted = await run("bash", [
        `${REPO_ROOT}scripts/kafka.sh`,
        "tool",
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        KAFKA!,
        "--delete",
        "--topic",
        topicNames(ns).mutations,
      ]);
      assert.equal(deleted.code, 0, deleted.stderr);
      await b.kill();
      const rebuilt = await timeTravelNode(ns, "latest");
      nodes.push(rebuilt);
      const rebuiltStatus = await partitionStatus(rebuilt);
      for (const [q, s] of Object.entries(final)) {
        assert.equal(rebuiltStatus[q]!.offset, s.offset, `p${q} offset`);
        assert.equal(rebuiltStatus[q]!.chain, s.chain, `p${q} chain`);
        assert.equal(rebuiltStatus[q]!.digest, s.digest, `p${q} digest`);
      }
      const keys = ["a", "b", "c", "d", "e"].flatMap((prefix) =>
        Array.from({ length: 10 }, (_, i) => `${prefix}${i * 5}`)
      );
      const got = await rebuilt.post("/records/get", {
        records: keys.map((pk) => ({ pk, sk: "s" })),
      });
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(got.json.missing, []);
      await rebuilt.cleanup();

      // Writes again: the archive goes back into a new topic at its offsets, and a new node
      // restores from S3, catches up from the rebuilt topic, and takes a write after it.
      const rebuiltLog = await restoreCommand(ns, ["--rebuild-log"], { KAFKA_SEEDS: KAFKA! });
      assert.equal(rebuiltLog.code, 0, rebuiltLog.stderr);
      // Its result lines (the rest of stdout is the log's events).
      const lines = rebuiltLog.stdout.trim().split("\n").map((l) => JSON.parse(l))
        .filter((l) => l.event === undefined);
      assert.equal(lines.length, PARTITIONS, rebuiltLog.stdout);
      for (const line of lines) {
        const want = final[String(line.partition)]!;
        assert.equal(line.last ?? -1, want.offset, `p${line.partition} rebuilt to ${line.last}`);
      }
      const again = await rebuildCommandRefused(ns);
      assert.match(again, /not empty/);
      const c = await startKafkaNode(ns, "g2", s3Env({ S3_RESTORE: "1" }));
      nodes.push(c);
      await waitForOffsets(
        c,
        Object.fromEntries(
          Object.entries(final).map(([q, s]) => [q, s.offset]),
        ),
      );
      const cStatus = await partitionStatus(c);
      for (const [q, s] of Object.entries(final)) {
        assert.equal(cStatus[q]!.chain, s.chain, `p${q} chain after the rebuild`);
      }
      const write2 = await c.post("/records/put", {
        records: [{ pk: "after-loss", sk: "s", data: 1 }],
      });
      assert.equal(write2.status, 200, write2.text);
      const [wp, wo] = Object.entries(write2.json.offsets as Record<string, number>)[0]!;
      assert.equal(
        wo,
        final[wp]!.offset + 1,
        "the first write after the rebuild follows the archive",
      );
    } catch (error) {
      if (error instanceof Error) {
        for (const n of nodes) error.message += `\n--- ${n.apiUrl} ---\n${n.logs.tail(300)}`;
      }
      throw error;
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
      await Deno.remove(dbA, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "with frequent full snapshots, retention deletes old ones and the segments they hold, never one a kept snapshot needs",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("retain");
    const nodes: TestNode[] = [];
    try {
      const a = await startKafkaNode(
        ns,
        "g",
        archiveEnv({ BACKUP_KEEP: "2", BACKUP_FULL_INTERVAL_SEC: "1" }),
      );
      nodes.push(a);
      const offsets: Record<string, number> = {};
      for (let round = 0; round < 5; round++) {
        mergeOffsets(offsets, await write(a, `r${round}-`, 40));
        await new Promise((r) => setTimeout(r, 1100));
      }
      await waitForOffsets(a, offsets);
      await waitForArchive(a, ns);
      // Retention runs with each backup, and deletes only segments already uploaded: on a busy
      // machine the archive may trail the snapshots of the rounds above, so once it has caught
      // up, one more round makes the next snapshots' retention meet every earlier segment.
      mergeOffsets(offsets, await write(a, "last-", 40));
      await waitForOffsets(a, offsets);
      await waitForArchive(a, ns);
      const status = await partitionStatus(a);
      // Wait for a backup after the last write.
      await waitFor("snapshots at the final offsets", 30_000, async () => {
        for (const [p, s] of Object.entries(status)) {
          const latest = await objectBytes(`${ns}/p${p}/latest.json`);
          if (latest === null) return null;
          const manifest = JSON.parse(new TextDecoder().decode(latest));
          if (manifest.offset < s.offset) return null;
        }
        return true;
      });
      let pruned = 0;
      for (const p of Object.keys(status)) {
        const keys = await listKeys(s3Client(), `${ns}/p${p}/`);
        const manifests = keys.filter((k) => /\/\d{20}\.json$/.test(k))
          .map((k) => Number(/(\d{20})\.json$/.exec(k)![1])).sort((x, y) => x - y);
        assert.ok(manifests.length <= 3, `p${p} keeps ${manifests.length} snapshots`);
        const oldest = manifests[0]!;
        const segments = archiveSegments(keys);
        // From the oldest kept snapshot to the end: one run of segments, no hole.
        const needed = segments.filter((s) => s.last > oldest);
        assert.deepEqual(archiveHoles(needed), [], `p${p}`);
        if (needed.length > 0) assert.ok(needed[0]!.first <= oldest + 1, `p${p}: ${oldest}`);
        if (segments.length === 0 || segments[0]!.first > 0) pruned++;
        // And a restore from the oldest kept snapshot reaches the end.
        const out = await Deno.makeTempDir({ prefix: "firescroll_it_retain_" });
        try {
          const restored = await restoreCommand(ns, [
            "--partition",
            p,
            "--to",
            "latest",
            "--out",
            out,
          ]);
          assert.equal(restored.code, 0, restored.stderr);
          assert.equal(JSON.parse(restored.stdout.trim()).chain, status[p]!.chain);
        } finally {
          await Deno.remove(out, { recursive: true });
        }
      }
      assert.ok(pruned > 0, "retention deleted no segment");
    } catch (error) {
      if (error instanceof Error) {
        for (const n of nodes) error.message += `\n--- ${n.apiUrl} ---\n${n.logs.tail(300)}`;
      }
      throw error;
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});

Deno.test({
  name:
    "a replica group joining after Kafka's retention deleted the log's start catches up from the snapshot, the archive and the log's tail",
  ...needsKafkaAndS3,
  fn: async () => {
    const ns = freshNamespace("archjoin");
    const topic = topicNames(ns).mutations;
    await createShortRetentionTopic(topic, PARTITIONS);
    const nodes: TestNode[] = [];
    try {
      // Full snapshots only at the start (a day apart otherwise): the archive carries the rest.
      const a = await startKafkaNode(ns, "g1", archiveEnv({ BACKUP_FULL_PERCENT: "10000" }));
      nodes.push(a);
      const offsets = await write(a, "j", 100);
      await waitForOffsets(a, offsets);
      await waitFor("a first snapshot of every written partition", 30_000, async () => {
        const status = await partitionStatus(a);
        for (const [p, s] of Object.entries(status)) {
          if (s.offset >= 0 && await objectBytes(`${ns}/p${p}/latest.json`) === null) return null;
        }
        return true;
      });
      // More writes while Kafka deletes the log past every snapshot: only the archive can
      // carry a snapshot to where the log starts.
      await waitFor("Kafka to delete the log past the snapshots", 90_000, async () => {
        mergeOffsets(offsets, await write(a, `t${Date.now()}-`, 20));
        const starts = await logStartOffsets(topic);
        for (let p = 0; p < PARTITIONS; p++) {
          const latest = await objectBytes(`${ns}/p${p}/latest.json`);
          const snapshot = latest === null
            ? -1
            : JSON.parse(new TextDecoder().decode(latest)).offset;
          if ((starts.get(p) ?? 0) <= snapshot + 1) return null;
        }
        return true;
      });
      await waitForOffsets(a, offsets);
      await waitForArchive(a, ns);
      const b = await startKafkaNode(ns, "g2", s3Env({ S3_RESTORE: "1" }));
      nodes.push(b);
      const restored = b.logs.events().filter((e) => e.event === "partition_restored");
      assert.ok(restored.some((e) => e.source === "archive"), b.logs.tail(40));
      await waitForOffsets(b, offsets);
      const [sa, sb] = await Promise.all([partitionStatus(a), partitionStatus(b)]);
      for (const [p, s] of Object.entries(sa)) {
        assert.equal(sb[p]!.offset, s.offset, `p${p}`);
        assert.equal(sb[p]!.chain, s.chain, `p${p}`);
        assert.equal(sb[p]!.digest, s.digest, `p${p}`);
      }
      assert.match(
        (await b.internal("/metrics")).text,
        /firescroll_backup_restores_total\{source="archive",result="ok"\} [1-9]/,
      );
    } catch (error) {
      if (error instanceof Error) {
        for (const n of nodes) error.message += `\n--- ${n.apiUrl} ---\n${n.logs.tail(300)}`;
      }
      throw error;
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});
