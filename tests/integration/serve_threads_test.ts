/**
 * Serving threads (`SERVE_THREADS`) in a real node: every behaviour is checked on every thread,
 * each request forced onto the thread under test by sending it over a keep-alive connection that
 * thread accepted (tests/integration/_http1.ts). The threads read the partition files themselves
 * while the main thread applies, so what is checked across threads is what could drift apart:
 * read-your-writes, `after` waits released by another thread's write, the node-wide
 * `WAITERS_MAX`, auth and limits, draining, and `/metrics` summing every thread.
 *
 * The public port is fixed (below the ephemeral range) so every thread binds that one port, as in
 * production.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { ThreadConnections } from "./_http1.ts";
import {
  assertProblem,
  fixedPort,
  type HttpResult,
  stepper,
  type TestNode,
  withNode,
} from "./_node.ts";

const PARTITIONS = 3;
const READ_TOKEN = "threads-read-token";
const WRITE_TOKEN = "threads-write-token";
const READ = { authorization: `Bearer ${READ_TOKEN}` };
const WRITE = { authorization: `Bearer ${WRITE_TOKEN}` };
/** A read that an `after` wait is left parked on: the offset is never reached. */
const FAR_OFFSET = 1_000_000;
/** How long a read is given to park before the test relies on it being parked. */
const PARK_MS = 300;

type Offsets = Record<string, number>;
type Key = { pk: string; sk: string };

function threadEnv(threads: number, port: number, env: Record<string, string> = {}) {
  return {
    SERVE_THREADS: String(threads),
    PARTITIONS: String(PARTITIONS),
    API_PORT: String(port),
    ...env,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every thread number of a node with `threads` threads. */
function every(threads: number): number[] {
  return Array.from({ length: threads }, (_, i) => i + 1);
}

/** The threads other than `thread`, in order. */
function others(thread: number, threads: number): number[] {
  return every(threads).filter((t) => t !== thread);
}

/** A request in flight whose settling can be observed without awaiting it. */
function tracked<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const p = promise.finally(() => (done = true));
  // Failures surface where the promise is awaited.
  p.catch(() => {});
  return { promise: p, settled: () => done };
}

/** POSTs `body` to `path` on `thread`'s `index`-th connection. */
async function post(
  pool: ThreadConnections,
  thread: number,
  path: string,
  body: unknown,
  headers: Record<string, string> = WRITE,
  index = 0,
): Promise<HttpResult> {
  const conn = await pool.on(thread, index);
  return await conn.request("POST", path, { body, headers });
}

/** A get with `after` of `key` on `thread`; resolves with the result and how long it took. */
async function timedGet(
  pool: ThreadConnections,
  thread: number,
  key: Key,
  after: Offsets,
  waitMs: number,
  index = 0,
): Promise<{ result: HttpResult; ms: number; at: number }> {
  const started = performance.now();
  const result = await post(
    pool,
    thread,
    "/records/get",
    { records: [key], after, wait_ms: waitMs },
    WRITE,
    index,
  );
  const at = performance.now();
  return { result, ms: at - started, at };
}

function partition(pk: string): string {
  return String(partitionOf(pk, PARTITIONS));
}

/**
 * For every ordered pair of threads (writer, reader): a put, a batch and a delete on the writer
 * answer offsets, and a get on the reader with those offsets as `after` sees each write.
 */
async function readYourWritesAcrossThreads(pool: ThreadConnections, threads: number) {
  for (const writer of every(threads)) {
    for (const reader of others(writer, threads)) {
      const pk = `ryw:${writer}:${reader}`;
      const p = partition(pk);
      const put = await post(pool, writer, "/records/put", {
        records: [{ pk, sk: "a", data: { writer } }, { pk, sk: "b", data: "b" }],
      });
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(Object.keys(put.json.offsets), [p]);
      const got = await post(pool, reader, "/records/get", {
        records: [{ pk, sk: "a" }, { pk, sk: "b" }],
        after: put.json.offsets,
        wait_ms: 3000,
      });
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(got.json.records.map((r: { data: unknown }) => r.data), [{ writer }, "b"]);
      for (const r of got.json.records) assert.equal(r.version, put.json.offsets[p]);

      const batch = await post(pool, writer, "/records/batch", {
        ops: [{ op: "put", pk, sk: "c", data: 3 }, { op: "delete", pk, sk: "a" }],
      });
      assert.equal(batch.status, 200, batch.text);
      assert.ok(batch.json.offsets[p] > put.json.offsets[p], batch.text);
      const afterBatch = await post(pool, reader, "/records/get", {
        records: [{ pk, sk: "a" }, { pk, sk: "b" }, { pk, sk: "c" }],
        after: batch.json.offsets,
        wait_ms: 3000,
      });
      assert.equal(afterBatch.status, 200, afterBatch.text);
      assert.deepEqual(afterBatch.json.records.map((r: Key) => r.sk), ["b", "c"]);
      assert.deepEqual(afterBatch.json.missing, [{ pk, sk: "a" }]);

      const del = await post(pool, writer, "/records/delete", { records: [{ pk, sk: "b" }] });
      assert.equal(del.status, 200, del.text);
      assert.ok(del.json.offsets[p] > batch.json.offsets[p], del.text);
      const afterDelete = await post(pool, reader, "/records/get", {
        records: [{ pk, sk: "b" }, { pk, sk: "c" }],
        after: del.json.offsets,
        wait_ms: 3000,
      });
      assert.equal(afterDelete.status, 200, afterDelete.text);
      assert.deepEqual(afterDelete.json.records.map((r: Key) => r.sk), ["c"]);
      assert.deepEqual(afterDelete.json.missing, [{ pk, sk: "b" }]);
    }
  }
}

/**
 * For every ordered pair (parked, writer): a get parked on one thread with `after` one past the
 * partition's offset is released by the writer thread's write of that offset, with its data.
 */
async function parkedReadsReleasedAcrossThreads(pool: ThreadConnections, threads: number) {
  for (const parked of every(threads)) {
    for (const writer of others(parked, threads)) {
      const pk = `park:${parked}:${writer}`;
      const p = partition(pk);
      const key = { pk, sk: "x" };
      const first = await post(pool, writer, "/records/put", { records: [{ ...key, data: 0 }] });
      assert.equal(first.status, 200, first.text);
      const next = first.json.offsets[p] + 1;
      const read = tracked(timedGet(pool, parked, key, { [p]: next }, 5000));
      await sleep(PARK_MS);
      assert.ok(!read.settled(), `the read on thread ${parked} did not park`);
      const written = performance.now();
      const second = await post(pool, writer, "/records/put", {
        records: [{ ...key, data: { parked, writer } }],
      });
      assert.equal(second.status, 200, second.text);
      assert.equal(second.json.offsets[p], next);
      const { result, ms, at } = await read.promise;
      assert.equal(result.status, 200, result.text);
      assert.deepEqual(result.json.records[0]?.data, { parked, writer });
      assert.equal(result.json.records[0]?.version, next);
      assert.ok(at - written < 1500, `released ${at - written} ms after the write`);
      assert.ok(ms < 3000, `answered after ${ms} ms of a 5000 ms wait`);
    }
  }
}

/** On every thread at once, a read parked on a far offset; resolves once all have parked. */
async function parkEverywhere(pool: ThreadConnections, threads: number, waitMs: number) {
  const reads = every(threads).map((thread) =>
    tracked(
      timedGet(pool, thread, { pk: "far", sk: "x" }, { [partition("far")]: FAR_OFFSET }, waitMs),
    )
  );
  await sleep(PARK_MS);
  for (const [i, read] of reads.entries()) {
    assert.ok(!read.settled(), `thread ${i + 1} did not park`);
  }
  return reads;
}

/** SIGTERM with a read parked on every thread: each fails at once with 503, the node exits 0. */
async function drainWithParkedReads(node: TestNode, pool: ThreadConnections, threads: number) {
  const reads = await parkEverywhere(pool, threads, 10_000);
  const stopped = performance.now();
  const exit = node.stop("SIGTERM");
  for (const [i, read] of reads.entries()) {
    const { result, at } = await read.promise;
    assertProblem(result, 503, "partition_unavailable");
    assert.ok(at - stopped < 3000, `thread ${i + 1} answered ${at - stopped} ms after SIGTERM`);
  }
  assert.equal(await exit, 0);
}

/** The value of `series` (`name{labels}`) in a Prometheus exposition; 0 before it is first counted. */
function sample(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

Deno.test("two serving threads answer every route alike and share offsets, waits and limits", async (t) => {
  const port = fixedPort(18_590);
  const env = threadEnv(2, port, {
    API_TOKENS_READ: READ_TOKEN,
    API_TOKENS_WRITE: WRITE_TOKEN,
    BODY_BYTES_MAX: "2048",
    DATA_BYTES_MAX: "1024",
    WAITERS_MAX: "2",
  });
  await withNode({ env }, async (node) => {
    const step = stepper(t, node);
    assert.equal(node.apiPort, port);
    // Two connections per thread: a third read must reach a thread whose first one is parked.
    const pool = await ThreadConnections.open(port, 2, 2);
    try {
      await step(
        "every thread listens on the public port and names itself in /healthz",
        async () => {
          const listening = node.logs.events().filter((e) => e.event === "serve_thread_listening");
          assert.deepEqual(listening.map((e) => [e.thread, e.port]).sort(), [[1, port], [2, port]]);
          for (const thread of every(2)) {
            const health = await (await pool.on(thread)).request("GET", "/healthz");
            assert.equal(health.status, 200);
            assert.equal(health.headers.get("content-type"), "application/json");
            assert.deepEqual(health.json, { status: "ok", thread });
          }
        },
      );

      await step(
        "a put, batch or delete on one thread is seen by a get on the other with its offsets as after",
        () => readYourWritesAcrossThreads(pool, 2),
      );

      await step("list and a get of a missing key answer alike on every thread", async () => {
        const put = await post(pool, 1, "/records/put", {
          records: ["b", "a", "c"].map((sk) => ({ pk: "letters", sk, data: sk })),
        });
        assert.equal(put.status, 200, put.text);
        const bodies = [];
        for (const thread of every(2)) {
          const list = await post(pool, thread, "/records/list", {
            pk: "letters",
            after: put.json.offsets,
            wait_ms: 3000,
          }, READ);
          assert.equal(list.status, 200, list.text);
          assert.deepEqual(list.json.records.map((r: { data: string }) => r.data), ["a", "b", "c"]);
          assert.equal(list.json.next, null);
          const missing = await post(pool, thread, "/records/get", {
            records: [{ pk: "letters", sk: "a" }, { pk: "nobody", sk: "x" }],
          }, READ);
          assert.equal(missing.status, 200, missing.text);
          assert.deepEqual(missing.json.missing, [{ pk: "nobody", sk: "x" }]);
          assert.equal(missing.json.records.length, 1);
          bodies.push([list.text, missing.text]);
        }
        assert.deepEqual(bodies[0], bodies[1]);
      });

      await step(
        "a read parked on one thread is released by the other thread's write of its offset",
        () => parkedReadsReleasedAcrossThreads(pool, 2),
      );

      await step(
        "a read parked on a far offset fails with 504 not_caught_up on every thread",
        async () => {
          const reads = await parkEverywhere(pool, 2, 600);
          for (const read of reads) {
            const { result, ms } = await read.promise;
            assertProblem(result, 504, "not_caught_up");
            assert.ok(ms >= 550 && ms < 3000, `waited ${ms} ms`);
          }
        },
      );

      await step("WAITERS_MAX bounds the reads parked on all threads together", async () => {
        const key = { pk: "waiters", sk: "w" };
        const p = partition(key.pk);
        const first = await post(pool, 1, "/records/put", { records: [{ ...key, data: 1 }] });
        assert.equal(first.status, 200, first.text);
        const next = { [p]: first.json.offsets[p] + 1 };
        // One parked read on each thread fills the node's two slots.
        const parked = [1, 2].map((thread) => tracked(timedGet(pool, thread, key, next, 5000)));
        await sleep(PARK_MS);
        assert.ok(parked.every((r) => !r.settled()), "the first two reads did not park");
        for (const thread of every(2)) {
          const { result, ms } = await timedGet(pool, thread, key, next, 5000, 1);
          assertProblem(result, 503, "too_many_waiters");
          assert.ok(ms < 1000, `refused after ${ms} ms`);
        }
        // Released by a write: their slots come back.
        const write = await post(
          pool,
          2,
          "/records/put",
          { records: [{ ...key, data: 2 }] },
          WRITE,
          1,
        );
        assert.equal(write.status, 200, write.text);
        for (const read of parked) {
          const { result } = await read.promise;
          assert.equal(result.status, 200, result.text);
          assert.equal(result.json.records[0]?.data, 2);
        }
        // Timed out: their slots come back too.
        const far = await parkEverywhere(pool, 2, 800);
        const refused = await timedGet(pool, 1, key, { [p]: FAR_OFFSET }, 5000, 1);
        assertProblem(refused.result, 503, "too_many_waiters");
        for (const read of far) assertProblem((await read.promise).result, 504, "not_caught_up");
        const again = await Promise.all(
          every(2).map((thread) => timedGet(pool, thread, key, { [p]: FAR_OFFSET }, 200)),
        );
        for (const { result, ms } of again) {
          // Parked (not refused): it waited its wait_ms out.
          assertProblem(result, 504, "not_caught_up");
          assert.ok(ms >= 180, `answered after ${ms} ms`);
        }
      });

      await step(
        "auth, body limit, malformed JSON and unknown routes answer the same problem on every thread",
        async () => {
          const seen: [number, string | null, string][][] = [];
          for (const thread of every(2)) {
            const conn = async () => await pool.on(thread);
            const cases: [number, string, HttpResult][] = [];
            const add = (status: number, code: string, result: HttpResult) =>
              cases.push([status, code, result]);
            const get = { records: [{ pk: "a", sk: "b" }] };
            const put = { records: [{ pk: "a", sk: "b", data: 1 }] };
            add(401, "unauthorized", await post(pool, thread, "/records/put", put, {}));
            add(401, "unauthorized", await post(pool, thread, "/records/get", get, {}));
            add(
              401,
              "unauthorized",
              await post(pool, thread, "/records/get", get, { authorization: "Bearer nope" }),
            );
            add(403, "forbidden", await post(pool, thread, "/records/put", put, READ));
            add(403, "forbidden", await post(pool, thread, "/records/batch", { ops: [] }, READ));
            add(400, "invalid_json", await post(pool, thread, "/records/get", '{"records":', READ));
            add(400, "invalid_json", await post(pool, thread, "/records/put", "", WRITE));
            add(404, "not_found", await post(pool, thread, "/records/nope", get, WRITE));
            add(404, "not_found", await (await conn()).request("GET", "/nope"));
            add(
              413,
              "body_too_large",
              await post(pool, thread, "/records/put", {
                records: [{ pk: "big", sk: "b", data: "x".repeat(4000) }],
              }),
            );
            for (const [status, code, result] of cases) assertProblem(result, status, code);
            // A read token reads.
            const read = await post(pool, thread, "/records/get", get, READ);
            assert.equal(read.status, 200, read.text);
            seen.push(cases.map(([, , r]) => [r.status, r.headers.get("content-type"), r.text]));
          }
          assert.deepEqual(seen[0], seen[1]);
        },
      );

      await step("/metrics on the internal port sums the requests of both threads", async () => {
        const series = 'firescroll_api_request_duration_seconds_count{route="get",status="200"}';
        const read = async () => {
          const metrics = await node.internal("/metrics");
          assert.equal(metrics.status, 200);
          return metrics.text;
        };
        const before = sample(await read(), series);
        const sent = { 1: 3, 2: 5 };
        for (const [thread, count] of Object.entries(sent)) {
          for (let i = 0; i < count; i++) {
            const got = await post(pool, Number(thread), "/records/get", {
              records: [{ pk: "metrics", sk: String(i) }],
            }, READ);
            assert.equal(got.status, 200, got.text);
          }
        }
        const text = await read();
        assert.equal(sample(text, series), before + 3 + 5);
        assert.doesNotMatch(text, /status="500"/);
      });

      await step(
        "SIGTERM fails the read parked on every thread with 503 at once and exits 0",
        () => drainWithParkedReads(node, pool, 2),
      );
    } finally {
      pool.close();
    }
  });
});

Deno.test("three serving threads share writes and parked reads and drain on SIGTERM", async (t) => {
  const port = fixedPort(18_640);
  await withNode({ env: threadEnv(3, port) }, async (node) => {
    const step = stepper(t, node);
    const pool = await ThreadConnections.open(port, 3);
    try {
      await step(
        "a write on each thread is seen by a get with its offsets as after on each other thread",
        () => readYourWritesAcrossThreads(pool, 3),
      );
      await step(
        "a read parked on each thread is released by a write on each other thread",
        () => parkedReadsReleasedAcrossThreads(pool, 3),
      );
      await step(
        "SIGTERM fails the read parked on every thread with 503 at once and exits 0",
        () => drainWithParkedReads(node, pool, 3),
      );
    } finally {
      pool.close();
    }
  });
});

Deno.test("SERVE_THREADS=1 serves the public port from the main thread", async () => {
  await withNode({ env: { SERVE_THREADS: "1", PARTITIONS: String(PARTITIONS) } }, async (node) => {
    const listening = node.logs.events().find((e) => e.event === "api_listening");
    assert.equal(listening?.threads, 1);
    assert.ok(!node.logs.events().some((e) => e.event === "serve_thread_listening"));
    const health = await node.request("/healthz");
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: "ok" });
    const put = await node.post("/records/put", { records: [{ pk: "one", sk: "s", data: 1 }] });
    assert.equal(put.status, 200, put.text);
    const got = await node.post("/records/get", {
      records: [{ pk: "one", sk: "s" }],
      after: put.json.offsets,
      wait_ms: 3000,
    });
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.records[0]?.data, 1);
  });
});
