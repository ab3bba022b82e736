/**
 * One process per data folder (issue 9, defect 6): a second node started on a `DB_PATH` that a
 * live node holds is refused before it opens anything, with one `data_dir_in_use` line naming the
 * folder and the holder's pid; a holder killed with SIGKILL never blocks the next start.
 */
import assert from "node:assert/strict";
import { freshNamespace, KAFKA, needsKafka } from "./_kafka.ts";
import { type SpawnedNode, spawnNode, startNode, type TestNode } from "./_node.ts";

/** Bound on a refused node's exit: it must not wait for anything. */
const EXIT_TIMEOUT_MS = 20_000;

/** Acknowledged writes of one pk: their sort keys and the highest offset acknowledged. */
interface Written {
  readonly sks: string[];
  readonly after: Record<string, number>;
}

/** Writes `count` records under `pk` one request each; returns what was acknowledged. */
async function writeAcknowledged(node: TestNode, pk: string, count: number): Promise<Written> {
  const sks: string[] = [];
  const after: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const sk = `k${i}`;
    const put = await node.post("/records/put", { records: [{ pk, sk, data: { i, pk } }] });
    assert.equal(put.status, 200, put.text);
    sks.push(sk);
    for (const [p, o] of Object.entries(put.json.offsets as Record<string, number>)) {
      after[p] = Math.max(after[p] ?? -1, o);
    }
  }
  return { sks, after };
}

/** Asserts every acknowledged record of `pk` is readable with its data (waiting for the apply). */
async function assertPresent(node: TestNode, pk: string, written: Written): Promise<void> {
  const { sks, after } = written;
  const get = await node.post("/records/get", {
    records: sks.map((sk) => ({ pk, sk })),
    after,
    wait_ms: 10_000,
  });
  assert.equal(get.status, 200, get.text);
  assert.deepEqual(get.json.missing, [], `acknowledged writes missing: ${get.text}`);
  assert.deepEqual(
    get.json.records.map((r: { sk: string; data: { i: number } }) => [r.sk, r.data.i]),
    sks.map((sk, i) => [sk, i]),
  );
}

/** Waits (bounded) for a spawned node to exit; kills it and throws if it does not. */
async function exitCode(node: SpawnedNode): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      node.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`second node still running after ${EXIT_TIMEOUT_MS} ms`)),
          EXIT_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    await node.cleanup();
    throw new Error(`${(error as Error).message}\n--- node output ---\n${node.logs.tail()}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts a second process on `holder`'s folder and asserts it is refused: a non-zero exit and, as
 * its only output, one `data_dir_in_use` line naming the folder and the holder's pid.
 */
async function assertRefused(holder: TestNode, env: Record<string, string> = {}): Promise<void> {
  const second = await spawnNode({ dbPath: holder.dbPath, env });
  try {
    const code = await exitCode(second);
    const output = second.logs.all.filter((line) => line.trim() !== "");
    const why = `exit ${code}, output:\n${second.logs.tail()}`;
    assert.notEqual(code, 0, why);
    assert.equal(output.length, 1, `expected exactly one line, ${why}`);
    const event = JSON.parse(output[0]!);
    assert.equal(event.event, "data_dir_in_use", why);
    assert.equal(event.level, "error", why);
    assert.equal(event.path, holder.dbPath, why);
    assert.equal(event.pid, holder.pid, why);
  } finally {
    await second.cleanup();
  }
}

Deno.test("a second node on the same DB_PATH is refused with data_dir_in_use naming the folder and the holder's pid, and the first keeps its writes and serves", async () => {
  const first = await startNode();
  try {
    const before = await writeAcknowledged(first, "first", 10);
    await assertRefused(first, { API_PORT: "0", INTERNAL_PORT: "0" });
    await assertPresent(first, "first", before);
    const after = await writeAcknowledged(first, "first", 20);
    await assertPresent(first, "first", after);
    const ready = await first.request("/readyz");
    assert.equal(ready.status, 200);
  } finally {
    await first.cleanup();
  }
});

Deno.test("after the holder is killed with SIGKILL a new node on the same DB_PATH starts and has every acknowledged write", async () => {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_lock_" });
  try {
    const first = await startNode({ dbPath });
    let written: Written;
    try {
      written = await writeAcknowledged(first, "crash", 15);
      await first.kill();
    } finally {
      await first.cleanup();
    }
    // The dead holder's pid is still in the lock file: it must not matter.
    assert.equal((await Deno.readTextFile(`${dbPath}/.lock`)).trim(), String(first.pid));
    const second = await startNode({ dbPath });
    try {
      await assertPresent(second, "crash", written);
      const more = await writeAcknowledged(second, "crash", 20);
      await assertPresent(second, "crash", more);
      assert.equal((await Deno.readTextFile(`${dbPath}/.lock`)).trim(), String(second.pid));
    } finally {
      await second.cleanup();
    }
  } finally {
    await Deno.remove(dbPath, { recursive: true }).catch(() => {});
  }
});

Deno.test("nodes on different DB_PATHs run side by side", async () => {
  const a = await startNode();
  try {
    const b = await startNode();
    try {
      const inA = await writeAcknowledged(a, "a", 5);
      const inB = await writeAcknowledged(b, "b", 5);
      await assertPresent(a, "a", inA);
      await assertPresent(b, "b", inB);
    } finally {
      await b.cleanup();
    }
  } finally {
    await a.cleanup();
  }
});

Deno.test({
  name:
    "in Kafka mode a second node on the same DB_PATH is refused before it connects, and after a SIGKILL of the holder a new node has every acknowledged write",
  ...needsKafka,
  async fn() {
    const namespace = freshNamespace("lock");
    const env = {
      KAFKA_SEEDS: KAFKA!,
      NAMESPACE: namespace,
      REPLICA_GROUP: "g",
      PARTITIONS: "4",
      KAFKA_SESSION_TIMEOUT_MS: "6000",
      LOG_WRITE_TIMEOUT_MS: "5000",
    };
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_lock_" });
    try {
      const first = await startNode({ env, dbPath, readyTimeoutMs: 60_000 });
      let written: Written;
      try {
        written = await writeAcknowledged(first, "kafka", 10);
        // Refused without a word to Kafka: its only output is the one line.
        await assertRefused(first, env);
        await assertPresent(first, "kafka", written);
        written = await writeAcknowledged(first, "kafka", 15);
        await first.kill();
      } finally {
        await first.cleanup();
      }
      const second = await startNode({ env, dbPath, readyTimeoutMs: 60_000 });
      try {
        await assertPresent(second, "kafka", written);
      } finally {
        await second.cleanup();
      }
    } finally {
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});
