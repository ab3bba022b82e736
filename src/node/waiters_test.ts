import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { statusOf } from "../api/problem.ts";
import { OperationalError } from "../util/errors.ts";
import { Waiters } from "./waiters.ts";

function isProblem(code: string, status: number) {
  return (error: unknown) => {
    ok(error instanceof OperationalError, `expected an OperationalError, got ${error}`);
    equal(error.code, code);
    equal(statusOf(error.code), status);
    return true;
  };
}

/** Tracks whether a promise settled, without awaiting it. */
function track(promise: Promise<void>) {
  const state = { settled: false as boolean, error: undefined as unknown };
  promise.then(
    () => (state.settled = true),
    (error) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

/** Lets already-settled promise callbacks run. */
function flush(): Promise<void> {
  return new Promise((resolve) => queueMicrotask(resolve));
}

Deno.test("Waiters.release() resolves the waiters whose offset is applied, and only those", async () => {
  const waiters = new Waiters(10);
  const at5 = waiters.wait(0, 5, 10_000, 2);
  const at7 = waiters.wait(0, 7, 10_000, 2);
  const other = waiters.wait(1, 5, 10_000, 2);
  const at7State = track(at7);
  const otherState = track(other);
  waiters.release(0, 6);
  await at5;
  await flush();
  equal(at7State.settled, false);
  equal(otherState.settled, false);
  waiters.release(1, 100);
  waiters.release(0, 7);
  await Promise.all([at7, other]);
  // Releasing a partition nobody waits on is harmless.
  waiters.release(9, 1);
});

Deno.test("Waiters.wait() rejects with 504 not_caught_up when the offset is not applied in time", async () => {
  const waiters = new Waiters(10);
  const started = performance.now();
  await rejects(waiters.wait(3, 40, 20, 38), (error: unknown) => {
    isProblem("not_caught_up", 504)(error);
    deepEqual((error as OperationalError).details, { partition: 3, offset: 40, applied: 38 });
    ok((error as Error).message.includes("partition 3 has applied offset 38, not yet 40"));
    return true;
  });
  ok(performance.now() - started >= 15, "waited about wait_ms before giving up");
  // A late release finds nobody to wake.
  waiters.release(3, 40);
});

Deno.test("Waiters.wait() with no time to wait fails at once", async () => {
  const waiters = new Waiters(10);
  await rejects(waiters.wait(0, 1, 0, 0), isProblem("not_caught_up", 504));
  await rejects(waiters.wait(0, 1, -5, 0), isProblem("not_caught_up", 504));
});

Deno.test("Waiters.cancel() fails a partition's waiters with 503 partition_unavailable", async () => {
  const waiters = new Waiters(10);
  const a = waiters.wait(2, 10, 10_000, 0);
  const b = waiters.wait(2, 11, 10_000, 0);
  const elsewhere = waiters.wait(4, 10, 10_000, 0);
  waiters.cancel(2);
  await rejects(a, isProblem("partition_unavailable", 503));
  await rejects(b, isProblem("partition_unavailable", 503));
  waiters.cancel(2); // twice is harmless
  waiters.release(4, 10);
  await elsewhere;
});

Deno.test("Waiters refuses more than its maximum with 503 too_many_waiters, and frees slots", async () => {
  const waiters = new Waiters(2);
  const first = waiters.wait(0, 1, 10_000, 0);
  const second = waiters.wait(1, 1, 30, 0);
  await rejects(waiters.wait(2, 1, 10_000, 0), isProblem("too_many_waiters", 503));
  // A released waiter frees its slot.
  waiters.release(0, 1);
  await first;
  const third = waiters.wait(0, 2, 10_000, 0);
  await rejects(waiters.wait(0, 3, 10_000, 0), isProblem("too_many_waiters", 503));
  // So does a timed-out one.
  await rejects(second, isProblem("not_caught_up", 504));
  const fourth = waiters.wait(5, 1, 10_000, 0);
  // And cancelled ones.
  waiters.cancel(0);
  waiters.cancel(5);
  await rejects(third, isProblem("partition_unavailable", 503));
  await rejects(fourth, isProblem("partition_unavailable", 503));
  const fifth = waiters.wait(0, 1, 10_000, 0);
  const sixth = waiters.wait(0, 1, 10_000, 0);
  waiters.release(0, 1);
  await Promise.all([fifth, sixth]);
});
