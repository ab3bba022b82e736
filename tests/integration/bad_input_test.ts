/**
 * Bad requests: each one is a 4xx problem+json with a stable `code`, and none of them writes
 * anything to the log.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { assertProblem, partitionStatus, stepper, withNode } from "./_node.ts";

const PARTITIONS = 4;
const BODY_BYTES_MAX = 8192;
const ENV = {
  PARTITIONS: String(PARTITIONS),
  BODY_BYTES_MAX: String(BODY_BYTES_MAX),
  MESSAGE_BYTES_MAX: "5120",
  DATA_BYTES_MAX: "1024",
  RECORDS_PER_REQUEST_MAX: "10",
  CONDITION_BYTES_MAX: "64",
  WAIT_MS_MAX: "1000",
  LIST_LIMIT_MAX: "50",
};

interface Case {
  /** What the request gets wrong, as a sentence fragment. */
  readonly name: string;
  readonly path: string;
  /** A string is sent as is; anything else as JSON. */
  readonly body: unknown;
  readonly status: number;
  readonly code: string;
  readonly check?: (problem: Record<string, unknown>) => void;
}

const rec = (fields: Record<string, unknown> = {}) => ({ pk: "p", sk: "s", data: 1, ...fields });

/** Two pks in different partitions and the sorted partitions. */
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

const span = spanningPks();
const PK_513 = "é".repeat(256) + "a"; // 513 UTF-8 bytes, 257 UTF-16 units
const SK_1025 = "€".repeat(341) + "ab"; // 1025 UTF-8 bytes
const PK_512 = "é".repeat(256);
const SK_1024 = "€".repeat(341) + "a";

// One row per case reads better than what the formatter would make of it.
// deno-fmt-ignore
const CASES: Case[] = [
  // Bodies that are not the right JSON at all.
  { name: "malformed JSON", path: "/records/put", body: '{"records": [', status: 400, code: "invalid_json" },
  { name: "an empty body", path: "/records/get", body: "", status: 400, code: "invalid_json" },
  { name: "a body that is not UTF-8", path: "/records/put", body: new Uint8Array([0x7b, 0xff, 0x7d]), status: 400, code: "invalid_json" },
  { name: "a JSON array body", path: "/records/put", body: "[1, 2]", status: 400, code: "invalid_request" },
  { name: "a JSON string body", path: "/records/delete", body: '"records"', status: 400, code: "invalid_request" },
  { name: "a JSON null body", path: "/records/list", body: "null", status: 400, code: "invalid_request" },
  // Wrong types.
  { name: "records that is not an array", path: "/records/put", body: { records: { pk: "p" } }, status: 400, code: "invalid_request" },
  { name: "a record that is not an object", path: "/records/put", body: { records: [1] }, status: 400, code: "invalid_request" },
  { name: "a numeric pk", path: "/records/put", body: { records: [rec({ pk: 7 })] }, status: 400, code: "invalid_key" },
  { name: "a missing sk", path: "/records/get", body: { records: [{ pk: "p" }] }, status: 400, code: "invalid_key" },
  { name: "a put without data", path: "/records/put", body: { records: [{ pk: "p", sk: "s" }] }, status: 400, code: "missing_data" },
  { name: "a non-boolean reverse", path: "/records/list", body: { pk: "p", reverse: "yes" }, status: 400, code: "invalid_request" },
  { name: "a non-boolean if_stop", path: "/records/list", body: { pk: "p", if_stop: 1 }, status: 400, code: "invalid_request" },
  { name: "ops that is not an array", path: "/records/batch", body: { ops: "put" }, status: 400, code: "invalid_request" },
  // Unknown fields.
  { name: "an unknown top-level field", path: "/records/put", body: { records: [rec()], ttl: 5 }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "ttl") },
  { name: "an unknown record field", path: "/records/put", body: { records: [rec({ ttl: 5 })] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "ttl") },
  { name: "data on a delete", path: "/records/delete", body: { records: [rec()] }, status: 400, code: "unknown_field", check: (p) => assert.equal(p.field, "data") },
  { name: "data on a batch delete", path: "/records/batch", body: { ops: [{ op: "delete", ...rec() }] }, status: 400, code: "unknown_field" },
  { name: "records on a batch", path: "/records/batch", body: { records: [rec()] }, status: 400, code: "unknown_field" },
  { name: "an unknown list field", path: "/records/list", body: { pk: "p", prefix: "x" }, status: 400, code: "unknown_field" },
  { name: "data in a get key", path: "/records/get", body: { records: [rec()] }, status: 400, code: "unknown_field" },
  // Keys.
  { name: "an empty pk", path: "/records/put", body: { records: [rec({ pk: "" })] }, status: 400, code: "invalid_key" },
  { name: "an empty pk on list", path: "/records/list", body: { pk: "" }, status: 400, code: "invalid_key" },
  { name: "a pk of 513 UTF-8 bytes", path: "/records/put", body: { records: [rec({ pk: PK_513 })] }, status: 400, code: "invalid_key" },
  { name: "an sk of 1025 UTF-8 bytes", path: "/records/put", body: { records: [rec({ sk: SK_1025 })] }, status: 400, code: "invalid_key" },
  { name: "a get of a 513-byte pk", path: "/records/get", body: { records: [{ pk: PK_513, sk: "s" }] }, status: 400, code: "invalid_key" },
  { name: "a delete of a 1025-byte sk", path: "/records/delete", body: { records: [{ pk: "p", sk: SK_1025 }] }, status: 400, code: "invalid_key" },
  { name: "a list sk_prefix of 1025 bytes", path: "/records/list", body: { pk: "p", sk_prefix: SK_1025 }, status: 400, code: "invalid_key" },
  { name: "a numeric start_after", path: "/records/list", body: { pk: "p", start_after: 5 }, status: 400, code: "invalid_key" },
  { name: "a pk with a lone surrogate", path: "/records/put", body: '{"records":[{"pk":"\\ud800","sk":"s","data":1}]}', status: 400, code: "invalid_key" },
  // Sizes and counts.
  { name: "data over DATA_BYTES_MAX", path: "/records/put", body: { records: [rec({ data: "x".repeat(1100) })] }, status: 413, code: "data_too_large", check: (p) => assert.equal(p.limit, 1024) },
  { name: "a batch op's data over DATA_BYTES_MAX", path: "/records/batch", body: { ops: [{ op: "put", ...rec({ data: { v: "x".repeat(1100) } }) }] }, status: 413, code: "data_too_large" },
  { name: "a body over BODY_BYTES_MAX", path: "/records/put", body: { records: [rec({ data: "x".repeat(9000) })] }, status: 413, code: "body_too_large", check: (p) => assert.equal(p.limit, BODY_BYTES_MAX) },
  { name: "a get body over BODY_BYTES_MAX", path: "/records/get", body: " ".repeat(BODY_BYTES_MAX + 1), status: 413, code: "body_too_large" },
  { name: "one partition's share over MESSAGE_BYTES_MAX", path: "/records/put", body: { records: Array.from({ length: 6 }, (_, i) => rec({ sk: `s${i}`, data: "x".repeat(1000) })) }, status: 413, code: "message_too_large", check: (p) => assert.equal(p.limit, 5120) },
  { name: "more records than RECORDS_PER_REQUEST_MAX", path: "/records/put", body: { records: Array.from({ length: 11 }, (_, i) => rec({ sk: `s${i}` })) }, status: 400, code: "too_many_records", check: (p) => assert.equal(p.limit, 10) },
  { name: "more get keys than RECORDS_PER_REQUEST_MAX", path: "/records/get", body: { records: Array.from({ length: 11 }, (_, i) => ({ pk: "p", sk: `s${i}` })) }, status: 400, code: "too_many_records" },
  { name: "more batch ops than RECORDS_PER_REQUEST_MAX", path: "/records/batch", body: { ops: Array.from({ length: 11 }, (_, i) => ({ op: "put", ...rec({ sk: `s${i}` }) })) }, status: 400, code: "too_many_records" },
  { name: "empty records on put", path: "/records/put", body: { records: [] }, status: 400, code: "no_records" },
  { name: "empty records on delete", path: "/records/delete", body: { Records: [] }, status: 400, code: "no_records" },
  { name: "empty records on get", path: "/records/get", body: { records: [] }, status: 400, code: "no_records" },
  { name: "empty ops on batch", path: "/records/batch", body: { ops: [] }, status: 400, code: "no_records" },
  // Conditions.
  { name: "an unparseable condition", path: "/records/put", body: { records: [rec({ if: "pk ==" })] }, status: 400, code: "invalid_condition" },
  { name: "an unbalanced condition", path: "/records/put", body: { records: [rec({ if: "((" })] }, status: 400, code: "invalid_condition" },
  { name: "an empty condition", path: "/records/delete", body: { records: [{ pk: "p", sk: "s", if: "" }] }, status: 400, code: "invalid_condition" },
  { name: "a non-boolean condition", path: "/records/put", body: { records: [rec({ if: "data.n + 1" })] }, status: 400, code: "invalid_condition" },
  { name: "a function-call condition", path: "/records/put", body: { records: [rec({ if: "now() > 0" })] }, status: 400, code: "invalid_condition" },
  { name: "a transform condition", path: "/records/batch", body: { ops: [{ op: "put", ...rec({ if: "sk|upper == 'S'" }) }] }, status: 400, code: "invalid_condition" },
  { name: "a non-string condition", path: "/records/put", body: { records: [rec({ if: true })] }, status: 400, code: "invalid_condition" },
  { name: "an invalid list filter", path: "/records/list", body: { pk: "p", if: "data.n +" }, status: 400, code: "invalid_condition" },
  { name: "a condition over CONDITION_BYTES_MAX", path: "/records/put", body: { records: [rec({ if: `sk == '${"x".repeat(60)}'` })] }, status: 400, code: "condition_too_long", check: (p) => assert.equal(p.limit, 64) },
  { name: "a list filter over CONDITION_BYTES_MAX", path: "/records/list", body: { pk: "p", if: `sk == '${"é".repeat(30)}'` }, status: 400, code: "condition_too_long" },
  // Batches.
  { name: "a batch spanning partitions", path: "/records/batch", body: { ops: span.pks.map((pk) => ({ op: "put", ...rec({ pk }) })) }, status: 400, code: "batch_spans_partitions", check: (p) => assert.deepEqual(p.partitions, span.partitions) },
  { name: "an unknown batch op", path: "/records/batch", body: { ops: [{ op: "upsert", ...rec() }] }, status: 400, code: "invalid_op" },
  { name: "a batch op without op", path: "/records/batch", body: { ops: [rec()] }, status: 400, code: "invalid_op" },
  // Consistency tokens and list options.
  { name: "after that is an array", path: "/records/get", body: { records: [{ pk: "p", sk: "s" }], after: [1] }, status: 400, code: "invalid_after" },
  { name: "after naming a partition out of range", path: "/records/get", body: { records: [{ pk: "p", sk: "s" }], after: { "4": 0 } }, status: 400, code: "invalid_after" },
  { name: "after naming a non-numeric partition", path: "/records/list", body: { pk: "p", after: { p0: 0 } }, status: 400, code: "invalid_after" },
  { name: "after with a string offset", path: "/records/get", body: { records: [{ pk: "p", sk: "s" }], after: { "0": "5" } }, status: 400, code: "invalid_after" },
  { name: "after with a fractional offset", path: "/records/list", body: { pk: "p", after: { "0": 1.5 } }, status: 400, code: "invalid_after" },
  { name: "after with an offset below -1", path: "/records/get", body: { records: [{ pk: "p", sk: "s" }], after: { "0": -2 } }, status: 400, code: "invalid_after" },
  { name: "a negative wait_ms", path: "/records/get", body: { records: [{ pk: "p", sk: "s" }], wait_ms: -1 }, status: 400, code: "invalid_wait" },
  { name: "wait_ms above WAIT_MS_MAX", path: "/records/list", body: { pk: "p", wait_ms: 1001 }, status: 400, code: "invalid_wait" },
  { name: "a string wait_ms", path: "/records/get", body: { records: [{ pk: "p", sk: "s" }], wait_ms: "5" }, status: 400, code: "invalid_wait" },
  { name: "limit 0", path: "/records/list", body: { pk: "p", limit: 0 }, status: 400, code: "invalid_limit" },
  { name: "limit above LIST_LIMIT_MAX", path: "/records/list", body: { pk: "p", limit: 51 }, status: 400, code: "invalid_limit", check: (p) => assert.equal(p.limit, 50) },
  { name: "a string limit", path: "/records/list", body: { pk: "p", limit: "10" }, status: 400, code: "invalid_limit" },
  { name: "a fractional limit", path: "/records/list", body: { pk: "p", limit: 2.5 }, status: 400, code: "invalid_limit" },
  // Routes.
  { name: "an unknown route", path: "/records/upsert", body: { records: [rec()] }, status: 404, code: "not_found" },
  { name: "a path with a trailing slash", path: "/records/put/", body: { records: [rec()] }, status: 404, code: "not_found" },
];

Deno.test("bad requests get a 4xx problem with a stable code and write nothing", async (t) => {
  await withNode({ env: ENV }, async (node) => {
    const step = stepper(t, node);
    const statusBefore = await partitionStatus(node);

    for (const c of CASES) {
      await step(`${c.path} refuses ${c.name} with ${c.status} ${c.code}`, async () => {
        const result = await node.post(c.path, c.body);
        assertProblem(result, c.status, c.code);
        c.check?.(result.json);
      });
    }

    await step("keys at the size limits are accepted (a read of them answers 200)", async () => {
      const result = await node.post("/records/get", {
        records: [{ pk: PK_512, sk: SK_1024 }],
      });
      assert.equal(result.status, 200, result.text);
      assert.deepEqual(result.json.missing, [{ pk: PK_512, sk: SK_1024 }]);
    });

    await step(
      "a chunked body over BODY_BYTES_MAX is refused as it streams in, not buffered",
      async () => {
        // The stream sends BODY_BYTES_MAX + 1 KiB, then stalls forever: a server that buffered the
        // whole body before checking its size would never answer.
        let sent = 0;
        const chunk = new Uint8Array(1024).fill(0x20);
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent > BODY_BYTES_MAX) return new Promise<void>(() => {});
            sent += chunk.length;
            controller.enqueue(chunk);
            return Promise.resolve();
          },
        });
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), 10_000);
        try {
          const response = await fetch(`${node.apiUrl}/records/put`, {
            method: "POST",
            body,
            headers: { "content-type": "application/json" },
            signal: abort.signal,
          });
          const text = await response.text();
          assertProblem(
            { status: response.status, headers: response.headers, text, json: JSON.parse(text) },
            413,
            "body_too_large",
          );
          assert.ok(sent <= BODY_BYTES_MAX + 2 * chunk.length, `sent ${sent} bytes`);
        } finally {
          clearTimeout(timer);
          abort.abort();
          await body.cancel().catch(() => {});
        }
      },
    );

    await step("a client that disconnects mid-body is not a server error", async () => {
      const abort = new AbortController();
      let pulls = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (pulls++ === 3) {
            abort.abort();
            return;
          }
          controller.enqueue(new TextEncoder().encode('{"records":['));
          await new Promise((r) => setTimeout(r, 20));
        },
      });
      const failed = await fetch(`${node.apiUrl}/records/put`, {
        method: "POST",
        body,
        signal: abort.signal,
      }).then(async (r) => (await r.body?.cancel(), false), () => true);
      assert.ok(failed, "the aborted request must not get a response");
      // The node notices the broken request on its own time.
      await new Promise((r) => setTimeout(r, 300));
      assert.doesNotMatch((await node.internal("/metrics")).text, /status="500"/);
      assert.ok(
        !node.logs.all.some((l) => l.includes('"event":"internal_error"')),
        node.logs.tail(),
      );
    });

    await step("an unknown GET route is 404 not_found", async () => {
      assertProblem(await node.request("/"), 404, "not_found");
      assertProblem(await node.request("/metrics"), 404, "not_found");
    });

    await step("nothing was written and nothing failed with 500", async () => {
      assert.deepEqual(await partitionStatus(node), statusBefore);
      const metrics = (await node.internal("/metrics")).text;
      assert.doesNotMatch(metrics, /^firescroll_log_appends_total [1-9]/m);
      assert.doesNotMatch(metrics, /status="500"/);
      assert.ok(
        !node.logs.all.some((l) => l.includes('"event":"internal_error"')),
        node.logs.tail(),
      );
    });
  });
});
