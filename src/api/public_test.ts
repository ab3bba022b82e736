/**
 * The public API called in-process (`handler(new Request(…))`): routing, parsing, limits, auth,
 * error mapping, and the put → get → list → delete paths, against a real node over the embedded
 * log in a temporary folder. Handlers come only from `inProcessApi` in tests/_helpers.ts.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../keys/mod.ts";
import {
  assertProblem,
  type HttpResult,
  type InProcessApi,
  inProcessApi,
  withApi,
} from "../../tests/_helpers.ts";

const PARTITIONS = 4;
const BODY_BYTES_MAX = 8192;
const DATA_BYTES_MAX = 1024;
const MESSAGE_BYTES_MAX = 5120;
const RECORDS_PER_REQUEST_MAX = 10;
const CONDITION_BYTES_MAX = 64;
const WAIT_MS_MAX = 1000;
const LIST_LIMIT_MAX = 50;

/** Small limits, so requests at and just past each are cheap to build. */
const LIMITS = {
  PARTITIONS: String(PARTITIONS),
  BODY_BYTES_MAX: String(BODY_BYTES_MAX),
  DATA_BYTES_MAX: String(DATA_BYTES_MAX),
  MESSAGE_BYTES_MAX: String(MESSAGE_BYTES_MAX),
  RECORDS_PER_REQUEST_MAX: String(RECORDS_PER_REQUEST_MAX),
  CONDITION_BYTES_MAX: String(CONDITION_BYTES_MAX),
  WAIT_MS_MAX: String(WAIT_MS_MAX),
  LIST_LIMIT_MAX: String(LIST_LIMIT_MAX),
};

const RECORD_FIELDS = ["created_at", "data", "pk", "sk", "updated_at", "version"];

const rec = (fields: Record<string, unknown> = {}) => ({ pk: "p", sk: "s", data: 1, ...fields });
const key = (pk: string, sk: string) => ({ pk, sk });

const PK_512 = "é".repeat(256); // 512 UTF-8 bytes
const PK_513 = "é".repeat(256) + "a";
const SK_1024 = "€".repeat(341) + "a"; // 1024 UTF-8 bytes
const SK_1025 = "€".repeat(341) + "ab";

/** Two pks in different partitions, and those partitions sorted. */
function spanningPks(): { pks: string[]; partitions: number[] } {
  const first = "span:0";
  const p0 = partitionOf(first, PARTITIONS);
  for (let i = 1; i < 100; i++) {
    const pk = `span:${i}`;
    const p = partitionOf(pk, PARTITIONS);
    if (p !== p0) return { pks: [first, pk], partitions: [p0, p].sort((a, b) => a - b) };
  }
  throw new Error("no two partitions found");
}

const post = (api: InProcessApi, path: string, body: unknown, headers?: HeadersInit) =>
  api.request("POST", path, body, headers);

/** Writes through `path` and asserts 200; returns the offsets token. */
async function write(
  api: InProcessApi,
  path: string,
  body: unknown,
): Promise<Record<string, number>> {
  const result = await post(api, path, body);
  assert.equal(result.status, 200, result.text);
  return result.json.offsets;
}

/** Reads keys once everything written up to `after` is applied. */
async function read(
  api: InProcessApi,
  keys: { pk: string; sk: string }[],
  after: Record<string, number>,
): Promise<HttpResult> {
  const result = await post(api, "/records/get", { records: keys, after, wait_ms: WAIT_MS_MAX });
  assert.equal(result.status, 200, result.text);
  return result;
}

/** The applied offset of every partition, from `/internal/status`. */
async function appliedOffsets(api: InProcessApi): Promise<Record<string, number>> {
  const status = await api.internal("GET", "/internal/status");
  assert.equal(status.status, 200, status.text);
  const out: Record<string, number> = {};
  for (const [p, s] of Object.entries(status.json.partitions)) {
    out[p] = (s as { offset: number }).offset;
  }
  return out;
}

// --- Routing -----------------------------------------------------------------------------------

Deno.test("publicHandler() routes every route by method and path", async (t) => {
  await withApi(LIMITS, async (api) => {
    await t.step("GET and HEAD /healthz and /readyz answer 200 JSON", async () => {
      for (const method of ["GET", "HEAD"]) {
        const health = await api.request(method, "/healthz");
        assert.equal(health.status, 200);
        assert.equal(health.headers.get("content-type"), "application/json");
        assert.deepEqual(health.json, { status: "ok" });
        const ready = await api.request(method, "/readyz");
        assert.equal(ready.status, 200);
        assert.deepEqual(ready.json, { status: "ready" });
      }
    });

    await t.step("every POST route answers 200 application/json to a valid body", async () => {
      const bodies: [string, unknown][] = [
        ["/records/put", { records: [rec({ pk: "route" })] }],
        ["/records/delete", { records: [key("route", "gone")] }],
        ["/records/batch", { ops: [{ op: "put", ...rec({ pk: "route", sk: "b" }) }] }],
        ["/records/get", { records: [key("route", "s")] }],
        ["/records/list", { pk: "route" }],
      ];
      for (const [path, body] of bodies) {
        const result = await post(api, path, body);
        assert.equal(result.status, 200, `${path}: ${result.text}`);
        assert.equal(result.headers.get("content-type"), "application/json", path);
      }
    });

    await t.step("a query string does not change the route", async () => {
      assert.equal((await api.request("GET", "/healthz?verbose=1")).status, 200);
      const got = await post(api, "/records/get?x=y", { records: [key("route", "none")] });
      assert.equal(got.status, 200, got.text);
    });

    await t.step("a wrong method is 405 method_not_allowed with Allow", async () => {
      const cases: [string, string, string][] = [
        ["GET", "/records/put", "POST"],
        ["GET", "/records/get", "POST"],
        ["HEAD", "/records/get", "POST"],
        ["PUT", "/records/list", "POST"],
        ["DELETE", "/records/delete", "POST"],
        ["PATCH", "/records/batch", "POST"],
        ["OPTIONS", "/records/put", "POST"],
        ["POST", "/healthz", "GET, HEAD"],
        ["POST", "/readyz", "GET, HEAD"],
        ["PUT", "/readyz", "GET, HEAD"],
        ["DELETE", "/healthz", "GET, HEAD"],
      ];
      for (const [method, path, allow] of cases) {
        const body = method === "GET" || method === "HEAD" ? undefined : "{}";
        const result = await api.request(method, path, body);
        assertProblem(result, 405, "method_not_allowed");
        assert.equal(result.headers.get("allow"), allow, `${method} ${path}`);
      }
    });

    await t.step("an unknown path is 404 not_found, whatever the method", async () => {
      const cases: [string, string][] = [
        ["GET", "/"],
        ["GET", "/metrics"],
        ["GET", "/internal/status"],
        ["POST", "/internal/records/get"],
        ["GET", "/records"],
        ["POST", "/records/upsert"],
        ["POST", "/records/put/"],
        ["POST", "/Records/put"],
        ["PUT", "/nothing"],
      ];
      for (const [method, path] of cases) {
        const body = method === "GET" ? undefined : { records: [rec()] };
        const result = await api.request(method, path, body);
        assertProblem(result, 404, "not_found");
        assert.equal(result.headers.get("allow"), null, `${method} ${path}`);
      }
    });
  });
});

// --- Parsing -----------------------------------------------------------------------------------

interface BadCase {
  /** What the request gets wrong, as a sentence fragment. */
  readonly name: string;
  readonly path: string;
  /** A string or bytes are sent as they are; anything else as JSON. */
  readonly body: unknown;
  readonly status: number;
  readonly code: string;
  readonly check?: (problem: Record<string, unknown>) => void;
}

const span = spanningPks();

// One row per case reads better than what the formatter would make of it.
// deno-fmt-ignore
const BAD: BadCase[] = [
  // Bodies that are not the right JSON at all.
  { name: "malformed JSON", path: "/records/put", body: '{"records": [', status: 400, code: "invalid_json" },
  { name: "trailing garbage after the JSON", path: "/records/get", body: '{"records":[]} x', status: 400, code: "invalid_json" },
  { name: "an empty body", path: "/records/get", body: "", status: 400, code: "invalid_json" },
  { name: "a whitespace body", path: "/records/list", body: "  \n ", status: 400, code: "invalid_json" },
  { name: "a body that is not UTF-8", path: "/records/put", body: new Uint8Array([0x7b, 0xff, 0x7d]), status: 400, code: "invalid_json" },
  { name: "a member named twice in a put", path: "/records/put", body: '{"records":[{"pk":"p","sk":"s","data":{"a":1,"a":2}}]}', status: 400, code: "invalid_json" },
  { name: "a member named twice through an escape", path: "/records/batch", body: '{"ops":[{"op":"put","pk":"p","sk":"s","data":{"a":1,"\\u0061":2}}]}', status: 400, code: "invalid_json" },
  { name: "data nested deeper than 512 levels", path: "/records/put", body: `{"records":[{"pk":"p","sk":"s","data":${"[".repeat(520)}${"]".repeat(520)}}]}`, status: 400, code: "invalid_json" },
  { name: "a JSON array body", path: "/records/put", body: "[1, 2]", status: 400, code: "invalid_request" },
  { name: "a JSON string body", path: "/records/delete", body: '"records"', status: 400, code: "invalid_request" },
  { name: "a JSON null body", path: "/records/list", body: "null", status: 400, code: "invalid_request" },
  { name: "a JSON number body", path: "/records/batch", body: "5", status: 400, code: "invalid_request" },
  // Missing fields and wrong types.
  { name: "a body without records", path: "/records/put", body: {}, status: 400, code: "invalid_request" },
  { name: "a get without records", path: "/records/get", body: { after: {} }, status: 400, code: "invalid_request" },
  { name: "a batch without ops", path: "/records/batch", body: {}, status: 400, code: "invalid_request" },
  { name: "records that is not an array", path: "/records/put", body: { records: { pk: "p" } }, status: 400, code: "invalid_request" },
  { name: "records that is null", path: "/records/delete", body: { records: null }, status: 400, code: "invalid_request" },
  { name: "a record that is not an object", path: "/records/put", body: { records: [1] }, status: 400, code: "invalid_request" },
  { name: "a get key that is an array", path: "/records/get", body: { records: [["p", "s"]] }, status: 400, code: "invalid_request" },
  { name: "a batch op that is not an object", path: "/records/batch", body: { ops: ["put"] }, status: 400, code: "invalid_request" },
  { name: "ops that is not an array", path: "/records/batch", body: { ops: "put" }, status: 400, code: "invalid_request" },
  { name: "a non-boolean reverse", path: "/records/list", body: { pk: "p", reverse: "yes" }, status: 400, code: "invalid_request" },
  { name: "a non-boolean if_stop", path: "/records/list", body: { pk: "p", if_stop: 1 }, status: 400, code: "invalid_request" },
  { name: "a numeric pk", path: "/records/put", body: { records: [rec({ pk: 7 })] }, status: 400, code: "invalid_key" },
  { name: "a null sk", path: "/records/put", body: { records: [rec({ sk: null })] }, status: 400, code: "invalid_key" },
  { name: "a missing pk", path: "/records/delete", body: { records: [{ sk: "s" }] }, status: 400, code: "invalid_key" },
  { name: "a missing sk", path: "/records/get", body: { records: [{ pk: "p" }] }, status: 400, code: "invalid_key" },
  { name: "a list without pk", path: "/records/list", body: {}, status: 400, code: "invalid_key" },
  { name: "a numeric start_after", path: "/records/list", body: { pk: "p", start_after: 5 }, status: 400, code: "invalid_key" },
  { name: "an object end_before", path: "/records/list", body: { pk: "p", end_before: {} }, status: 400, code: "invalid_key" },
  { name: "a put without data", path: "/records/put", body: { records: [{ pk: "p", sk: "s" }] }, status: 400, code: "missing_data" },
  { name: "a batch put without data", path: "/records/batch", body: { ops: [{ op: "put", pk: "p", sk: "s" }] }, status: 400, code: "missing_data" },
  // Unknown fields are refused, not ignored.
  { name: "an unknown top-level field", path: "/records/put", body: { records: [rec()], ttl: 5 }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "ttl") },
  { name: "an unknown record field", path: "/records/put", body: { records: [rec({ ttl: 5 })] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "ttl") },
  { name: "data on a delete", path: "/records/delete", body: { records: [rec()] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "data") },
  { name: "data on a batch delete", path: "/records/batch", body: { ops: [{ op: "delete", ...rec() }] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "data") },
  { name: "records on a batch", path: "/records/batch", body: { records: [rec()] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "records") },
  { name: "after on a put", path: "/records/put", body: { records: [rec()], after: {} }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "after") },
  { name: "an unknown list field", path: "/records/list", body: { pk: "p", prefix: "x" }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "prefix") },
  { name: "data in a get key", path: "/records/get", body: { records: [rec()] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "data") },
  { name: "a misspelled wait_ms", path: "/records/get", body: { records: [key("p", "s")], waitMs: 5 }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "waitMs") },
  // Keys.
  { name: "an empty pk", path: "/records/put", body: { records: [rec({ pk: "" })] }, status: 400, code: "invalid_key" },
  { name: "an empty pk on list", path: "/records/list", body: { pk: "" }, status: 400, code: "invalid_key" },
  { name: "a pk with a lone surrogate", path: "/records/put", body: '{"records":[{"pk":"\\ud800","sk":"s","data":1}]}', status: 400, code: "invalid_key" },
  { name: "an sk with a lone surrogate", path: "/records/get", body: '{"records":[{"pk":"p","sk":"a\\udc00"}]}', status: 400, code: "invalid_key" },
  // Batches.
  { name: "a batch spanning partitions", path: "/records/batch", body: { ops: span.pks.map((pk) => ({ op: "put", ...rec({ pk }) })) }, status: 400, code: "batch_spans_partitions", check: (p) => assert.deepEqual(p.partitions, span.partitions) },
  { name: "an unknown batch op", path: "/records/batch", body: { ops: [{ op: "upsert", ...rec() }] }, status: 400, code: "invalid_op" },
  { name: "a batch op without op", path: "/records/batch", body: { ops: [rec()] }, status: 400, code: "invalid_op" },
  { name: "an empty records array", path: "/records/put", body: { records: [] }, status: 400, code: "no_records" },
  { name: "an empty Records array on delete", path: "/records/delete", body: { Records: [] }, status: 400, code: "no_records" },
  { name: "an empty get", path: "/records/get", body: { records: [] }, status: 400, code: "no_records" },
  { name: "an empty batch", path: "/records/batch", body: { ops: [] }, status: 400, code: "no_records" },
  // Conditions.
  { name: "an unparseable condition", path: "/records/put", body: { records: [rec({ if: "pk ==" })] }, status: 400, code: "invalid_condition" },
  { name: "an empty condition", path: "/records/delete", body: { records: [{ pk: "p", sk: "s", if: "" }] }, status: 400, code: "invalid_condition" },
  { name: "a non-boolean condition", path: "/records/put", body: { records: [rec({ if: "data.n + 1" })] }, status: 400, code: "invalid_condition" },
  { name: "a function-call condition", path: "/records/put", body: { records: [rec({ if: "now() > 0" })] }, status: 400, code: "invalid_condition" },
  { name: "a transform condition", path: "/records/batch", body: { ops: [{ op: "put", ...rec({ if: "sk|upper == 'S'" }) }] }, status: 400, code: "invalid_condition" },
  { name: "a non-string condition", path: "/records/put", body: { records: [rec({ if: true })] }, status: 400, code: "invalid_condition" },
  { name: "an invalid list filter", path: "/records/list", body: { pk: "p", if: "data.n +" }, status: 400, code: "invalid_condition" },
  { name: "a condition naming an unknown identifier", path: "/records/put", body: { records: [rec({ if: "foo == 1" })] }, status: 400, code: "invalid_condition", check: (p) => {
    assert.equal(p.identifier, "foo");
    assert.ok(Array.isArray(p.allowed) && p.allowed.includes("data"), JSON.stringify(p.allowed));
  } },
  // Consistency tokens and list options.
  { name: "after that is an array", path: "/records/get", body: { records: [key("p", "s")], after: [1] }, status: 400, code: "invalid_after" },
  { name: "after that is a number", path: "/records/list", body: { pk: "p", after: 3 }, status: 400, code: "invalid_after" },
  { name: "after naming a partition out of range", path: "/records/get", body: { records: [key("p", "s")], after: { [String(PARTITIONS)]: 0 } }, status: 400, code: "invalid_after" },
  { name: "after naming a non-numeric partition", path: "/records/list", body: { pk: "p", after: { p0: 0 } }, status: 400, code: "invalid_after" },
  { name: "after naming a negative partition", path: "/records/list", body: { pk: "p", after: { "-1": 0 } }, status: 400, code: "invalid_after" },
  { name: "after with a string offset", path: "/records/get", body: { records: [key("p", "s")], after: { "0": "5" } }, status: 400, code: "invalid_after" },
  { name: "after with a fractional offset", path: "/records/list", body: { pk: "p", after: { "0": 1.5 } }, status: 400, code: "invalid_after" },
  { name: "after with an offset below -1", path: "/records/get", body: { records: [key("p", "s")], after: { "0": -2 } }, status: 400, code: "invalid_after" },
  { name: "a negative wait_ms", path: "/records/get", body: { records: [key("p", "s")], wait_ms: -1 }, status: 400, code: "invalid_wait" },
  { name: "a fractional wait_ms", path: "/records/get", body: { records: [key("p", "s")], wait_ms: 0.5 }, status: 400, code: "invalid_wait" },
  { name: "a string wait_ms", path: "/records/list", body: { pk: "p", wait_ms: "5" }, status: 400, code: "invalid_wait" },
  { name: "limit 0", path: "/records/list", body: { pk: "p", limit: 0 }, status: 400, code: "invalid_limit" },
  { name: "a string limit", path: "/records/list", body: { pk: "p", limit: "10" }, status: 400, code: "invalid_limit" },
  { name: "a fractional limit", path: "/records/list", body: { pk: "p", limit: 2.5 }, status: 400, code: "invalid_limit" },
];

Deno.test("publicHandler() refuses malformed bodies with a 4xx problem and writes nothing", async (t) => {
  await withApi(LIMITS, async (api) => {
    const before = await appliedOffsets(api);
    for (const c of BAD) {
      await t.step(`${c.path} refuses ${c.name} with ${c.status} ${c.code}`, async () => {
        const result = await post(api, c.path, c.body);
        assertProblem(result, c.status, c.code);
        c.check?.(result.json);
      });
    }
    await t.step(
      "a duplicate member in a read body is not refused (only writes store text)",
      async () => {
        const result = await post(
          api,
          "/records/get",
          '{"records":[{"pk":"p","sk":"s","sk":"t"}]}',
        );
        assert.equal(result.status, 200, result.text);
      },
    );
    await t.step("the seed's `Records` spelling is accepted", async () => {
      const result = await post(api, "/records/get", { Records: [key("p", "s")] });
      assert.equal(result.status, 200, result.text);
    });
    await t.step("nothing reached the log", async () => {
      assert.deepEqual(await appliedOffsets(api), before);
      const metrics = await api.internal("GET", "/metrics");
      assert.doesNotMatch(metrics.text, /^firescroll_log_appends_total [1-9]/m);
    });
  });
});

Deno.test("publicHandler() reads a streamed body of unknown length", async (t) => {
  await withApi(LIMITS, async (api) => {
    const streamOf = (chunks: Uint8Array[]) =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk === undefined) controller.close();
          else controller.enqueue(chunk);
        },
      });
    const encoder = new TextEncoder();

    await t.step("a JSON body split across chunks, even inside a character", async () => {
      const text = JSON.stringify({ records: [{ pk: "stream", sk: "é😀", data: "ü" }] });
      const bytes = encoder.encode(text);
      const cut = bytes.indexOf(0xf0) + 2; // inside the 4-byte emoji
      const put = await post(
        api,
        "/records/put",
        streamOf([bytes.slice(0, cut), bytes.slice(cut)]),
      );
      assert.equal(put.status, 200, put.text);
      const got = await read(api, [key("stream", "é😀")], put.json.offsets);
      assert.equal(got.json.records[0].data, "ü");
    });

    await t.step("an empty stream is 400 invalid_json", async () => {
      assertProblem(await post(api, "/records/get", streamOf([])), 400, "invalid_json");
    });

    await t.step("invalid UTF-8 in a stream is 400 invalid_json", async () => {
      const body = streamOf([encoder.encode('{"records":[{"pk":"'), new Uint8Array([0xc3, 0x28])]);
      assertProblem(await post(api, "/records/get", body), 400, "invalid_json");
    });

    await t.step("a stream that fails mid-body is 400 incomplete_body", async () => {
      let pulls = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulls++ === 2) controller.error(new Error("connection reset"));
          else controller.enqueue(encoder.encode('{"records":['));
        },
      });
      assertProblem(await post(api, "/records/put", body), 400, "incomplete_body");
    });

    await t.step(
      "a body with a declared length that fails mid-body is 400 incomplete_body",
      async () => {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(encoder.encode('{"records":['));
            controller.error(new Error("connection reset"));
          },
        });
        const result = await post(api, "/records/put", body, { "content-length": "100" });
        assertProblem(result, 400, "incomplete_body");
      },
    );
  });
});

// --- Limits ------------------------------------------------------------------------------------

Deno.test("publicHandler() accepts each limit exactly and refuses one past it", async (t) => {
  await withApi(LIMITS, async (api) => {
    const pad = (body: string, bytes: number) => body + " ".repeat(bytes - body.length);
    const getBody = JSON.stringify({ records: [key("p", "s")] });

    await t.step("BODY_BYTES_MAX: a body of exactly the limit is read", async () => {
      const result = await post(api, "/records/get", pad(getBody, BODY_BYTES_MAX));
      assert.equal(result.status, 200, result.text);
    });
    await t.step("BODY_BYTES_MAX: one byte more is 413 body_too_large with the limit", async () => {
      const result = await post(api, "/records/get", pad(getBody, BODY_BYTES_MAX + 1));
      assertProblem(result, 413, "body_too_large");
      assert.equal(result.json.limit, BODY_BYTES_MAX);
    });
    await t.step("BODY_BYTES_MAX: a declared length over the limit is refused unread", async () => {
      let pulled = false;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled = true;
          controller.close();
        },
      }, { highWaterMark: 0 });
      const result = await post(api, "/records/put", body, {
        "content-length": String(BODY_BYTES_MAX + 1),
      });
      assertProblem(result, 413, "body_too_large");
      assert.equal(pulled, false, "the body was read");
    });
    await t.step("BODY_BYTES_MAX: a stream is refused as soon as it passes the limit", async () => {
      let sent = 0;
      const chunk = new Uint8Array(1024).fill(0x20);
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          // Never ends: a handler that buffered the whole body would never answer.
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      assertProblem(await post(api, "/records/put", body), 413, "body_too_large");
      assert.ok(sent <= BODY_BYTES_MAX + 2 * chunk.length, `read ${sent} bytes`);
    });

    await t.step("DATA_BYTES_MAX counts the stored JSON text of data", async () => {
      // `"x…x"` with 1022 x is 1024 bytes of JSON text.
      const ok = await post(api, "/records/put", {
        records: [rec({ sk: "data", data: "x".repeat(DATA_BYTES_MAX - 2) })],
      });
      assert.equal(ok.status, 200, ok.text);
      const over = await post(api, "/records/put", {
        records: [rec({ sk: "data", data: "x".repeat(DATA_BYTES_MAX - 1) })],
      });
      assertProblem(over, 413, "data_too_large");
      assert.equal(over.json.limit, DATA_BYTES_MAX);
      assert.equal(over.json.bytes, DATA_BYTES_MAX + 1);
      const batch = await post(api, "/records/batch", {
        ops: [{ op: "put", ...rec({ data: { v: "x".repeat(DATA_BYTES_MAX) } }) }],
      });
      assertProblem(batch, 413, "data_too_large");
    });

    await t.step("MESSAGE_BYTES_MAX bounds one partition's share of a write", async () => {
      const records = Array.from(
        { length: 6 },
        (_, i) => rec({ pk: "msg", sk: `s${i}`, data: "x".repeat(1000) }),
      );
      const result = await post(api, "/records/put", { records });
      assertProblem(result, 413, "message_too_large");
      assert.equal(result.json.limit, MESSAGE_BYTES_MAX);
      assert.equal(result.json.partition, partitionOf("msg", PARTITIONS));
      const fits = await post(api, "/records/put", { records: records.slice(0, 4) });
      assert.equal(fits.status, 200, fits.text);
    });

    await t.step("RECORDS_PER_REQUEST_MAX on put, delete, get and batch", async () => {
      const n = (count: number) => Array.from({ length: count }, (_, i) => rec({ sk: `n${i}` }));
      const keys = (count: number) => n(count).map(({ pk, sk }) => key(pk, sk));
      const ops = (count: number) => n(count).map((r) => ({ op: "put", ...r }));
      const atMax: [string, unknown][] = [
        ["/records/put", { records: n(RECORDS_PER_REQUEST_MAX) }],
        ["/records/delete", { records: keys(RECORDS_PER_REQUEST_MAX) }],
        ["/records/get", { records: keys(RECORDS_PER_REQUEST_MAX) }],
        ["/records/batch", { ops: ops(RECORDS_PER_REQUEST_MAX) }],
      ];
      for (const [path, body] of atMax) {
        const result = await post(api, path, body);
        assert.equal(result.status, 200, `${path}: ${result.text}`);
      }
      const over: [string, unknown][] = [
        ["/records/put", { records: n(RECORDS_PER_REQUEST_MAX + 1) }],
        ["/records/delete", { records: keys(RECORDS_PER_REQUEST_MAX + 1) }],
        ["/records/get", { records: keys(RECORDS_PER_REQUEST_MAX + 1) }],
        ["/records/batch", { ops: ops(RECORDS_PER_REQUEST_MAX + 1) }],
      ];
      for (const [path, body] of over) {
        const result = await post(api, path, body);
        assertProblem(result, 400, "too_many_records");
        assert.equal(result.json.limit, RECORDS_PER_REQUEST_MAX, path);
      }
    });

    await t.step("keys: pk up to 512 UTF-8 bytes, sk up to 1024", async () => {
      const put = await post(api, "/records/put", { records: [rec({ pk: PK_512, sk: SK_1024 })] });
      assert.equal(put.status, 200, put.text);
      const got = await read(api, [key(PK_512, SK_1024)], put.json.offsets);
      assert.equal(got.json.records.length, 1);
      const list = await post(api, "/records/list", { pk: PK_512, sk_prefix: SK_1024 });
      assert.equal(list.status, 200, list.text);
      const refused: [string, unknown][] = [
        ["/records/put", { records: [rec({ pk: PK_513 })] }],
        ["/records/put", { records: [rec({ sk: SK_1025 })] }],
        ["/records/get", { records: [key(PK_513, "s")] }],
        ["/records/delete", { records: [key("p", SK_1025)] }],
        ["/records/list", { pk: PK_513 }],
        ["/records/list", { pk: "p", sk_prefix: SK_1025 }],
        ["/records/list", { pk: "p", start_after: SK_1025 }],
        ["/records/list", { pk: "p", end_before: SK_1025 }],
      ];
      for (const [path, body] of refused) {
        assertProblem(await post(api, path, body), 400, "invalid_key");
      }
    });

    await t.step("CONDITION_BYTES_MAX counts UTF-8 bytes of `if`", async () => {
      const condition = (n: number) => `sk == '${"x".repeat(n - 8)}'`; // n bytes
      const ok = await post(api, "/records/put", {
        records: [rec({ sk: "cond", if: condition(CONDITION_BYTES_MAX) })],
      });
      assert.equal(ok.status, 200, ok.text);
      const over = await post(api, "/records/put", {
        records: [rec({ sk: "cond", if: condition(CONDITION_BYTES_MAX + 1) })],
      });
      assertProblem(over, 400, "condition_too_long");
      assert.equal(over.json.limit, CONDITION_BYTES_MAX);
      // 30 two-byte characters: under the limit in UTF-16 units, over it in UTF-8 bytes.
      const filter = await post(api, "/records/list", { pk: "p", if: `sk == '${"é".repeat(30)}'` });
      assertProblem(filter, 400, "condition_too_long");
    });

    await t.step("LIST_LIMIT_MAX bounds limit", async () => {
      const ok = await post(api, "/records/list", { pk: "p", limit: LIST_LIMIT_MAX });
      assert.equal(ok.status, 200, ok.text);
      const over = await post(api, "/records/list", { pk: "p", limit: LIST_LIMIT_MAX + 1 });
      assertProblem(over, 400, "invalid_limit");
      assert.equal(over.json.limit, LIST_LIMIT_MAX);
    });

    await t.step("WAIT_MS_MAX bounds wait_ms", async () => {
      const ok = await post(api, "/records/list", { pk: "p", wait_ms: WAIT_MS_MAX });
      assert.equal(ok.status, 200, ok.text);
      const over = await post(api, "/records/get", {
        records: [key("p", "s")],
        wait_ms: WAIT_MS_MAX + 1,
      });
      assertProblem(over, 400, "invalid_wait");
      assert.equal(over.json.limit, WAIT_MS_MAX);
    });
  });
});

// --- Authorization -----------------------------------------------------------------------------

Deno.test("publicHandler() gates records routes by read and write tokens", async (t) => {
  await withApi({ API_TOKENS_READ: "r1,r2", API_TOKENS_WRITE: "w1" }, async (api) => {
    const READ = { authorization: "Bearer r1" };
    const WRITE = { authorization: "Bearer w1" };
    const put = { records: [{ pk: "auth", sk: "k", data: "v" }] };
    const get = { records: [key("auth", "k")] };
    const writes: [string, unknown][] = [
      ["/records/put", put],
      ["/records/delete", get],
      ["/records/batch", { ops: [{ op: "put", ...put.records[0] }] }],
    ];
    const reads: [string, unknown][] = [["/records/get", get], ["/records/list", { pk: "auth" }]];

    await t.step("no token is 401 unauthorized on every records route", async () => {
      for (const [path, body] of [...writes, ...reads]) {
        assertProblem(await post(api, path, body), 401, "unauthorized");
      }
    });
    await t.step("an unknown or malformed token is 401 unauthorized", async () => {
      for (const header of ["Bearer r3", "Basic cjE6", "Bearer w1 extra", "Bearer", "w1"]) {
        assertProblem(
          await post(api, "/records/get", get, { authorization: header }),
          401,
          "unauthorized",
        );
      }
    });
    await t.step("a read token on a write route is 403 forbidden and writes nothing", async () => {
      const before = await appliedOffsets(api);
      for (const [path, body] of writes) {
        assertProblem(await post(api, path, body, READ), 403, "forbidden");
      }
      assert.deepEqual(await appliedOffsets(api), before);
    });
    await t.step("auth is checked before the body: a bad body with no token is 401", async () => {
      assertProblem(await post(api, "/records/put", "{"), 401, "unauthorized");
      assertProblem(await post(api, "/records/put", "{", READ), 403, "forbidden");
    });
    await t.step("read tokens read; the scheme is case-insensitive", async () => {
      for (const [path, body] of reads) {
        assert.equal((await post(api, path, body, READ)).status, 200, path);
        assert.equal((await post(api, path, body, { authorization: "bearer r2" })).status, 200);
      }
    });
    await t.step("a write token writes and reads", async () => {
      for (const [path, body] of [...writes, ...reads]) {
        const result = await post(api, path, body, WRITE);
        assert.equal(result.status, 200, `${path}: ${result.text}`);
      }
    });
    await t.step("health routes need no token", async () => {
      assert.equal((await api.request("GET", "/healthz")).status, 200);
      assert.equal((await api.request("GET", "/readyz")).status, 200);
    });
  });
});

Deno.test("publicHandler() with only write tokens refuses reads without one", async () => {
  await withApi({ API_TOKENS_WRITE: "w1" }, async (api) => {
    assertProblem(
      await post(api, "/records/get", { records: [key("a", "b")] }),
      401,
      "unauthorized",
    );
    const ok = await post(api, "/records/get", { records: [key("a", "b")] }, {
      authorization: "Bearer w1",
    });
    assert.equal(ok.status, 200, ok.text);
  });
});

// --- Error mapping -----------------------------------------------------------------------------

/** The documented error table of docs/api.md: code → status. */
async function documentedErrors(): Promise<Map<string, number>> {
  const text = await Deno.readTextFile(new URL("../../docs/api.md", import.meta.url));
  const section = text.slice(text.indexOf("## Errors"), text.indexOf("## Internal port"));
  const out = new Map<string, number>();
  for (const match of section.matchAll(/^\|\s*(\d{3})\s*\|\s*`([a-z_]+)`/gm)) {
    out.set(match[2]!, Number(match[1]));
  }
  assert.ok(out.size > 20, `parsed ${out.size} codes from docs/api.md`);
  return out;
}

/** How one documented code is produced: a request to a node with LIMITS and `env`. */
interface Producer {
  /** A node of its own with LIMITS and this environment; absent: the shared node. */
  readonly env?: Record<string, string>;
  produce(api: InProcessApi): Promise<HttpResult>;
}

const P = (path: string, body: unknown, headers?: HeadersInit): Producer => ({
  produce: (api) => post(api, path, body, headers),
});

/** A get of ("p", "s") that waits for an offset its partition will not reach. */
const unreachable = (waitMs: number) => ({
  records: [key("p", "s")],
  after: { [String(partitionOf("p", PARTITIONS))]: 1_000_000 },
  wait_ms: waitMs,
});

const PRODUCERS: Record<string, Producer> = {
  invalid_json: P("/records/put", "{"),
  incomplete_body: {
    produce: (api) =>
      post(
        api,
        "/records/put",
        new ReadableStream({ pull: (c) => c.error(new Error("connection reset")) }),
      ),
  },
  invalid_request: P("/records/put", []),
  unknown_field: P("/records/get", { records: [key("p", "s")], limit: 1 }),
  no_records: P("/records/put", { records: [] }),
  too_many_records: P("/records/get", {
    records: Array.from({ length: RECORDS_PER_REQUEST_MAX + 1 }, () => key("p", "s")),
  }),
  invalid_key: P("/records/get", { records: [key("", "s")] }),
  missing_data: P("/records/put", { records: [key("p", "s")] }),
  invalid_op: P("/records/batch", { ops: [{ op: "get", pk: "p", sk: "s" }] }),
  invalid_condition: P("/records/put", { records: [rec({ if: "(" })] }),
  condition_too_long: P("/records/list", { pk: "p", if: "x".repeat(CONDITION_BYTES_MAX + 1) }),
  batch_spans_partitions: P("/records/batch", {
    ops: span.pks.map((pk) => ({ op: "delete", pk, sk: "s" })),
  }),
  invalid_after: P("/records/get", { records: [key("p", "s")], after: "0" }),
  invalid_wait: P("/records/list", { pk: "p", wait_ms: WAIT_MS_MAX + 1 }),
  invalid_limit: P("/records/list", { pk: "p", limit: -1 }),
  invalid_ttl: P("/records/put", { records: [rec({ ttl_ms: 0 })] }),
  unauthorized: { env: { API_TOKENS_READ: "r" }, ...P("/records/list", { pk: "p" }) },
  forbidden: {
    env: { API_TOKENS_READ: "r", API_TOKENS_WRITE: "w" },
    ...P("/records/put", { records: [rec()] }, { authorization: "Bearer r" }),
  },
  not_found: P("/records/scan", { pk: "p" }),
  method_not_allowed: { produce: (api) => api.request("GET", "/records/list") },
  body_too_large: P("/records/put", " ".repeat(BODY_BYTES_MAX + 1)),
  data_too_large: P("/records/put", { records: [rec({ data: "x".repeat(DATA_BYTES_MAX) })] }),
  message_too_large: P("/records/put", {
    records: Array.from({ length: 6 }, (_, i) => rec({ sk: `${i}`, data: "x".repeat(1000) })),
  }),
  partition_unavailable: {
    // A read parked on `after` when the node starts to stop: it fails at once, not at wait_ms.
    env: {},
    async produce(api) {
      const parked = post(api, "/records/get", unreachable(WAIT_MS_MAX));
      await new Promise((r) => setTimeout(r, 20));
      api.node.drain();
      return await parked;
    },
  },
  log_overloaded: {
    // One append may wait; the appends of one event-loop turn wait together.
    env: { LOG_QUEUE_MAX: "1" },
    async produce(api) {
      const results = await Promise.all(
        Array.from(
          { length: 8 },
          (_, i) => post(api, "/records/put", { records: [rec({ sk: `${i}` })] }),
        ),
      );
      for (const r of results) assert.ok(r.status === 200 || r.status === 503, r.text);
      assert.ok(results.some((r) => r.status === 200), "one append was accepted");
      return results.find((r) => r.status !== 200) ?? results[0]!;
    },
  },
  too_many_waiters: {
    env: { WAITERS_MAX: "1" },
    async produce(api) {
      // Both at once: whichever parks first holds the one place, the other is refused.
      const both = await Promise.all([
        post(api, "/records/get", unreachable(200)),
        post(api, "/records/get", unreachable(200)),
      ]);
      const statuses = both.map((r) => r.status).sort();
      assert.deepEqual(statuses, [503, 504], both.map((r) => r.text).join("\n"));
      return both.find((r) => r.status === 503)!;
    },
  },
  not_caught_up: P("/records/get", unreachable(30)),
  watch_disabled: { env: { WATCH_RETAIN_SEC: "0" }, ...P("/records/watch", { pk: "p" }) },
  history_disabled: {
    env: { HISTORY_RETAIN_SEC: "0" },
    ...P("/records/history", { pk: "p", sk: "s" }),
  },
  invalid_as_of: P("/records/get", { records: [key("p", "s")], as_of_ms: -1 }),
  history_expired: {
    env: { HISTORY_RETAIN_SEC: "1", WATCH_RETAIN_SEC: "1" },
    async produce(api) {
      await post(api, "/records/put", { records: [rec()] });
      await new Promise((r) => setTimeout(r, 1100));
      // Applying this one prunes the first change: the log from before it is gone.
      await post(api, "/records/put", { records: [rec()] });
      return await post(api, "/records/get", { records: [key("p", "s")], as_of_ms: 1 });
    },
  },
  too_many_watchers: {
    env: { WATCHERS_MAX: "1" },
    async produce(api) {
      const open = await api.stream("POST", "/records/watch", { pk: "p" });
      assert.equal(open.status, 200);
      const refused = await post(api, "/records/watch", { pk: "q" });
      await open.body!.cancel();
      return refused;
    },
  },
};

/**
 * Documented codes not produced here, and why: each needs a failure this in-process node cannot
 * be made to have without a fake.
 */
const NOT_PRODUCED: Record<string, string> = {
  log_unavailable:
    "the log must fail or time out a commit (tests/integration/kafka_faults_test.ts)",
  internal_error: "a bug: any 500 fails every test through withApi",
  snapshot_busy: "internal port only (internal_test.ts)",
  partition_count_mismatch: "never an answer: the node does not start",
  kafka_auth_failed: "never an answer: the node does not start",
  snapshot_rejected: "never an answer: a restore tries another snapshot",
  read_only: "a time-travel replica restores from S3 (tests/integration/time_travel_test.ts)",
};

Deno.test("publicHandler() answers every documented error code with its status as problem+json", async (t) => {
  const documented = await documentedErrors();
  await t.step("every documented code has a producer here, and nothing else does", () => {
    const expected = [...documented.keys()].filter((code) => !(code in NOT_PRODUCED)).sort();
    assert.deepEqual(Object.keys(PRODUCERS).sort(), expected);
  });
  const shared = await inProcessApi(LIMITS);
  try {
    for (const [code, producer] of Object.entries(PRODUCERS)) {
      const status = documented.get(code)!;
      await t.step(`${code}: ${status}`, async () => {
        const api = producer.env === undefined
          ? shared
          : await inProcessApi({ ...LIMITS, ...producer.env });
        try {
          const result = await producer.produce(api);
          assertProblem(result, status, code);
          assert.equal(result.json.title.length > 0, true);
          assert.equal(api.serverErrors, 0);
        } finally {
          if (api !== shared) await api.close();
        }
      });
    }
  } finally {
    await shared.close();
  }
});

// --- Reads and writes --------------------------------------------------------------------------

Deno.test("publicHandler() put → get → list → delete with after tokens", async (t) => {
  await withApi(LIMITS, async (api) => {
    const before = Date.now();
    const put = await post(api, "/records/put", {
      records: [
        { pk: "user:1", sk: "profile", data: { name: "Ada", tags: ["a", "b"] } },
        { pk: "user:2", sk: "profile", data: "plain string" },
        { pk: "host:example.com", sk: "route", data: [1, 2.5, null, true] },
        { pk: "user:1", sk: "settings", data: null },
      ],
    });
    const after = Date.now();
    const offsets: Record<string, number> = put.json.offsets;

    await t.step("put answers one offset per partition written", () => {
      assert.equal(put.status, 200, put.text);
      const expected = ["user:1", "user:2", "host:example.com"]
        .map((pk) => String(partitionOf(pk, PARTITIONS)));
      assert.deepEqual(Object.keys(offsets).sort(), [...new Set(expected)].sort());
      for (const offset of Object.values(offsets)) {
        assert.ok(Number.isSafeInteger(offset) && offset >= 0);
      }
    });

    await t.step("get answers records in request order and the missing keys", async () => {
      const got = await read(api, [
        key("host:example.com", "route"),
        key("user:1", "nope"),
        key("user:1", "settings"),
        key("user:1", "profile"),
        key("nobody", "profile"),
        key("user:2", "profile"),
      ], offsets);
      assert.deepEqual(
        got.json.records.map((r: { pk: string; sk: string }) => `${r.pk}/${r.sk}`),
        ["host:example.com/route", "user:1/settings", "user:1/profile", "user:2/profile"],
      );
      assert.deepEqual(got.json.missing, [key("user:1", "nope"), key("nobody", "profile")]);
      assert.deepEqual(got.json.records.map((r: { data: unknown }) => r.data), [
        [1, 2.5, null, true],
        null,
        { name: "Ada", tags: ["a", "b"] },
        "plain string",
      ]);
      for (const record of got.json.records) {
        assert.deepEqual(Object.keys(record).sort(), RECORD_FIELDS);
        assert.equal(record.version, offsets[String(partitionOf(record.pk, PARTITIONS))]);
        assert.equal(record.created_at, record.updated_at);
        assert.ok(record.created_at >= before - 1000 && record.created_at <= after + 1000);
      }
    });

    await t.step("an overwrite keeps created_at and moves version and updated_at", async () => {
      const old = (await read(api, [key("user:2", "profile")], offsets)).json.records[0];
      await new Promise((r) => setTimeout(r, 5));
      const again = await write(api, "/records/put", {
        records: [{ pk: "user:2", sk: "profile", data: { v: 2 } }],
      });
      const now = (await read(api, [key("user:2", "profile")], again)).json.records[0];
      assert.deepEqual(now.data, { v: 2 });
      assert.equal(now.created_at, old.created_at);
      assert.ok(now.updated_at > old.updated_at);
      assert.equal(now.version, again[String(partitionOf("user:2", PARTITIONS))]);
      assert.ok(now.version > old.version);
    });

    await t.step("data comes back with every number token as sent", async () => {
      const text = '{"records":[{"pk":"num","sk":"n","data":{"big":9007199254740993,"e":1E5,' +
        '"tiny":1e-400,"huge":1e400,"z":-0,"f":1.50}}]}';
      const token = await write(api, "/records/put", text);
      const got = await read(api, [key("num", "n")], token);
      assert.match(
        got.text,
        /"data":\{"big":9007199254740993,"e":1E5,"tiny":1e-400,"huge":1e400,"z":-0,"f":1.50\}/,
      );
    });

    await t.step("after entries for partitions a read does not touch are ignored", async () => {
      const other = [...Array(PARTITIONS).keys()].find((p) =>
        p !== partitionOf("user:1", PARTITIONS)
      )!;
      const got = await post(api, "/records/get", {
        records: [key("user:1", "profile")],
        after: { [String(other)]: 1_000_000 },
      });
      assert.equal(got.status, 200, got.text);
      assert.equal(got.json.records.length, 1);
    });

    await t.step(
      "an after offset not yet applied is 504 not_caught_up, with or without wait",
      async () => {
        const p = String(partitionOf("user:1", PARTITIONS));
        const ahead = { [p]: offsets[p]! + 1_000 };
        const now = await post(api, "/records/get", {
          records: [key("user:1", "profile")],
          after: ahead,
        });
        assertProblem(now, 504, "not_caught_up");
        const started = performance.now();
        const waited = await post(api, "/records/list", {
          pk: "user:1",
          after: ahead,
          wait_ms: 50,
        });
        assertProblem(waited, 504, "not_caught_up");
        assert.ok(performance.now() - started >= 45, "the read waited wait_ms");
      },
    );

    await t.step("delete removes records; deleting an absent key is not an error", async () => {
      const token = await write(api, "/records/delete", {
        records: [key("user:1", "settings"), key("user:1", "never-there")],
      });
      const got = await read(api, [key("user:1", "settings"), key("user:1", "profile")], token);
      assert.deepEqual(got.json.missing, [key("user:1", "settings")]);
      assert.equal(got.json.records[0].sk, "profile");
    });

    await t.step("the `Records` spelling works on put, get and delete", async () => {
      const token = await write(api, "/records/put", {
        Records: [{ pk: "seed", sk: "s", data: 1 }],
      });
      const got = await post(api, "/records/get", {
        Records: [key("seed", "s")],
        after: token,
        wait_ms: WAIT_MS_MAX,
      });
      assert.equal(got.json.records[0].data, 1);
      const gone = await write(api, "/records/delete", { Records: [key("seed", "s")] });
      assert.deepEqual((await read(api, [key("seed", "s")], gone)).json.missing, [
        key("seed", "s"),
      ]);
    });

    await t.step("a batch applies puts and deletes atomically at one offset", async () => {
      const seeded = await write(api, "/records/put", {
        records: [{ pk: "batch", sk: "old", data: 0 }],
      });
      const p = String(partitionOf("batch", PARTITIONS));
      const token = await write(api, "/records/batch", {
        ops: [
          { op: "put", pk: "batch", sk: "a", data: 1 },
          { op: "delete", pk: "batch", sk: "old" },
          { op: "put", pk: "batch", sk: "b", data: 2 },
        ],
      });
      assert.deepEqual(Object.keys(token), [p]);
      assert.equal(token[p], seeded[p]! + 1);
      const got = await read(
        api,
        [key("batch", "a"), key("batch", "old"), key("batch", "b")],
        token,
      );
      assert.deepEqual(got.json.records.map((r: { version: number }) => r.version), [
        token[p],
        token[p],
      ]);
      assert.deepEqual(got.json.missing, [key("batch", "old")]);
    });
  });
});

Deno.test("publicHandler() lists a partition key in UTF-8 order, page by page", async (t) => {
  await withApi(LIMITS, async (api) => {
    const sks = ["", "a", "a\u0000", "b", "b1", "b2", "é", "日本", "😀"];
    // Shuffled on the way in; RECORDS_PER_REQUEST_MAX per put.
    const shuffled = [...sks].reverse();
    let token: Record<string, number> = {};
    for (let i = 0; i < shuffled.length; i += RECORDS_PER_REQUEST_MAX) {
      token = await write(api, "/records/put", {
        records: shuffled.slice(i, i + RECORDS_PER_REQUEST_MAX).map((sk) => ({
          pk: "L",
          sk,
          data: sk,
        })),
      });
    }
    const list = async (body: Record<string, unknown>) => {
      const result = await post(api, "/records/list", {
        pk: "L",
        after: token,
        wait_ms: WAIT_MS_MAX,
        ...body,
      });
      assert.equal(result.status, 200, result.text);
      return result.json as { records: { sk: string; data: unknown }[]; next: string | null };
    };
    const page = async (body: Record<string, unknown>) => {
      const out: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 20; i++) {
        const result = await list(cursor === null ? body : { ...body, start_after: cursor });
        out.push(...result.records.map((r) => r.sk));
        if (result.next === null) return out;
        assert.equal(result.next, result.records.at(-1)!.sk, "next is the last sk returned");
        cursor = result.next;
      }
      throw new Error("more than 20 pages");
    };

    await t.step("all records in byte order, with data", async () => {
      const all = await list({});
      assert.deepEqual(all.records.map((r) => r.sk), sks);
      assert.deepEqual(all.records.map((r) => r.data), sks);
      assert.equal(all.next, null);
    });
    await t.step("limit pages with next = the last sk; start_after continues", async () => {
      const first = await list({ limit: 4 });
      assert.deepEqual(first.records.map((r) => r.sk), sks.slice(0, 4));
      assert.equal(first.next, sks[3]);
      assert.deepEqual(await page({ limit: 2 }), sks);
      assert.deepEqual(await page({ limit: 2, reverse: true }), sks.toReversed());
    });
    await t.step("sk_prefix includes the exact match", async () => {
      assert.deepEqual(await page({ sk_prefix: "b", limit: 1 }), ["b", "b1", "b2"]);
      assert.deepEqual(await page({ sk_prefix: "a" }), ["a", "a\u0000"]);
      assert.deepEqual(await page({ sk_prefix: "zzz" }), []);
    });
    await t.step("start_after and end_before are exclusive and follow the direction", async () => {
      assert.deepEqual(await page({ start_after: "a", end_before: "é" }), [
        "a\u0000",
        "b",
        "b1",
        "b2",
      ]);
      assert.deepEqual(
        await page({ start_after: "é", end_before: "a", reverse: true }),
        ["b2", "b1", "b", "a\u0000"],
      );
    });
    await t.step("if filters rows; if_stop ends the scan at the first row that fails", async () => {
      assert.deepEqual(await page({ if: "sk >= 'b' && sk < 'c'" }), ["b", "b1", "b2"]);
      const stopped = await list({ if: "sk < 'b'", if_stop: true });
      assert.deepEqual(stopped.records.map((r) => r.sk), ["", "a", "a\u0000"]);
      assert.equal(stopped.next, null);
    });
    await t.step("another pk, or a pk never written, lists nothing", async () => {
      assert.deepEqual((await post(api, "/records/list", { pk: "l" })).json, {
        records: [],
        next: null,
      });
    });
  });
});

Deno.test("publicHandler() list limit defaults to 100, capped by LIST_LIMIT_MAX", async () => {
  await withApi(LIMITS, async (api) => {
    let token: Record<string, number> = {};
    for (let i = 0; i < LIST_LIMIT_MAX + 10; i += RECORDS_PER_REQUEST_MAX) {
      token = await write(api, "/records/put", {
        records: Array.from(
          { length: RECORDS_PER_REQUEST_MAX },
          (_, j) => ({ pk: "many", sk: String(i + j).padStart(3, "0"), data: 1 }),
        ),
      });
    }
    const result = await post(api, "/records/list", {
      pk: "many",
      after: token,
      wait_ms: WAIT_MS_MAX,
    });
    assert.equal(result.status, 200, result.text);
    assert.equal(result.json.records.length, LIST_LIMIT_MAX);
    assert.equal(result.json.next, String(LIST_LIMIT_MAX - 1).padStart(3, "0"));
  });
});

// --- Conditions --------------------------------------------------------------------------------

Deno.test("publicHandler() judges `if` at apply time and answers 200 either way", async (t) => {
  await withApi(LIMITS, async (api) => {
    const get = async (pk: string, sk: string, token: Record<string, number>) =>
      (await read(api, [key(pk, sk)], token)).json.records[0] ?? null;

    await t.step("pk == null inserts only when absent", async () => {
      const first = await write(api, "/records/put", {
        records: [{ pk: "c", sk: "ins", data: 1, if: "pk == null" }],
      });
      assert.equal((await get("c", "ins", first)).data, 1);
      const second = await write(api, "/records/put", {
        records: [{ pk: "c", sk: "ins", data: 2, if: "pk == null" }],
      });
      const record = await get("c", "ins", second);
      assert.equal(record.data, 1, "the second put's condition was false");
      assert.equal(record.version, first[String(partitionOf("c", PARTITIONS))]);
    });

    await t.step("_version == N compares and sets", async () => {
      const token = await write(api, "/records/put", {
        records: [{ pk: "c", sk: "cas", data: 0 }],
      });
      const version = (await get("c", "cas", token)).version;
      const stale = await write(api, "/records/put", {
        records: [{ pk: "c", sk: "cas", data: "stale", if: `_version == ${version - 1}` }],
      });
      assert.equal((await get("c", "cas", stale)).data, 0);
      const fresh = await write(api, "/records/put", {
        records: [{ pk: "c", sk: "cas", data: "fresh", if: `_version == ${version}` }],
      });
      assert.equal((await get("c", "cas", fresh)).data, "fresh");
    });

    await t.step("a delete's condition guards it", async () => {
      await write(api, "/records/put", { records: [{ pk: "c", sk: "del", data: { keep: true } }] });
      const kept = await write(api, "/records/delete", {
        records: [{ pk: "c", sk: "del", if: "data.keep == false" }],
      });
      assert.notEqual(await get("c", "del", kept), null);
      const gone = await write(api, "/records/delete", {
        records: [{ pk: "c", sk: "del", if: "data.keep == true" }],
      });
      assert.equal(await get("c", "del", gone), null);
    });

    await t.step("records of one put see the earlier records of the same put", async () => {
      const token = await write(api, "/records/put", {
        records: [
          { pk: "c", sk: "seq", data: 1 },
          { pk: "c", sk: "seq", data: 2, if: "data == 1" },
          { pk: "c", sk: "seq", data: 3, if: "data == 1" },
        ],
      });
      assert.equal((await get("c", "seq", token)).data, 2);
    });

    await t.step("a batch with one false condition applies nothing", async () => {
      const token = await write(api, "/records/batch", {
        ops: [
          { op: "put", pk: "c", sk: "b1", data: 1 },
          { op: "put", pk: "c", sk: "b2", data: 2, if: "pk != null" },
        ],
      });
      const got = await read(api, [key("c", "b1"), key("c", "b2")], token);
      assert.deepEqual(got.json.records, []);
      const applied = await write(api, "/records/batch", {
        ops: [
          { op: "put", pk: "c", sk: "b1", data: 1 },
          { op: "put", pk: "c", sk: "b2", data: 2, if: "pk == null" },
        ],
      });
      assert.equal(
        (await read(api, [key("c", "b1"), key("c", "b2")], applied)).json.records.length,
        2,
      );
    });

    await t.step("the apply counts false conditions in /metrics", async () => {
      const metrics = await api.internal("GET", "/metrics");
      const match = /^firescroll_apply_condition_false_total (\d+)/m.exec(metrics.text);
      assert.ok(match !== null && Number(match[1]) >= 4, metrics.text.slice(0, 200));
    });
  });
});

Deno.test("publicHandler() /readyz turns 503 and parked reads fail once the node drains", async () => {
  await withApi(LIMITS, async (api) => {
    const parked = post(api, "/records/get", unreachable(WAIT_MS_MAX));
    await new Promise((r) => setTimeout(r, 20));
    const started = performance.now();
    api.node.drain();
    const result = await parked;
    assertProblem(result, 503, "partition_unavailable");
    assert.ok(performance.now() - started < WAIT_MS_MAX / 2, "failed at once, not after wait_ms");
    const ready = await api.request("GET", "/readyz");
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.json, { status: "not_ready" });
    assert.equal((await api.request("GET", "/healthz")).status, 200);
  });
});

Deno.test("publicHandler() handing over: writes and reads with after go to the successor, plain reads are answered here", async () => {
  const seen: { path: string; body: string; authorization: string | null }[] = [];
  const successor = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (r) => {
      const { pathname } = new URL(r.url);
      seen.push({
        path: pathname,
        body: await r.text(),
        authorization: r.headers.get("authorization"),
      });
      return new Response('{"from":"successor"}', {
        headers: { "content-type": "application/json", "retry-after": "1" },
      });
    },
  );
  const forwarding: { target: string | null; writes: boolean } = { target: null, writes: true };
  const api = await inProcessApi({}, { forwarding });
  let stopped = false;
  try {
    const offsets = await write(api, "/records/put", { records: [rec({ pk: "a", sk: "s" })] });
    forwarding.target = `http://127.0.0.1:${successor.addr.port}`;

    // Writes, of every route: passed on as sent, with the client's token, answered as answered.
    const writes = [
      ["/records/put", { records: [rec({ pk: "b", sk: "s" })] }],
      ["/records/delete", { records: [key("a", "s")] }],
      ["/records/batch", { ops: [{ op: "put", ...rec({ pk: "c", sk: "s" }) }] }],
    ] as const;
    for (const [path, body] of writes) {
      const result = await post(api, path, body, { authorization: "Bearer t" });
      assert.equal(result.status, 200, result.text);
      assert.deepEqual(result.json, { from: "successor" });
      assert.equal(result.headers.get("retry-after"), "1");
      assert.deepEqual(seen.at(-1), {
        path,
        body: JSON.stringify(body),
        authorization: "Bearer t",
      });
    }
    assert.equal(seen.length, 3);

    // A plain read is answered here, from the files as they were (the delete went elsewhere).
    const plain = await post(api, "/records/get", { records: [key("a", "s")] });
    assert.equal(plain.status, 200, plain.text);
    assert.deepEqual(plain.json.records.map((r: { pk: string }) => r.pk), ["a"]);
    const list = await post(api, "/records/list", { pk: "a" });
    assert.equal(list.status, 200, list.text);
    assert.equal(seen.length, 3, "plain reads never reach the successor");

    // Reads that wait for offsets go to the successor, which applies from now on.
    for (
      const [path, body] of [
        ["/records/get", { records: [key("a", "s")], after: offsets, wait_ms: 10 }],
        ["/records/list", { pk: "a", after: offsets }],
      ] as const
    ) {
      const result = await post(api, path, body);
      assert.deepEqual(result.json, { from: "successor" }, `${path} ${result.text}`);
      assert.equal(seen.at(-1)?.path, path);
    }
    // Invalid input is refused here as ever (bad JSON never reaches the successor).
    assertProblem(await post(api, "/records/get", "{"), 400, "invalid_json");
    assert.equal(seen.length, 5);

    // The successor gone: 503, never a 500 or a write appended here.
    await successor.shutdown();
    stopped = true;
    assertProblem(
      await post(api, "/records/put", { records: [rec({ pk: "d", sk: "s" })] }),
      503,
      "log_unavailable",
    );
    assertProblem(
      await post(api, "/records/get", { records: [key("a", "s")], after: offsets }),
      503,
      "partition_unavailable",
    );
    forwarding.target = null;
    const after = await post(api, "/records/get", { records: [key("d", "s")] });
    assert.deepEqual(after.json.records, [], "the refused write was not appended here");
    // With a log any process may produce to (Kafka), writes are still appended here.
    forwarding.target = "http://127.0.0.1:9";
    forwarding.writes = false;
    await write(api, "/records/put", { records: [rec({ pk: "e", sk: "s" })] });
    assert.equal(api.serverErrors, 0);
  } finally {
    if (!stopped) await successor.shutdown();
    await api.close();
  }
});

Deno.test("publicHandler() a read with after already waiting when a hand-over begins is answered by the successor when its wait runs out", async () => {
  const successor = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    return new Response('{"from":"successor"}', {
      headers: { "content-type": "application/json" },
    });
  });
  const forwarding: { target: string | null; writes: boolean } = { target: null, writes: true };
  const api = await inProcessApi({}, { forwarding });
  try {
    const offsets = await write(api, "/records/put", { records: [rec({ pk: "a", sk: "s" })] });
    const [p, o] = Object.entries(offsets)[0]!;
    // An offset this node has not applied (nor will: it stops applying when it hands over).
    const waiting = post(api, "/records/get", {
      records: [key("a", "s")],
      after: { [p]: o + 5 },
      wait_ms: 300,
    });
    await new Promise((r) => setTimeout(r, 50));
    forwarding.target = `http://127.0.0.1:${successor.addr.port}`;
    const result = await waiting;
    assert.equal(result.status, 200, result.text);
    assert.deepEqual(result.json, { from: "successor" });
    // Without a hand-over the same wait is 504, as ever.
    forwarding.target = null;
    assertProblem(
      await post(api, "/records/get", {
        records: [key("a", "s")],
        after: { [p]: o + 5 },
        wait_ms: 50,
      }),
      504,
      "not_caught_up",
    );
  } finally {
    await successor.shutdown();
    await api.close();
  }
});
