/**
 * The internal port: `/metrics` (Prometheus text), `/internal/status`, and the proxy targets
 * `/internal/records/{get,list}`. Never published; `/internal/*` requires the cluster secret as a
 * bearer token when `CLUSTER_SECRET` is set. Proxy targets answer from local files only: a
 * proxied read never hops again.
 */
import { type Gossip, INTERNAL_GET_PATH, INTERNAL_LIST_PATH } from "../cluster/mod.ts";
import type { Node } from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { bearer, safeEqual } from "./auth.ts";
import { readJson } from "./body.ts";
import { problemResponse } from "./problem.ts";
import { pathOf } from "./public.ts";
import { localGetLines, localList } from "./read.ts";
import { parseGet, parseList } from "./requests.ts";

function checkSecret(request: Request, secret: string | null): void {
  if (secret === null) return;
  const token = bearer(request);
  if (token === null || !safeEqual(token, secret)) {
    throw new OperationalError(
      "unauthorized",
      401,
      "Cannot authorize: /internal/* needs the cluster secret",
    );
  }
}

function methodNotAllowed(method: string, path: string, allowed: string): OperationalError {
  return new OperationalError(
    "method_not_allowed",
    405,
    `Cannot ${method} ${path}: use ${allowed}`,
    {
      allow: allowed,
    },
  );
}

function status(node: Node, gossip: Gossip | null): unknown {
  const config = node.config;
  return {
    node: {
      id: config.instanceId,
      region: config.region,
      replica_group: config.replicaGroup,
      namespace: config.namespace,
      log: config.log,
      partitions: config.partitions,
      ready: node.ready,
    },
    members: gossip === null ? [] : gossip.membership.list().map(({ member, health }) => ({
      id: member.id,
      group: member.group,
      addr: member.addr,
      state: health,
      serving: [...member.serving].sort((a, b) => a - b),
      seen_ms_ago: Date.now() - member.seenAt,
    })),
    partitions: node.status(),
  };
}

const JSON_HEADERS = { "content-type": "application/json" };

async function route(node: Node, gossip: Gossip | null, request: Request): Promise<Response> {
  const path = pathOf(request.url);
  const config = node.config;
  if (path === INTERNAL_GET_PATH || path === INTERNAL_LIST_PATH) {
    if (request.method !== "POST") throw methodNotAllowed(request.method, path, "POST");
    checkSecret(request, config.clusterSecret);
    const body = await readJson(request, config.bodyBytesMax);
    if (path === INTERNAL_GET_PATH) {
      const lines = await localGetLines(node, parseGet(body, config));
      return new Response(lines, { headers: { "content-type": "application/x-ndjson" } });
    }
    const list = await localList(node, parseList(body, config, node.conditions));
    return new Response(list, { headers: JSON_HEADERS });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    throw methodNotAllowed(request.method, path, "GET, HEAD");
  }
  if (path === "/metrics") {
    return new Response(node.metrics.registry.render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }
  if (path === "/internal/status") {
    checkSecret(request, config.clusterSecret);
    return new Response(JSON.stringify(status(node, gossip)), { headers: JSON_HEADERS });
  }
  throw new OperationalError("not_found", 404, `Cannot route ${path}: no such endpoint`);
}

/** The internal handler of `node` (with its gossip agent in cluster mode). */
export function internalHandler(
  node: Node,
  gossip: Gossip | null = null,
): (request: Request) => Promise<Response> {
  return async (request) => {
    try {
      return await route(node, gossip, request);
    } catch (error) {
      // RFC 9110: a 405 names the methods that are allowed.
      const allow = error instanceof OperationalError && error.status === 405
        ? String(error.details.allow)
        : null;
      return problemResponse(error, allow === null ? {} : { allow });
    }
  };
}
