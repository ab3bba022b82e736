// deno-lint-ignore-file no-console
/**
 * Key lists for the cluster read benchmark (bench/cluster.sh): splits the seeded keys
 * `user-0` … `user-<N-1>` (bench/seed.ts) into those whose partition the node serves itself
 * ("local") and those it must proxy to a region peer ("remote"), with the node's own
 * partitioner and the partitions its `/internal/status` lists as serving.
 *
 * Usage:
 *   deno run --allow-net=127.0.0.1 --allow-write bench/cluster_keys.ts \
 *     --status-url http://127.0.0.31:8191/internal/status --secret S --records 100000 \
 *     --partitions 16 --local FILE --remote FILE
 * Writes one pk per line to each file and prints a JSON summary line. Exits 1 when the node
 * serves no partition or every partition (then one of the lists would be empty).
 *
 * @module
 */
import { partitionOf } from "../src/keys/mod.ts";
import { required } from "./_args.ts";

async function main(): Promise<void> {
  const records = Number(required("records", "split keys"));
  const partitions = Number(required("partitions", "split keys"));
  const response = await fetch(required("status-url", "split keys"), {
    headers: { authorization: `Bearer ${required("secret", "split keys")}` },
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`Cannot read status: ${response.status} ${text}`);
  const status = JSON.parse(text) as { partitions: Record<string, { state: string }> };
  const local = new Set(
    Object.entries(status.partitions).filter(([, s]) => s.state === "serving").map(([p]) =>
      Number(p)
    ),
  );
  if (local.size === 0 || local.size === partitions) {
    throw new Error(`Cannot split keys: the node serves ${local.size} of ${partitions} partitions`);
  }
  const localKeys: string[] = [];
  const remoteKeys: string[] = [];
  for (let i = 0; i < records; i++) {
    const pk = `user-${i}`;
    (local.has(partitionOf(pk, partitions)) ? localKeys : remoteKeys).push(pk);
  }
  await Deno.writeTextFile(required("local", "split keys"), localKeys.join("\n") + "\n");
  await Deno.writeTextFile(required("remote", "split keys"), remoteKeys.join("\n") + "\n");
  console.log(JSON.stringify({
    event: "keys_split",
    local_partitions: [...local].sort((a, b) => a - b),
    local_keys: localKeys.length,
    remote_keys: remoteKeys.length,
  }));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
