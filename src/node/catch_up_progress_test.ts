import { deepEqual, equal } from "node:assert/strict";
import { CatchUpProgress } from "./catch_up_progress.ts";

/** A clock the test moves. */
function clock(startMs = 1_000_000) {
  let t = startMs;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

Deno.test("CatchUpProgress reports a partition at most once per interval, with rate and eta", () => {
  const time = clock();
  const progress = new CatchUpProgress(time.now, 5000);
  progress.start(3, 100, 10_100);
  // Batches within the interval: no line.
  time.advance(1000);
  equal(progress.advanced(3, 600), null);
  time.advance(3999);
  equal(progress.advanced(3, 2000), null);
  time.advance(1);
  deepEqual(progress.advanced(3, 2600), {
    partition: 3,
    offset: 2599,
    done: 2500,
    total: 10_000,
    per_second: 500,
    eta_sec: 15,
  });
  // The next line waits a whole interval again.
  time.advance(4999);
  equal(progress.advanced(3, 5000), null);
  time.advance(1);
  equal(progress.advanced(3, 5100)?.done, 5000);
});

Deno.test("CatchUpProgress says nothing of a partition that serves, was let go, or had nothing to read", () => {
  const time = clock();
  const progress = new CatchUpProgress(time.now, 5000);
  progress.start(0, 10, 10);
  progress.start(1, 0, 1000);
  progress.start(2, 0, 1000);
  progress.end(1);
  time.advance(60_000);
  equal(progress.advanced(0, 10), null);
  equal(progress.advanced(1, 500), null);
  equal(progress.advanced(5, 500), null);
  equal(progress.advanced(2, 0)?.eta_sec, null);
});
