// deno-lint-ignore-file no-console
/**
 * Micro-benchmark of the apply path's store transactions: `PartitionStore.write` with 1, 2, 4 and
 * 16 records per transaction (each record: the `tx.get` apply does, then `tx.put` of a ~25-byte
 * `data`), on a fresh store in a temp folder. Prints µs per transaction and per record for three
 * rounds. It separates the fixed cost of a transaction (meta, checksum, LMDB commit) from the cost
 * of a record; bench/write.ts's "apply msgs/txn" says which one dominates under load.
 *
 * Usage: taskset -c 1 deno run --allow-all bench/store_txn.ts [--records 20000]
 */
import { PartitionStore } from "../src/store/partition_store.ts";
import { intFlag } from "./_args.ts";

const records = intFlag("records", {
  fallback: 20_000,
  min: 16,
  max: 10_000_000,
  what: "measure store transactions",
});
const dir = Deno.makeTempDirSync({ prefix: "firescroll-store-txn-" });
const store = PartitionStore.open({ dir, namespace: "bench", partition: 0, mapBytes: 1 << 30 });
let offset = -1;

function run(transactions: number, perTransaction: number): number {
  const started = performance.now();
  for (let i = 0; i < transactions; i++) {
    store.write((tx) => {
      for (let j = 0; j < perTransaction; j++) {
        const sk = `k${(i * perTransaction + j) % 50_000}`;
        tx.get("pk", sk);
        tx.put("pk", sk, '{"a":1,"b":"hello world"}', offset + 1, 1, 2);
      }
      offset++;
      return { offset, chain: "0".repeat(64) };
    });
  }
  return ((performance.now() - started) * 1000) / transactions;
}

try {
  for (let round = 1; round <= 3; round++) {
    for (const per of [1, 2, 4, 16]) {
      const us = run(Math.ceil(records / per), per);
      console.log(
        `round ${round}: ${per} record(s)/txn: ${us.toFixed(1)} µs/txn, ${
          (us / per).toFixed(1)
        } µs/record`,
      );
    }
  }
} finally {
  await store.close();
  Deno.removeSync(dir, { recursive: true });
}
