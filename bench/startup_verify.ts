// deno-lint-ignore-file no-console
/**
 * Start-up time with and without file verification (issue 9): seeds an embedded node (16
 * partitions × 1000 records; then 1 partition × 200k records), stops it cleanly and times the
 * next start to `/readyz` 200 (no verification: the clean-stop record vouches for every file);
 * then SIGKILLs it and times the next start (every file verified in child processes, 2 at a
 * time). Prints one JSON line per layout.
 *
 * Usage: deno run --allow-all bench/startup_verify.ts
 *
 * @module
 */
import { startNode, type TestNode } from "../tests/integration/_node.ts";

async function seed(node: TestNode, count: number): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    const records = Array.from({ length: 500 }, (_, j) => ({
      pk: `k${i + j}`,
      sk: "s",
      data: { n: i + j, t: "some configuration value" },
    }));
    const result = await node.post("/records/put", { records });
    if (result.status !== 200) throw new Error(result.text);
  }
  const last = await node.post("/records/put", { records: [{ pk: "last", sk: "s", data: 1 }] });
  const read = await node.post("/records/get", {
    records: [{ pk: "last", sk: "s" }],
    after: last.json.offsets,
    wait_ms: 10_000,
  });
  if (read.status !== 200) throw new Error(read.text);
}

for (const [partitions, count] of [[16, 16_000], [1, 200_000]] as const) {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_bench_startup_" });
  const env = { PARTITIONS: String(partitions) };
  let node = await startNode({ env, dbPath, readyTimeoutMs: 120_000 });
  try {
    await seed(node, count);
    await node.stop();
    let started = performance.now();
    node = await startNode({ env, dbPath, readyTimeoutMs: 120_000 });
    const clean = performance.now() - started;
    await node.kill();
    started = performance.now();
    node = await startNode({ env, dbPath, readyTimeoutMs: 120_000 });
    const unclean = performance.now() - started;
    const verified = node.logs.events().find((e) => e.event === "partition_files_verified");
    console.log(JSON.stringify({
      partitions,
      records: count,
      clean_start_ms: Math.round(clean),
      unclean_start_ms: Math.round(unclean),
      verify_ms: verified?.ms,
      files_verified: verified?.files,
    }));
    await node.stop();
  } finally {
    await node.cleanup();
    await Deno.remove(dbPath, { recursive: true }).catch(() => {});
  }
}
