import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  eventProblems,
  jsonEqual,
  type OpenApiDocument,
  parameterProblems,
  requestBodyProblems,
  resolveRef,
  responseProblems,
  type Schema,
  unsupportedKeywords,
  validate,
} from "./_openapi.ts";

/** A small document: what the checks need, as docs/openapi.yaml shapes it. */
const DOC: OpenApiDocument = {
  openapi: "3.1.0",
  paths: {
    "/things": {
      post: {
        requestBody: {
          content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } },
        },
        responses: {
          "200": {
            content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } },
          },
          "400": {
            content: {
              "application/problem+json": {
                schema: {
                  type: "object",
                  properties: { code: { enum: ["bad"] } },
                  required: ["code"],
                },
              },
            },
          },
        },
      },
    },
    "/stream": {
      get: {
        parameters: [
          { name: "n", in: "query", schema: { type: "string", pattern: "^\\d+$" } },
          { name: "Need", in: "header", required: true, schema: { const: "yes" } },
        ],
        responses: {
          "200": {
            headers: { "Cache-Control": { required: true, schema: { const: "no-cache" } } },
            content: {
              "text/event-stream": {
                schema: { type: "string" },
                "x-itemSchema": {
                  type: "object",
                  properties: {
                    event: { const: "put" },
                    id: { type: "string" },
                    data: {
                      type: "string",
                      contentMediaType: "application/json",
                      contentSchema: { $ref: "#/components/schemas/Thing" },
                    },
                  },
                  required: ["event", "data"],
                  additionalProperties: false,
                },
              },
            },
          },
        },
      },
    },
  },
  components: {
    schemas: {
      Thing: {
        type: "object",
        properties: { name: { type: "string", minLength: 1 }, n: { type: ["integer", "null"] } },
        required: ["name"],
        additionalProperties: false,
      },
      "a/b~c": { const: 1 },
    },
  },
};

const check = (schema: Schema, value: unknown) => validate(schema, value, DOC);

Deno.test("validate() checks type, with several types and integer apart from number", () => {
  deepEqual(check({ type: "string" }, "x"), []);
  deepEqual(check({ type: ["integer", "null"] }, null), []);
  deepEqual(check({ type: "integer" }, 3), []);
  deepEqual(check({ type: "number" }, 1.5), []);
  deepEqual(check({ type: "integer" }, 1.5), ["/: is number, not integer"]);
  deepEqual(check({ type: "object" }, []), ["/: is array, not object"]);
  deepEqual(check({ type: "array" }, {}), ["/: is object, not array"]);
  deepEqual(check({ type: "null" }, 0), ["/: is integer, not null"]);
  deepEqual(check({ type: "boolean" }, "true"), ["/: is string, not boolean"]);
  throws(() => check({ type: "float" }, 1), /not a JSON Schema type/);
});

Deno.test("validate() checks properties, required and additionalProperties", () => {
  const thing = { $ref: "#/components/schemas/Thing" };
  deepEqual(check(thing, { name: "a", n: 1 }), []);
  deepEqual(check(thing, { n: 1 }), ['/: lacks required member "name"']);
  deepEqual(check(thing, { name: "a", extra: 1 }), ['/: has member "extra", which is not allowed']);
  deepEqual(check(thing, { name: "" }), ["/name: has 0 characters, fewer than 1"]);
  deepEqual(check(thing, { name: "a", n: "1" }), ["/n: is string, not integer or null"]);
  const open = { type: "object", additionalProperties: { type: "integer" } };
  deepEqual(check(open, { a: 1, b: 2 }), []);
  deepEqual(check(open, { a: 1, b: "2" }), ["/b: is string, not integer"]);
  deepEqual(check({ type: "object" }, { anything: [1] }), []);
});

Deno.test("validate() checks propertyNames against their own schema", () => {
  const offsets = { type: "object", propertyNames: { pattern: "^\\d+$" } };
  deepEqual(check(offsets, { "0": 1, "12": 2 }), []);
  const errors = check(offsets, { "0": 1, "x": 2 });
  equal(errors.length, 1);
  match(errors[0]!, /member name "x" is not allowed/);
});

Deno.test("validate() checks items, minItems and maxItems with the index in the pointer", () => {
  const list = { type: "array", items: { type: "integer", minimum: 0 }, minItems: 1, maxItems: 2 };
  deepEqual(check(list, [0, 1]), []);
  deepEqual(check(list, []), ["/: has 0 items, fewer than 1"]);
  deepEqual(check(list, [0, 1, 2]), ["/: has 3 items, more than 2"]);
  deepEqual(check(list, [0, -1]), ["/1: is less than 0"]);
});

Deno.test("validate() checks enum and const by JSON equality", () => {
  deepEqual(check({ enum: ["a", { b: [1] }] }, { b: [1] }), []);
  equal(check({ enum: ["a", "b"] }, "c").length, 1);
  deepEqual(check({ const: 400 }, 400), []);
  deepEqual(check({ const: 400 }, 401), ["/: is not 400"]);
  deepEqual(check({ const: null }, null), []);
  equal(check({ const: null }, 0).length, 1);
  ok(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] }));
  ok(!jsonEqual({ a: 1 }, { a: 1, b: undefined }));
  ok(!jsonEqual([1, 2], [2, 1]));
});

Deno.test("validate() counts string length in code points and x-max-utf8-bytes in bytes", () => {
  const key = { type: "string", maxLength: 2, "x-max-utf8-bytes": 4 };
  deepEqual(check(key, "ab"), []);
  deepEqual(check(key, "😀"), []); // One code point, four bytes (two UTF-16 units).
  deepEqual(check(key, "abc"), ["/: has 3 characters, more than 2"]);
  deepEqual(check(key, "éé"), []);
  deepEqual(check(key, "é😀"), ["/: is 6 UTF-8 bytes, more than 4"]);
});

Deno.test("validate() checks minimum, maximum and pattern only on their own types", () => {
  const range = { minimum: -1, maximum: 10 };
  deepEqual(check(range, -1), []);
  deepEqual(check(range, 10), []);
  deepEqual(check(range, 11), ["/: is more than 10"]);
  deepEqual(check(range, "99"), []); // Not a number: the bounds do not apply.
  deepEqual(check({ pattern: "^a+$" }, "aaa"), []);
  equal(check({ pattern: "^a+$" }, "ab").length, 1);
  deepEqual(check({ pattern: "^a+$" }, 5), []);
});

Deno.test("validate() checks oneOf (exactly one), anyOf (at least one) and allOf (all)", () => {
  const oneOf = { oneOf: [{ type: "integer" }, { type: "number" }] };
  deepEqual(check(oneOf, 1.5), []);
  deepEqual(check(oneOf, 1), ["/: matches 2 schemas of oneOf, not exactly one"]);
  match(check(oneOf, "x")[0]!, /matches none of oneOf/);
  const anyOf = { anyOf: [{ required: ["a"] }, { required: ["b"] }] };
  deepEqual(check(anyOf, { a: 1, b: 2 }), []);
  match(check(anyOf, { c: 1 })[0]!, /matches none of anyOf/);
  const allOf = { allOf: [{ type: "integer" }, { minimum: 3 }] };
  deepEqual(check(allOf, 3), []);
  deepEqual(check(allOf, 2), ["/: is less than 3"]);
});

Deno.test("validate() follows local $refs, escaped names included, and refuses others", () => {
  deepEqual(check({ $ref: "#/components/schemas/a~1b~0c" }, 1), []);
  deepEqual(check({ $ref: "#/components/schemas/a~1b~0c" }, 2), ["/: is not 1"]);
  throws(() => check({ $ref: "#/components/schemas/Nope" }, 1), /no "Nope"/);
  throws(() => check({ $ref: "other.yaml#/x" }, 1), /only local references/);
  equal(resolveRef(DOC, "#/openapi"), "3.1.0");
});

Deno.test("validate() parses JSON text of contentMediaType and checks it with contentSchema", () => {
  const text = {
    type: "string",
    contentMediaType: "application/json",
    contentSchema: { $ref: "#/components/schemas/Thing" },
  };
  deepEqual(check(text, '{"name":"a"}'), []);
  deepEqual(check(text, '{"name":1}'), ["(json)/name: is integer, not string"]);
  deepEqual(check(text, "{nope"), ["/: is not JSON text"]);
});

Deno.test("validate() takes true and false schemas and skips annotations", () => {
  deepEqual(check(true, { any: 1 }), []);
  deepEqual(check(false, 1), ["/: no value is allowed here"]);
  deepEqual(check({ description: "x", default: 1, deprecated: true, examples: [] }, "v"), []);
});

Deno.test("validate() refuses a keyword it does not know instead of passing it", () => {
  throws(() => check({ type: "string", format: "email", minProperties: 1 }, "x"), /minProperties/);
  throws(() => check({ not: { type: "null" } }, 1), /unsupported keyword "not"/);
});

Deno.test("unsupportedKeywords() finds unknown keywords in every schema of a document", () => {
  deepEqual(unsupportedKeywords(DOC), []);
  const bad = {
    paths: { "/x": { get: { parameters: [{ schema: { type: "string", multipleOf: 2 } }] } } },
    components: {
      schemas: {
        A: { properties: { b: { not: {} } }, oneOf: [{ if: {} }] },
        C: { items: { prefixItems: [] } },
      },
    },
  };
  deepEqual(
    unsupportedKeywords(bad).sort(),
    [
      "#/components/schemas/A/oneOf/0: if",
      "#/components/schemas/A/properties/b: not",
      "#/components/schemas/C/items: prefixItems",
      "#/paths//x/get/parameters/0/schema: multipleOf",
    ].sort(),
  );
});

Deno.test("requestBodyProblems() checks a body against the operation's request body", () => {
  deepEqual(requestBodyProblems(DOC, "POST", "/things", { name: "a" }), []);
  deepEqual(requestBodyProblems(DOC, "POST", "/things", {}), ['/: lacks required member "name"']);
  deepEqual(requestBodyProblems(DOC, "GET", "/stream", {}), [
    "the operation takes no request body",
  ]);
  throws(() => requestBodyProblems(DOC, "PUT", "/things", {}), /Cannot find PUT \/things/);
});

Deno.test("parameterProblems() refuses undeclared, missing and invalid parameters", () => {
  const url = (query: string) => new URL(`http://x/stream${query}`);
  const need = new Headers({ need: "yes" });
  deepEqual(parameterProblems(DOC, "GET", "/stream", url("?n=12"), need), []);
  deepEqual(parameterProblems(DOC, "GET", "/stream", url(""), need), []);
  deepEqual(parameterProblems(DOC, "GET", "/stream", url("?m=1"), need), [
    'query parameter "m" is not declared',
  ]);
  deepEqual(parameterProblems(DOC, "GET", "/stream", url("?n=1")), ['header "Need" is required']);
  equal(parameterProblems(DOC, "GET", "/stream", url("?n=x"), need).length, 1);
});

Deno.test("responseProblems() checks status, content type, headers and body", () => {
  const json = new Headers({ "content-type": "application/json; charset=utf-8" });
  const problem = new Headers({ "content-type": "application/problem+json" });
  const seen = (status: number, headers: Headers, text: string | null) => ({
    status,
    headers,
    text,
  });
  deepEqual(responseProblems(DOC, "POST", "/things", seen(200, json, '{"name":"a"}')), []);
  deepEqual(responseProblems(DOC, "POST", "/things", seen(200, json, '{"name":3}')), [
    "/name: is integer, not string",
  ]);
  deepEqual(responseProblems(DOC, "POST", "/things", seen(400, problem, '{"code":"bad"}')), []);
  equal(responseProblems(DOC, "POST", "/things", seen(400, problem, '{"code":"worse"}')).length, 1);
  match(
    responseProblems(DOC, "POST", "/things", seen(404, problem, "{}"))[0]!,
    /status 404 is not listed/,
  );
  match(
    responseProblems(DOC, "POST", "/things", seen(400, json, '{"code":"bad"}'))[0]!,
    /content-type "application\/json" is not one of application\/problem\+json/,
  );
  match(responseProblems(DOC, "POST", "/things", seen(200, json, "{"))[0]!, /is not JSON/);
  const stream = new Headers({ "content-type": "text/event-stream" });
  deepEqual(responseProblems(DOC, "GET", "/stream", seen(200, stream, null)), [
    "header Cache-Control is missing",
  ]);
  stream.set("cache-control", "no-cache");
  deepEqual(responseProblems(DOC, "GET", "/stream", seen(200, stream, null)), []);
});

Deno.test("eventProblems() checks one server-sent event against the stream's x-itemSchema", () => {
  const event = (name: string, data: string) => ({ event: name, data, id: "0:1" });
  deepEqual(eventProblems(DOC, "GET", "/stream", event("put", '{"name":"a"}')), []);
  equal(eventProblems(DOC, "GET", "/stream", event("put", '{"name":""}')).length, 1);
  equal(eventProblems(DOC, "GET", "/stream", event("delete", '{"name":"a"}')).length, 1);
  deepEqual(eventProblems(DOC, "POST", "/things", event("put", "{}")), [
    "the answer is not a text/event-stream",
  ]);
});
