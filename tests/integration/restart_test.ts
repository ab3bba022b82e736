/**
 * Graceful stops and restarts on the same DB_PATH: nothing acknowledged is lost, and the applied
 * offsets and hash chains are exactly where they were.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import {
  assertProblem,
  type PartitionStatus,
  partitionStatus,
  spawnNode,
  startNode,
  type TestNode,
} from "./_node.ts";

const ENV = { PARTITIONS: "5" };

type Key = { pk: string; sk: string };

async function getAll(node: TestNode, keys: Key[], after: Record<string, number> = {}) {
  const result = await node.post("/records/get", { records: keys, after, wait_ms: 5000 });
  assert.equal(result.status, 200, result.text);
  return result.json;
}

function mergeOffsets(into: Record<string, number>, offsets: Record<string, number>): void {
  for (const [p, o] of Object.entries(offsets)) into[p] = Math.max(into[p] ?? -1, o);
}

Deno.test("a node stopped with SIGTERM exits 0 and restarts with every record, offset and chain intact", async () => {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_restart_" });
  const nodes: TestNode[] = [];
  try {
    const first = await startNode({ env: ENV, dbPath });
    nodes.push(first);
    const keys: Key[] = [];
    const offsets: Record<string, number> = {};
    for (let batch = 0; batch < 6; batch++) {
      const records = Array.from({ length: 20 }, (_, i) => {
        const n = batch * 20 + i;
        return { pk: `tenant:${n % 13}`, sk: `cfg:${n}`, data: { n, blob: "x".repeat(n) } };
      });
      keys.push(...records.map(({ pk, sk }) => ({ pk, sk })));
      const put = await first.post("/records/put", { records });
      assert.equal(put.status, 200, put.text);
      mergeOffsets(offsets, put.json.offsets);
    }
    // Overwrites, deletes and a skipped conditional write are part of the state too.
    const more = [
      await first.post("/records/put", {
        records: [{ pk: "tenant:1", sk: "cfg:1", data: "overwritten" }],
      }),
      await first.post("/records/delete", {
        records: [{ pk: "tenant:2", sk: "cfg:2" }, { pk: "tenant:3", sk: "cfg:3" }],
      }),
      await first.post("/records/put", {
        records: [{ pk: "tenant:4", sk: "cfg:4", data: "skipped", if: "pk == null" }],
      }),
    ];
    for (const r of more) {
      assert.equal(r.status, 200, r.text);
      mergeOffsets(offsets, r.json.offsets);
    }
    const before = await getAll(first, keys, offsets);
    assert.equal(before.records.length, 118);
    assert.deepEqual(before.missing, [{ pk: "tenant:2", sk: "cfg:2" }, {
      pk: "tenant:3",
      sk: "cfg:3",
    }]);
    const statusBefore = await partitionStatus(first);
    for (const [p, o] of Object.entries(offsets)) assert.equal(statusBefore[p]!.offset, o);

    assert.equal(await first.stop("SIGTERM"), 0);
    assert.ok(first.logs.all.some((l) => l.includes('"event":"stopped"')), first.logs.tail());

    const second = await startNode({ env: ENV, dbPath });
    nodes.push(second);
    assert.deepEqual(await partitionStatus(second), statusBefore);
    assert.deepEqual(await getAll(second, keys), before);

    // The log continues where it was: the next write in a partition gets the next offset.
    const next = await second.post("/records/put", {
      records: [{ pk: "tenant:0", sk: "after-restart", data: true }],
    });
    assert.equal(next.status, 200, next.text);
    const written = Object.entries<number>(next.json.offsets);
    assert.equal(written.length, 1);
    const [np, no] = written[0]!;
    assert.equal(no, statusBefore[np]!.offset + 1);
    const got = await getAll(second, [{ pk: "tenant:0", sk: "after-restart" }], next.json.offsets);
    assert.equal(got.records[0].version, no);

    assert.equal(await second.stop("SIGINT"), 0);
    const third = await startNode({ env: ENV, dbPath });
    nodes.push(third);
    const status: Record<string, PartitionStatus> = await partitionStatus(third);
    assert.equal(status[np]!.offset, no);
    assert.equal(
      (await getAll(third, [{ pk: "tenant:0", sk: "after-restart" }])).records.length,
      1,
    );
    assert.equal(await third.stop("SIGTERM"), 0);
  } finally {
    await Promise.all(nodes.map((n) => n.cleanup()));
    await Deno.remove(dbPath, { recursive: true });
  }
});

Deno.test("a node stopped with SIGINT exits 0 after logging that it stopped", async () => {
  const node = await startNode({});
  try {
    const put = await node.post("/records/put", { records: [{ pk: "a", sk: "b", data: 1 }] });
    assert.equal(put.status, 200, put.text);
    assert.equal(await node.stop("SIGINT"), 0);
    const events = node.logs.events().map((e) => e.event);
    assert.ok(events.includes("stopping"), node.logs.tail());
    assert.ok(events.includes("stopped"), node.logs.tail());
    assert.equal(events.at(-1), "stopped");
  } finally {
    await node.cleanup();
  }
});

Deno.test("SIGTERM during a read parked on after exits 0 at once and fails the read with 503", async () => {
  const node = await startNode({
    env: { PARTITIONS: "16", SHUTDOWN_TIMEOUT_MS: "4000", WAIT_MS_MAX: "20000" },
  });
  try {
    const parked = node.post("/records/get", {
      records: [{ pk: "a", sk: "b" }],
      after: { [String(partitionOf("a", 16))]: 1_000_000 },
      wait_ms: 15_000,
    }).catch((error: Error) => error);
    // Let the read park before the signal.
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    assert.equal(await node.stop("SIGTERM"), 0);
    const ms = performance.now() - started;
    assert.ok(ms < 3000, `stop took ${ms} ms`);
    const result = await parked;
    if (result instanceof Error) throw new Error(`The parked read got no answer: ${result}`);
    assertProblem(result, 503, "partition_unavailable");
    assert.ok(!node.logs.all.some((l) => l.includes('"event":"stop_timeout"')), node.logs.tail());
  } finally {
    await node.cleanup();
  }
});

Deno.test("a node refuses to start on data written with another PARTITIONS, naming it", async () => {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_restart_" });
  try {
    const wide = await startNode({ env: { PARTITIONS: "8" }, dbPath });
    try {
      // Enough keys to touch the high partitions.
      const records = Array.from({ length: 64 }, (_, i) => ({ pk: `k${i}`, sk: "s", data: i }));
      const put = await wide.post("/records/put", { records });
      assert.equal(put.status, 200, put.text);
      assert.ok(Object.keys(put.json.offsets).some((p) => Number(p) >= 4));
      assert.equal(await wide.stop(), 0);
    } finally {
      await wide.cleanup();
    }
    // Fewer partitions would leave records unreadable; more would rehash every pk elsewhere.
    for (const partitions of ["4", "16"]) {
      const node = await spawnNode({ env: { PARTITIONS: partitions }, dbPath });
      try {
        const code = await node.exited;
        assert.notEqual(code, 0, node.logs.tail());
        assert.match(node.logs.all.join("\n"), new RegExp(`PARTITIONS=${partitions}\\b`));
        assert.ok(!node.logs.all.some((l) => l.includes('"event":"api_listening"')));
      } finally {
        await node.cleanup();
      }
    }
    // The data is untouched by the refused starts.
    const again = await startNode({ env: { PARTITIONS: "8" }, dbPath });
    try {
      const status = await partitionStatus(again);
      assert.equal(Object.values(status).reduce((n, s) => n + s.records, 0), 64);
    } finally {
      await again.cleanup();
    }
  } finally {
    await Deno.remove(dbPath, { recursive: true });
  }
});

Deno.test("a node killed with SIGKILL under write load loses no acknowledged write and restarts with the chains and digests of a replay of its log", async () => {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_kill_" });
  const replayPath = await Deno.makeTempDir({ prefix: "firescroll_kill_replay_" });
  const nodes: TestNode[] = [];
  try {
    const first = await startNode({ env: ENV, dbPath });
    nodes.push(first);
    // 16 writers put until the kill; only what was acknowledged (a 200 with offsets) must survive.
    const acknowledged: { pk: string; sk: string; data: unknown }[] = [];
    const offsets: Record<string, number> = {};
    let killed = false;
    const writers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; i < 2000 && !killed; i++) {
        const records = Array.from({ length: 1 + (i % 3) }, (_, j) => ({
          pk: `w${w}:${i % 7}`,
          sk: `${i}:${j}`,
          data: { w, i, j, text: "é".repeat(i % 50) },
        }));
        let put;
        try {
          put = await first.post("/records/put", { records });
        } catch {
          return; // The connection died with the node: not acknowledged.
        }
        if (put.status !== 200) return;
        acknowledged.push(...records);
        mergeOffsets(offsets, put.json.offsets);
      }
    });
    // Kill while the writers are in full flight, after enough was acknowledged to matter.
    const deadline = Date.now() + 10_000;
    while (acknowledged.length < 1500 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    killed = true;
    await first.kill();
    await Promise.all(writers);
    assert.ok(acknowledged.length >= 1500, `only ${acknowledged.length} writes acknowledged`);

    // The same log replayed into empty partition files: what the restarted node must equal.
    await Deno.mkdir(`${replayPath}/default`);
    await Deno.copyFile(`${dbPath}/default/log.mdb`, `${replayPath}/default/log.mdb`);

    const second = await startNode({ env: ENV, dbPath });
    nodes.push(second);
    for (let from = 0; from < acknowledged.length; from += 1000) {
      const chunk = acknowledged.slice(from, from + 1000);
      const got = await getAll(second, chunk.map(({ pk, sk }) => ({ pk, sk })), offsets);
      assert.deepEqual(got.missing, []);
      const byKey = new Map<string, unknown>(
        got.records.map((
          r: { pk: string; sk: string; data: unknown },
        ) => [`${r.pk} ${r.sk}`, r.data]),
      );
      for (const r of chunk) assert.deepEqual(byKey.get(`${r.pk} ${r.sk}`), r.data);
    }
    const restarted = await partitionStatus(second);
    for (const [p, o] of Object.entries(offsets)) assert.ok(restarted[p]!.offset >= o);

    const replay = await startNode({ env: ENV, dbPath: replayPath });
    nodes.push(replay);
    // A node is ready once it caught up with the log as it found it: the whole of it here.
    assert.deepEqual(await partitionStatus(replay), restarted);
  } finally {
    await Promise.all(nodes.map((n) => n.cleanup()));
    await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    await Deno.remove(replayPath, { recursive: true }).catch(() => {});
  }
});

Deno.test("with DRAIN_DELAY_MS a SIGTERMed node keeps answering new connections, /readyz 503, then exits 0", async () => {
  const node = await startNode({ env: { DRAIN_DELAY_MS: "1500", SHUTDOWN_TIMEOUT_MS: "5000" } });
  try {
    const put = await node.post("/records/put", { records: [{ pk: "a", sk: "b", data: 1 }] });
    assert.equal(put.status, 200, put.text);
    const started = performance.now();
    const stopped = node.stop("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    // New connections (a client per request) are still accepted and answered.
    for (let i = 0; i < 5; i++) {
      const client = Deno.createHttpClient({});
      try {
        const ready = await fetch(`${node.apiUrl}/readyz`, { client });
        assert.equal(ready.status, 503);
        await ready.body?.cancel();
        const got = await fetch(`${node.apiUrl}/records/get`, {
          client,
          method: "POST",
          body: JSON.stringify({ records: [{ pk: "a", sk: "b" }] }),
        });
        assert.equal(got.status, 200);
        assert.equal((await got.json()).records.length, 1);
      } finally {
        client.close();
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.equal(await stopped, 0);
    const ms = performance.now() - started;
    assert.ok(ms >= 1500 && ms < 4500, `stop took ${ms} ms`);
  } finally {
    await node.cleanup();
  }
});
