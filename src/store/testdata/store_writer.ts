/**
 * A second process for partition_store_test.ts: opens one partition's file, writes one record at
 * an offset, closes and exits, as a hand-over predecessor goes on applying while its successor has
 * the file open.
 *
 *   deno run -A store_writer.ts DIR NAMESPACE PARTITION OFFSET PK SK
 *
 * @module
 */
import { PartitionStore } from "../partition_store.ts";

const [dir, namespace, partition, offset, pk, sk] = Deno.args;
const store = PartitionStore.open({
  dir: dir!,
  namespace: namespace!,
  partition: Number(partition),
  mapBytes: 32 * 1024 * 1024,
});
const at = Number(offset);
await store.write((tx) => {
  tx.put(pk!, sk!, JSON.stringify({ from: "writer" }), 1, 1000 + at, 2000 + at);
  return { offset: at, chain: at.toString(16).padStart(64, "0") };
});
await store.close();
