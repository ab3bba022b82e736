/**
 * Every public route and the internal port of one real node, driven over HTTP like a user would.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { assertProblem, partitionStatus, stepper, withNode } from "./_node.ts";

// Not a power of two: routing must use Kafka's murmur2 modulo, not a bit mask.
const PARTITIONS = 7;

const RECORD_FIELDS = ["created_at", "data", "pk", "sk", "updated_at", "version"];

function key(pk: string, sk: string) {
  return { pk, sk };
}

Deno.test("a node serves every public route and reports itself on the internal port", async (t) => {
  await withNode({ env: { PARTITIONS: String(PARTITIONS), WAIT_MS_MAX: "3000" } }, async (node) => {
    const step = stepper(t, node);
    await step("GET /healthz and GET /readyz answer 200 with JSON", async () => {
      const health = await node.request("/healthz");
      assert.equal(health.status, 200);
      assert.equal(health.headers.get("content-type"), "application/json");
      // Serving threads are the default (one per CPU): the answer names the thread, 1 … N.
      const { status, thread } = health.json as { status: string; thread?: number };
      assert.equal(status, "ok");
      assert.ok(thread === undefined || (Number.isInteger(thread) && thread >= 1), `${thread}`);
      const ready = await node.request("/readyz");
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json, { status: "ready" });
    });

    const before = Date.now();
    const put = await node.post("/records/put", {
      records: [
        { pk: "user:1", sk: "profile", data: { name: "Ada", tags: ["a", "b"] } },
        { pk: "user:2", sk: "profile", data: "plain string" },
        { pk: "host:example.com", sk: "route", data: [1, 2.5, null, true] },
        { pk: "user:1", sk: "settings", data: null },
      ],
    });
    const after = Date.now();

    await step("put answers the log offset of every partition it wrote", () => {
      assert.equal(put.status, 200, put.text);
      assert.equal(put.headers.get("content-type"), "application/json");
      const expected = new Set(
        ["user:1", "user:2", "host:example.com"].map((pk) => String(partitionOf(pk, PARTITIONS))),
      );
      assert.deepEqual(new Set(Object.keys(put.json.offsets)), expected);
      for (const offset of Object.values(put.json.offsets)) {
        assert.ok(Number.isSafeInteger(offset) && (offset as number) >= 0);
      }
    });
    const offsets: Record<string, number> = put.json.offsets;

    await step(
      "get returns records in request order and lists absent keys as missing",
      async () => {
        const got = await node.post("/records/get", {
          records: [
            key("host:example.com", "route"),
            key("user:1", "nope"),
            key("user:1", "settings"),
            key("user:1", "profile"),
            key("nobody", "profile"),
            key("user:2", "profile"),
          ],
          after: offsets,
          wait_ms: 2000,
        });
        assert.equal(got.status, 200, got.text);
        assert.equal(got.headers.get("content-type"), "application/json");
        assert.deepEqual(
          got.json.records.map((r: { pk: string; sk: string }) => [r.pk, r.sk]),
          [
            ["host:example.com", "route"],
            ["user:1", "settings"],
            ["user:1", "profile"],
            ["user:2", "profile"],
          ],
        );
        assert.deepEqual(got.json.missing, [key("user:1", "nope"), key("nobody", "profile")]);
        const byKey = new Map<string, Record<string, unknown>>(
          got.json.records.map((r: { pk: string; sk: string }) => [`${r.pk}/${r.sk}`, r]),
        );
        assert.deepEqual(byKey.get("user:1/profile")!.data, { name: "Ada", tags: ["a", "b"] });
        assert.equal(byKey.get("user:2/profile")!.data, "plain string");
        assert.deepEqual(byKey.get("host:example.com/route")!.data, [1, 2.5, null, true]);
        assert.equal(byKey.get("user:1/settings")!.data, null);
        for (const record of got.json.records) {
          assert.deepEqual(Object.keys(record).sort(), RECORD_FIELDS);
          assert.equal(record.version, offsets[String(partitionOf(record.pk, PARTITIONS))]);
          assert.equal(record.created_at, record.updated_at);
          assert.ok(record.created_at >= before - 1000 && record.created_at <= after + 1000);
        }
      },
    );

    await step("an overwrite keeps created_at and moves version and updated_at", async () => {
      const first = await node.post("/records/get", { records: [key("user:2", "profile")] });
      const old = first.json.records[0];
      await new Promise((r) => setTimeout(r, 5));
      const again = await node.post("/records/put", {
        records: [{ pk: "user:2", sk: "profile", data: { v: 2 } }],
      });
      assert.equal(again.status, 200, again.text);
      const got = await node.post("/records/get", {
        records: [key("user:2", "profile")],
        after: again.json.offsets,
        wait_ms: 2000,
      });
      const now = got.json.records[0];
      assert.deepEqual(now.data, { v: 2 });
      assert.equal(now.created_at, old.created_at);
      assert.ok(now.updated_at > old.updated_at, `${now.updated_at} > ${old.updated_at}`);
      assert.equal(now.version, again.json.offsets[String(partitionOf("user:2", PARTITIONS))]);
      assert.ok(now.version > old.version);
    });

    await step("the seed's `Records` spelling is accepted by put, get and delete", async () => {
      const put = await node.post("/records/put", {
        Records: [{ pk: "seed", sk: "s", data: 1 }],
      });
      assert.equal(put.status, 200, put.text);
      const got = await node.post("/records/get", {
        Records: [key("seed", "s")],
        after: put.json.offsets,
        wait_ms: 2000,
      });
      assert.equal(got.status, 200, got.text);
      assert.equal(got.json.records[0].data, 1);
      const del = await node.post("/records/delete", { Records: [key("seed", "s")] });
      assert.equal(del.status, 200, del.text);
      const gone = await node.post("/records/get", {
        Records: [key("seed", "s")],
        after: del.json.offsets,
        wait_ms: 2000,
      });
      assert.deepEqual(gone.json, { records: [], missing: [key("seed", "s")] });
    });

    await step("delete removes records and answers offsets like put", async () => {
      const del = await node.post("/records/delete", {
        records: [key("user:1", "settings"), key("never", "existed")],
      });
      assert.equal(del.status, 200, del.text);
      assert.deepEqual(
        new Set(Object.keys(del.json.offsets)),
        new Set([partitionOf("user:1", PARTITIONS), partitionOf("never", PARTITIONS)].map(String)),
      );
      const got = await node.post("/records/get", {
        records: [key("user:1", "settings"), key("user:1", "profile")],
        after: del.json.offsets,
        wait_ms: 2000,
      });
      assert.deepEqual(got.json.missing, [key("user:1", "settings")]);
      assert.equal(got.json.records.length, 1);
      assert.equal(got.json.records[0].sk, "profile");
    });

    await step("batch applies puts and deletes within one partition as one write", async () => {
      const seed = await node.post("/records/put", {
        records: [{ pk: "cart", sk: "old", data: "x" }],
      });
      assert.equal(seed.status, 200, seed.text);
      const batch = await node.post("/records/batch", {
        ops: [
          { op: "put", pk: "cart", sk: "apple", data: { qty: 1 } },
          { op: "put", pk: "cart", sk: "pear", data: { qty: 2 } },
          { op: "delete", pk: "cart", sk: "old" },
        ],
      });
      assert.equal(batch.status, 200, batch.text);
      const p = String(partitionOf("cart", PARTITIONS));
      assert.deepEqual(Object.keys(batch.json.offsets), [p]);
      assert.equal(batch.json.offsets[p], seed.json.offsets[p] + 1);
      const got = await node.post("/records/get", {
        records: [key("cart", "apple"), key("cart", "pear"), key("cart", "old")],
        after: batch.json.offsets,
        wait_ms: 2000,
      });
      assert.deepEqual(got.json.records.map((r: { data: unknown }) => r.data), [{ qty: 1 }, {
        qty: 2,
      }]);
      assert.deepEqual(got.json.missing, [key("cart", "old")]);
      // Every op of the batch carries the batch's one offset.
      for (const r of got.json.records) assert.equal(r.version, batch.json.offsets[p]);
    });

    await step("list returns one pk's records in sk order and next null at the end", async () => {
      const put = await node.post("/records/put", {
        records: ["b", "a", "c"].map((sk) => ({ pk: "letters", sk, data: sk })).concat([
          { pk: "letters2", sk: "a", data: "other pk" },
        ]),
      });
      const list = await node.post("/records/list", {
        pk: "letters",
        after: put.json.offsets,
        wait_ms: 2000,
      });
      assert.equal(list.status, 200, list.text);
      assert.equal(list.headers.get("content-type"), "application/json");
      assert.deepEqual(list.json.records.map((r: { sk: string }) => r.sk), ["a", "b", "c"]);
      assert.equal(list.json.next, null);
      for (const r of list.json.records) assert.deepEqual(Object.keys(r).sort(), RECORD_FIELDS);
    });

    await step("write offsets passed as after make get and list see the write", async () => {
      // Many writes in flight, each read immediately with its own token.
      const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const put = await node.post("/records/put", {
          records: [{ pk: `ryw:${i}`, sk: "k", data: i }],
        });
        assert.equal(put.status, 200, put.text);
        const [got, list] = await Promise.all([
          node.post("/records/get", {
            records: [key(`ryw:${i}`, "k")],
            after: put.json.offsets,
            wait_ms: 3000,
          }),
          node.post("/records/list", { pk: `ryw:${i}`, after: put.json.offsets, wait_ms: 3000 }),
        ]);
        return { i, got, list };
      }));
      for (const { i, got, list } of results) {
        assert.equal(got.status, 200, got.text);
        assert.equal(got.json.records[0]?.data, i);
        assert.equal(list.status, 200, list.text);
        assert.equal(list.json.records[0]?.data, i);
      }
    });

    await step(
      "an after offset far ahead fails with 504 not_caught_up once wait_ms passes",
      async () => {
        const p = String(partitionOf("user:1", PARTITIONS));
        const started = performance.now();
        const got = await node.post("/records/get", {
          records: [key("user:1", "profile")],
          after: { [p]: 1_000_000 },
          wait_ms: 150,
        });
        const waited = performance.now() - started;
        assertProblem(got, 504, "not_caught_up");
        assert.ok(waited >= 140, `waited ${waited} ms`);
        assert.ok(waited < 2500, `waited ${waited} ms`);
        const list = await node.post("/records/list", {
          pk: "user:1",
          after: { [p]: 1_000_000 },
          wait_ms: 50,
        });
        assertProblem(list, 504, "not_caught_up");
        const noWait = await node.post("/records/get", {
          records: [key("user:1", "profile")],
          after: { [p]: 1_000_000 },
        });
        assertProblem(noWait, 504, "not_caught_up");
      },
    );

    await step("wait_ms above WAIT_MS_MAX is refused with 400", async () => {
      const got = await node.post("/records/get", {
        records: [key("user:1", "profile")],
        after: { "0": 0 },
        wait_ms: 3001,
      });
      assertProblem(got, 400, "invalid_wait");
      assert.equal(got.json.limit, 3000);
      const list = await node.post("/records/list", { pk: "user:1", wait_ms: 3001 });
      assertProblem(list, 400, "invalid_wait");
    });

    await step(
      "/internal/status reports offset, chain and records of every partition",
      async () => {
        const status = await node.internal("/internal/status");
        assert.equal(status.status, 200);
        assert.equal(status.headers.get("content-type"), "application/json");
        assert.equal(status.json.node.partitions, PARTITIONS);
        assert.equal(status.json.node.log, "embedded");
        assert.equal(status.json.node.ready, true);
        const partitions = status.json.partitions;
        assert.deepEqual(
          Object.keys(partitions),
          Array.from({ length: PARTITIONS }, (_, p) => String(p)),
        );
        let records = 0;
        for (const [p, s] of Object.entries<Record<string, unknown>>(partitions)) {
          assert.equal(s.state, "serving", `partition ${p}`);
          assert.ok(Number.isSafeInteger(s.offset) && (s.offset as number) >= -1);
          assert.match(s.chain as string, /^[0-9a-f]{64}$/);
          if (s.offset === -1) assert.equal(s.chain, "0".repeat(64));
          records += s.records as number;
        }
        // user:1/profile, user:2/profile, host, cart×2, letters×3, letters2, ryw×20.
        assert.equal(records, 29);
        const cart = partitions[String(partitionOf("cart", PARTITIONS))];
        assert.ok(cart.offset >= 2);
      },
    );

    await step(
      "/metrics exposes request durations, apply lag, offsets and error counters",
      async () => {
        // Indexing null data throws: the condition counts as false and as an error.
        const erroring = await node.post("/records/put", {
          records: [{ pk: "err", sk: "e", data: 1, if: "data[0] == 1" }],
        });
        assert.equal(erroring.status, 200, erroring.text);
        const check = await node.post("/records/get", {
          records: [key("err", "e")],
          after: erroring.json.offsets,
          wait_ms: 2000,
        });
        assert.deepEqual(check.json.missing, [key("err", "e")]);

        const metrics = await node.internal("/metrics");
        assert.equal(metrics.status, 200);
        assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
        const text = metrics.text;
        const sample = (pattern: string) => {
          const m = new RegExp(`^${pattern} (\\S+)$`, "m").exec(text);
          assert.ok(m !== null, `no sample ${pattern} in\n${text}`);
          return Number(m[1]);
        };
        assert.ok(
          sample('firescroll_api_request_duration_seconds_count\\{route="put",status="200"\\}') >=
            5,
        );
        assert.ok(
          sample('firescroll_api_request_duration_seconds_count\\{route="get",status="200"\\}') >=
            5,
        );
        assert.ok(
          sample('firescroll_api_request_duration_seconds_count\\{route="get",status="504"\\}') >=
            2,
        );
        assert.ok(
          sample(
            'firescroll_api_request_duration_seconds_bucket\\{route="list",status="200",le="\\+Inf"\\}',
          ) >= 1,
        );
        assert.ok(sample("firescroll_apply_lag_seconds_count") >= 5);
        const status = await partitionStatus(node);
        for (let p = 0; p < PARTITIONS; p++) {
          assert.equal(
            sample(`firescroll_apply_offset\\{partition="${p}"\\}`),
            status[String(p)]!.offset,
            `partition ${p}`,
          );
        }
        assert.ok(sample("firescroll_apply_condition_errors_total") >= 1);
        assert.match(text, /^# TYPE firescroll_apply_poison_messages_total counter$/m);
        assert.doesNotMatch(text, /status="500"/);
      },
    );

    await step("the internal port answers 404 for unknown paths and 405 for writes", async () => {
      assertProblem(await node.internal("/internal/nope"), 404, "not_found");
      const post = await fetch(`${node.internalUrl}/metrics`, { method: "POST", body: "x" });
      await post.body?.cancel();
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
    });
  });
});
