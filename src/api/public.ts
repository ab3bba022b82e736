/**
 * The public API (DESIGN §3) as one `fetch(Request) → Response` function over a node.
 */
import type { ConditionCache, Mutation } from "../apply/mod.ts";
import type { Config } from "../config/mod.ts";
import type { Histogram, Metrics } from "../metrics/mod.ts";
import type { GetKey, Reader } from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { authorize } from "./auth.ts";
import { closeConnection, type Closing, NEVER_CLOSING } from "./front.ts";
import { parseBody, readBody } from "./body.ts";
import { type Forwarding, forwardRequest, NEVER_FORWARDING } from "./forward.ts";
import { OPENAPI_PATH, openApiJson } from "./openapi.ts";
import { problemResponse } from "./problem.ts";
import {
  parseBatch,
  parseGet,
  parseHistory,
  parseList,
  parseWatch,
  parseWrite,
  watchQuery,
} from "./requests.ts";
import type { WatchHub } from "../watch/mod.ts";

type Route =
  | "put"
  | "delete"
  | "batch"
  | "get"
  | "list"
  | "history"
  | "watch"
  | "healthz"
  | "readyz"
  | "openapi";

/** The POST routes by path (docs/openapi.yaml has an operation for each: openapi_test.ts). */
export const POST_ROUTES: Record<string, Route> = {
  "/records/put": "put",
  "/records/delete": "delete",
  "/records/batch": "batch",
  "/records/get": "get",
  "/records/list": "list",
  "/records/history": "history",
  "/records/watch": "watch",
};
/** The GET (and HEAD) routes by path. */
export const GET_ROUTES: Record<string, Route> = {
  "/healthz": "healthz",
  "/readyz": "readyz",
  [OPENAPI_PATH]: "openapi",
  "/records/watch": "watch",
};

const JSON_HEADERS = { "content-type": "application/json" };

function json(text: string, status = 200): Response {
  return new Response(text, { status, headers: JSON_HEADERS });
}

/** The JSON of a get response: records found, in request order, and the keys missing. */
function getResponse(keys: readonly GetKey[], out: readonly (string | null)[]): string {
  let records = "";
  let missing = "";
  for (let i = 0; i < keys.length; i++) {
    const record = out[i];
    if (record === null || record === undefined) {
      const key = keys[i]!;
      missing += `${missing === "" ? "" : ","}{"pk":${JSON.stringify(key.pk)},"sk":${
        JSON.stringify(key.sk)
      }}`;
    } else {
      records += (records === "" ? "" : ",") + record;
    }
  }
  return `{"records":[${records}],"missing":[${missing}]}`;
}

/**
 * What the public API needs from a node: a `Node` on the main thread, a serving thread's view of
 * it (src/serve/) elsewhere.
 */
export interface ApiNode {
  readonly config: Config;
  /** `/readyz`. */
  readonly ready: boolean;
  /** Compiled conditions and filters. */
  readonly conditions: ConditionCache;
  readonly metrics: Metrics;
  /** Appends one mutation per partition; resolves to the offsets by partition. */
  write(mutations: ReadonlyMap<number, Mutation>): Promise<Record<string, number>>;
}

/**
 * Where a read goes instead of being answered here during a hand-over (forward.ts): one that waits
 * for offsets (`waits`: it has `after`) goes to the successor, which applies from now on — at once,
 * or, if it was already waiting here when the hand-over began, once `error` says its wait ran out
 * (504) or was cut (503). Null: answer here, or let `error` stand.
 */
function readTarget(
  forwarding: Readonly<Forwarding>,
  waits: boolean,
  error?: unknown,
): string | null {
  if (!waits || forwarding.target === null) return null;
  if (error === undefined) return forwarding.target;
  return error instanceof OperationalError &&
      (error.code === "not_caught_up" || error.code === "partition_unavailable")
    ? forwarding.target
    : null;
}

async function route(
  node: ApiNode,
  reader: Reader,
  name: Route,
  request: Request,
  health: string,
  forwarding: Readonly<Forwarding>,
  path: string,
  watch: WatchHub | null,
): Promise<Response> {
  const config = node.config;
  switch (name) {
    case "healthz":
      return json(health);
    case "readyz":
      return node.ready ? json('{"status":"ready"}') : json('{"status":"not_ready"}', 503);
    case "openapi":
      return json(openApiJson(config.limits));
    case "put":
    case "delete":
    case "batch": {
      authorize(request, config, "write");
      const text = await readBody(request, config.limits.bodyBytesMax);
      const target = forwarding.target;
      if (target !== null && forwarding.writes) {
        return forwardRequest(target, path, request, text, true);
      }
      const body = parseBody(text, true);
      const mutations = name === "batch"
        ? parseBatch(body, config, node.conditions)
        : parseWrite(body, name, config, node.conditions);
      return json(JSON.stringify({ offsets: await node.write(mutations) }));
    }
    case "get": {
      authorize(request, config, "read");
      const text = await readBody(request, config.limits.bodyBytesMax);
      const get = parseGet(parseBody(text), config);
      const waits = get.after.size > 0;
      const target = readTarget(forwarding, waits);
      if (target !== null) return forwardRequest(target, path, request, text, false);
      try {
        return json(getResponse(get.keys, await reader.get(get, () => request.signal)));
      } catch (error) {
        const later = readTarget(forwarding, waits, error);
        if (later === null) throw error;
        return forwardRequest(later, path, request, text, false);
      }
    }
    case "history": {
      authorize(request, config, "read");
      const text = await readBody(request, config.limits.bodyBytesMax);
      const body = parseBody(text);
      return json(await reader.history(parseHistory(body, config), body));
    }
    case "watch": {
      authorize(request, config, "read");
      if (watch === null) {
        throw new OperationalError("watch_disabled", "Cannot watch: WATCH_RETAIN_SEC is 0 here");
      }
      const fields = request.method === "POST"
        ? parseBody(await readBody(request, config.limits.bodyBytesMax))
        : watchQuery(new URL(request.url));
      return await watch.open(parseWatch(fields, request.headers.get("last-event-id"), config));
    }
    case "list": {
      authorize(request, config, "read");
      const text = await readBody(request, config.limits.bodyBytesMax);
      const body = parseBody(text);
      const list = parseList(body, config, node.conditions);
      const waits = list.after.size > 0;
      const target = readTarget(forwarding, waits);
      if (target !== null) return forwardRequest(target, path, request, text, false);
      try {
        return json(await reader.list(list, body));
      } catch (error) {
        const later = readTarget(forwarding, waits, error);
        if (later === null) throw error;
        return forwardRequest(later, path, request, text, false);
      }
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

/** What else a public handler answers with. */
export interface PublicHandlerOptions {
  /** The `/healthz` body (a serving thread names itself). */
  readonly health?: string;
  /** Once `closing`, answers close their HTTP/1.1 connections (front.ts). */
  readonly stop?: Readonly<Closing>;
  /** Once it has a target, writes and `after` reads go there (forward.ts). */
  readonly forwarding?: Readonly<Forwarding>;
  /** This thread's watch streams; none: `/records/watch` is 404 `watch_disabled`. */
  readonly watch?: WatchHub | null;
}

/**
 * The public API handler of `node`: parses, authorizes and serializes; writes go to the node,
 * reads to `reads`.
 */
export function publicHandler(
  node: ApiNode,
  reads: Reader,
  options: PublicHandlerOptions = {},
): (request: Request) => Promise<Response> {
  const health = options.health ?? '{"status":"ok"}';
  const stop = options.stop ?? NEVER_CLOSING;
  const forwarding = options.forwarding ?? NEVER_FORWARDING;
  const watch = options.watch ?? null;
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
      response = await route(node, reads, name, request, health, forwarding, path, watch);
    } catch (error) {
      const allow = POST_ROUTES[path] === undefined
        ? "GET, HEAD"
        : GET_ROUTES[path] === undefined
        ? "POST"
        : "GET, HEAD, POST";
      response = problemResponse(
        error,
        error instanceof OperationalError && error.code === "method_not_allowed" ? { allow } : {},
      );
    }
    childFor(name ?? "other", response.status).observe(
      (performance.now() - started) / 1000,
    );
    return stop.closing ? closeConnection(request, response) : response;
  };
}
