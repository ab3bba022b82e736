import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { createMetrics } from "../metrics/mod.ts";
import { PartitionStore } from "../store/mod.ts";
import { isAllowed, type PartitionState, PartitionTable } from "./partition_state.ts";

const STATES: PartitionState[] = [
  "opening",
  "restoring",
  "catching_up",
  "serving",
  "retiring",
  "closed",
];

/** The lifecycle of DESIGN §7, written out edge by edge: the table must allow these and no more. */
const EXPECTED = new Set([
  "closed>opening",
  "opening>restoring",
  "opening>catching_up",
  "opening>closed",
  "restoring>catching_up",
  "restoring>closed",
  "catching_up>serving",
  "catching_up>closed",
  "serving>retiring",
  "serving>closed",
  "retiring>catching_up",
  "retiring>closed",
]);

Deno.test("the partition lifecycle allows exactly the documented edges", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      equal(isAllowed(from, to), EXPECTED.has(`${from}>${to}`), `${from} → ${to}`);
    }
  }
});

async function withStore(fn: (store: PartitionStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "partition-state-" });
  const store = PartitionStore.open({ dir, namespace: "t", partition: 3, mapBytes: 16 << 20 });
  try {
    await fn(store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("PartitionTable.transition() walks a partition through its life and keeps the gauges", async () => {
  await withStore((store) => {
    const metrics = createMetrics();
    let clock = 100;
    const table = new PartitionTable(metrics, () => clock);
    const gauges = () => {
      const out: string[] = [];
      metrics.registry.render().split("\n").forEach((line) => {
        if (line.startsWith("firescroll_node_partitions{")) out.push(line);
      });
      return out.sort();
    };
    equal(table.stateOf(3), "closed");
    table.transition(3, "opening");
    equal(table.count("opening"), 1);
    equal(table.storeIn(3, new Set(["opening"])), null, "no store before the file is open");
    clock = 150;
    table.transition(3, "catching_up", { store, catchUpTo: 7 });
    equal(table.get(3)!.catchUpTo, 7);
    equal(table.get(3)!.since, 150);
    deepEqual(gauges(), [
      'firescroll_node_partitions{state="owned"} 1',
      'firescroll_node_partitions{state="serving"} 0',
    ]);
    ok(table.block(3, "gap"), "first report of a reason");
    ok(!table.block(3, "gap"), "the same reason again is not news");
    table.transition(3, "serving");
    equal(table.get(3)!.blockedReason, "gap", "blocked stays with the owned partition");
    deepEqual(table.inState("serving").map((p) => p.partition), [3]);
    table.transition(3, "retiring");
    equal(table.get(3)!.blockedReason, null);
    equal(table.storeIn(3, new Set(["retiring"])), store, "a retiring partition keeps its file");
    deepEqual(gauges(), [
      'firescroll_node_partitions{state="owned"} 0',
      'firescroll_node_partitions{state="serving"} 0',
    ]);
    table.transition(3, "closed");
    equal(table.get(3)!.store, null);
    equal(table.count("closed"), 1);
    table.forget(3);
    equal(table.get(3), undefined);
    equal(table.count("closed"), 0);
    return Promise.resolve();
  });
});

Deno.test("PartitionTable.transition() refuses an edge the lifecycle does not have", async () => {
  await withStore((store) => {
    const table = new PartitionTable(createMetrics(), () => 0);
    throws(() => table.transition(1, "serving"), /no transition closed → serving/);
    throws(() => table.transition(1, "catching_up", { store }), /closed → catching_up/);
    table.transition(1, "opening");
    throws(() => table.transition(1, "catching_up"), /needs an open store/);
    throws(() => table.forget(1), /forgotten while opening/);
    return Promise.resolve();
  });
});

Deno.test("PartitionTable.adopt() notes a left-over file as closed since the given time", () => {
  const table = new PartitionTable(createMetrics(), () => 5);
  table.adopt(2, 1_000);
  equal(table.stateOf(2), "closed");
  equal(table.get(2)!.since, 1_000);
  table.adopt(2, 2_000);
  equal(table.get(2)!.since, 1_000, "adopting again changes nothing");
});
