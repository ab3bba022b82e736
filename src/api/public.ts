/**
 * The public API (DESIGN §3) as one `fetch(Request) → Response` function over a node.
 */
import type { Node } from "../node/mod.ts";
import type { StoredRecord } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { authorize } from "./auth.ts";
import { readJson } from "./body.ts";
import { problemResponse } from "./problem.ts";
import {
  type GetRequest,
  type ListRequest,
  parseBatch,
  parseGet,
  parseList,
  parseWrite,
  type ReadAfter,
} from "./requests.ts";

type Route = "put" | "delete" | "batch" | "get" | "list" | "healthz" | "readyz";

const POST_ROUTES: Record<string, Route> = {
  "/records/put": "put",
  "/records/delete": "delete",
  "/records/batch": "batch",
  "/records/get": "get",
  "/records/list": "list",
};
const GET_ROUTES: Record<string, Route> = { "/healthz": "healthz", "/readyz": "readyz" };

const JSON_HEADERS = { "content-type": "application/json" };

function json(text: string, status = 200): Response {
  return new Response(text, { status, headers: JSON_HEADERS });
}

/** The JSON text of a record; `data` is spliced in as stored, never re-serialized. */
export function recordJson(r: StoredRecord): string {
  return `{"pk":${JSON.stringify(r.pk)},"sk":${
    JSON.stringify(r.sk)
  },"data":${r.dataJson},"version":${r.version},"created_at":${r.createdAt},"updated_at":${r.updatedAt}}`;
}

function unavailable(partition: number): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    503,
    `Cannot read: partition ${partition} is not served by any node yet`,
    { partition },
  );
}

/** Waits for the `after` offsets of the partitions a read touches. */
async function awaitAfter(
  node: Node,
  read: ReadAfter,
  partitions: Iterable<number>,
): Promise<void> {
  if (read.after.size === 0) return;
  const waits: Promise<void>[] = [];
  for (const p of partitions) {
    const offset = read.after.get(p);
    if (offset !== undefined) waits.push(node.waitForOffset(p, offset, read.waitMs));
  }
  if (waits.length > 0) await Promise.all(waits);
}

async function get(node: Node, request: GetRequest): Promise<Response> {
  const partitions = new Set<number>();
  for (const key of request.keys) {
    if (!partitions.has(key.partition)) {
      if (node.servingStore(key.partition) === null) throw unavailable(key.partition);
      partitions.add(key.partition);
    }
  }
  await awaitAfter(node, request, partitions);
  // All reads below run synchronously, so each partition is read from one snapshot.
  let records = "";
  let missing = "";
  for (const key of request.keys) {
    const store = node.servingStore(key.partition);
    if (store === null) throw unavailable(key.partition);
    const record = store.get(key.pk, key.sk);
    if (record === null) {
      missing += `${missing === "" ? "" : ","}{"pk":${JSON.stringify(key.pk)},"sk":${
        JSON.stringify(key.sk)
      }}`;
    } else {
      records += (records === "" ? "" : ",") + recordJson(record);
    }
  }
  return json(`{"records":[${records}],"missing":[${missing}]}`);
}

async function list(node: Node, request: ListRequest): Promise<Response> {
  if (node.servingStore(request.partition) === null) throw unavailable(request.partition);
  await awaitAfter(node, request, [request.partition]);
  const store = node.servingStore(request.partition);
  if (store === null) throw unavailable(request.partition);
  const conditions = node.conditions;
  const expression = request.filter;
  const page = store.list({
    pk: request.pk,
    skPrefix: request.skPrefix,
    startAfter: request.startAfter,
    endBefore: request.endBefore,
    limit: request.limit,
    reverse: request.reverse,
    filter: expression === null ? null : (r) => conditions.evaluate(expression, r) === "true",
    stopOnFilter: request.stopOnFilter,
    scanMax: Math.max(node.config.listScanMax, request.limit),
  });
  const records = page.records.map(recordJson).join(",");
  return json(`{"records":[${records}],"next":${JSON.stringify(page.next)}}`);
}

async function route(node: Node, name: Route, request: Request): Promise<Response> {
  const config = node.config;
  switch (name) {
    case "healthz":
      return json('{"status":"ok"}');
    case "readyz":
      return node.ready ? json('{"status":"ready"}') : json('{"status":"not_ready"}', 503);
    case "put":
    case "delete": {
      authorize(request, config, "write");
      const body = await readJson(request, config.bodyBytesMax);
      const offsets = await node.write(parseWrite(body, name, config, node.conditions));
      return json(JSON.stringify({ offsets }));
    }
    case "batch": {
      authorize(request, config, "write");
      const body = await readJson(request, config.bodyBytesMax);
      const offsets = await node.write(parseBatch(body, config, node.conditions));
      return json(JSON.stringify({ offsets }));
    }
    case "get": {
      authorize(request, config, "read");
      return await get(node, parseGet(await readJson(request, config.bodyBytesMax), config));
    }
    case "list": {
      authorize(request, config, "read");
      const body = await readJson(request, config.bodyBytesMax);
      return await list(node, parseList(body, config, node.conditions));
    }
  }
}

/** The path of a request URL without allocating a URL object (this runs on every request). */
export function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

function notFound(path: string): OperationalError {
  return new OperationalError("not_found", 404, `Cannot route ${path}: no such endpoint`);
}

/** The public API handler of `node`. */
export function publicHandler(node: Node): (request: Request) => Promise<Response> {
  const duration = node.metrics.requestDuration;
  return async (request) => {
    const started = performance.now();
    const path = pathOf(request.url);
    let name: Route | undefined;
    let response: Response;
    try {
      if (request.method === "POST") {
        name = POST_ROUTES[path];
        if (name === undefined && GET_ROUTES[path] !== undefined) {
          throw new OperationalError("method_not_allowed", 405, `Cannot POST ${path}: use GET`);
        }
      } else if (request.method === "GET" || request.method === "HEAD") {
        name = GET_ROUTES[path];
        if (name === undefined && POST_ROUTES[path] !== undefined) {
          throw new OperationalError(
            "method_not_allowed",
            405,
            `Cannot ${request.method} ${path}: use POST`,
          );
        }
      } else if (POST_ROUTES[path] !== undefined || GET_ROUTES[path] !== undefined) {
        throw new OperationalError("method_not_allowed", 405, `Cannot ${request.method} ${path}`);
      }
      if (name === undefined) throw notFound(path);
      response = await route(node, name, request);
    } catch (error) {
      const allow = POST_ROUTES[path] !== undefined ? "POST" : "GET, HEAD";
      response = problemResponse(
        error,
        error instanceof OperationalError && error.status === 405 ? { allow } : {},
      );
    }
    duration.labels(name ?? "other", String(response.status)).observe(
      (performance.now() - started) / 1000,
    );
    return response;
  };
}
