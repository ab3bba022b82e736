/**
 * Holding HTTP traffic to an OpenAPI 3.1 document: a small JSON Schema (2020-12) validator for
 * the keywords docs/openapi.yaml uses, and checks of a request or a response against an
 * operation of the document. Tests send real requests and ask whether the document says they are
 * valid and whether the answer is one the document promises.
 *
 * The validator knows these assertion keywords: `type`, `properties`, `required`,
 * `additionalProperties`, `propertyNames`, `items`, `enum`, `const`, `minLength`, `maxLength`
 * (code points), `pattern`, `minimum`, `maximum`, `minItems`, `maxItems`, `oneOf`, `anyOf`,
 * `allOf`, `$ref` (local, `#/…`), `contentMediaType: application/json` with `contentSchema` (the
 * string is parsed and its value checked), and the extension `x-max-utf8-bytes` (a string's UTF-8
 * length). Annotations (`description`, `default`, …) are skipped. Any other keyword is an error
 * of the document, not a pass: {@linkcode unsupportedKeywords} finds them all up front.
 *
 * @module
 */

/** A schema: an object of keywords, or `true`/`false`. */
export type Schema = boolean | { readonly [keyword: string]: unknown };

/** An OpenAPI document as parsed JSON (only what the checks read is typed). */
export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly components?: Readonly<Record<string, unknown>>;
  readonly [key: string]: unknown;
}

const ASSERTIONS = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "propertyNames",
  "items",
  "enum",
  "const",
  "minLength",
  "maxLength",
  "pattern",
  "minimum",
  "maximum",
  "minItems",
  "maxItems",
  "oneOf",
  "anyOf",
  "allOf",
  "$ref",
  "contentMediaType",
  "contentSchema",
  "x-max-utf8-bytes",
]);

const ANNOTATIONS = new Set([
  "description",
  "title",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "discriminator",
  "format",
  "$comment",
]);

/** Keywords whose value is one schema. */
const SUBSCHEMA = ["additionalProperties", "propertyNames", "items", "contentSchema"] as const;
/** Keywords whose value is a list of schemas. */
const SUBSCHEMAS = ["oneOf", "anyOf", "allOf"] as const;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** JSON equality: same type, same members, same order of array items. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length &&
    keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
}

function typeMatches(type: string, value: unknown): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "integer":
      return Number.isInteger(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return isObject(value);
  }
  throw new Error(`Cannot check type "${type}": not a JSON Schema type`);
}

/** The JSON type name of `value`, for messages. */
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (Number.isInteger(value)) return "integer";
  return typeof value;
}

/** The value the local reference `ref` (`#/a/b`) points to in `document`. */
export function resolveRef(document: unknown, ref: string): unknown {
  if (!ref.startsWith("#/")) throw new Error(`Cannot resolve ${ref}: only local references`);
  let at: unknown = document;
  for (const raw of ref.slice(2).split("/")) {
    const part = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (!isObject(at) || !Object.hasOwn(at, part)) {
      throw new Error(`Cannot resolve ${ref}: no "${part}"`);
    }
    at = at[part];
  }
  return at;
}

const encoder = new TextEncoder();

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replaceAll("~", "~0").replaceAll("/", "~1")}`;
}

/**
 * Why `value` does not match `schema` (empty: it matches), each reason prefixed with the JSON
 * pointer of the value it is about. `document` resolves `$ref`s.
 */
export function validate(
  schema: Schema,
  value: unknown,
  document: unknown,
  path = "",
): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path || "/"}: no value is allowed here`];
  const errors: string[] = [];
  const fail = (message: string) => errors.push(`${path || "/"}: ${message}`);
  for (const keyword of Object.keys(schema)) {
    if (!ASSERTIONS.has(keyword) && !ANNOTATIONS.has(keyword)) {
      throw new Error(`Cannot validate at ${path || "/"}: unsupported keyword "${keyword}"`);
    }
  }
  const s = schema as Json;
  if (typeof s.$ref === "string") {
    errors.push(...validate(resolveRef(document, s.$ref) as Schema, value, document, path));
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type as string[] : [s.type as string];
    if (!types.some((t) => typeMatches(t, value))) {
      fail(`is ${typeName(value)}, not ${types.join(" or ")}`);
      return errors; // The other keywords would only repeat it.
    }
  }
  if (Object.hasOwn(s, "const") && !jsonEqual(value, s.const)) {
    fail(`is not ${JSON.stringify(s.const)}`);
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => jsonEqual(value, e))) {
    fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  }
  if (typeof value === "string") validateString(s, value, document, path, fail, errors);
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) fail(`is less than ${s.minimum}`);
    if (typeof s.maximum === "number" && value > s.maximum) fail(`is more than ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) {
      fail(`has ${value.length} items, fewer than ${s.minItems}`);
    }
    if (typeof s.maxItems === "number" && value.length > s.maxItems) {
      fail(`has ${value.length} items, more than ${s.maxItems}`);
    }
    if (s.items !== undefined) {
      value.forEach((item, i) => {
        errors.push(...validate(s.items as Schema, item, document, pointer(path, i)));
      });
    }
  }
  if (isObject(value)) validateObject(s, value, document, path, fail, errors);
  if (Array.isArray(s.allOf)) {
    for (const sub of s.allOf) errors.push(...validate(sub as Schema, value, document, path));
  }
  if (Array.isArray(s.anyOf)) {
    const results = s.anyOf.map((sub) => validate(sub as Schema, value, document, path));
    if (!results.some((r) => r.length === 0)) {
      fail(`matches none of anyOf: ${results.map((r) => r.join("; ")).join(" | ")}`);
    }
  }
  if (Array.isArray(s.oneOf)) {
    const results = s.oneOf.map((sub) => validate(sub as Schema, value, document, path));
    const passed = results.filter((r) => r.length === 0).length;
    if (passed === 0) {
      fail(`matches none of oneOf: ${results.map((r) => r.join("; ")).join(" | ")}`);
    } else if (passed > 1) {
      fail(`matches ${passed} schemas of oneOf, not exactly one`);
    }
  }
  return errors;
}

function validateString(
  s: Json,
  value: string,
  document: unknown,
  path: string,
  fail: (message: string) => void,
  errors: string[],
): void {
  const length = [...value].length;
  if (typeof s.minLength === "number" && length < s.minLength) {
    fail(`has ${length} characters, fewer than ${s.minLength}`);
  }
  if (typeof s.maxLength === "number" && length > s.maxLength) {
    fail(`has ${length} characters, more than ${s.maxLength}`);
  }
  const bytesMax = s["x-max-utf8-bytes"];
  if (typeof bytesMax === "number") {
    const bytes = encoder.encode(value).length;
    if (bytes > bytesMax) fail(`is ${bytes} UTF-8 bytes, more than ${bytesMax}`);
  }
  if (typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(value)) {
    fail(`${JSON.stringify(value)} does not match ${s.pattern}`);
  }
  if (s.contentMediaType !== undefined) {
    if (s.contentMediaType !== "application/json") {
      throw new Error(`Cannot validate contentMediaType ${s.contentMediaType}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      fail("is not JSON text");
      return;
    }
    if (s.contentSchema !== undefined) {
      errors.push(...validate(s.contentSchema as Schema, parsed, document, `${path}(json)`));
    }
  }
}

function validateObject(
  s: Json,
  value: Json,
  document: unknown,
  path: string,
  fail: (message: string) => void,
  errors: string[],
): void {
  if (Array.isArray(s.required)) {
    for (const name of s.required as string[]) {
      if (!Object.hasOwn(value, name)) fail(`lacks required member "${name}"`);
    }
  }
  const properties = isObject(s.properties) ? s.properties : {};
  for (const [name, member] of Object.entries(value)) {
    const at = pointer(path, name);
    if (s.propertyNames !== undefined) {
      const problems = validate(s.propertyNames as Schema, name, document, at);
      if (problems.length > 0) fail(`member name "${name}" is not allowed: ${problems.join("; ")}`);
    }
    if (Object.hasOwn(properties, name)) {
      errors.push(...validate(properties[name] as Schema, member, document, at));
    } else if (s.additionalProperties === false) {
      fail(`has member "${name}", which is not allowed`);
    } else if (s.additionalProperties !== undefined) {
      errors.push(...validate(s.additionalProperties as Schema, member, document, at));
    }
  }
}

/**
 * Every place in the schemas under `root` that uses a keyword the validator does not know, as
 * `<where>: <keyword>`: the document must stay within what its tests can check.
 */
export function unsupportedKeywords(root: unknown): string[] {
  const found: string[] = [];
  const walkSchema = (schema: unknown, where: string) => {
    if (typeof schema === "boolean") return;
    if (!isObject(schema)) {
      found.push(`${where}: not a schema`);
      return;
    }
    for (const [keyword, value] of Object.entries(schema)) {
      if (!ASSERTIONS.has(keyword) && !ANNOTATIONS.has(keyword)) found.push(`${where}: ${keyword}`);
      if (keyword === "properties" && isObject(value)) {
        for (const [name, sub] of Object.entries(value)) {
          walkSchema(sub, `${where}/properties/${name}`);
        }
      }
      if ((SUBSCHEMA as readonly string[]).includes(keyword) && typeof value !== "boolean") {
        walkSchema(value, `${where}/${keyword}`);
      }
      if ((SUBSCHEMAS as readonly string[]).includes(keyword) && Array.isArray(value)) {
        value.forEach((sub, i) => walkSchema(sub, `${where}/${keyword}/${i}`));
      }
    }
  };
  // Outside schemas, every member named `schema` (media types, parameters, headers) or
  // `x-itemSchema` holds one, and `components.schemas` holds many.
  const walk = (node: unknown, where: string) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${where}/${i}`));
      return;
    }
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const at = `${where}/${key}`;
      if (key === "schema" || key === "x-itemSchema") walkSchema(value, at);
      else if (key === "schemas" && where.endsWith("/components") && isObject(value)) {
        for (const [name, sub] of Object.entries(value)) walkSchema(sub, `${at}/${name}`);
      } else walk(value, at);
    }
  };
  walk(root, "#");
  return found;
}

// --- Operations ------------------------------------------------------------------------------

/** The object `value` is, or a `$ref` to, in `document`. */
function deref(document: OpenApiDocument, value: unknown): Json {
  let at = value;
  for (let hops = 0; isObject(at) && typeof at.$ref === "string"; hops++) {
    if (hops > 8) throw new Error("Cannot resolve: a $ref chain longer than 8");
    at = resolveRef(document, at.$ref);
  }
  if (!isObject(at)) throw new Error("Cannot resolve: not an object");
  return at;
}

/** The operation `method path` of `document`; throws when the document has none. */
export function operationOf(document: OpenApiDocument, method: string, path: string): Json {
  const item = document.paths[path];
  const operation = item?.[method.toLowerCase()];
  if (!isObject(operation)) {
    throw new Error(`Cannot find ${method.toUpperCase()} ${path} in the document`);
  }
  return operation;
}

/** Why a JSON request `body` does not match the request body of `method path` (empty: valid). */
export function requestBodyProblems(
  document: OpenApiDocument,
  method: string,
  path: string,
  body: unknown,
): string[] {
  const operation = operationOf(document, method, path);
  if (operation.requestBody === undefined) return ["the operation takes no request body"];
  const requestBody = deref(document, operation.requestBody);
  const media = deref(document, (requestBody.content as Json | undefined)?.["application/json"]);
  return validate(media.schema as Schema, body, document);
}

/**
 * Why the query of `url` and the `headers` do not match the parameters of `method path`: a query
 * parameter the operation does not declare, a required one missing, a value against its schema.
 */
export function parameterProblems(
  document: OpenApiDocument,
  method: string,
  path: string,
  url: URL,
  headers: Headers = new Headers(),
): string[] {
  const operation = operationOf(document, method, path);
  const parameters = ((operation.parameters ?? []) as unknown[]).map((p) => deref(document, p));
  const problems: string[] = [];
  for (const name of url.searchParams.keys()) {
    if (!parameters.some((p) => p.in === "query" && p.name === name)) {
      problems.push(`query parameter "${name}" is not declared`);
    }
  }
  for (const parameter of parameters) {
    const name = parameter.name as string;
    const value = parameter.in === "query"
      ? url.searchParams.get(name)
      : parameter.in === "header"
      ? headers.get(name)
      : null;
    if (value === null) {
      if (parameter.required === true) problems.push(`${parameter.in} "${name}" is required`);
      continue;
    }
    problems.push(
      ...validate(parameter.schema as Schema, value, document, `${parameter.in}:${name}`),
    );
  }
  return problems;
}

/** A response as a test read it: status, headers, and the body text (null: not read, a stream). */
export interface SeenResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string | null;
}

/** Why `seen` is not what the response object `response` (of `document`) promises. */
export function responseObjectProblems(
  document: OpenApiDocument,
  response: unknown,
  seen: SeenResponse,
): string[] {
  const promised = deref(document, response);
  const problems: string[] = [];
  for (const [name, header] of Object.entries((promised.headers ?? {}) as Json)) {
    const h = deref(document, header);
    const value = seen.headers.get(name);
    if (value === null) {
      if (h.required === true) problems.push(`header ${name} is missing`);
      continue;
    }
    problems.push(...validate(h.schema as Schema, value, document, `header:${name}`));
  }
  const content = (promised.content ?? {}) as Json;
  const type = (seen.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (Object.keys(content).length === 0) {
    if (seen.text !== null && seen.text !== "") problems.push("a body where none is promised");
    return problems;
  }
  if (!Object.hasOwn(content, type)) {
    problems.push(`content-type "${type}" is not one of ${Object.keys(content).join(", ")}`);
    return problems;
  }
  if (seen.text === null || !type.endsWith("json")) return problems;
  let body: unknown;
  try {
    body = JSON.parse(seen.text);
  } catch {
    return [...problems, `the ${type} body is not JSON: ${seen.text.slice(0, 200)}`];
  }
  const media = deref(document, content[type]);
  return [...problems, ...validate(media.schema as Schema, body, document)];
}

/**
 * Why `seen`, the answer to `method path`, is not one the document promises: its status must be
 * listed for the operation, its content type too, and its body must match the schema.
 */
export function responseProblems(
  document: OpenApiDocument,
  method: string,
  path: string,
  seen: SeenResponse,
): string[] {
  const responses = (operationOf(document, method, path).responses ?? {}) as Json;
  const response = responses[String(seen.status)] ?? responses.default;
  if (response === undefined) {
    return [
      `status ${seen.status} is not listed for ${method.toUpperCase()} ${path} (${
        Object.keys(responses).join(", ")
      })`,
    ];
  }
  return responseObjectProblems(document, response, seen);
}

/** One dispatched server-sent event, as src/watch/sse.ts reads it. */
export interface SeenEvent {
  readonly event: string;
  readonly data: string;
  readonly id: string | null;
}

/**
 * Why a server-sent event of the `text/event-stream` answer (status 200) to `method path` does
 * not match the answer's `x-itemSchema` (OpenAPI 3.2's `itemSchema`: one object per event, with
 * `event`, `data`, `id`; a dispatch without data is `{id}` alone).
 */
export function eventProblems(
  document: OpenApiDocument,
  method: string,
  path: string,
  event: SeenEvent,
): string[] {
  const responses = (operationOf(document, method, path).responses ?? {}) as Json;
  const content = (deref(document, responses["200"]).content ?? {}) as Json;
  const stream = content["text/event-stream"];
  if (stream === undefined) return ["the answer is not a text/event-stream"];
  const media = deref(document, stream);
  if (media["x-itemSchema"] === undefined) return ["the stream has no x-itemSchema"];
  // A dispatch without data (the first frame, a heartbeat) is a position alone.
  const item: Json = event.event === "" ? {} : { event: event.event, data: event.data };
  if (event.id !== null) item.id = event.id;
  return validate(media["x-itemSchema"] as Schema, item, document);
}
