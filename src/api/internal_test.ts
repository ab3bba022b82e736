/**
 * The internal port called in-process: `/metrics`, `/internal/status`, the proxy targets
 * `/internal/records/{get,list}`, peer snapshots, and the cluster secret. Handlers come only from
 * `inProcessApi` in tests/_helpers.ts.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../keys/mod.ts";
import { assertProblem, type InProcessApi, withApi } from "../../tests/_helpers.ts";
import { VERSION } from "../version.ts";

const PARTITIONS = 4;
const SECRET = "cluster-secret-0123456789";
const AUTH = { authorization: `Bearer ${SECRET}` };

/** Puts `records` through the public API and returns the offsets token. */
async function put(
  api: InProcessApi,
  records: { pk: string; sk: string; data: unknown }[],
): Promise<Record<string, number>> {
  const result = await api.request("POST", "/records/put", { records });
  assert.equal(result.status, 200, result.text);
  return result.json.offsets;
}

Deno.test("internalHandler() serves /metrics as Prometheus text, with the API's requests counted", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    await put(api, [{ pk: "m", sk: "a", data: 1 }]);
    await api.request("POST", "/records/get", { records: [{ pk: "m", sk: "a" }] });
    await api.request("POST", "/records/get", "{");
    await api.request("GET", "/nowhere");
    await api.request("GET", "/records/put");
    for (const method of ["GET", "HEAD"]) {
      const metrics = await api.internal(method, "/metrics");
      assert.equal(metrics.status, 200);
      assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      const text = metrics.text;
      assert.match(text, /^# TYPE firescroll_api_request_duration_seconds histogram$/m);
      const count = (labels: string) => {
        const match = new RegExp(
          `^firescroll_api_request_duration_seconds_count\\{${labels}\\} (\\d+)$`,
          "m",
        ).exec(text);
        return match === null ? 0 : Number(match[1]);
      };
      assert.equal(count('route="put",status="200"'), 1);
      assert.equal(count('route="get",status="200"'), 1);
      assert.equal(count('route="get",status="400"'), 1);
      // Unknown routes and wrong methods share one label value: no label per path a client sends.
      assert.equal(count('route="other",status="404"'), 1);
      assert.equal(count('route="other",status="405"'), 1);
      assert.match(text, /^firescroll_log_appends_total 1$/m);
    }
  });
});

Deno.test("internalHandler() reports the node, its members and its partitions on /internal/status", async () => {
  await withApi(
    { PARTITIONS: String(PARTITIONS), INSTANCE_ID: "node-a", REGION: "ams" },
    async (api) => {
      const token = await put(api, [{ pk: "s", sk: "a", data: 1 }, { pk: "s", sk: "b", data: 2 }]);
      const p = String(partitionOf("s", PARTITIONS));
      // Read after the write is applied, so the status shows it.
      const got = await api.request("POST", "/records/get", {
        records: [{ pk: "s", sk: "a" }],
        after: token,
        wait_ms: 2000,
      });
      assert.equal(got.status, 200, got.text);
      const status = await api.internal("GET", "/internal/status");
      assert.equal(status.status, 200, status.text);
      assert.equal(status.headers.get("content-type"), "application/json");
      assert.deepEqual(status.json.node, {
        id: "node-a",
        region: "ams",
        replica_group: "default",
        namespace: "default",
        log: "embedded",
        partitions: PARTITIONS,
        ready: true,
      });
      assert.equal(status.json.version, VERSION);
      assert.deepEqual(status.json.members, []);
      assert.deepEqual(Object.keys(status.json.partitions).sort(), ["0", "1", "2", "3"]);
      for (const [partition, s] of Object.entries(status.json.partitions)) {
        const { state, offset, chain, digest, records } = s as Record<string, unknown>;
        assert.equal(state, "serving", partition);
        assert.match(String(chain), /^[0-9a-f]{64}$/);
        assert.match(String(digest), /^[0-9a-f]{32}$/);
        if (partition === p) {
          assert.equal(offset, token[p]);
          assert.equal(records, 2);
        } else {
          assert.equal(offset, -1);
          assert.equal(records, 0);
        }
      }
    },
  );
});

Deno.test("internalHandler() answers proxied gets and lists from local files", async (t) => {
  await withApi({ PARTITIONS: String(PARTITIONS), WAIT_MS_MAX: "2000" }, async (api) => {
    const token = await put(api, [
      { pk: "x", sk: "1", data: { n: 1 } },
      { pk: "x", sk: "2", data: { n: 2 } },
      { pk: "y", sk: "1", data: "y" },
    ]);

    await t.step("get answers one line per key: the record JSON, or null", async () => {
      const result = await api.internal("POST", "/internal/records/get", {
        records: [{ pk: "y", sk: "1" }, { pk: "x", sk: "9" }, { pk: "x", sk: "2" }],
        after: token,
        wait_ms: 2000,
      });
      assert.equal(result.status, 200, result.text);
      assert.equal(result.headers.get("content-type"), "application/x-ndjson");
      const lines = result.text.split("\n").map((line) => JSON.parse(line));
      assert.equal(lines.length, 3);
      assert.equal(lines[0].data, "y");
      assert.equal(lines[1], null);
      assert.deepEqual([lines[2].pk, lines[2].sk, lines[2].data], ["x", "2", { n: 2 }]);
      assert.equal(lines[2].version, token[String(partitionOf("x", PARTITIONS))]);
    });

    await t.step("list answers what the public list answers", async () => {
      const body = { pk: "x", limit: 1, after: token, wait_ms: 2000 };
      const internal = await api.internal("POST", "/internal/records/list", body);
      assert.equal(internal.status, 200, internal.text);
      assert.equal(internal.headers.get("content-type"), "application/json");
      const public_ = await api.request("POST", "/records/list", body);
      assert.equal(internal.text, public_.text);
      assert.equal(internal.json.next, "1");
    });

    await t.step("bodies are validated as on the public port", async () => {
      const bad = await api.internal("POST", "/internal/records/get", { records: [] });
      assertProblem(bad, 400, "no_records");
      const unknown = await api.internal("POST", "/internal/records/list", { pk: "x", ttl: 1 });
      assertProblem(unknown, 400, "unknown_field");
      assertProblem(await api.internal("POST", "/internal/records/list", "{"), 400, "invalid_json");
    });

    await t.step("an after offset not applied is 504 not_caught_up", async () => {
      const p = String(partitionOf("x", PARTITIONS));
      const result = await api.internal("POST", "/internal/records/get", {
        records: [{ pk: "x", sk: "1" }],
        after: { [p]: token[p]! + 100 },
        wait_ms: 20,
      });
      assertProblem(result, 504, "not_caught_up");
    });
  });
});

Deno.test("internalHandler() routes by method and path", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    const cases: [string, string, string][] = [
      ["GET", "/internal/records/get", "POST"],
      ["PUT", "/internal/records/list", "POST"],
      ["POST", "/metrics", "GET, HEAD"],
      ["POST", "/internal/status", "GET, HEAD"],
      ["DELETE", "/internal/snapshots/0", "GET, HEAD"],
    ];
    for (const [method, path, allow] of cases) {
      const body = method === "GET" ? undefined : "{}";
      const result = await api.internal(method, path, body);
      assertProblem(result, 405, "method_not_allowed");
      assert.equal(result.headers.get("allow"), allow, `${method} ${path}`);
    }
    for (const path of ["/", "/healthz", "/records/get", "/internal", "/internal/statuses"]) {
      assertProblem(await api.internal("GET", path), 404, "not_found");
    }
    for (const path of ["/internal/snapshots/", "/internal/snapshots/x", "/internal/snapshots/4"]) {
      assertProblem(await api.internal("GET", path), 404, "not_found");
    }
  });
});

Deno.test("internalHandler() streams a compacted snapshot of a served partition", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    const token = await put(api, [{ pk: "snap", sk: "a", data: 1 }]);
    const p = String(partitionOf("snap", PARTITIONS));
    await api.request("POST", "/records/get", {
      records: [{ pk: "snap", sk: "a" }],
      after: token,
      wait_ms: 2000,
    });
    const response = await api.internal("GET", `/internal/snapshots/${p}`);
    assert.equal(response.status, 200, response.text.slice(0, 200));
    assert.equal(response.headers.get("content-type"), "application/octet-stream");
    const manifest = JSON.parse(response.headers.get("x-firescroll-manifest")!);
    assert.equal(manifest.partition, Number(p));
    assert.equal(manifest.offset, token[p]);
    assert.equal(manifest.namespace, "default");
    assert.equal(Number(response.headers.get("content-length")), manifest.bytes);
    // The temporary copy is deleted once sent.
    const left: string[] = [];
    for await (const entry of Deno.readDir(`${api.dir}/default`)) {
      if (entry.name.startsWith(".peer-")) left.push(entry.name);
    }
    assert.deepEqual(left, []);
  });
});

Deno.test("internalHandler() sends one snapshot at a time: 503 snapshot_busy for another", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    const both = await Promise.all([
      api.internal("GET", "/internal/snapshots/0"),
      api.internal("GET", "/internal/snapshots/1"),
    ]);
    const busy = both.filter((r) => r.status !== 200);
    assert.equal(busy.length, 1, both.map((r) => `${r.status} ${r.text.slice(0, 200)}`).join("\n"));
    assertProblem(busy[0]!, 503, "snapshot_busy");
    // Once the first is sent, the next is served.
    assert.equal((await api.internal("GET", "/internal/snapshots/1")).status, 200);
  });
});

Deno.test("internalHandler() requires the cluster secret on /internal/* but not on /metrics", async (t) => {
  await withApi({ PARTITIONS: String(PARTITIONS), CLUSTER_SECRET: SECRET }, async (api) => {
    const routes: [string, string, unknown][] = [
      ["GET", "/internal/status", undefined],
      ["POST", "/internal/records/get", { records: [{ pk: "a", sk: "b" }] }],
      ["POST", "/internal/records/list", { pk: "a" }],
      ["GET", "/internal/snapshots/0", undefined],
    ];
    await t.step("no token, a wrong token or another scheme is 401 unauthorized", async () => {
      for (const [method, path, body] of routes) {
        for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: SECRET }]) {
          assertProblem(await api.internal(method, path, body, headers), 401, "unauthorized");
        }
      }
    });
    await t.step("the secret as a bearer token is let through", async () => {
      for (const [method, path, body] of routes) {
        const result = await api.internal(method, path, body, AUTH);
        assert.equal(result.status, 200, `${method} ${path}: ${result.text.slice(0, 200)}`);
      }
    });
    await t.step("/metrics stays scrapable without the secret", async () => {
      assert.equal((await api.internal("GET", "/metrics")).status, 200);
    });
  });
});
