// deno-lint-ignore-file no-console
/**
 * How fast this machine's CPU is right now: a fixed mix of the node's kinds of work (JSON parse and
 * stringify, sha256 through node:crypto, typed-array loops), timed three times; prints the median
 * in ms (lower is faster). The benchmarks record it at the start and the end of a run: on a shared
 * VM the same code and command measured 93 and 165 µs of CPU per put half an hour apart
 * (bench/RESULTS.md, 2026-12-03), and a figure is only comparable with one taken at a similar
 * probe.
 *
 * Usage: deno run bench/cpu_probe.ts   (run it pinned like the measured process: taskset -c 1)
 */
import { createHash } from "node:crypto";

const text = JSON.stringify({
  v: 1,
  atomic: false,
  ops: [{
    op: "put",
    pk: "user-12345",
    sk: "profile/settings",
    data: { a: 1, b: "hello", c: [1, 2] },
  }],
});
const bytes = new TextEncoder().encode(text);
const scratch = new Uint8Array(4096);

function work(): number {
  let sink = 0;
  for (let i = 0; i < 40_000; i++) {
    const parsed = JSON.parse(text) as { ops: unknown[] };
    sink += JSON.stringify(parsed.ops).length;
    sink += createHash("sha256").update(bytes).digest("hex").charCodeAt(i & 31);
    for (let j = 0; j < bytes.length; j++) scratch[j] = bytes[j]! ^ (i & 0xff);
    sink += scratch[i & 127]!;
  }
  return sink;
}

work(); // warm-up: compile before timing
const times: number[] = [];
for (let round = 0; round < 3; round++) {
  const started = performance.now();
  work();
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
console.log(times[1]!.toFixed(0));
