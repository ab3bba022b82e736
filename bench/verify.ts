// deno-lint-ignore-file no-console
/**
 * Cost of the corruption defences (issue 9): apply cost per record (the content digest adds a
 * read of the old value and a sha256 per write), and the time to verify partition files in child
 * processes (16 small partitions, 2 children at a time; one partition of `--big` records).
 *
 * Usage: deno run --allow-all bench/verify.ts [--records 200000] [--small 2000] [--batch 1000]
 * Prints one JSON line. Run it on two commits to compare the apply cost with and without digests
 * (the verify part needs this commit).
 *
 * @module
 */
import { flag } from "./_args.ts";
import { PartitionStore } from "../src/store/mod.ts";

const BIG = Number(flag("records") ?? 200_000);
const SMALL = Number(flag("small") ?? 2000);
const BATCH = Number(flag("batch") ?? 1000);
const MAP_BYTES = 4 * 1024 * 1024 * 1024;

function chainOf(n: number): string {
  return n.toString(16).padStart(64, "0");
}

/** Fills a store with `count` records in batches; resolves to µs per record written. */
async function fill(dir: string, partition: number, count: number, round = 0): Promise<number> {
  const store = PartitionStore.open({ dir, namespace: "bench", partition, mapBytes: MAP_BYTES });
  const started = performance.now();
  let offset = store.applied.offset;
  for (let i = 0; i < count; i += BATCH) {
    offset++;
    await store.write((tx) => {
      for (let j = i; j < Math.min(count, i + BATCH); j++) {
        const data = JSON.stringify({ round, n: j, text: "some configuration value" });
        tx.put(`pk${j % 997}`, `sk${j}`, data, offset, 1, 2);
      }
      return { offset, chain: chainOf(offset) };
    });
  }
  const us = ((performance.now() - started) * 1000) / count;
  await store.close();
  return us;
}

const root = await Deno.makeTempDir({ prefix: "firescroll_bench_verify_" });
try {
  const insertUs = await fill(`${root}/big`, 0, BIG);
  const overwriteUs = await fill(`${root}/big`, 0, BIG, 1);
  const out: Record<string, unknown> = {
    records: BIG,
    batch: BATCH,
    apply_insert_us_per_record: Number(insertUs.toFixed(2)),
    apply_overwrite_us_per_record: Number(overwriteUs.toFixed(2)),
  };
  const verify = await import("../src/store/mod.ts").then((m) => "verifyInChild" in m ? m : null);
  if (verify !== null) {
    const bigFile = `${root}/big/p0.mdb`;
    const big = await verify.verifyInChild("partition", bigFile, 600_000);
    out.verify_big_ms = big.ms;
    out.verify_big_ok = big.ok;
    out.big_file_bytes = (await Deno.stat(bigFile)).size;
    for (let p = 0; p < 16; p++) await fill(`${root}/small`, p, SMALL);
    const started = performance.now();
    const results = await verify.boundedAll(
      Array.from({ length: 16 }, (_, p) => p),
      2,
      (p) => verify.verifyInChild("partition", `${root}/small/p${p}.mdb`, 600_000),
    );
    out.verify_16_small_ms = Math.round(performance.now() - started);
    out.verify_16_small_ok = results.every((r) => r.ok);
    out.small_records = SMALL;
  }
  console.log(JSON.stringify(out));
} finally {
  await Deno.remove(root, { recursive: true });
}
