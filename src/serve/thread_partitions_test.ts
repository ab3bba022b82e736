import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { openStore, withTempDir, writeUpTo } from "../../tests/_helpers.ts";
import { ConditionCache } from "../apply/mod.ts";
import type { PartitionStore } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { SharedState } from "./shared_state.ts";
import { ThreadPartitions } from "./thread_partitions.ts";

/** A main-thread state and a thread's view of it over `dir` (namespace "test", 2 partitions). */
function setUp(dir: string, waitersMax = 8) {
  const main = new SharedState(2, waitersMax);
  const view = new SharedState(2, waitersMax, main.buffer);
  const partitions = new ThreadPartitions(view, {
    dir,
    namespace: "test",
    conditions: new ConditionCache(16, 4096),
  });
  return { main, partitions };
}

function isCode(code: string): (error: unknown) => boolean {
  return (error) => error instanceof OperationalError && error.code === code;
}

Deno.test("ThreadPartitions reads only partitions the main thread marks readable", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, 0);
    await writeUpTo(store, 2);
    const { main, partitions } = setUp(dir);
    try {
      equal(partitions.servingStore(0), null);
      main.setPartition(0, "serving", false);
      main.publishApplied(0, 2);
      const reader = partitions.servingStore(0);
      ok(reader !== null);
      equal(reader.applied.offset, 2);
      deepEqual(reader.get("pk", "k1")?.dataJson, '{"offset":1}');
      equal(partitions.isRetiring(0), false);
      main.setPartition(0, "retiring", false);
      equal(partitions.isRetiring(0), true);
      ok(partitions.servingStore(0) !== null);
      main.setPartition(0, null, false);
      equal(partitions.servingStore(0), null);
    } finally {
      partitions.close();
      await store.close();
    }
  });
});

Deno.test("ThreadPartitions renews its snapshot when the main thread publishes a newer offset", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, 0);
    await writeUpTo(store, 1);
    const { main, partitions } = setUp(dir);
    try {
      main.setPartition(0, "serving", false);
      main.publishApplied(0, 1);
      equal(partitions.servingStore(0)!.get("pk", "k3"), null);
      await writeUpTo(store, 3);
      // Not yet published: the thread still reads its snapshot.
      equal(partitions.servingStore(0)!.get("pk", "k3"), null);
      main.publishApplied(0, 3);
      const reader = partitions.servingStore(0)!;
      equal(reader.applied.offset, 3);
      equal(reader.get("pk", "k3")?.dataJson, '{"offset":3}');
    } finally {
      partitions.close();
      await store.close();
    }
  });
});

/**
 * Runs `body` with partition 0 written up to offset 0, serving and published, and a thread's view
 * of it; the event loop is kept alive (a parked Atomics.waitAsync does not keep it, a server does
 * in a thread).
 */
async function withServingPartition(
  body: (store: PartitionStore, main: SharedState, partitions: ThreadPartitions) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const store = openStore(dir, 0);
    await writeUpTo(store, 0);
    const { main, partitions } = setUp(dir);
    const alive = setTimeout(() => {}, 10_000);
    try {
      main.setPartition(0, "serving", false);
      main.publishApplied(0, 0);
      await body(store, main, partitions);
    } finally {
      clearTimeout(alive);
      partitions.close();
      await store.close();
    }
  });
}

Deno.test("ThreadPartitions releases an `after` wait once its own snapshot shows the offset", async () => {
  await withServingPartition(async (store, main, partitions) => {
    await partitions.waitForOffset(0, 0, 0);
    const started = performance.now();
    const waiting = partitions.waitForOffset(0, 2, 5000);
    await writeUpTo(store, 2);
    main.publishApplied(0, 2);
    await waiting;
    ok(performance.now() - started < 2000, "released long before its wait ran out");
    equal(partitions.servingStore(0)!.get("pk", "k2")?.dataJson, '{"offset":2}');
    // Past the offset, no wait: 504 at once.
    await rejects(partitions.waitForOffset(0, 9, 0), isCode("not_caught_up"));
    await rejects(partitions.waitForOffset(0, 9, 30), isCode("not_caught_up"));
  });
});

Deno.test("ThreadPartitions releases a wait parked again right after the last one was released", async () => {
  await withServingPartition(async (store, main, partitions) => {
    // A watch's loop: each release parks the next wait at once, in its continuation.
    const started = performance.now();
    const chained = partitions.waitForOffset(0, 1, 5000)
      .then(() => partitions.waitForOffset(0, 2, 5000));
    await writeUpTo(store, 1);
    main.publishApplied(0, 1);
    await new Promise((r) => setTimeout(r, 20));
    await writeUpTo(store, 2);
    main.publishApplied(0, 2);
    await chained;
    // Before the fix the second wait found the first's loop still marked running and slept
    // until its 5 s ran out.
    ok(performance.now() - started < 2000, "the second wait was released by the publish");
  });
});

Deno.test("ThreadPartitions fails parked waits when the node drains, the partition retires or closes", async () => {
  await withTempDir(async (dir) => {
    const stores = [openStore(dir, 0), openStore(dir, 1)];
    const { main, partitions } = setUp(dir);
    const alive = setTimeout(() => {}, 10_000);
    try {
      for (const p of [0, 1]) {
        main.setPartition(p, "serving", false);
        main.publishApplied(p, -1);
      }
      // Retiring: a parked wait fails (the partition no longer applies here), new waits too.
      const parked = partitions.waitForOffset(0, 5, 5000);
      main.setPartition(0, "retiring", false);
      await rejects(parked, isCode("partition_unavailable"));
      await rejects(partitions.waitForOffset(0, 5, 5000), isCode("partition_unavailable"));
      // Not readable at all.
      main.setPartition(0, null, false);
      await rejects(partitions.waitForOffset(0, 5, 5000), isCode("partition_unavailable"));
      // Draining: parked waits fail at once and no new one parks.
      const other = partitions.waitForOffset(1, 5, 5000);
      main.setDraining();
      await rejects(other, isCode("partition_unavailable"));
      await rejects(partitions.waitForOffset(1, 5, 5000), isCode("partition_unavailable"));
    } finally {
      clearTimeout(alive);
      partitions.close();
      for (const s of stores) await s.close();
    }
  });
});

Deno.test("ThreadPartitions keeps WAITERS_MAX for the whole node, not per thread", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, 0);
    const { main, partitions } = setUp(dir, 2);
    const other = new ThreadPartitions(new SharedState(2, 2, main.buffer), {
      dir,
      namespace: "test",
      conditions: new ConditionCache(16, 4096),
    });
    const alive = setTimeout(() => {}, 10_000);
    try {
      main.setPartition(0, "serving", false);
      const a = partitions.waitForOffset(0, 1, 5000);
      const b = other.waitForOffset(0, 1, 5000);
      await rejects(other.waitForOffset(0, 1, 5000), isCode("too_many_waiters"));
      await rejects(partitions.waitForOffset(0, 1, 5000), isCode("too_many_waiters"));
      await writeUpTo(store, 1);
      main.publishApplied(0, 1);
      await Promise.all([a, b]);
      equal(main.taken, 0);
    } finally {
      clearTimeout(alive);
      partitions.close();
      other.close();
      await store.close();
    }
  });
});

Deno.test("ThreadPartitions.release() closes the reader so the main thread may close the file", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(dir, 0);
    await writeUpTo(store, 0);
    const { main, partitions } = setUp(dir);
    main.setPartition(0, "serving", false);
    main.publishApplied(0, 0);
    ok(partitions.servingStore(0) !== null);
    main.setPartition(0, null, false);
    partitions.release(0);
    await store.close();
    // The file opens again as a store: no reader of this process held it.
    const again = openStore(dir, 0);
    equal(again.applied.offset, 0);
    await again.close();
  });
});
