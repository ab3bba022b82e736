/**
 * The internal port: `/metrics` (Prometheus text), `/internal/status`, and the proxy targets
 * `/internal/records/{get,list,history,watch}`. Never published; `/internal/*` requires the cluster secret as a
 * bearer token when `CLUSTER_SECRET` is set. Proxy targets answer from local files only
 * (`Reader.localGet` / `localList`): a proxied read never hops again.
 */
import { createSnapshot } from "../backup/mod.ts";
import {
  type Gossip,
  INTERNAL_GET_PATH,
  INTERNAL_HISTORY_PATH,
  INTERNAL_LIST_PATH,
  INTERNAL_SNAPSHOT_PATH,
  INTERNAL_WATCH_PATH,
  MANIFEST_HEADER,
} from "../cluster/mod.ts";
import type { RegistrySnapshot } from "../metrics/mod.ts";
import { type Node, Reader } from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { bearer, safeEqual } from "./auth.ts";
import { readJson } from "./body.ts";
import { closeConnection, type Closing, NEVER_CLOSING } from "./front.ts";
import { problemResponse } from "./problem.ts";
import { pathOf } from "./public.ts";
import { parseGet, parseHistory, parseList, parseWatch } from "./requests.ts";
import type { WatchHub } from "../watch/mod.ts";
import { VERSION } from "../version.ts";

function checkSecret(request: Request, secret: string | null): void {
  if (secret === null) return;
  const token = bearer(request);
  if (token === null || !safeEqual(token, secret)) {
    throw new OperationalError(
      "unauthorized",
      "Cannot authorize: /internal/* needs the cluster secret",
    );
  }
}

function methodNotAllowed(method: string, path: string, allowed: string): OperationalError {
  return new OperationalError(
    "method_not_allowed",
    `Cannot ${method} ${path}: use ${allowed}`,
    {
      allow: allowed,
    },
  );
}

function status(node: Node, gossip: Gossip | null): unknown {
  const config = node.config;
  return {
    version: VERSION,
    node: {
      id: config.node.instanceId,
      region: config.node.region,
      replica_group: config.node.replicaGroup,
      namespace: config.cluster.namespace,
      log: config.log.kind,
      partitions: config.cluster.partitions,
      ready: node.ready,
    },
    members: gossip === null ? [] : gossip.membership.list().map(({ member, health }) => ({
      id: member.id,
      group: member.group,
      addr: member.addr,
      state: health,
      serving: [...member.serving].sort((a, b) => a - b),
      seen_ms_ago: node.now() - member.seenAt,
    })),
    partitions: node.status(),
  };
}

const JSON_HEADERS = { "content-type": "application/json" };

/** A file as a response body; the file is deleted once sent or abandoned. */
async function streamThenDelete(path: string): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  const reader = file.readable.getReader();
  const cleanup = () => Deno.remove(path).catch(() => {});
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        await cleanup();
      } else controller.enqueue(value);
    },
    async cancel() {
      await reader.cancel().catch(() => {});
      await cleanup();
    },
  });
}

/**
 * Streams fresh compacted copies of served partitions to region peers (peer bootstrap), one at a
 * time: each is a full copy of a partition on local disk.
 */
class SnapshotSender {
  private busy = false;

  constructor(private readonly node: Node) {}

  async send(path: string): Promise<Response> {
    const node = this.node;
    const partition = Number(path.slice(INTERNAL_SNAPSHOT_PATH.length));
    if (
      !/^\d+$/.test(path.slice(INTERNAL_SNAPSHOT_PATH.length)) ||
      partition >= node.config.cluster.partitions
    ) {
      throw new OperationalError("not_found", `Cannot route ${path}: no such partition`);
    }
    const store = node.servingStore(partition);
    if (store === null) {
      throw new OperationalError(
        "partition_unavailable",
        `Cannot snapshot partition ${partition}: not served here`,
        { partition },
      );
    }
    if (this.busy) {
      throw new OperationalError(
        "snapshot_busy",
        "Cannot snapshot: another snapshot is being sent",
      );
    }
    this.busy = true;
    const file = `${node.storeDir}/.peer-p${partition}-${node.now()}.mdb`;
    try {
      const manifest = await createSnapshot(
        store,
        file,
        node.config.cluster.namespace,
        node.config.node.instanceId,
        node.now(),
      );
      const body = await streamThenDelete(file);
      return new Response(body, {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(manifest.bytes),
          [MANIFEST_HEADER]: JSON.stringify(manifest),
        },
      });
    } catch (error) {
      await Deno.remove(file).catch(() => {});
      throw error;
    } finally {
      this.busy = false;
    }
  }
}

/** The metrics of other threads (the serving threads), summed into `/metrics`. */
export type ThreadMetrics = () => Promise<readonly RegistrySnapshot[]>;

/** What the internal handler serves from, besides the node. */
export interface InternalHandlerOptions {
  /** The gossip agent in cluster mode (`/internal/status` lists its members). */
  readonly gossip?: Gossip | null;
  /** Proxy targets read through its local half (default: a reader of the node's partitions). */
  readonly reader?: Reader | null;
  /** The serving threads' metrics, added to the node's own on `/metrics`. */
  readonly threadMetrics?: ThreadMetrics | null;
  /** Once `closing`, answers close their HTTP/1.1 connections (front.ts). */
  readonly stop?: Readonly<Closing>;
  /** The main thread's watch streams: a peer's proxied watch (local partitions only). */
  readonly watch?: WatchHub | null;
}

interface Internal {
  readonly node: Node;
  readonly threadMetrics: ThreadMetrics | null;
  readonly reader: Reader;
  readonly gossip: Gossip | null;
  readonly snapshots: SnapshotSender;
  readonly watch: WatchHub | null;
}

async function route(
  { node, reader, gossip, snapshots, threadMetrics, watch }: Internal,
  request: Request,
): Promise<Response> {
  const path = pathOf(request.url);
  const config = node.config;
  if (path === INTERNAL_GET_PATH || path === INTERNAL_LIST_PATH) {
    if (request.method !== "POST") throw methodNotAllowed(request.method, path, "POST");
    checkSecret(request, config.cluster.secret);
    const body = await readJson(request, config.limits.bodyBytesMax);
    if (path === INTERNAL_GET_PATH) {
      const out = await reader.localGet(parseGet(body, config));
      const lines = out.map((r) => r ?? "null").join("\n");
      return new Response(lines, { headers: { "content-type": "application/x-ndjson" } });
    }
    const list = await reader.localList(parseList(body, config, node.conditions));
    return new Response(list, { headers: JSON_HEADERS });
  }
  if (path === INTERNAL_HISTORY_PATH) {
    if (request.method !== "POST") throw methodNotAllowed(request.method, path, "POST");
    checkSecret(request, config.cluster.secret);
    const body = await readJson(request, config.limits.bodyBytesMax);
    return new Response(await reader.localHistory(parseHistory(body, config)), {
      headers: JSON_HEADERS,
    });
  }
  if (path === INTERNAL_WATCH_PATH) {
    if (request.method !== "POST") throw methodNotAllowed(request.method, path, "POST");
    checkSecret(request, config.cluster.secret);
    if (watch === null) {
      throw new OperationalError("watch_disabled", "Cannot watch: WATCH_RETAIN_SEC is 0 here");
    }
    const body = await readJson(request, config.limits.bodyBytesMax);
    // Local partitions only: a proxied watch never hops again.
    return await watch.open(parseWatch(body, null, config), { proxy: false });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    throw methodNotAllowed(request.method, path, "GET, HEAD");
  }
  if (path.startsWith(INTERNAL_SNAPSHOT_PATH)) {
    checkSecret(request, config.cluster.secret);
    return await snapshots.send(path);
  }
  if (path === "/metrics") {
    const threads = threadMetrics === null ? [] : await threadMetrics();
    return new Response(node.metrics.registry.render(threads), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }
  if (path === "/internal/status") {
    checkSecret(request, config.cluster.secret);
    return new Response(JSON.stringify(status(node, gossip)), { headers: JSON_HEADERS });
  }
  throw new OperationalError("not_found", `Cannot route ${path}: no such endpoint`);
}

/** The internal handler of `node`; see {@linkcode InternalHandlerOptions}. */
export function internalHandler(
  node: Node,
  options: InternalHandlerOptions = {},
): (request: Request) => Promise<Response> {
  const stop = options.stop ?? NEVER_CLOSING;
  const internal: Internal = {
    node,
    gossip: options.gossip ?? null,
    threadMetrics: options.threadMetrics ?? null,
    reader: options.reader ??
      new Reader(node, null, { limits: node.config.limits, now: node.now }),
    snapshots: new SnapshotSender(node),
    watch: options.watch ?? null,
  };
  return async (request) => {
    let response: Response;
    try {
      response = await route(internal, request);
    } catch (error) {
      // RFC 9110: a 405 names the methods that are allowed.
      const allow = error instanceof OperationalError && error.code === "method_not_allowed"
        ? String(error.details.allow)
        : null;
      response = problemResponse(error, allow === null ? {} : { allow });
    }
    return stop.closing ? closeConnection(request, response) : response;
  };
}
