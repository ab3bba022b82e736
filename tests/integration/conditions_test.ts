/**
 * Conditions (`if`) end to end: judged by the node when it applies a write, and as list filters.
 */
import assert from "node:assert/strict";
import { assertProblem, partitionStatus, stepper, type TestNode, withNode } from "./_node.ts";

type Rec = { pk: string; sk: string; data: unknown; version: number };

/** Writes through `path` and returns the write's offsets (asserting 200). */
async function write(node: TestNode, path: string, body: unknown): Promise<Record<string, number>> {
  const result = await node.post(path, body);
  assert.equal(result.status, 200, `${path}: ${result.text}`);
  return result.json.offsets;
}

/** Reads keys once `after` is applied; returns a map "pk/sk" → record (absent keys missing). */
async function read(
  node: TestNode,
  keys: { pk: string; sk: string }[],
  after: Record<string, number>,
): Promise<Map<string, Rec>> {
  const result = await node.post("/records/get", { records: keys, after, wait_ms: 3000 });
  assert.equal(result.status, 200, result.text);
  return new Map(result.json.records.map((r: Rec) => [`${r.pk}/${r.sk}`, r]));
}

Deno.test("conditions decide at apply time whether each write takes effect", async (t) => {
  await withNode({ env: { PARTITIONS: "4" } }, async (node) => {
    const step = stepper(t, node);
    await step("insert-if-absent (pk == null) does not overwrite an existing record", async () => {
      const k = { pk: "flags", sk: "dark-mode" };
      const first = await write(node, "/records/put", {
        records: [{ ...k, data: { on: true }, if: "pk == null" }],
      });
      assert.deepEqual((await read(node, [k], first)).get("flags/dark-mode")?.data, { on: true });
      const second = await write(node, "/records/put", {
        records: [{ ...k, data: { on: false }, if: "pk == null" }],
      });
      const got = (await read(node, [k], second)).get("flags/dark-mode");
      assert.deepEqual(got?.data, { on: true });
      assert.equal(got?.version, Object.values(first)[0]);
    });

    await step("compare-and-set on _version applies with the current version only", async () => {
      const k = { pk: "dns", sk: "example.com" };
      const v0 = await write(node, "/records/put", { records: [{ ...k, data: "1.1.1.1" }] });
      const version = (await read(node, [k], v0)).get("dns/example.com")!.version;
      const cas = await write(node, "/records/put", {
        records: [{ ...k, data: "2.2.2.2", if: `_version == ${version}` }],
      });
      const afterCas = (await read(node, [k], cas)).get("dns/example.com")!;
      assert.equal(afterCas.data, "2.2.2.2");
      assert.ok(afterCas.version > version);
      const stale = await write(node, "/records/put", {
        records: [{ ...k, data: "3.3.3.3", if: `_version == ${version}` }],
      });
      const afterStale = (await read(node, [k], stale)).get("dns/example.com")!;
      assert.equal(afterStale.data, "2.2.2.2");
      assert.equal(afterStale.version, afterCas.version);
    });

    await step("the records of one put are each judged on their own condition", async () => {
      const offsets = await write(node, "/records/put", {
        records: [
          { pk: "mixed", sk: "yes", data: 1, if: "pk == null" },
          { pk: "mixed", sk: "no", data: 2, if: "pk != null" },
          { pk: "mixed", sk: "plain", data: 3 },
        ],
      });
      const got = await read(node, [
        { pk: "mixed", sk: "yes" },
        { pk: "mixed", sk: "no" },
        { pk: "mixed", sk: "plain" },
      ], offsets);
      assert.deepEqual([...got.keys()].sort(), ["mixed/plain", "mixed/yes"]);
    });

    await step("a batch with one false condition applies none of its ops", async () => {
      const seed = await write(node, "/records/put", {
        records: [{ pk: "acct", sk: "balance", data: 100 }, { pk: "acct", sk: "gone", data: 0 }],
      });
      const version = (await read(node, [{ pk: "acct", sk: "balance" }], seed))
        .get("acct/balance")!.version;
      const ops = (balanceIf: string) => ({
        ops: [
          { op: "put", pk: "acct", sk: "tx:1", data: { amount: -30 } },
          { op: "put", pk: "acct", sk: "tx:2", data: { amount: -10 }, if: "pk == null" },
          { op: "delete", pk: "acct", sk: "gone" },
          { op: "put", pk: "acct", sk: "balance", data: 60, if: balanceIf },
        ],
      });
      const keys = ["tx:1", "tx:2", "gone", "balance"].map((sk) => ({ pk: "acct", sk }));
      const aborted = await write(node, "/records/batch", ops(`_version == ${version + 1000}`));
      const none = await read(node, keys, aborted);
      assert.deepEqual([...none.keys()].sort(), ["acct/balance", "acct/gone"]);
      assert.equal(none.get("acct/balance")!.data, 100);
      assert.equal(none.get("acct/balance")!.version, version);

      const applied = await write(node, "/records/batch", ops(`_version == ${version}`));
      const all = await read(node, keys, applied);
      assert.deepEqual([...all.keys()].sort(), ["acct/balance", "acct/tx:1", "acct/tx:2"]);
      assert.equal(all.get("acct/balance")!.data, 60);
    });

    await step("a delete with a false condition leaves the record in place", async () => {
      const k = { pk: "cert", sk: "a.example" };
      await write(node, "/records/put", { records: [{ ...k, data: { pinned: true } }] });
      const kept = await write(node, "/records/delete", {
        records: [{ ...k, if: "data.pinned == false" }],
      });
      assert.deepEqual((await read(node, [k], kept)).get("cert/a.example")?.data, { pinned: true });
      const deleted = await write(node, "/records/delete", {
        records: [{ ...k, if: "data.pinned == true" }],
      });
      assert.equal((await read(node, [k], deleted)).size, 0);
    });

    await step("a condition that fails to evaluate counts as false", async () => {
      const k = { pk: "err", sk: "x" };
      // Indexing the null data of an absent record throws inside the expression.
      const offsets = await write(node, "/records/put", {
        records: [{ ...k, data: 1, if: "data[0] == 1" }],
      });
      assert.equal((await read(node, [k], offsets)).size, 0);
    });

    await step("list with if returns only the rows that match", async () => {
      const offsets = await write(node, "/records/put", {
        records: Array.from({ length: 20 }, (_, n) => ({
          pk: "nums",
          sk: String(n).padStart(2, "0"),
          data: { n },
        })),
      });
      const list = await node.post("/records/list", {
        pk: "nums",
        if: "data.n % 3 != 2",
        after: offsets,
        wait_ms: 3000,
      });
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(
        list.json.records.map((r: { data: { n: number } }) => r.data.n),
        [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19],
      );
      assert.equal(list.json.next, null);

      const page = await node.post("/records/list", {
        pk: "nums",
        if: "data.n % 3 != 2",
        limit: 4,
      });
      assert.deepEqual(page.json.records.map((r: { data: { n: number } }) => r.data.n), [
        0,
        1,
        3,
        4,
      ]);
      assert.equal(page.json.next, "04");
    });

    await step("list with if_stop ends at the first row that fails the condition", async () => {
      const list = await node.post("/records/list", {
        pk: "nums",
        if: "data.n % 3 != 2",
        if_stop: true,
      });
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.json.records.map((r: { data: { n: number } }) => r.data.n), [0, 1]);
      assert.equal(list.json.next, null);
      const reverse = await node.post("/records/list", {
        pk: "nums",
        if: "data.n >= 15",
        if_stop: true,
        reverse: true,
      });
      assert.deepEqual(
        reverse.json.records.map((r: { data: { n: number } }) => r.data.n),
        [19, 18, 17, 16, 15],
      );
      assert.equal(reverse.json.next, null);
    });
  });
});

Deno.test("a condition the node cannot use is 400 invalid_condition on every route, and writes nothing", async (t) => {
  await withNode({ env: { PARTITIONS: "4" } }, async (node) => {
    const step = stepper(t, node);
    const before = await partitionStatus(node);
    const huge = "9".repeat(400);
    // The first three were 500 internal_error (the validator walked a missing ternary branch).
    const conditions = [
      "true ? :",
      "'a' ? :",
      "pk ? : true",
      "foo.bar == 1",
      `data.n == ${huge}`,
      "(".repeat(65) + "true" + ")".repeat(65),
      "data.a[.b[.c == 1] == []] == []",
    ];
    const bodies = (condition: string): [string, unknown][] => [
      ["/records/put", { records: [{ pk: "a", sk: "b", data: 1, if: condition }] }],
      ["/records/delete", { records: [{ pk: "a", sk: "b", if: condition }] }],
      ["/records/batch", { ops: [{ op: "delete", pk: "a", sk: "b", if: condition }] }],
      ["/records/batch", {
        ops: [{ op: "put", pk: "a", sk: "b", data: 1 }, {
          op: "put",
          pk: "a",
          sk: "c",
          data: 2,
          if: condition,
        }],
      }],
      ["/records/list", { pk: "a", if: condition }],
    ];
    for (const condition of conditions) {
      await step(
        `${JSON.stringify(condition.slice(0, 40))} is refused on put, delete, batch and list`,
        async () => {
          for (const [path, body] of bodies(condition)) {
            const result = await node.post(path, body);
            assertProblem(result, 400, "invalid_condition");
            assert.match(
              result.json.detail,
              /^Cannot use (records|ops)\[\d\]\.if: |^Cannot use body\.if: /,
              path,
            );
          }
        },
      );
    }

    await step("an unknown identifier is named in the problem with the allowed ones", async () => {
      const result = await node.post("/records/put", {
        records: [{ pk: "a", sk: "b", data: 1, if: "foo.bar == 1" }],
      });
      assertProblem(result, 400, "invalid_condition");
      assert.equal(result.json.identifier, "foo");
      assert.deepEqual(result.json.allowed, [
        "pk",
        "sk",
        "data",
        "_created_at",
        "_updated_at",
        "_version",
        "null",
      ]);
      assert.match(result.json.detail, /unknown identifier 'foo'/);
    });

    await step("nothing was written and nothing failed with 500", async () => {
      assert.deepEqual(await partitionStatus(node), before);
      const metrics = (await node.internal("/metrics")).text;
      assert.doesNotMatch(metrics, /^firescroll_log_appends_total [1-9]/m);
      assert.doesNotMatch(metrics, /status="500"/);
      assert.ok(
        !node.logs.all.some((l) => l.includes('"event":"internal_error"')),
        node.logs.tail(),
      );
    });

    await step("the same routes still take a usable condition", async () => {
      const put = await node.post("/records/put", {
        records: [{ pk: "a", sk: "b", data: { items: [{ x: 1 }] }, if: "pk == null" }],
      });
      assert.equal(put.status, 200, put.text);
      const list = await node.post("/records/list", {
        pk: "a",
        if: "data.items[.x == 1] != [] && data['items'][0].x == 1",
        after: put.json.offsets,
        wait_ms: 3000,
      });
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.json.records.map((r: Rec) => r.sk), ["b"]);
    });
  });
});
