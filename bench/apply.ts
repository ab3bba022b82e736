/**
 * In-process apply: `applyBatch()` over a fresh partition file, no HTTP and no log, µs per
 * message. The messages are single-record puts shaped like `bench/write.ts`'s (a new pk each,
 * `bench/seed.ts`'s record data); the file lives under `--dir` (default: the system's temp dir;
 * `/dev/shm` keeps the disk out of it).
 *
 *   deno run --allow-all bench/apply.ts [--messages 200000] [--batch 2000]
 *     [--changes-retain-ms 86400000] [--dir /dev/shm] [--decoded]
 *
 * `--changes-retain-ms 0` applies without the change log and history index. `--decoded` decodes
 * and chains the messages before the clock starts and applies them with `applyDecodedBatch`: the
 * share of a restore that stays on the applying thread when a worker decodes. Prints one JSON line:
 * `{messages, batch, changes_retain_ms, us_per_message, messages_per_second}`. Compare builds
 * side by side (a worktree of the base, alternating runs), pinned with `taskset -c 1` and not.
 *
 * @module
 */
import {
  applyBatch,
  applyDecodedBatch,
  ConditionCache,
  type DecodedBatch,
  decodeMutation,
  encodeMutation,
  encodePlain,
  type LogRecord,
  nextChain,
} from "../src/apply/mod.ts";
import { createMetrics } from "../src/metrics/mod.ts";
import { PartitionStore } from "../src/store/mod.ts";
import { flag, intFlag } from "./_args.ts";
import { recordData } from "./seed.ts";

const messages = intFlag("messages", {
  fallback: 200_000,
  min: 1,
  max: 10_000_000,
  what: "apply",
});
const batch = intFlag("batch", { fallback: 2000, min: 1, max: 100_000, what: "apply" });
const retainMs = intFlag("changes-retain-ms", {
  fallback: 86_400_000,
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  what: "apply",
});
const parent = flag("dir");
const decoded = Deno.args.includes("--decoded");
const dir = await Deno.makeTempDir({
  prefix: "firescroll_bench_apply_",
  ...(parent === undefined ? {} : { dir: parent }),
});
const store = PartitionStore.open({
  dir,
  namespace: "bench",
  partition: 0,
  mapBytes: 8 * 2 ** 30,
  changesRetainMs: retainMs,
});
try {
  const records: LogRecord[] = [];
  const start = Date.now();
  for (let i = 0; i < messages; i++) {
    const pk = `w1c64-${i % 64}-${i}`;
    records.push({
      offset: i,
      timestamp: start + Math.floor(i / 50),
      value: encodeMutation({
        v: 1,
        atomic: false,
        ops: [{ op: "put", pk, sk: "profile", data: recordData(i) }],
      }),
    });
  }
  const ctx = { conditions: new ConditionCache(10_000), metrics: createMetrics(), now: Date.now };
  // --decoded: what a decoding worker hands over, made before the clock starts.
  const batches: DecodedBatch[] = [];
  if (decoded) {
    let chain = store.applied.chain;
    for (let i = 0; i < messages; i += batch) {
      const slice = records.slice(i, i + batch);
      const plain = slice.map((r) => {
        chain = nextChain(chain, r.offset, r.value);
        const message = decodeMutation(r.value);
        return message.ok ? encodePlain(message.mutation) : null;
      });
      batches.push({ records: slice, plain, chain });
    }
  }
  const started = performance.now();
  if (decoded) {
    for (const b of batches) await applyDecodedBatch(store, b, ctx);
  } else {
    for (let i = 0; i < messages; i += batch) {
      await applyBatch(store, records.slice(i, i + batch), ctx);
    }
  }
  const ms = performance.now() - started;
  const line = {
    messages,
    batch,
    changes_retain_ms: retainMs,
    decoded,
    us_per_message: Math.round((ms * 1000 / messages) * 100) / 100,
    messages_per_second: Math.round(messages / (ms / 1000)),
  };
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(line) + "\n"));
} finally {
  store.close();
  await Deno.remove(dir, { recursive: true });
}
