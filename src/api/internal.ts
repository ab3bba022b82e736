/**
 * The internal port: `/metrics` (Prometheus text) and `/internal/status`. Never published;
 * `/internal/*` requires the cluster secret as a bearer token when `CLUSTER_SECRET` is set.
 */
import type { Node } from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { bearer, safeEqual } from "./auth.ts";
import { problemResponse } from "./problem.ts";
import { pathOf } from "./public.ts";

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

/** The internal handler of `node`. */
export function internalHandler(node: Node): (request: Request) => Response {
  return (request) => {
    try {
      const path = pathOf(request.url);
      if (request.method !== "GET" && request.method !== "HEAD") {
        throw new OperationalError(
          "method_not_allowed",
          405,
          `Cannot ${request.method} ${path}: use GET`,
        );
      }
      if (path === "/metrics") {
        return new Response(node.metrics.registry.render(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      if (path === "/internal/status") {
        checkSecret(request, node.config.clusterSecret);
        const config = node.config;
        const body = {
          node: {
            id: config.instanceId,
            region: config.region,
            replica_group: config.replicaGroup,
            namespace: config.namespace,
            log: config.log,
            partitions: config.partitions,
            ready: node.ready,
          },
          partitions: node.status(),
        };
        return new Response(JSON.stringify(body), {
          headers: { "content-type": "application/json" },
        });
      }
      throw new OperationalError("not_found", 404, `Cannot route ${path}: no such endpoint`);
    } catch (error) {
      // RFC 9110: a 405 names the methods that are allowed.
      const is405 = error instanceof OperationalError && error.status === 405;
      return problemResponse(error, is405 ? { allow: "GET, HEAD" } : {});
    }
  };
}
