/**
 * docs/openapi.yaml against a real node: every route and the main problem codes, sent over HTTP.
 * Each request body is checked against the operation's request schema (a valid one must be
 * accepted, one the schema refuses must be refused by the node too), and each answer must be a
 * status the operation lists, with its content type, headers and body schema; every watch event
 * must match the stream's item schema. `GET /openapi.json` must be the document itself.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { partitionOf } from "../../src/keys/mod.ts";
import type { ErrorCode } from "../../src/util/error_codes.ts";
import { readSse, type SseEvent } from "../../src/watch/mod.ts";
import {
  eventProblems,
  type OpenApiDocument,
  parameterProblems,
  requestBodyProblems,
  responseObjectProblems,
  responseProblems,
} from "../_openapi.ts";
import { type HttpResult, stepper, type TestNode, withNode } from "./_node.ts";

const DOCUMENT = parse(
  await Deno.readTextFile(new URL("../../docs/openapi.yaml", import.meta.url)),
) as OpenApiDocument;

const PARTITIONS = 4;
const READ = { authorization: "Bearer r1" };
const WRITE = { authorization: "Bearer w1" };
/** Bound on seeing a watch event (an expiry waits for the node's once-a-second tick). */
const EVENT_WAIT_MS = 10_000;

/** `method path status` of every answer checked, for the coverage assertions at the end. */
const covered = new Set<string>();
/** Every problem code answered. */
const codesSeen = new Set<string>();

/** A request to send. */
interface Exchange {
  readonly method: "GET" | "HEAD" | "POST" | "PUT" | "DELETE";
  /** Path and query. */
  readonly path: string;
  /** A JSON value (sent as JSON and checked against the request schema) or text sent as is. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** What the answer must be. */
interface Expect {
  readonly status: number;
  readonly code?: ErrorCode;
  /**
   * Whether the document's request schema accepts the request: by default, unless the node
   * refuses it as a bad request (400). Null: the node's verdict rests on what a schema cannot say
   * (a condition's syntax, which partition a key falls in, the partition count, sizes in bytes).
   */
  readonly valid?: boolean | null;
  /** An answer outside every operation: this `components.responses` entry describes it. */
  readonly component?: "NotFound" | "MethodNotAllowed";
}

function requestProblems(x: Exchange): string[] | null {
  const url = new URL(x.path, "http://node");
  const operation = DOCUMENT.paths[url.pathname]?.[x.method.toLowerCase()];
  if (operation === undefined) return null; // Outside every operation: nothing to check.
  const problems: string[] = [];
  let checked = false;
  if (x.body !== undefined) {
    // Text is checked as the JSON it holds; text that is not JSON no schema can take.
    let body: unknown = x.body;
    try {
      if (typeof x.body === "string") body = JSON.parse(x.body);
    } catch {
      return null;
    }
    problems.push(...requestBodyProblems(DOCUMENT, x.method, url.pathname, body));
    checked = true;
  }
  if (x.method === "GET") {
    problems.push(
      ...parameterProblems(DOCUMENT, x.method, url.pathname, url, new Headers(x.headers)),
    );
    checked = true;
  }
  return checked ? problems : null;
}

/** Sends `x`, checks the request against the document, and the answer against both. */
async function exchange(node: TestNode, x: Exchange, expect: Expect): Promise<HttpResult> {
  const where = `${x.method} ${x.path}`;
  const request = requestProblems(x);
  const valid = expect.valid === undefined ? expect.status !== 400 : expect.valid;
  if (request !== null && valid === true) {
    assert.deepEqual(request, [], `${where}: the document refuses a request the node takes`);
  }
  if (request !== null && valid === false) {
    assert.ok(request.length > 0, `${where}: the document takes a request the node refuses`);
  }
  const init: RequestInit = { method: x.method, headers: x.headers ?? {} };
  if (x.body !== undefined) {
    init.body = typeof x.body === "string" ? x.body : JSON.stringify(x.body);
  }
  const result = await node.request(x.path, init);
  assert.equal(result.status, expect.status, `${where}: ${result.text.slice(0, 500)}`);
  if (expect.code !== undefined) {
    assert.equal(result.json?.code, expect.code, `${where}: ${result.text.slice(0, 500)}`);
    codesSeen.add(expect.code);
  }
  const path = new URL(x.path, "http://node").pathname;
  // HEAD is answered as GET, without the body.
  const method = x.method === "HEAD" ? "GET" : x.method;
  const seen = {
    status: result.status,
    headers: result.headers,
    text: x.method === "HEAD" ? null : result.text,
  };
  const answer = expect.component === undefined
    ? responseProblems(DOCUMENT, method, path, seen)
    : responseObjectProblems(
      DOCUMENT,
      { $ref: `#/components/responses/${expect.component}` },
      seen,
    );
  assert.deepEqual(answer, [], `${where} answered ${result.status} ${result.text.slice(0, 500)}`);
  if (expect.component === undefined) covered.add(`${x.method} ${path} ${result.status}`);
  return result;
}

/** One open watch stream, its events checked against the document as they arrive. */
class Stream {
  readonly events: SseEvent[] = [];
  /** Why reading stopped early: an event the document does not describe, a broken stream. */
  private failure: Error | null = null;
  private readonly ended: Promise<void>;

  private constructor(
    private readonly client: Deno.HttpClient,
    private readonly abort: AbortController,
    body: ReadableStream<Uint8Array>,
    method: "GET" | "POST",
  ) {
    this.ended = (async () => {
      try {
        for await (const event of readSse(body, { signal: abort.signal })) {
          assert.deepEqual(
            eventProblems(DOCUMENT, method, "/records/watch", event),
            [],
            event.data,
          );
          this.events.push(event);
        }
      } catch (error) {
        if (!abort.signal.aborted) this.failure = error as Error;
      }
    })();
  }

  /** Opens a watch like {@linkcode exchange} sends a request, and checks the 200 answer. */
  static async open(node: TestNode, x: Exchange): Promise<Stream> {
    const method = x.method as "GET" | "POST";
    assert.deepEqual(requestProblems(x), [], `${x.method} ${x.path}`);
    const client = Deno.createHttpClient({});
    const abort = new AbortController();
    const response = await fetch(`${node.apiUrl}${x.path}`, {
      method,
      headers: x.headers ?? {},
      signal: abort.signal,
      client,
      ...(x.body === undefined ? {} : { body: JSON.stringify(x.body) }),
    });
    const problems = responseProblems(DOCUMENT, method, "/records/watch", {
      status: response.status,
      headers: response.headers,
      text: null,
    });
    if (response.status !== 200 || problems.length > 0) {
      const text = await response.text();
      client.close();
      throw new Error(`watch ${x.path}: ${response.status} ${problems.join("; ")} ${text}`);
    }
    covered.add(`${method} /records/watch 200`);
    return new Stream(client, abort, response.body!, method);
  }

  /** Resolves once an event satisfies `check`; throws after {@linkcode EVENT_WAIT_MS}. */
  async until(what: string, check: (event: SseEvent) => boolean): Promise<SseEvent> {
    const deadline = Date.now() + EVENT_WAIT_MS;
    while (true) {
      if (this.failure !== null) throw this.failure;
      const found = this.events.find(check);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(`watch: ${what} not seen (${JSON.stringify(this.events)})`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.ended;
    this.client.close();
    if (this.failure !== null) throw this.failure;
  }
}

/** A put of `body`. */
const put = (body: unknown, headers?: Record<string, string>): Exchange => ({
  method: "POST",
  path: "/records/put",
  body,
  ...(headers === undefined ? {} : { headers }),
});

const pOf = (pk: string) => String(partitionOf(pk, PARTITIONS));

/** Two pks of different partitions. */
function splitPks(): [string, string] {
  for (let i = 1;; i++) if (pOf(`k${i}`) !== pOf("k0")) return ["k0", `k${i}`];
}

Deno.test("a real node answers as docs/openapi.yaml says, on every route", async (t) => {
  await withNode({ env: { PARTITIONS: String(PARTITIONS), SERVE_THREADS: "2" } }, async (node) => {
    const step = stepper(t, node);

    await step("GET /openapi.json is docs/openapi.yaml, from every serving thread", async () => {
      // One connection each: the kernel spreads them over the threads.
      for (let i = 0; i < 6; i++) {
        const client = Deno.createHttpClient({});
        try {
          const health = await fetch(`${node.apiUrl}/healthz`, { client });
          const { thread } = await health.json();
          assert.ok(Number.isInteger(thread) && thread >= 1, `a serving thread answers: ${thread}`);
          const served = await fetch(`${node.apiUrl}/openapi.json`, { client });
          assert.equal(served.status, 200);
          assert.deepEqual(await served.json(), DOCUMENT, `thread ${thread}`);
        } finally {
          client.close();
        }
      }
      await exchange(node, { method: "GET", path: "/openapi.json" }, { status: 200 });
      await exchange(node, { method: "HEAD", path: "/openapi.json" }, { status: 200 });
    });

    await step("the health routes answer as documented", async () => {
      await exchange(node, { method: "GET", path: "/healthz" }, { status: 200 });
      await exchange(node, { method: "GET", path: "/readyz" }, { status: 200 });
    });

    const user = (sk: string, data: unknown) => ({ pk: "user:1", sk, data });
    const P = pOf("user:1");
    let offsets: Record<string, number> = {};

    await step("writes answer their offsets", async () => {
      // As text: numbers a JSON.stringify would change, which the node keeps as sent.
      const written = await exchange(
        node,
        put(
          JSON.stringify({ records: [user("a", "$"), user("b", [1, "x", null])] })
            .replace('"$"', '{"n":1.50,"big":1e400}'),
        ),
        { status: 200 },
      );
      offsets = written.json.offsets;
      // The seed's spelling, a condition, an expiry: all in the schema.
      await exchange(node, put({ Records: [{ ...user("c", "v"), ttl_ms: 3_600_000 }] }), {
        status: 200,
      });
      // A false condition is not an error: 200, nothing written (no 409 for it).
      await exchange(
        node,
        put({ records: [{ ...user("a", "never"), if: "_version == 123456" }] }),
        { status: 200 },
      );
      await exchange(node, {
        method: "POST",
        path: "/records/delete",
        body: { records: [{ pk: "user:1", sk: "c", if: "pk != null" }] },
      }, { status: 200 });
      const batch = await exchange(node, {
        method: "POST",
        path: "/records/batch",
        body: {
          ops: [
            {
              op: "put",
              pk: "user:1",
              sk: "d",
              data: { x: 1 },
              expires_at: Date.now() + 3_600_000,
            },
            { op: "delete", pk: "user:1", sk: "b" },
          ],
        },
      }, { status: 200 });
      offsets = batch.json.offsets;
    });

    await step("reads answer as documented, waits and the past included", async () => {
      const got = await exchange(node, {
        method: "POST",
        path: "/records/get",
        body: {
          records: [{ pk: "user:1", sk: "a" }, { pk: "user:1", sk: "b" }],
          after: offsets,
          wait_ms: 2000,
        },
      }, { status: 200 });
      assert.equal(got.json.records.length, 1);
      assert.deepEqual(got.json.missing, [{ pk: "user:1", sk: "b" }]);
      assert.match(got.text, /"n":1\.50,"big":1e400/);
      const page = await exchange(node, {
        method: "POST",
        path: "/records/list",
        body: { pk: "user:1", limit: 1, sk_prefix: null, after: offsets, wait_ms: 2000 },
      }, { status: 200 });
      assert.equal(page.json.next, "a");
      await exchange(node, {
        method: "POST",
        path: "/records/list",
        body: { pk: "user:1", start_after: "a", reverse: false, if: "data.x == 1", if_stop: true },
      }, { status: 200 });
      const history = await exchange(node, {
        method: "POST",
        path: "/records/history",
        body: { pk: "user:1", sk: "b", limit: 1 },
      }, { status: 200 });
      assert.equal(history.json.versions[0].change, "delete");
      await exchange(node, {
        method: "POST",
        path: "/records/history",
        body: { pk: "user:1", sk: "b", before_version: history.json.next, after: offsets },
      }, { status: 200 });
      await exchange(node, {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "user:1", sk: "b" }], as_of: { [P]: offsets[P]! - 1 } },
      }, { status: 200 });
      await exchange(node, {
        method: "POST",
        path: "/records/list",
        body: { pk: "user:1", as_of_ms: Date.now() },
      }, { status: 200 });
    });

    await step(
      "watch streams every change as documented events, by query and by body",
      async () => {
        const byQuery = await Stream.open(node, {
          method: "GET",
          path: `/records/watch?pk=${encodeURIComponent("user:2")}&sk_prefix=s`,
        });
        const byBody = await Stream.open(node, {
          method: "POST",
          path: "/records/watch",
          body: { partitions: [0, 1, 2, 3], sk_prefix: null },
        });
        const resumed = await Stream.open(node, {
          method: "GET",
          path: `/records/watch?partitions=${P}`,
          headers: { "last-event-id": `${P}:-1` },
        });
        try {
          await exchange(node, put({ records: [{ pk: "user:2", sk: "s1", data: 1, ttl_ms: 1 }] }), {
            status: 200,
          });
          await exchange(node, put({ records: [{ pk: "user:2", sk: "s2", data: 2 }] }), {
            status: 200,
          });
          await exchange(node, {
            method: "POST",
            path: "/records/delete",
            body: { records: [{ pk: "user:2", sk: "s2" }] },
          }, { status: 200 });
          for (const stream of [byQuery, byBody]) {
            await stream.until("put", (e) => e.event === "put");
            await stream.until("delete", (e) => e.event === "delete");
            await stream.until("expire", (e) => e.event === "expire");
            assert.equal(stream.events[0]!.event, "", "the first frame is a position alone");
          }
          // From the start of user:1's partition: the changes written above.
          await resumed.until(
            "a put of user:1",
            (e) => e.event === "put" && e.data.includes("user:1"),
          );
        } finally {
          await Promise.all([byQuery.close(), byBody.close(), resumed.close()]);
        }
      },
    );

    const [pkA, pkB] = splitPks();
    const far = { [P]: 1_000_000_000 };
    const big = (bytes: number) => "x".repeat(bytes);
    const problems: [string, Exchange, Expect][] = [
      ["a body that is not JSON", put("{nope"), {
        status: 400,
        code: "invalid_json",
      }],
      ["an empty body", put(""), { status: 400, code: "invalid_json" }],
      ["a member named twice", put('{"records":[],"records":[]}'), {
        status: 400,
        code: "invalid_json",
      }],
      ["a body that is not an object", { method: "POST", path: "/records/get", body: [] }, {
        status: 400,
        code: "invalid_request",
      }],
      ["an unknown field", put({ records: [{ ...user("a", 1), colour: "red" }] }), {
        status: 400,
        code: "unknown_field",
      }],
      ["no records", put({ records: [] }), { status: 400, code: "no_records" }],
      ["too many records", {
        method: "POST",
        path: "/records/get",
        body: { records: Array.from({ length: 1001 }, (_, i) => ({ pk: "k", sk: String(i) })) },
      }, { status: 400, code: "too_many_records" }],
      ["an empty pk", put({ records: [{ pk: "", sk: "a", data: 1 }] }), {
        status: 400,
        code: "invalid_key",
      }],
      ["a pk of 300 characters but 600 UTF-8 bytes", {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "é".repeat(300), sk: "a" }] },
      }, { status: 400, code: "invalid_key" }],
      ["an sk over 1024 bytes", {
        method: "POST",
        path: "/records/list",
        body: { pk: "p", start_after: "a".repeat(1025) },
      }, { status: 400, code: "invalid_key" }],
      ["a put without data", put({ records: [{ pk: "p", sk: "a" }] }), {
        status: 400,
        code: "missing_data",
      }],
      ["a batch op that is neither put nor delete", {
        method: "POST",
        path: "/records/batch",
        body: { ops: [{ op: "upsert", pk: "p", sk: "a", data: 1 }] },
      }, { status: 400, code: "invalid_op" }],
      ["a batch delete with data", {
        method: "POST",
        path: "/records/batch",
        body: { ops: [{ op: "delete", pk: "p", sk: "a", data: 1 }] },
      }, { status: 400, code: "unknown_field" }],
      ["a condition that calls a function", put({ records: [{ ...user("a", 1), if: "f()" }] }), {
        status: 400,
        code: "invalid_condition",
        valid: null,
      }],
      ["a condition that is not a string", put({ records: [{ ...user("a", 1), if: 5 }] }), {
        status: 400,
        code: "invalid_condition",
      }],
      ["a condition over CONDITION_BYTES_MAX", {
        method: "POST",
        path: "/records/list",
        body: { pk: "p", if: `sk == '${big(1020)}'` },
      }, { status: 400, code: "condition_too_long" }],
      ["a batch across partitions", {
        method: "POST",
        path: "/records/batch",
        body: {
          ops: [{ op: "put", pk: pkA, sk: "a", data: 1 }, { op: "delete", pk: pkB, sk: "a" }],
        },
      }, { status: 400, code: "batch_spans_partitions", valid: null }],
      ["after naming a partition that does not exist", {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "p", sk: "a" }], after: { "99": 1 } },
      }, { status: 400, code: "invalid_after", valid: null }],
      ["after with an offset below -1", {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "p", sk: "a" }], after: { "0": -2 } },
      }, { status: 400, code: "invalid_after" }],
      ["wait_ms over WAIT_MS_MAX", {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "p", sk: "a" }], wait_ms: 10_001 },
      }, { status: 400, code: "invalid_wait" }],
      ["limit 0", { method: "POST", path: "/records/list", body: { pk: "p", limit: 0 } }, {
        status: 400,
        code: "invalid_limit",
      }],
      ["limit over LIST_LIMIT_MAX", {
        method: "POST",
        path: "/records/history",
        body: { pk: "p", sk: "a", limit: 1001 },
      }, { status: 400, code: "invalid_limit" }],
      ["ttl_ms 0", put({ records: [{ ...user("a", 1), ttl_ms: 0 }] }), {
        status: 400,
        code: "invalid_ttl",
      }],
      [
        "both ttl_ms and expires_at",
        put({
          records: [{ ...user("a", 1), ttl_ms: 10, expires_at: Date.now() }],
        }),
        { status: 400, code: "invalid_ttl", valid: null },
      ],
      ["both as_of and as_of_ms", {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "p", sk: "a" }], as_of: { "0": 0 }, as_of_ms: 1 },
      }, { status: 400, code: "invalid_as_of", valid: null }],
      ["a negative before_version", {
        method: "POST",
        path: "/records/history",
        body: { pk: "p", sk: "a", before_version: -1 },
      }, { status: 400, code: "invalid_as_of" }],
      ["an unknown watch query parameter", {
        method: "GET",
        path: "/records/watch?pk=p&colour=red",
      }, { status: 400, code: "unknown_field" }],
      ["a watch resuming from a malformed id", {
        method: "GET",
        path: "/records/watch?after=yesterday",
      }, { status: 400, code: "invalid_after" }],
      ["a watch of no partitions", {
        method: "POST",
        path: "/records/watch",
        body: { partitions: [] },
      }, { status: 400, code: "invalid_request" }],
      [
        "a body over BODY_BYTES_MAX",
        put({ records: [{ pk: "p", sk: "a", data: big(1_100_000) }] }),
        { status: 413, code: "body_too_large", valid: null },
      ],
      ["data over DATA_BYTES_MAX", put({ records: [{ pk: "p", sk: "a", data: big(300_000) }] }), {
        status: 413,
        code: "data_too_large",
        valid: null,
      }],
      [
        "one partition's share over MESSAGE_BYTES_MAX",
        put({
          records: ["a", "b", "c", "d"].map((sk) => ({ pk: "p", sk, data: big(250_000) })),
        }),
        { status: 413, code: "message_too_large", valid: null },
      ],
      ["a read waiting for an offset that does not come", {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "user:1", sk: "a" }], after: far, wait_ms: 100 },
      }, { status: 504, code: "not_caught_up" }],
      ["an unknown path", { method: "GET", path: "/records/nope" }, {
        status: 404,
        code: "not_found",
        component: "NotFound",
      }],
      ["a method the path does not take", { method: "DELETE", path: "/records/get" }, {
        status: 405,
        code: "method_not_allowed",
        component: "MethodNotAllowed",
      }],
      ["a POST to a GET route", { method: "POST", path: "/openapi.json", body: "{}" }, {
        status: 405,
        code: "method_not_allowed",
        component: "MethodNotAllowed",
      }],
    ];
    for (const [name, x, expect] of problems) {
      await step(`${name}: ${expect.status} ${expect.code}, as documented`, async () => {
        await exchange(node, x, expect);
      });
    }
  });
});

Deno.test("with tokens and without history or watch, a real node answers as documented", async (t) => {
  const env = {
    PARTITIONS: String(PARTITIONS),
    API_TOKENS_READ: "r1",
    API_TOKENS_WRITE: "w1",
    HISTORY_RETAIN_SEC: "0",
    WATCH_RETAIN_SEC: "0",
  };
  await withNode({ env }, async (node) => {
    const step = stepper(t, node);
    const record = { records: [{ pk: "auth", sk: "a", data: 1 }] };

    await step("the document and the health routes need no token", async () => {
      const served = await exchange(node, { method: "GET", path: "/openapi.json" }, {
        status: 200,
      });
      assert.deepEqual(served.json, DOCUMENT);
      await exchange(node, { method: "GET", path: "/healthz" }, { status: 200 });
      await exchange(node, { method: "GET", path: "/readyz" }, { status: 200 });
    });

    await step("a missing or unknown token is 401, a read token writing 403", async () => {
      await exchange(node, put(record), {
        status: 401,
        code: "unauthorized",
      });
      await exchange(node, {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "auth", sk: "a" }] },
        headers: { authorization: "Bearer nobody" },
      }, { status: 401, code: "unauthorized" });
      await exchange(node, { method: "GET", path: "/records/watch" }, {
        status: 401,
        code: "unauthorized",
      });
      await exchange(node, put(record, READ), {
        status: 403,
        code: "forbidden",
      });
      await exchange(node, put(record, WRITE), { status: 200 });
    });

    await step("history, as_of and watch are 404 where they are turned off", async () => {
      await exchange(node, {
        method: "POST",
        path: "/records/history",
        body: { pk: "auth", sk: "a" },
        headers: READ,
      }, { status: 404, code: "history_disabled" });
      await exchange(node, {
        method: "POST",
        path: "/records/list",
        body: { pk: "auth", as_of: { "0": 0 } },
        headers: READ,
      }, { status: 404, code: "history_disabled" });
      await exchange(node, { method: "GET", path: "/records/watch?pk=auth", headers: READ }, {
        status: 404,
        code: "watch_disabled",
      });
      await exchange(node, {
        method: "POST",
        path: "/records/watch",
        body: { pk: "auth" },
        headers: WRITE,
      }, { status: 404, code: "watch_disabled" });
    });
  });
});

Deno.test("with a short history and one watcher, a real node answers as documented", async (t) => {
  const env = {
    PARTITIONS: String(PARTITIONS),
    SERVE_THREADS: "1",
    HISTORY_RETAIN_SEC: "1",
    WATCH_RETAIN_SEC: "1",
    WATCHERS_MAX: "1",
  };
  await withNode({ env }, async (node) => {
    const step = stepper(t, node);
    const P = pOf("short");
    const record = { records: [{ pk: "short", sk: "a", data: 1 }] };
    await exchange(node, put(record), { status: 200 });
    await new Promise((r) => setTimeout(r, 1100));
    // Applying this one prunes the first change: the log from before it is gone.
    await exchange(node, put(record), { status: 200 });

    await step("a read older than the history is 410 history_expired", async () => {
      await exchange(node, {
        method: "POST",
        path: "/records/get",
        body: { records: [{ pk: "short", sk: "a" }], as_of_ms: 1 },
      }, { status: 410, code: "history_expired" });
    });

    await step(
      "a watch from before the change log gets a reset event; one more is 503",
      async () => {
        const stream = await Stream.open(node, {
          method: "GET",
          path: "/records/watch?pk=short",
          headers: { "last-event-id": `${P}:-1` },
        });
        try {
          const reset = await stream.until("reset", (e) => e.event === "reset");
          assert.equal(JSON.parse(reset.data).partition, Number(P));
          // WATCHERS_MAX is 1: this stream is the one.
          await exchange(node, { method: "GET", path: "/records/watch" }, {
            status: 503,
            code: "too_many_watchers",
          });
        } finally {
          await stream.close();
        }
      },
    );
  });
});

Deno.test("the requests above cover every operation of the document and the main codes", () => {
  for (const [path, item] of Object.entries(DOCUMENT.paths)) {
    for (const method of Object.keys(item)) {
      const name = `${method.toUpperCase()} ${path} 200`;
      assert.ok(covered.has(name), `no request got ${name}`);
    }
  }
  const main: ErrorCode[] = [
    "invalid_json",
    "invalid_request",
    "unknown_field",
    "no_records",
    "too_many_records",
    "invalid_key",
    "missing_data",
    "invalid_op",
    "invalid_condition",
    "condition_too_long",
    "batch_spans_partitions",
    "invalid_after",
    "invalid_wait",
    "invalid_limit",
    "invalid_ttl",
    "invalid_as_of",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "watch_disabled",
    "history_disabled",
    "history_expired",
    "body_too_large",
    "data_too_large",
    "message_too_large",
    "not_caught_up",
    "too_many_watchers",
  ];
  assert.deepEqual(main.filter((code) => !codesSeen.has(code)), []);
});
