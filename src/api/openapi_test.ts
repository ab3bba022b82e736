import { deepEqual, equal, ok } from "node:assert/strict";
import { parse } from "yaml";
import { withApi } from "../../tests/_helpers.ts";
import {
  type OpenApiDocument,
  resolveRef,
  unsupportedKeywords,
  validate,
} from "../../tests/_openapi.ts";
import { loadConfig } from "../config/mod.ts";
import { ERROR_CODES, type ErrorCode } from "../util/error_codes.ts";
import {
  defaultLimits,
  OPENAPI_PATH,
  openApiDocument,
  openApiJson,
  type OpenApiLimits,
  UNANSWERED_CODES,
} from "./openapi.ts";
import { PROBLEMS } from "./problem.ts";
import { GET_ROUTES, POST_ROUTES } from "./public.ts";

const YAML_FILE = new URL("../../docs/openapi.yaml", import.meta.url);

/** docs/openapi.yaml, parsed: the document the checks below hold to the code. */
async function yamlDocument(): Promise<OpenApiDocument> {
  return parse(await Deno.readTextFile(YAML_FILE)) as OpenApiDocument;
}

type Json = Record<string, unknown>;

/** Every member of `node` (recursively) named `key`, with where it is. */
function membersNamed(node: unknown, key: string, at = "#"): [string, unknown][] {
  if (typeof node !== "object" || node === null) return [];
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(node)) {
    if (k === key) out.push([at, v]);
    out.push(...membersNamed(v, key, `${at}/${k}`));
  }
  return out;
}

/** The problem responses of the document: where, status, and the codes they list. */
function problemResponses(
  document: OpenApiDocument,
): { at: string; status: number; codes: string[] }[] {
  const out: { at: string; status: number; codes: string[] }[] = [];
  for (const [at, content] of membersNamed(document, "content")) {
    const media = (content as Json)["application/problem+json"] as Json | undefined;
    if (media === undefined) continue;
    const narrow = ((media.schema as Json).allOf as Json[])[1]!.properties as Json;
    out.push({
      at,
      status: (narrow.status as Json).const as number,
      codes: (narrow.code as Json).enum as string[],
    });
  }
  return out;
}

Deno.test("docs/openapi.yaml is src/api/openapi.ts's document with the default limits", async () => {
  deepEqual(
    await yamlDocument(),
    openApiDocument(defaultLimits()),
    "docs/openapi.yaml is stale: run `deno run -R -W scripts/openapi_yaml.ts`",
  );
});

Deno.test("defaultLimits() are the limits of a node with no limit variable set", () => {
  const limits = loadConfig({ DB_PATH: "/nonexistent/openapi_test" }).limits;
  const defaults = defaultLimits();
  for (const field of Object.keys(defaults) as (keyof OpenApiLimits)[]) {
    equal(defaults[field], limits[field], field);
  }
});

Deno.test("the document's problem code enum is exactly the closed list of error codes", async () => {
  const document = await yamlDocument();
  const code = resolveRef(document, "#/components/schemas/ProblemCode") as Json;
  deepEqual(code.enum, [...ERROR_CODES]);
  equal(
    (resolveRef(document, "#/components/schemas/Problem/properties/code") as Json).$ref,
    "#/components/schemas/ProblemCode",
  );
});

Deno.test("every code the public port answers is listed under its status, and no other", async () => {
  const document = await yamlDocument();
  const listed = new Set<string>();
  for (const { at, status, codes } of problemResponses(document)) {
    ok(codes.length > 0, at);
    for (const code of codes) {
      ok(code in PROBLEMS, `${at} lists ${code}, which is not an error code`);
      equal(PROBLEMS[code as ErrorCode].status, status, `${at}: ${code}`);
      ok(!UNANSWERED_CODES.includes(code as ErrorCode), `${at} lists ${code}, never answered`);
      listed.add(code);
    }
    // The response's key is its status.
    ok(at.endsWith(`/${status}`) || at.includes("/components/responses/"), at);
  }
  deepEqual(
    [...listed, ...UNANSWERED_CODES].sort(),
    [...ERROR_CODES].sort(),
    "each code is either listed under an operation (or components.responses) or unanswered",
  );
});

Deno.test("every route of the router is an operation of the document, and the other way round", async () => {
  const document = await yamlDocument();
  const routes = [
    ...Object.keys(POST_ROUTES).map((path) => `post ${path}`),
    ...Object.keys(GET_ROUTES).map((path) => `get ${path}`),
  ].sort();
  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method} ${path}`)
  ).sort();
  deepEqual(operations, routes);
});

Deno.test("every schema of the document uses only keywords the test validator checks", async () => {
  deepEqual(unsupportedKeywords(await yamlDocument()), []);
});

Deno.test("every $ref of the document resolves", async () => {
  const document = await yamlDocument();
  const refs = membersNamed(document, "$ref");
  ok(refs.length > 50, `${refs.length} references`);
  for (const [at, ref] of refs) {
    ok(typeof ref === "string", at);
    resolveRef(document, ref); // Throws when it does not resolve.
  }
});

Deno.test("every operation has an id, a 200 answer and, unless open, the bearer scheme", async () => {
  const document = await yamlDocument();
  const ids = new Set<string>();
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item) as [string, Json][]) {
      const where = `${method} ${path}`;
      ok(typeof operation.operationId === "string" && !ids.has(operation.operationId), where);
      ids.add(operation.operationId as string);
      ok(Object.hasOwn(operation.responses as Json, "200"), where);
      const security = operation.security as Json[];
      if (path.startsWith("/records/")) {
        equal(security.length, 1, where);
        ok("bearerAuth" in security[0]!, where);
        // Writes need a write token; everything else a read token.
        const need = method === "post" && /\/(put|delete|batch)$/.test(path) ? "write" : "read";
        deepEqual(security[0]!.bearerAuth, [need], where);
        // Every records route is behind authorization.
        ok(
          problemResponses({ paths: { [path]: { [method]: operation } } } as never)
            .some((r) => r.status === 401),
          where,
        );
      } else {
        deepEqual(security, [], where);
      }
    }
  }
});

Deno.test("the document states the limits it is given", () => {
  const limits: OpenApiLimits = {
    bodyBytesMax: 4096,
    recordsPerRequestMax: 5,
    dataBytesMax: 100,
    conditionBytesMax: 64,
    listLimitMax: 7,
    waitMsMax: 250,
  };
  const document = openApiDocument(limits) as unknown as OpenApiDocument;
  const schema = (name: string) => resolveRef(document, `#/components/schemas/${name}`) as Json;
  const records = (schema("PutRequest").properties as Json).records as Json;
  equal(records.maxItems, 5);
  equal(schema("Condition").maxLength, 64);
  equal(schema("WaitMs").maximum, 250);
  equal(((schema("ListRequest").properties as Json).limit as Json).maximum, 7);
  equal(((schema("ListRequest").properties as Json).limit as Json).default, 7);
  ok((schema("Data").description as string).includes("(100)"));
  deepEqual(validate({ $ref: "#/components/schemas/WaitMs" }, 251, document).length, 1);
});

Deno.test("GET /openapi.json serves the document with the node's limits, open and as JSON", async () => {
  await withApi({ RECORDS_PER_REQUEST_MAX: "5", API_TOKENS_READ: "r1" }, async (api) => {
    const served = await api.request("GET", OPENAPI_PATH);
    equal(served.status, 200, served.text);
    equal(served.headers.get("content-type"), "application/json");
    const limits = api.node.config.limits;
    deepEqual(served.json, openApiDocument(limits));
    equal(served.text, openApiJson(limits));
    const records = (resolveRef(served.json, "#/components/schemas/PutRequest") as Json)
      .properties as Json;
    equal((records.records as Json).maxItems, 5);
    // HEAD too, without a token, like the health routes; other methods are 405.
    equal((await api.request("HEAD", OPENAPI_PATH)).status, 200);
    const post = await api.request("POST", OPENAPI_PATH, "{}");
    equal(post.status, 405);
    equal(post.headers.get("allow"), "GET, HEAD");
  });
});
