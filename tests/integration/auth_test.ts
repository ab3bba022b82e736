/**
 * Bearer tokens on the public API (read, write) and the cluster secret on `/internal/*`.
 */
import assert from "node:assert/strict";
import { assertProblem, partitionStatus, stepper, withNode } from "./_node.ts";

const SECRET = "cluster-secret-0123456789";
const READ = { authorization: "Bearer r1" };
const WRITE = { authorization: "Bearer w1" };

const put = { records: [{ pk: "auth", sk: "k", data: "v" }] };
const get = { records: [{ pk: "auth", sk: "k" }] };

Deno.test("tokens gate the public API and the cluster secret gates /internal/*", async (t) => {
  await withNode({
    env: { API_TOKENS_READ: "r1", API_TOKENS_WRITE: "w1", CLUSTER_SECRET: SECRET },
  }, async (node) => {
    const step = stepper(t, node);

    await step("the node does not warn that the API or the internal port is open", () => {
      const events = node.logs.events().map((e) => e.event);
      assert.ok(!events.includes("api_open"));
      assert.ok(!events.includes("internal_open"));
    });

    await step("a request without a token is 401 unauthorized on every records route", async () => {
      for (const path of ["/records/put", "/records/delete", "/records/batch"]) {
        assertProblem(await node.post(path, put), 401, "unauthorized");
      }
      assertProblem(await node.post("/records/get", get), 401, "unauthorized");
      assertProblem(await node.post("/records/list", { pk: "auth" }), 401, "unauthorized");
    });

    await step("an unknown or malformed token is 401 unauthorized", async () => {
      assertProblem(
        await node.post("/records/get", get, { authorization: "Bearer r2" }),
        401,
        "unauthorized",
      );
      assertProblem(
        await node.post("/records/get", get, { authorization: "Basic cjE6" }),
        401,
        "unauthorized",
      );
      assertProblem(
        await node.post("/records/get", get, { authorization: "Bearer w1 extra" }),
        401,
        "unauthorized",
      );
    });

    await step("a read token may not write: 403 forbidden, and nothing is written", async () => {
      const before = await partitionStatus(node, SECRET);
      assertProblem(await node.post("/records/put", put, READ), 403, "forbidden");
      assertProblem(await node.post("/records/delete", get, READ), 403, "forbidden");
      assertProblem(
        await node.post("/records/batch", { ops: [{ op: "put", ...put.records[0] }] }, READ),
        403,
        "forbidden",
      );
      assert.deepEqual(await partitionStatus(node, SECRET), before);
    });

    await step("a read token reads", async () => {
      const got = await node.post("/records/get", get, READ);
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(got.json.missing, get.records);
      const list = await node.post("/records/list", { pk: "auth" }, READ);
      assert.equal(list.status, 200, list.text);
    });

    await step("a write token writes and reads", async () => {
      const written = await node.post("/records/put", put, WRITE);
      assert.equal(written.status, 200, written.text);
      const got = await node.post(
        "/records/get",
        { ...get, after: written.json.offsets, wait_ms: 2000 },
        WRITE,
      );
      assert.equal(got.status, 200, got.text);
      assert.equal(got.json.records[0].data, "v");
      const read = await node.post("/records/list", { pk: "auth" }, { authorization: "bearer r1" });
      assert.equal(read.status, 200, read.text);
      assert.equal(read.json.records.length, 1);
    });

    await step("health checks need no token", async () => {
      assert.equal((await node.request("/healthz")).status, 200);
      assert.equal((await node.request("/readyz")).status, 200);
    });

    await step("/internal/status needs the cluster secret as a bearer token", async () => {
      assertProblem(await node.internal("/internal/status"), 401, "unauthorized");
      assertProblem(
        await node.internal("/internal/status", { authorization: "Bearer w1" }),
        401,
        "unauthorized",
      );
      const ok = await node.internal("/internal/status", { authorization: `Bearer ${SECRET}` });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.node.ready, true);
    });

    await step("/metrics stays scrapable without the secret", async () => {
      const metrics = await node.internal("/metrics");
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /route="put",status="403"/);
      assert.match(metrics.text, /route="get",status="401"/);
    });
  });
});
