/**
 * The public API (DESIGN §3) as one `fetch(Request) → Response` function over a node.
 */
import type { Router } from "../cluster/mod.ts";
import type { Histogram } from "../metrics/mod.ts";
import type { Node } from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { authorize } from "./auth.ts";
import { readJson } from "./body.ts";
import { problemResponse } from "./problem.ts";
import { routedGet, routedList } from "./read.ts";
import { parseBatch, parseGet, parseList, parseWrite } from "./requests.ts";

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

async function route(
  node: Node,
  router: Router | null,
  name: Route,
  request: Request,
): Promise<Response> {
  const config = node.config;
  switch (name) {
    case "healthz":
      return json('{"status":"ok"}');
    case "readyz":
      return node.ready ? json('{"status":"ready"}') : json('{"status":"not_ready"}', 503);
    case "put":
    case "delete": {
      authorize(request, config, "write");
      const body = await readJson(request, config.bodyBytesMax, true);
      const offsets = await node.write(parseWrite(body, name, config, node.conditions));
      return json(JSON.stringify({ offsets }));
    }
    case "batch": {
      authorize(request, config, "write");
      const body = await readJson(request, config.bodyBytesMax, true);
      const offsets = await node.write(parseBatch(body, config, node.conditions));
      return json(JSON.stringify({ offsets }));
    }
    case "get": {
      authorize(request, config, "read");
      const body = await readJson(request, config.bodyBytesMax);
      return json(await routedGet(node, router, parseGet(body, config)));
    }
    case "list": {
      authorize(request, config, "read");
      const body = await readJson(request, config.bodyBytesMax);
      return json(await routedList(node, router, parseList(body, config, node.conditions), body));
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
  return new OperationalError("not_found", `Cannot route ${path}: no such endpoint`);
}

/**
 * The public API handler of `node`. Reads of partitions the node does not serve go through
 * `router` (null: single node, such reads are 503 `partition_unavailable`).
 */
export function publicHandler(
  node: Node,
  router: Router | null = null,
): (request: Request) => Promise<Response> {
  const duration = node.metrics.requestDuration;
  // Histogram children by "route status", looked up once each: no label work per request.
  const children = new Map<string, Histogram>();
  const childFor = (route: string, status: number): Histogram => {
    const key = `${route} ${status}`;
    let child = children.get(key);
    if (child === undefined) children.set(key, child = duration.labels(route, String(status)));
    return child;
  };
  return async (request) => {
    const started = performance.now();
    const path = pathOf(request.url);
    let name: Route | undefined;
    let response: Response;
    try {
      if (request.method === "POST") {
        name = POST_ROUTES[path];
        if (name === undefined && GET_ROUTES[path] !== undefined) {
          throw new OperationalError("method_not_allowed", `Cannot POST ${path}: use GET`);
        }
      } else if (request.method === "GET" || request.method === "HEAD") {
        name = GET_ROUTES[path];
        if (name === undefined && POST_ROUTES[path] !== undefined) {
          throw new OperationalError(
            "method_not_allowed",
            `Cannot ${request.method} ${path}: use POST`,
          );
        }
      } else if (POST_ROUTES[path] !== undefined || GET_ROUTES[path] !== undefined) {
        throw new OperationalError("method_not_allowed", `Cannot ${request.method} ${path}`);
      }
      if (name === undefined) throw notFound(path);
      response = await route(node, router, name, request);
    } catch (error) {
      const allow = POST_ROUTES[path] !== undefined ? "POST" : "GET, HEAD";
      response = problemResponse(
        error,
        error instanceof OperationalError && error.code === "method_not_allowed" ? { allow } : {},
      );
    }
    childFor(name ?? "other", response.status).observe(
      (performance.now() - started) / 1000,
    );
    return response;
  };
}
