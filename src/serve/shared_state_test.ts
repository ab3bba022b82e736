import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SharedState } from "./shared_state.ts";

Deno.test("SharedState shows a thread what the main thread set, through the same buffer", () => {
  const main = new SharedState(4, 10);
  const thread = new SharedState(4, 10, main.buffer);
  assertEquals([0, 1, 2, 3].map((p) => thread.readState(p)), [null, null, null, null]);
  assertEquals(thread.applied(2), -1);
  main.setPartition(1, "serving", false);
  main.setPartition(2, "retiring", true);
  main.publishApplied(1, 41);
  main.setReady(true);
  assertEquals(thread.readState(1), "serving");
  assertEquals(thread.readState(2), "retiring");
  assert(thread.peerServes(2) && !thread.peerServes(1));
  assertEquals(thread.applied(1), 41);
  assert(thread.ready && !thread.draining && !thread.stopped);
  main.setDraining();
  main.setStopped();
  assert(thread.draining && thread.stopped);
});

Deno.test("SharedState wakes a parked wait when its partition's offset is published", async () => {
  const main = new SharedState(2, 10);
  const thread = new SharedState(2, 10, main.buffer);
  const seen = thread.sequence(0);
  const woken = thread.changed(0, seen, 5000);
  // A pending Atomics.waitAsync does not keep Deno's event loop alive; a server does in a thread.
  const alive = setTimeout(() => {}, 5000);
  setTimeout(() => main.publishApplied(0, 7), 10);
  assertEquals(await woken, "ok");
  assertEquals(thread.applied(0), 7);
  // A wait on a sequence already moved returns at once; an untouched one times out.
  assertEquals(await thread.changed(0, seen, 5000), "not-equal");
  assertEquals(await thread.changed(1, thread.sequence(1), 10), "timed-out");
  clearTimeout(alive);
});

Deno.test("SharedState wakes waits when a partition stops being readable, and not for a no-op", async () => {
  const main = new SharedState(1, 10);
  main.setPartition(0, "serving", false);
  const before = main.sequence(0);
  main.setPartition(0, "serving", false);
  assertEquals(main.sequence(0), before);
  const woken = main.changed(0, before, 5000);
  main.setPartition(0, null, false);
  assertEquals(await woken, "ok");
});

Deno.test("SharedState counts parked reads for the whole node (WAITERS_MAX across threads)", () => {
  const main = new SharedState(1, 3);
  const a = new SharedState(1, 3, main.buffer);
  const b = new SharedState(1, 3, main.buffer);
  assert(a.take() && b.take() && a.take());
  assert(!b.take() && !a.take());
  assertEquals(main.taken, 3);
  b.give();
  assert(a.take());
  assertEquals(b.taken, 3);
});
