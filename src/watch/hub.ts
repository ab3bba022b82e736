/**
 * The watch streams of one thread (the main thread, or each serving thread): Server-Sent Events
 * read from the partitions' change logs (src/store/changes.ts).
 *
 * **One reader per partition, not per watcher.** For each partition with watchers, one loop waits
 * for the partition's next applied offset (the `after` wait machinery, so a serving thread learns
 * of it without polling), reads the new changes once, renders each once, and hands it to every
 * watcher of that partition whose keys it matches.
 *
 * **Exactly once, in order.** A new watcher first reads its backlog (the changes after its cursor)
 * itself, paced by its stream, and joins the live fan-out in the same synchronous step as its last
 * read finds nothing more in the current snapshot; the fan-out hands a watcher only changes after
 * its own cursor. So nothing falls between the backlog and the live stream, and nothing comes
 * twice.
 *
 * **Bounded.** `WATCHERS_MAX` streams per node (the slots are shared by the serving threads); each
 * stream queues at most `WATCH_BUFFER_BYTES` (the live fan-out never waits for a slow reader: past
 * the bound it sends `event: overflow` and closes the stream, and the client resumes from its
 * last id); the backlog is read in batches of {@linkcode BATCH} only while the stream has room.
 *
 * **Ends.** A stream ends when the client goes, when its partition stops being served here (it
 * moved, or the node stops: {@linkcode WatchHub.close}), or on overflow; the client reconnects with
 * `Last-Event-ID` and resumes wherever the partition is served.
 *
 * @module
 */
import { INTERNAL_WATCH_PATH } from "../cluster/mod.ts";
import type { Config } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { LocalSlots, type PeerReads, recordJson, type WaiterSlots } from "../node/mod.ts";
import type { Change, ChangeCursor } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { type Cursors, cursorText, parseId } from "./cursor.ts";
import { readSse, type SseEvent } from "./sse.ts";

/** Changes read at once, by a partition's loop or by a watcher's backlog. */
export const BATCH = 256;
/** Longest a partition's loop waits for a new offset before it looks again. */
const WAKE_MS = 1000;
/** Pause of a partition's loop when the node's waiter slots are all taken. */
const BUSY_RETRY_MS = 50;
/** Peers asked in turn for a proxied partition before the watch is refused. */
const PROXY_ROUNDS = 3;
/** Pause between those rounds. */
const PROXY_RETRY_MS = 100;
/** Clients reconnect this soon after a stream ends (the SSE `retry` field). */
const RETRY_MS = 1000;

const encoder = new TextEncoder();

/** What a watch reads from a partition file (`PartitionStore` or `PartitionReader`). */
export interface ChangeReads {
  readonly applied: { readonly offset: number };
  readonly changesSince: number;
  changesAfter(cursor: ChangeCursor, limit: number): Change[];
}

/** The partitions of a thread, as a watch reads them (`Node` or `ThreadPartitions`). */
export interface WatchSource {
  servingStore(partition: number): ChangeReads | null;
  isRetiring(partition: number): boolean;
  waitForOffset(partition: number, offset: number, waitMs: number): Promise<void>;
}

/** What to watch: validated by the API (src/api/requests.ts). */
export interface WatchSpec {
  readonly partitions: readonly number[];
  readonly pk: string | null;
  readonly skPrefix: string;
  readonly cursors: Cursors;
}

/** Settings of a hub. */
export interface WatchHubOptions {
  /** `WATCH_BUFFER_BYTES`. */
  readonly bufferBytes: number;
  /** `WATCH_HEARTBEAT_MS`. */
  readonly heartbeatMs: number;
  /** `WATCHERS_MAX`, counted node-wide. */
  readonly slots: WaiterSlots;
  readonly metrics: Metrics;
  /** The serving thread's number, named in each stream's first comment (null: the main thread). */
  readonly thread?: number | null;
  /** Region peers, for partitions not served here (null: not in a cluster). */
  readonly peers?: PeerReads | null;
  /** `CLUSTER_SECRET`, the bearer of a proxied watch. */
  readonly secret?: string | null;
  /** `GOSSIP_PROXY_TIMEOUT_MS`: bound on a peer answering a proxied watch's start. */
  readonly proxyTimeoutMs?: number;
  /** `PARTITIONS` (to read a peer's ids). */
  readonly partitions?: number;
}

/** A peer's stream of the partitions it serves, proxied into one of ours. */
interface Upstream {
  readonly partitions: readonly number[];
  readonly events: AsyncGenerator<SseEvent>;
}

/** Whether the change at (`offset`, `index`) comes after `cursor`. */
function isAfter(offset: number, index: number, cursor: ChangeCursor): boolean {
  return offset > cursor.offset ||
    (offset === cursor.offset && cursor.index !== null && index > cursor.index);
}

/** The cursor right after `change`. */
function cursorAfter(change: Change): ChangeCursor {
  return { offset: change.offset, index: change.last ? null : change.index };
}

/**
 * One change, rendered once for every stream it goes to: its `event:` and `data:` lines, and for
 * streams of one partition (whose id is then the change's own position) the whole frame.
 */
class Frame {
  private lines: string | null = null;
  private whole: Uint8Array | null = null;

  constructor(readonly partition: number, readonly change: Change) {}

  /** The `event:` and `data:` lines. */
  get body(): string {
    if (this.lines !== null) return this.lines;
    const change = this.change;
    const data = change.record !== null
      ? recordJson(change.record)
      : `{"pk":${JSON.stringify(change.pk)},"sk":${
        JSON.stringify(change.sk)
      },"version":${change.offset}}`;
    return this.lines = `event: ${change.kind}\ndata: ${data}\n\n`;
  }

  /** The frame of a stream that watches this partition alone. */
  get onePartition(): Uint8Array {
    return this.whole ??= encoder.encode(
      `id: ${cursorText(this.partition, cursorAfter(this.change))}\n${this.body}`,
    );
  }
}

/** 503 `too_many_watchers`. */
function tooMany(slots: WaiterSlots): OperationalError {
  return new OperationalError(
    "too_many_watchers",
    `Cannot watch: ${slots.taken} watch streams are already open (WATCHERS_MAX)`,
  );
}

function unavailable(partition: number, why: string): OperationalError {
  return new OperationalError(
    "partition_unavailable",
    `Cannot watch: partition ${partition} ${why}`,
    { partition },
  );
}

/** One open stream. */
class Watcher {
  /** In the live fan-out (its backlog is read). */
  live = false;
  ended = false;
  /** Something was written since the last heartbeat tick. */
  wrote = true;
  /** Aborted when the stream ends: its upstreams (proxied partitions) go with it. */
  readonly gone = new AbortController();
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private room: (() => void) | null = null;
  readonly stream: ReadableStream<Uint8Array>;
  private readonly sorted: readonly number[];
  /** The partitions served here (the rest come from peers). */
  readonly local: readonly number[];

  constructor(
    readonly spec: WatchSpec,
    readonly cursors: Cursors,
    bufferBytes: number,
    private readonly onEnd: (watcher: Watcher) => void,
  ) {
    this.local = [...cursors.keys()];
    this.sorted = [...spec.partitions];
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      pull: () => {
        this.room?.();
        this.room = null;
      },
      cancel: () => this.end(false),
    }, { highWaterMark: bufferBytes, size: (chunk) => chunk.byteLength });
  }

  matches(change: Change): boolean {
    return (this.spec.pk === null || change.pk === this.spec.pk) &&
      change.sk.startsWith(this.spec.skPrefix);
  }

  /** The stream's id: every partition's cursor. */
  id(): string {
    let out = "";
    for (const p of this.sorted) {
      out += (out === "" ? "" : ",") + cursorText(p, this.cursors.get(p)!);
    }
    return out;
  }

  /** Whether the queue holds less than the buffer bound. */
  get hasRoom(): boolean {
    return (this.controller.desiredSize ?? 0) > 0;
  }

  /** Resolves once the stream wants more (or has ended). */
  whenRoom(): Promise<void> {
    if (this.ended || this.hasRoom) return Promise.resolve();
    return new Promise((resolve) => this.room = resolve);
  }

  write(text: string): void {
    this.enqueue(encoder.encode(text));
  }

  /** One chunk per frame: each chunk is one write to the connection. */
  private enqueue(bytes: Uint8Array): void {
    if (this.ended) return;
    this.controller.enqueue(bytes);
    this.wrote = true;
  }

  /** Hands `frame`'s change to this stream if it comes after its cursor and matches its keys. */
  deliver(frame: Frame): boolean {
    const { partition, change } = frame;
    const cursor = this.cursors.get(partition)!;
    if (!isAfter(change.offset, change.index, cursor)) return false;
    this.cursors.set(partition, cursorAfter(change));
    if (!this.matches(change)) return false;
    // A stream of one partition shares the frame every such stream gets.
    if (this.sorted.length === 1) this.enqueue(frame.onePartition);
    else this.write(`id: ${this.id()}\n${frame.body}`);
    return true;
  }

  /** Takes the cursors of an id a peer sent for the partitions it streams. */
  adopt(id: string, partitions: number): void {
    for (const [p, cursor] of parseId(id, partitions)) {
      if (this.cursors.has(p) || this.spec.partitions.includes(p)) this.cursors.set(p, cursor);
    }
  }

  /** Moves `partition`'s cursor up to `offset` (whole) when nothing of it is left to hand over. */
  advance(partition: number, offset: number): void {
    const cursor = this.cursors.get(partition)!;
    if (offset > cursor.offset) this.cursors.set(partition, { offset, index: null });
  }

  /** Closes the stream (`close`: from this side; otherwise the client went). */
  end(close = true): void {
    if (this.ended) return;
    this.ended = true;
    this.gone.abort();
    this.room?.();
    this.room = null;
    if (close) {
      try {
        this.controller.close();
      } catch {
        // Already errored or cancelled.
      }
    }
    this.onEnd(this);
  }
}

/** The watch streams of one thread; see the module doc. */
export class WatchHub {
  private readonly byPartition = new Map<number, Set<Watcher>>();
  /** Per partition with a loop: the position its fan-out has reached. */
  private readonly through = new Map<number, ChangeCursor>();
  private readonly all = new Set<Watcher>();
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private closed = false;

  constructor(private readonly source: WatchSource, private readonly options: WatchHubOptions) {}

  /** Open streams of this thread. */
  get size(): number {
    return this.all.size;
  }

  /**
   * Opens a stream for `spec`: its response, or a 503 (`partition_unavailable` when a partition
   * is served neither here nor, with `proxy`, by a live region peer; `too_many_watchers`).
   * Partitions served elsewhere come from one proxied stream per peer: the peer's own watch of
   * them, which never hops again.
   */
  async open(spec: WatchSpec, { proxy = true }: { proxy?: boolean } = {}): Promise<Response> {
    if (this.closed) throw unavailable(spec.partitions[0]!, "is not served: the node is stopping");
    const cursors: Cursors = new Map();
    const resets: { partition: number; since: number; from: ChangeCursor }[] = [];
    const remote: number[] = [];
    for (const p of spec.partitions) {
      const store = this.source.servingStore(p);
      if (store === null || this.source.isRetiring(p)) {
        remote.push(p);
        continue;
      }
      const now: ChangeCursor = { offset: store.applied.offset, index: null };
      const given = spec.cursors.get(p);
      if (given === undefined) {
        cursors.set(p, now);
      } else if (
        given.offset < store.changesSince ||
        (given.offset === store.changesSince && given.index !== null)
      ) {
        // Older than the change log still holds: the client must re-list (etcd's "compacted").
        resets.push({ partition: p, since: store.changesSince, from: given });
        cursors.set(p, now);
      } else {
        cursors.set(p, given);
      }
    }
    if (remote.length > 0 && (!proxy || (this.options.peers ?? null) === null)) {
      throw unavailable(remote[0]!, "is not served by this node");
    }
    const slots = this.options.slots;
    if (!slots.take()) throw tooMany(slots);
    const watcher = new Watcher(spec, cursors, this.options.bufferBytes, (w) => this.remove(w));
    let upstreams: Upstream[];
    try {
      upstreams = await this.upstreams(remote, watcher);
    } catch (error) {
      watcher.gone.abort();
      slots.give();
      throw error;
    }
    this.all.add(watcher);
    const m = this.options.metrics;
    m.watchers.labels().set(this.all.size);
    const thread = this.options.thread ?? null;
    const hello = thread === null ? "watching" : `watching, thread ${thread}`;
    let head = `retry: ${RETRY_MS}\n: ${hello}\nid: ${watcher.id()}\n\n`;
    for (const r of resets) {
      m.watchResets.labels().inc();
      const data = JSON.stringify({
        partition: r.partition,
        since: r.since,
        after: cursorText(r.partition, r.from),
      });
      head += `event: reset\nid: ${watcher.id()}\ndata: ${data}\n\n`;
    }
    watcher.write(head);
    for (const p of watcher.local) {
      let watchers = this.byPartition.get(p);
      if (watchers === undefined) this.byPartition.set(p, watchers = new Set());
      watchers.add(watcher);
      if (!this.through.has(p)) {
        this.through.set(p, { offset: this.source.servingStore(p)!.applied.offset, index: null });
        void this.loop(p);
      }
    }
    this.heartbeat ??= setInterval(() => this.beat(), this.options.heartbeatMs);
    for (const upstream of upstreams) void this.relay(upstream, watcher);
    void this.catchUp(watcher);
    return new Response(watcher.stream, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  }

  /**
   * One proxied stream per peer for the partitions of `remote`. A partition whose peer refuses
   * (its ownership is moving, gossip lags) is asked of another peer, at most
   * {@linkcode PROXY_ROUNDS} times; then the watch is a 503.
   */
  private async upstreams(remote: readonly number[], watcher: Watcher): Promise<Upstream[]> {
    const peers = this.options.peers!;
    const opened: Upstream[] = [];
    let left = [...remote];
    for (let round = 1; left.length > 0; round++) {
      const byPeer = new Map<string, number[]>();
      for (const p of left) {
        const addr = await peers.watchPeer(p);
        if (addr === null) throw unavailable(p, "is not served by any node of this region");
        byPeer.set(addr, [...byPeer.get(addr) ?? [], p]);
      }
      const results = await Promise.allSettled(
        [...byPeer].map(([addr, partitions]) => this.upstream(addr, partitions, watcher)),
      );
      left = [];
      let failure: unknown = null;
      for (const [i, result] of results.entries()) {
        if (result.status === "fulfilled") opened.push(result.value);
        else {
          failure = result.reason;
          left.push(...[...byPeer.values()][i]!);
        }
      }
      if (left.length > 0 && round === PROXY_ROUNDS) throw failure;
      if (left.length > 0) await new Promise((resolve) => setTimeout(resolve, PROXY_RETRY_MS));
    }
    return opened;
  }

  /**
   * Opens the peer's stream of `partitions` (from the client's cursors where it gave them), takes
   * its first id into `watcher`'s cursors, and returns it; a peer that does not answer within the
   * proxy timeout is a 503.
   */
  private async upstream(
    addr: string,
    partitions: readonly number[],
    watcher: Watcher,
  ): Promise<Upstream> {
    const spec = watcher.spec;
    const given = partitions.filter((p) => spec.cursors.has(p));
    // A pk watch has one partition, named by the pk alone (a peer refuses both).
    const body = {
      ...(spec.pk === null ? { partitions } : { pk: spec.pk }),
      ...(spec.skPrefix === "" ? {} : { sk_prefix: spec.skPrefix }),
      ...(given.length === 0
        ? {}
        : { after: given.map((p) => cursorText(p, spec.cursors.get(p)!)).join(",") }),
    };
    // Bounds the start only: once the first id is in, the stream lives as long as the watcher.
    const start = new AbortController();
    const timer = setTimeout(() => start.abort(), this.options.proxyTimeoutMs ?? 5000);
    const failed = (why: string) =>
      unavailable(partitions[0]!, `could not be watched on a region peer: ${why}`);
    let events: AsyncGenerator<SseEvent> | null = null;
    try {
      let response: Response;
      try {
        response = await fetch(`http://${addr}${INTERNAL_WATCH_PATH}`, {
          method: "POST",
          body: JSON.stringify(body),
          headers: {
            "content-type": "application/json",
            ...(this.options.secret ? { authorization: `Bearer ${this.options.secret}` } : {}),
          },
          signal: AbortSignal.any([watcher.gone.signal, start.signal]),
        });
      } catch (error) {
        throw failed(String(error));
      }
      if (response.status !== 200) {
        const text = await response.text().catch(() => "");
        throw failed(`${response.status} ${text.slice(0, 200)}`);
      }
      events = readSse(response.body!, {
        signal: AbortSignal.any([watcher.gone.signal, start.signal]),
      });
      const first = await events.next();
      if (first.done || first.value.id === null) throw failed("its stream did not start");
      watcher.adopt(first.value.id, this.options.partitions ?? Number.MAX_SAFE_INTEGER);
      for (const p of partitions) {
        if (!watcher.cursors.has(p)) throw failed(`its first id does not name partition ${p}`);
      }
    } catch (error) {
      start.abort();
      await events?.return(undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return { partitions, events };
  }

  /** Passes a peer's events into `watcher` under its own ids; ends it when the peer's ends. */
  private async relay(upstream: Upstream, watcher: Watcher): Promise<void> {
    const events = this.options.metrics.watchEvents.labels();
    const overflows = this.options.metrics.watchOverflows.labels();
    const partitions = this.options.partitions ?? Number.MAX_SAFE_INTEGER;
    try {
      for await (const event of upstream.events) {
        if (watcher.ended) break;
        if (event.id !== null) watcher.adopt(event.id, partitions);
        if (event.event === "") continue;
        watcher.write(`id: ${watcher.id()}\nevent: ${event.event}\ndata: ${event.data}\n\n`);
        if (event.event === "put" || event.event === "delete") events.inc();
        if (!watcher.hasRoom) {
          overflows.inc();
          watcher.write(
            `event: overflow\ndata: {"buffer_bytes":${this.options.bufferBytes}}\n\n`,
          );
          break;
        }
      }
    } catch {
      // The peer went away: the client resumes from its last id.
    } finally {
      watcher.end();
    }
  }

  /** Ends every stream (the node stops or hands over); new ones are refused. */
  close(): void {
    this.closed = true;
    for (const watcher of [...this.all]) watcher.end();
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private remove(watcher: Watcher): void {
    if (!this.all.delete(watcher)) return;
    for (const p of watcher.local) this.byPartition.get(p)?.delete(watcher);
    this.options.slots.give();
    this.options.metrics.watchers.labels().set(this.all.size);
    if (this.all.size === 0 && this.heartbeat !== null) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  /**
   * Reads `watcher`'s backlog while its stream has room, then puts it in the live fan-out in the
   * same synchronous step as the read that found nothing more.
   */
  private async catchUp(watcher: Watcher): Promise<void> {
    const events = this.options.metrics.watchEvents.labels();
    while (!watcher.ended) {
      let more = false;
      for (const p of watcher.local) {
        const store = this.source.servingStore(p);
        if (store === null) {
          watcher.end();
          return;
        }
        const changes = store.changesAfter(watcher.cursors.get(p)!, BATCH);
        for (const change of changes) {
          if (watcher.deliver(new Frame(p, change))) events.inc();
        }
        if (changes.length === BATCH) more = true;
        else watcher.advance(p, store.applied.offset);
      }
      if (!more) {
        watcher.live = true;
        return;
      }
      await watcher.whenRoom();
    }
  }

  /** Fans `partition`'s new changes out to its live watchers while it has any. */
  private async loop(partition: number): Promise<void> {
    const watchers = this.byPartition.get(partition)!;
    const events = this.options.metrics.watchEvents.labels();
    const overflows = this.options.metrics.watchOverflows.labels();
    try {
      while (watchers.size > 0 && !this.closed) {
        const store = this.source.servingStore(partition);
        if (store === null || this.source.isRetiring(partition)) break;
        let through = this.through.get(partition)!;
        const changes = store.changesAfter(through, BATCH);
        for (const change of changes) {
          const frame = new Frame(partition, change);
          for (const watcher of watchers) {
            if (!watcher.live) continue;
            if (watcher.deliver(frame)) events.inc();
            if (!watcher.hasRoom) {
              overflows.inc();
              watcher.write(
                `event: overflow\ndata: {"buffer_bytes":${this.options.bufferBytes}}\n\n`,
              );
              watcher.end();
            }
          }
          through = cursorAfter(change);
        }
        if (changes.length === BATCH) {
          this.through.set(partition, through);
          await new Promise((resolve) => setTimeout(resolve, 0));
          continue;
        }
        // Everything up to the snapshot's offset is handed over (messages may change nothing).
        const applied = store.applied.offset;
        this.through.set(partition, { offset: Math.max(applied, through.offset), index: null });
        for (const watcher of watchers) if (watcher.live) watcher.advance(partition, applied);
        try {
          await this.source.waitForOffset(partition, applied + 1, WAKE_MS);
        } catch (error) {
          const code = error instanceof OperationalError ? error.code : null;
          if (code === "not_caught_up") continue;
          if (code === "too_many_waiters") {
            await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS));
            continue;
          }
          if (code !== "partition_unavailable") throw error;
          break;
        }
      }
    } catch (error) {
      log("error", "watch_failed", { partition, error: String(error) });
    } finally {
      this.through.delete(partition);
      // Its watchers end: they resume wherever the partition is served.
      for (const watcher of [...watchers]) watcher.end();
      this.byPartition.delete(partition);
    }
  }

  /** Every stream that wrote nothing since the last tick gets a comment and its current id. */
  private beat(): void {
    for (const watcher of this.all) {
      if (!watcher.wrote && watcher.live) watcher.write(`: heartbeat\nid: ${watcher.id()}\n\n`);
      watcher.wrote = false;
    }
  }
}

/**
 * The hub of a thread as the config sets it (the `watch` section; in a cluster the secret and
 * proxy timeout of a proxied watch), or null when watch is off (`WATCH_RETAIN_SEC=0`).
 * `slots`: the node-wide count when serving threads share it (by default this thread counts
 * alone); `thread`: the serving thread's number; `peers`: the region's peers, in a cluster.
 */
export function watchHubFor(
  source: WatchSource,
  config: Config,
  metrics: Metrics,
  extras: {
    readonly slots?: WaiterSlots;
    readonly thread?: number | null;
    readonly peers?: PeerReads | null;
  } = {},
): WatchHub | null {
  const watch = config.watch;
  if (watch.retainSec === 0) return null;
  return new WatchHub(source, {
    bufferBytes: watch.bufferBytes,
    heartbeatMs: watch.heartbeatMs,
    slots: extras.slots ?? new LocalSlots(watch.watchersMax),
    metrics,
    thread: extras.thread ?? null,
    peers: extras.peers ?? null,
    secret: config.cluster.secret,
    proxyTimeoutMs: config.gossip.proxyTimeoutMs,
    partitions: config.cluster.partitions,
  });
}
