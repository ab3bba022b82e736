/**
 * The main thread's side of the serving threads: starts `SERVE_THREADS` workers that each serve
 * the public port, keeps them in step with the node (the node calls it as its `ReadReplicas`:
 * partition states, applied offsets, readiness, draining — all through {@linkcode SharedState}),
 * answers their calls (appends, reads through region peers, metrics), releases partition files
 * from every thread before the node closes them, and shuts them down in a stop.
 *
 * Why workers and not processes: docs/architecture.md, "Serving threads".
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { RegistrySnapshot } from "../metrics/mod.ts";
import type { AppendRequest, Node, PeerKey, PeerReads, ReadReplicas } from "../node/mod.ts";
import { errorMessage, log, StartError } from "../util/mod.ts";
import { answer, type CallMessage, Calls, type ReplyMessage } from "./calls.ts";
import { SharedState } from "./shared_state.ts";
import type { ThreadInit, ThreadStarted } from "./thread.ts";

/** How often peer flags and readiness are refreshed from the router (membership changes). */
const REFRESH_MS = 50;
/** Calls in flight to one thread (release, metrics, shutdown: a handful at a time). */
const CALLS_MAX = 1024;
/** A thread that does not answer a release or metrics call within this has failed. */
const CALL_TIMEOUT_MS = 10_000;
/** Longest a thread may take to start listening. */
const START_TIMEOUT_MS = 30_000;

/** What the serving threads are built from. */
export interface ServeThreadsOptions {
  /** How many threads (≥ 2; one thread is the main thread serving alone). */
  readonly count: number;
  readonly config: Config;
  readonly node: Node;
  /** The region's read router (cluster mode), or null. */
  readonly peers: PeerReads | null;
  readonly tls: { readonly cert: string; readonly key: string } | null;
  /** Hold requests until {@linkcode ServeThreads.open} (a hand-over restart). */
  readonly held?: boolean;
}

interface Thread {
  readonly worker: Worker;
  readonly calls: Calls;
}

/** The serving threads of a node. */
export class ServeThreads implements ReadReplicas {
  readonly state: SharedState;
  private readonly threads: Thread[] = [];
  /** Partitions being released: not readable by any thread until the node has closed them. */
  private readonly releasing = new Set<number>();
  private refresher: ReturnType<typeof setInterval> | undefined;
  /** The public port as bound. */
  port = 0;
  /** Set once every thread has ended. */
  private stopped = false;

  private constructor(private readonly options: ServeThreadsOptions) {
    const { config } = options;
    this.state = new SharedState(config.cluster.partitions, config.limits.waitersMax);
    if (options.held === true) this.state.setOpen(false);
  }

  /** Answers the requests held since start (a hand-over restart). */
  open(): void {
    this.state.setOpen(true);
  }

  /** Starts the threads; resolves once every one listens, rejects (all stopped) if one cannot. */
  static async start(options: ServeThreadsOptions): Promise<ServeThreads> {
    const threads = new ServeThreads(options);
    try {
      await Promise.all(
        Array.from({ length: options.count }, (_, i) => threads.startOne(i + 1)),
      );
    } catch (error) {
      for (const t of threads.threads) t.worker.terminate();
      throw error;
    }
    threads.refresher = setInterval(() => threads.changed(), REFRESH_MS);
    options.node.attachReplicas(threads);
    log("info", "api_listening", {
      hostname: options.config.node.listenHost,
      port: threads.port,
      tls: options.tls !== null,
      threads: options.count,
    });
    return threads;
  }

  private startOne(number: number): Promise<void> {
    const worker = new Worker(new URL("./thread_main.ts", import.meta.url), {
      type: "module",
      name: `serve-${number}`,
    });
    const calls = new Calls(worker, CALLS_MAX, CALL_TIMEOUT_MS);
    const thread: Thread = { worker, calls };
    this.threads.push(thread);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new StartError("start_failed", `serving thread ${number} did not start`, {})),
        START_TIMEOUT_MS,
      );
      worker.onerror = (event) => {
        event.preventDefault();
        clearTimeout(timer);
        calls.failAll(`serving thread ${number} failed`);
        log("error", "serve_thread_failed", { thread: number, error: event.message });
        reject(new StartError("start_failed", `serving thread ${number}: ${event.message}`, {}));
      };
      worker.onmessage = (event: MessageEvent) => {
        const message = event.data as ThreadStarted | CallMessage | ReplyMessage;
        switch (message.kind) {
          case "listening":
            clearTimeout(timer);
            this.port = message.port;
            resolve();
            return;
          case "start_failed":
            clearTimeout(timer);
            reject(new StartError(message.event, message.error, message.fields));
            return;
          case "call":
            void answer(worker, message, (op, args) => this.answer(op, args));
            return;
          case "reply":
            calls.settle(message);
            return;
        }
      };
      const init: ThreadInit = {
        kind: "init",
        thread: number,
        config: this.options.config,
        buffer: this.state.buffer,
        tls: this.options.tls,
      };
      worker.postMessage(init);
    });
  }

  /** A serving thread's call. */
  private answer(op: string, args: unknown): Promise<unknown> {
    const { node, peers } = this.options;
    switch (op) {
      case "append":
        return node.append(args as AppendRequest[]);
      case "peer_get": {
        const { keys, after, waitMs } = args as {
          keys: PeerKey[];
          after: Map<number, number>;
          waitMs: number;
        };
        if (peers === null) throw new Error("Cannot read through peers: not in a cluster");
        return peers.get(keys, after, waitMs);
      }
      case "peer_list": {
        const { partition, body, waitMs } = args as {
          partition: number;
          body: string;
          waitMs: number;
        };
        if (peers === null) throw new Error("Cannot read through peers: not in a cluster");
        return peers.list(partition, body, waitMs);
      }
      case "peer_past": {
        const { kind, partition, body, waitMs } = args as {
          kind: "get" | "history";
          partition: number;
          body: string;
          waitMs: number;
        };
        if (peers === null) throw new Error("Cannot read through peers: not in a cluster");
        return peers.past(kind, partition, body, waitMs);
      }
      case "peer_watch":
        return peers === null ? Promise.resolve(null) : peers.watchPeer(args as number);
    }
    return Promise.reject(new Error(`Cannot answer ${op}: no such call`));
  }

  // --- ReadReplicas ---------------------------------------------------------------------------

  changed(): void {
    const { node, peers } = this.options;
    const state = this.state;
    for (let p = 0; p < state.partitions; p++) {
      const s = node.stateOf(p);
      const readable = s === "serving" || s === "retiring";
      if (this.releasing.has(p)) {
        // Closed since: readable again only through a new open.
        if (!readable) this.releasing.delete(p);
        state.setPartition(p, null, peers?.servedByAlivePeer(p) ?? false);
        continue;
      }
      state.setPartition(p, readable ? s : null, peers?.servedByAlivePeer(p) ?? false);
    }
    state.setReady(node.ready);
    if (node.isDraining && !state.draining) state.setDraining();
  }

  applied(partition: number, offset: number): void {
    this.state.publishApplied(partition, offset);
  }

  async release(partition: number): Promise<void> {
    // After shutdown no thread reads anything.
    if (this.stopped) return;
    this.releasing.add(partition);
    this.changed();
    await Promise.all(
      this.threads.map((t) =>
        t.calls.call("release", partition).catch((error) =>
          log("error", "serve_thread_release_failed", { partition, error: errorMessage(error) })
        )
      ),
    );
  }

  // --- the rest -------------------------------------------------------------------------------

  /** Every thread's metrics, to be summed into `/metrics`. */
  async metrics(): Promise<RegistrySnapshot[]> {
    const snapshots = await Promise.all(
      this.threads.map((t) => t.calls.call("metrics", null).catch(() => null)),
    );
    return snapshots.filter((s): s is RegistrySnapshot => s !== null);
  }

  /** Every thread's HTTP/1.1 answers close their connection from now on (a stop is near). */
  async closing(): Promise<void> {
    await Promise.all(
      this.threads.map((t) =>
        t.calls.call("closing", null).catch((error) =>
          log("error", "serve_thread_closing_failed", { error: errorMessage(error) })
        )
      ),
    );
  }

  /**
   * Every thread sends `after` reads (and writes, with `writes`) to `target` from now on
   * (src/api/forward.ts).
   */
  async forwardTo(target: string, writes: boolean): Promise<void> {
    await Promise.all(
      this.threads.map((t) =>
        t.calls.call("forward", { target, writes }).catch((error) =>
          log("error", "serve_thread_forward_failed", { error: errorMessage(error) })
        )
      ),
    );
  }

  /**
   * Stops every thread: each stops accepting, finishes its requests in flight (writes among them
   * still reach the node) and closes its readers; then the workers end.
   */
  async shutdown(): Promise<void> {
    clearInterval(this.refresher);
    await Promise.all(
      this.threads.map((t) =>
        t.calls.call("shutdown", null).catch((error) =>
          log("error", "serve_thread_shutdown_failed", { error: errorMessage(error) })
        )
      ),
    );
    this.state.setStopped();
    for (const t of this.threads) {
      t.calls.failAll("serving thread stopped");
      t.worker.terminate();
    }
    this.stopped = true;
  }
}
