import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import type { LogRecord } from "../apply/mod.ts";
import { open as lmdbOpen } from "lmdb";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { statusOf } from "../api/problem.ts";
import { OperationalError } from "../util/errors.ts";
import { loadConfig } from "../config/mod.ts";
import { EmbeddedLog } from "./embedded.ts";
import type { PartitionConsumer } from "../node/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Fixture {
  readonly path: string;
  readonly metrics: Metrics;
  /**
   * Opens (and starts) a log on the fixture's file, configured by `env` over 4 partitions, a
   * queue of 1000 and batches of 100; closed by the fixture.
   */
  open(env?: Record<string, string>, now?: () => number): Promise<EmbeddedLog>;
  /** Closes a log early (e.g. to reopen it); the fixture will not close it again. */
  close(log: EmbeddedLog): Promise<void>;
}

async function withLog(body: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_log_test_" });
  const metrics = createMetrics();
  const open = new Set<EmbeddedLog>();
  const path = `${dir}/ns/log.mdb`;
  const fixture: Fixture = {
    path,
    metrics,
    async open(env = {}, now = () => 1_000) {
      const config = loadConfig({
        PARTITIONS: "4",
        LOG_QUEUE_MAX: "1000",
        APPLY_BATCH_MAX: "100",
        EMBEDDED_LOG_MAP_BYTES: String(32 * 1024 * 1024),
        ...env,
      });
      const log = new EmbeddedLog({ path, cluster: config.cluster, log: config.log, metrics, now });
      await log.start();
      open.add(log);
      return log;
    },
    async close(log) {
      open.delete(log);
      await log.close();
    },
  };
  try {
    await body(fixture);
  } finally {
    for (const log of open) await log.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function msg(partition: number, text: string) {
  return { partition, key: text, value: encoder.encode(text) };
}

function texts(records: readonly LogRecord[]): string[] {
  return records.map((r) => decoder.decode(r.value));
}

/** A stand-in node: records what the log assigns and delivers. */
class RecordingConsumer implements PartitionConsumer {
  readonly delivered = new Map<number, LogRecord[]>();
  readonly nextOffsets: [number, number][] = [];
  assignedWith: { partitions: number[]; ends: Map<number, number> } | null = null;
  revokedWith: number[] | null = null;
  private waiting: { until: () => boolean; resolve: () => void } | null = null;

  /**
   * `slow` makes each delivery take an event-loop turn, as applying to LMDB does, so that the log
   * reads again at arbitrary moments relative to its own commits.
   */
  constructor(
    private readonly starts: ReadonlyMap<number, number>,
    private readonly slow = false,
  ) {}

  assigned(partitions: readonly number[], endOffsets: ReadonlyMap<number, number>) {
    this.assignedWith = { partitions: [...partitions], ends: new Map(endOffsets) };
    return Promise.resolve(this.starts);
  }

  blocked(partition: number, reason: string): void {
    throw new Error(`the embedded log never blocks a partition, got p${partition}: ${reason}`);
  }

  revoked(partitions: readonly number[]): Promise<void> {
    this.revokedWith = [...partitions];
    return Promise.resolve();
  }

  async deliver(partition: number, records: readonly LogRecord[], nextOffset: number) {
    if (this.slow) await new Promise((resolve) => setTimeout(resolve, 0));
    const list = this.delivered.get(partition) ?? [];
    const last = list.at(-1)?.offset ?? -1;
    for (const record of records) {
      ok(record.offset > last, "delivered in offset order");
    }
    list.push(...records);
    this.delivered.set(partition, list);
    this.nextOffsets.push([partition, nextOffset]);
    if (this.waiting !== null && this.waiting.until()) this.waiting.resolve();
  }

  get total(): number {
    let n = 0;
    for (const list of this.delivered.values()) n += list.length;
    return n;
  }

  /** Resolves once `count` records in all have been delivered. */
  deliveredCount(count: number): Promise<void> {
    return this.until(() => this.total >= count);
  }

  /** Resolves once the log said it will next read `partition` at `offset` or later. */
  readTo(partition: number, offset: number): Promise<void> {
    return this.until(() =>
      this.nextOffsets.some(([p, next]) => p === partition && next >= offset)
    );
  }

  private until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = { until: done, resolve }));
  }

  offsets(partition: number): number[] {
    return (this.delivered.get(partition) ?? []).map((r) => r.offset);
  }
}

Deno.test("EmbeddedLog.append() gives each partition dense offsets from 0", async () => {
  await withLog(async ({ open }) => {
    const log = await open();
    deepEqual(await log.append([msg(0, "a")]), [0]);
    deepEqual(await log.append([msg(0, "b")]), [1]);
    deepEqual(await log.append([msg(2, "c")]), [0]);
    // One append with a message for several partitions: offsets in request order.
    deepEqual(await log.append([msg(2, "d"), msg(0, "e"), msg(3, "f")]), [1, 2, 0]);
    deepEqual(texts(log.read(0, 0, 100)), ["a", "b", "e"]);
    deepEqual(log.read(0, 0, 100).map((r) => r.offset), [0, 1, 2]);
    deepEqual(texts(log.read(2, 0, 100)), ["c", "d"]);
    deepEqual(texts(log.read(3, 0, 100)), ["f"]);
    deepEqual(log.read(1, 0, 100), []);
    deepEqual(texts(log.read(0, 1, 1)), ["b"]);
  });
});

Deno.test("EmbeddedLog stamps each entry with the commit time", async () => {
  await withLog(async ({ open }) => {
    let clock = 5_000;
    const log = await open({}, () => clock);
    await log.append([msg(0, "a")]);
    clock = 6_000;
    await log.append([msg(0, "b")]);
    deepEqual(log.read(0, 0, 10).map((r) => r.timestamp), [5_000, 6_000]);
  });
});

Deno.test("EmbeddedLog keeps entries and continues offsets after close and reopen", async () => {
  await withLog(async ({ open, close }) => {
    const first = await open();
    await first.append([msg(0, "p0-a"), msg(1, "p1-a"), msg(2, "p2-a"), msg(3, "p3-a")]);
    await first.append([msg(0, "p0-b"), msg(1, "p1-b")]);
    await first.append([msg(1, "p1-c")]);
    await close(first);

    const second = await open();
    // Every partition continues where it stopped, whatever its neighbours hold.
    deepEqual(
      await second.append([msg(0, "p0-c"), msg(1, "p1-d"), msg(2, "p2-b"), msg(3, "p3-b")]),
      [
        2,
        3,
        1,
        1,
      ],
    );
    deepEqual(texts(second.read(0, 0, 10)), ["p0-a", "p0-b", "p0-c"]);
    deepEqual(texts(second.read(1, 0, 10)), ["p1-a", "p1-b", "p1-c", "p1-d"]);
    deepEqual(texts(second.read(2, 0, 10)), ["p2-a", "p2-b"]);
    deepEqual(texts(second.read(3, 0, 10)), ["p3-a", "p3-b"]);
    await close(second);
  });
});

Deno.test("EmbeddedLog group-commits concurrent appends into few transactions", async () => {
  await withLog(async ({ open, metrics }) => {
    const log = await open({ PARTITIONS: "1" });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append([msg(0, `m${i}`)])),
    );
    const offsets = results.map((r) => r[0]!);
    deepEqual([...offsets].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i));
    // Each append got the offset its own message was stored at.
    const stored = log.read(0, 0, 1000);
    for (let i = 0; i < 200; i++) equal(decoder.decode(stored[offsets[i]!]!.value), `m${i}`);
    const commits = metrics.logCommits.labels().value;
    ok(commits >= 1 && commits <= 10, `200 appends took ${commits} commits`);
    equal(metrics.logAppends.labels().value, 200);
    equal(metrics.logCommitDuration.labels().count, commits);
  });
});

Deno.test("EmbeddedLog commits none of a batch whose transaction throws midway, and offsets stay dense", async () => {
  await withLog(async ({ open, metrics }) => {
    const log = await open();
    // Queued in the same event-loop turn, so both go into one commit; the second throws while
    // being written (a value too large to allocate), after the first was put.
    const good = log.append([msg(0, "before the throw")]);
    const bad = log.append([{
      partition: 1,
      key: "bad",
      value: { length: 2 ** 40 } as Uint8Array,
    }]);
    for (const failed of [good, bad]) {
      await rejects(failed, (error: unknown) => {
        ok(error instanceof OperationalError);
        equal(error.code, "log_unavailable");
        return true;
      });
    }
    equal(log.read(0, 0, 10).length, 0);
    equal(metrics.logCommits.labels().value, 0);
    // The failed commit's offsets are handed out again: nothing was written at them.
    deepEqual(await log.append([msg(0, "after"), msg(1, "after")]), [0, 0]);
    deepEqual(log.read(0, 0, 10).map((r) => decoder.decode(r.value)), ["after"]);
  });
});

Deno.test("EmbeddedLog.append() refuses with log_overloaded when its queue is full", async () => {
  await withLog(async ({ open }) => {
    const log = await open({ LOG_QUEUE_MAX: "5" });
    // Appends wait for the commit at the end of this event-loop turn: five fill the queue.
    const accepted = Array.from({ length: 5 }, (_, i) => log.append([msg(i % 4, `m${i}`)]));
    const overloaded = log.append([msg(0, "one too many")]);
    await rejects(overloaded, (error: unknown) => {
      ok(error instanceof OperationalError);
      equal(error.code, "log_overloaded");
      equal(statusOf(error.code), 503);
      return true;
    });
    equal((await Promise.all(accepted)).length, 5);
    // A single append larger than the queue can never fit.
    await rejects(
      log.append([msg(0, "a"), msg(1, "b"), msg(2, "c"), msg(3, "d"), msg(0, "e"), msg(1, "f")]),
      (error: unknown) => error instanceof OperationalError && error.code === "log_overloaded",
    );
    // Once the queue drained, appends are accepted again.
    deepEqual(await log.append([msg(0, "later")]), [2]);
  });
});

Deno.test("EmbeddedLog.run() delivers in offset order from the offsets assigned() returns", async () => {
  await withLog(async ({ open }) => {
    const log = await open({ APPLY_BATCH_MAX: "3" });
    for (let i = 0; i < 8; i++) await log.append([msg(0, `a${i}`), msg(1, `b${i}`)]);
    await log.append([msg(2, "c0")]);
    // Partition 0 already applied offsets 0..4; partition 3 is not mentioned (starts at 0).
    const consumer = new RecordingConsumer(new Map([[0, 5], [1, 0], [2, 1]]));
    const controller = new AbortController();
    const running = log.run(consumer, controller.signal);
    try {
      await consumer.deliveredCount(3 + 8);
      deepEqual(consumer.assignedWith, {
        partitions: [0, 1, 2, 3],
        ends: new Map([[0, 8], [1, 8], [2, 1], [3, 0]]),
      });
      deepEqual(consumer.offsets(0), [5, 6, 7]);
      deepEqual(consumer.offsets(1), [0, 1, 2, 3, 4, 5, 6, 7]);
      deepEqual(consumer.offsets(2), []);
      deepEqual(texts(consumer.delivered.get(0)!), ["a5", "a6", "a7"]);
      // Deliveries respect APPLY_BATCH_MAX and say where the log reads next.
      ok(consumer.nextOffsets.some(([p, next]) => p === 1 && next === 3));
      // Appends made while running are delivered too.
      await log.append([msg(3, "d0"), msg(0, "a8")]);
      await consumer.deliveredCount(3 + 8 + 2);
      deepEqual(consumer.offsets(3), [0]);
      deepEqual(consumer.offsets(0), [5, 6, 7, 8]);
    } finally {
      controller.abort();
      await running;
    }
    deepEqual(consumer.revokedWith, [0, 1, 2, 3]);
  });
});

Deno.test("EmbeddedLog.run() delivers every entry while appends keep committing", async () => {
  await withLog(async ({ open }) => {
    const log = await open({ PARTITIONS: "2", APPLY_BATCH_MAX: "7" });
    const consumer = new RecordingConsumer(new Map(), true);
    const controller = new AbortController();
    const running = log.run(consumer, controller.signal);
    const total = 400;
    try {
      // Appends arrive while earlier commits are in flight and the consumer is reading: an entry
      // whose offset is assigned but not yet committed must not be skipped.
      const appends: Promise<number[]>[] = [];
      for (let i = 0; i < total / 2; i++) {
        appends.push(log.append([msg(0, `a${i}`), msg(1, `b${i}`)]));
        if (i % 10 === 0) await appends.at(-1);
      }
      await Promise.all(appends);
      // Wait for the log's read position, not the record count: a skipped entry shows as a gap.
      await consumer.readTo(0, total / 2);
      await consumer.readTo(1, total / 2);
      for (const p of [0, 1]) {
        deepEqual(consumer.offsets(p), Array.from({ length: total / 2 }, (_, i) => i), `p${p}`);
      }
    } finally {
      controller.abort();
      await running;
    }
  });
});

function isMismatch(says: string) {
  return (error: unknown) => {
    ok(error instanceof OperationalError, `expected an OperationalError, got ${error}`);
    equal(error.code, "partition_count_mismatch");
    ok(error.message.includes(says), error.message);
    return true;
  };
}

Deno.test("EmbeddedLog.start() refuses a PARTITIONS other than the log was created with", async () => {
  await withLog(async ({ open, close }) => {
    const log = await open({ PARTITIONS: "4" });
    await log.append([msg(3, "p3")]);
    await close(log);
    // Fewer partitions would strand entries; more would move pks to other partitions.
    await rejects(
      open({ PARTITIONS: "3" }),
      isMismatch("was created with PARTITIONS=4 but PARTITIONS=3"),
    );
    await rejects(
      open({ PARTITIONS: "6" }),
      isMismatch("was created with PARTITIONS=4 but PARTITIONS=6"),
    );
    // The same file still opens with the right count and keeps its offsets.
    const again = await open({ PARTITIONS: "4" });
    deepEqual(await again.append([msg(3, "p3-b")]), [1]);
  });
});

Deno.test("EmbeddedLog.start() refuses an older file holding partitions beyond PARTITIONS", async () => {
  await withLog(async ({ open, path }) => {
    // A file written before the log recorded its partition count: only entries, p0 and p3.
    await Deno.mkdir(path.replace(/\/[^/]*$/, ""), { recursive: true });
    const env = lmdbOpen({ path, maxDbs: 2 });
    const entries = env.openDB<Uint8Array, Uint8Array>({
      name: "entries",
      keyEncoding: "binary",
      encoding: "binary",
    });
    for (const partition of [0, 3]) {
      const key = new Uint8Array(12);
      new DataView(key.buffer).setUint32(0, partition, false);
      entries.putSync(key, new Uint8Array(9));
    }
    await env.close();
    await rejects(open({ PARTITIONS: "3" }), isMismatch("has partition 3 but PARTITIONS=3"));
    const log = await open({ PARTITIONS: "4" });
    deepEqual(await log.append([msg(0, "a"), msg(3, "b"), msg(1, "c")]), [1, 1, 0]);
  });
});
