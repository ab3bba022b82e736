/**
 * A serving thread (the body of one `Worker`): the public API on the shared public port
 * (`SO_REUSEPORT`: the kernel spreads connections over the threads), reading the partition files
 * directly through {@linkcode ThreadPartitions}, with everything else handed to the main thread:
 * writes (encoded here, appended there), reads of partitions served by region peers (the main
 * thread's router), and its metrics (summed into the one `/metrics`).
 *
 * The same `publicHandler` and `Reader` as on the main thread answer every request, so parsing,
 * auth, limits, problems and read routing are the same code on every thread.
 *
 * @module
 */
import {
  type Closing,
  expectAcceptStops,
  type Forwarding,
  Front,
  publicHandler,
} from "../api/mod.ts";
import { ConditionCache, type Mutation } from "../apply/mod.ts";
import type { Config } from "../config/mod.ts";
import { createMetrics } from "../metrics/mod.ts";
import { encodeWrites, type PeerKey, type PeerReads, Reader } from "../node/mod.ts";
import { bindOrThrow, errorMessage, log, setLogLevel, StartError } from "../util/mod.ts";
import { answer, type CallMessage, Calls, type Port, type ReplyMessage } from "./calls.ts";
import { SharedState } from "./shared_state.ts";
import { ThreadPartitions } from "./thread_partitions.ts";
import { type WatchHub, watchHubFor } from "../watch/mod.ts";

/** What the main thread sends first. */
export interface ThreadInit {
  readonly kind: "init";
  /** 1-based thread number (shown by `/healthz`). */
  readonly thread: number;
  readonly config: Config;
  readonly buffer: SharedArrayBuffer;
  readonly tls: { readonly cert: string; readonly key: string } | null;
}

/** What a thread says once, after init: it listens, or why it cannot. */
export type ThreadStarted =
  | { readonly kind: "listening"; readonly port: number }
  | {
    readonly kind: "start_failed";
    readonly event: string;
    readonly error: string;
    readonly fields: Record<string, unknown>;
  };

/** Calls in flight from one thread to the main thread: far above what a thread can hold. */
const CALLS_MAX = 65_536;
/** A call the main thread leaves unanswered this long has failed (it answers within its own limits). */
const CALL_TIMEOUT_MS = 300_000;
/** How often stale snapshots are dropped. */
const RELEASE_STALE_MS = 1000;

/** A worker's global scope, as a serving thread uses it. */
export interface Scope extends Port {
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

/** The thread's clock (its composition root's, as `wallClock` is the main thread's). */
const now = (): number => Date.now();

/** Region peers as the main thread's router serves them. */
class PeersThroughMain implements PeerReads {
  constructor(private readonly state: SharedState, private readonly calls: Calls) {}

  servedByAlivePeer(partition: number): boolean {
    return this.state.peerServes(partition);
  }

  get(
    keys: readonly PeerKey[],
    after: ReadonlyMap<number, number>,
    waitMs: number,
  ): Promise<(string | null)[]> {
    return this.calls.call("peer_get", { keys, after, waitMs }) as Promise<(string | null)[]>;
  }

  list(partition: number, body: string, waitMs: number): Promise<string> {
    return this.calls.call("peer_list", { partition, body, waitMs }) as Promise<string>;
  }

  past(kind: "get" | "history", partition: number, body: string, waitMs: number): Promise<string> {
    return this.calls.call("peer_past", { kind, partition, body, waitMs }) as Promise<string>;
  }

  watchPeer(partition: number): Promise<string | null> {
    return this.calls.call("peer_watch", partition) as Promise<string | null>;
  }
}

/** Runs a serving thread on `scope` (the worker's global scope). */
export function runThread(scope: Scope): void {
  let server: Deno.HttpServer | null = null;
  let front: Front | null = null;
  /** Set when a stop or hand-over begins: answers then close their HTTP/1.1 connections. */
  const stopNear: Closing = { closing: false };
  /** Set when a hand-over lets go of the folder: writes and `after` reads go to the successor. */
  const forwarding: Forwarding = { target: null, writes: false };
  let partitions: ThreadPartitions | null = null;
  let watch: WatchHub | null = null;
  let metrics: ReturnType<typeof createMetrics> | null = null;
  let releasing: ReturnType<typeof setInterval> | undefined;
  const calls = new Calls(scope, CALLS_MAX, CALL_TIMEOUT_MS);

  const handle = async (op: string, args: unknown): Promise<unknown> => {
    switch (op) {
      case "release":
        partitions?.release(args as number);
        return null;
      case "metrics":
        return metrics?.registry.snapshot() ?? null;
      case "closing":
        stopNear.closing = true;
        watch?.close();
        return null;
      case "forward": {
        const { target, writes } = args as Forwarding;
        forwarding.writes = writes;
        forwarding.target = target;
        return null;
      }
      case "shutdown":
        clearInterval(releasing);
        watch?.close();
        // Finishes requests in flight (their writes still reach the main thread), then closes.
        await server?.shutdown();
        partitions?.close();
        return null;
    }
    throw new Error(`Cannot answer ${op}: no such call`);
  };

  const start = (init: ThreadInit): ThreadStarted => {
    const { config, thread } = init;
    // A worker has its own copy of the logger: the main thread's level does not reach it.
    setLogLevel(config.node.logLevel);
    const state = new SharedState(config.cluster.partitions, config.limits.waitersMax, init.buffer);
    metrics = createMetrics();
    const conditions = new ConditionCache(
      config.limits.conditionCacheMax,
      config.limits.conditionCacheCharsMax,
    );
    partitions = new ThreadPartitions(state, {
      dir: `${config.store.dbPath}/${config.cluster.namespace}`,
      namespace: config.cluster.namespace,
      conditions,
    });
    const peers = config.gossip.enabled ? new PeersThroughMain(state, calls) : null;
    const reader = new Reader(partitions, peers, { limits: config.limits, now });
    const messageBytesMax = config.log.messageBytesMax;
    const node = {
      config,
      conditions,
      metrics,
      get ready() {
        return state.ready;
      },
      write(mutations: ReadonlyMap<number, Mutation>): Promise<Record<string, number>> {
        const requests = encodeWrites(mutations, messageBytesMax);
        return calls.call(
          "append",
          requests,
          requests.map((r) => r.value.buffer as ArrayBuffer),
        ) as Promise<Record<string, number>>;
      },
    };
    const slots = state.watcherSlots(config.watch.watchersMax);
    watch = watchHubFor(partitions, config, metrics, { slots, thread, peers });
    const health = JSON.stringify({ status: "ok", thread });
    const serve = publicHandler(node, reader, { health, stop: stopNear, forwarding, watch });
    // A hand-over restart holds requests until the folder is taken over (held at most this long).
    const holdMs = 2 * config.lifecycle.shutdownTimeoutMs;
    const opened = async () => {
      await state.opened(holdMs);
      if (state.open) front?.open();
    };
    front = new Front(serve, state.open ? null : opened);
    const handler = front.serve;
    const { listenHost } = config.node;
    server = bindOrThrow("api", listenHost, config.api.port, () =>
      Deno.serve({
        hostname: listenHost,
        port: config.api.port,
        reusePort: true,
        ...(init.tls ?? {}),
        onListen: () => {},
      }, handler));
    releasing = setInterval(() => partitions?.releaseStale(), RELEASE_STALE_MS);
    const port = (server.addr as Deno.NetAddr).port;
    log("info", "serve_thread_listening", { thread, port });
    return { kind: "listening", port };
  };

  // A hand-over shuts this thread's listening socket down from the main thread (app.ts).
  expectAcceptStops();
  scope.onmessage = (event: MessageEvent) => {
    const message = event.data as ThreadInit | CallMessage | ReplyMessage;
    if (message.kind === "init") {
      let started: ThreadStarted;
      try {
        started = start(message);
      } catch (error) {
        started = error instanceof StartError
          ? { kind: "start_failed", event: error.event, error: error.message, fields: error.fields }
          : { kind: "start_failed", event: "start_failed", error: errorMessage(error), fields: {} };
      }
      scope.postMessage(started);
    } else if (message.kind === "call") {
      void answer(scope, message, handle);
    } else if (message.kind === "reply") {
      calls.settle(message);
    }
  };
}
