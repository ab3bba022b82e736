/**
 * An acknowledged write is never lost by the node that applies it: back-to-back and concurrent
 * writes, with commits of the log overlapping the application of earlier ones.
 */
import assert from "node:assert/strict";
import { partitionStatus, stepper, type TestNode, withNode } from "./_node.ts";

function mergeOffsets(into: Record<string, number>, offsets: Record<string, number>): void {
  for (const [p, o] of Object.entries(offsets)) into[p] = Math.max(into[p] ?? -1, o);
}

/** Lists every sk of `pk` (pages of 1000). */
async function allSks(node: TestNode, pk: string, after: Record<string, number>) {
  const sks: string[] = [];
  let cursor: string | null = null;
  do {
    const result = await node.post("/records/list", {
      pk,
      limit: 1000,
      after,
      wait_ms: 5000,
      ...(cursor === null ? {} : { start_after: cursor }),
    });
    assert.equal(result.status, 200, result.text);
    sks.push(...result.json.records.map((r: { sk: string }) => r.sk));
    cursor = result.json.next;
  } while (cursor !== null);
  return sks;
}

Deno.test("every acknowledged write is applied, however writes and applies overlap", async (t) => {
  await withNode({ env: { PARTITIONS: "2" } }, async (node) => {
    const step = stepper(t, node);

    await step("300 back-to-back puts to one partition are all readable", async () => {
      const offsets: Record<string, number> = {};
      for (let i = 0; i < 300; i++) {
        const put = await node.post("/records/put", {
          records: [{ pk: "seq", sk: String(i).padStart(4, "0"), data: i }],
        });
        assert.equal(put.status, 200, put.text);
        mergeOffsets(offsets, put.json.offsets);
      }
      const sks = await allSks(node, "seq", offsets);
      assert.equal(sks.length, 300);
      const [p, offset] = Object.entries(offsets)[0]!;
      const status = await partitionStatus(node);
      assert.equal(status[p]!.offset, offset);
      assert.equal(status[p]!.records, 300);
    });

    await step("puts from 10 concurrent writers are all readable", async () => {
      const offsets: Record<string, number> = {};
      await Promise.all(Array.from({ length: 10 }, async (_, w) => {
        for (let i = 0; i < 30; i++) {
          const put = await node.post("/records/put", {
            records: [{ pk: "conc", sk: `${w}:${String(i).padStart(2, "0")}`, data: i }],
          });
          assert.equal(put.status, 200, put.text);
          mergeOffsets(offsets, put.json.offsets);
        }
      }));
      const sks = await allSks(node, "conc", offsets);
      assert.equal(sks.length, 300);
    });
  });
});
