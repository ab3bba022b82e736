/**
 * The composition root: builds a node from a config, choosing the log implementation, the region
 * cluster (gossip + read router) when it is enabled, and the reader; starts it as a process runs
 * it (servers, loops) and stops it in order. The only module that knows every component.
 *
 * @module
 */
import {
  type Closing,
  expectAcceptStops,
  type Forwarding,
  forwardTarget,
  Front,
  IdleSweeper,
  internalHandler,
  publicHandler,
  sweepIntervalMs,
} from "./api/mod.ts";
import {
  Archive,
  Backups,
  type Manifest,
  parseManifest,
  restorePoolOptions,
  Restorer,
  S3ObjectStore,
  TimeTravelLog,
} from "./backup/mod.ts";
import { Gossip, joinHostPort, Router } from "./cluster/mod.ts";
import { changesRetainMs, type Config, parseRestoreTo, redactedConfig } from "./config/mod.ts";
import { EmbeddedLog, KafkaLog } from "./log/mod.ts";
import { createMetrics, type Metrics, sampleEventLoop } from "./metrics/mod.ts";
import {
  ControlSocket,
  type DataDirLock,
  lockDataDir,
  type MutationLog,
  Node,
  Reader,
  requestTakeover,
  type SnapshotSource,
  type Takeover,
} from "./node/mod.ts";
import { ServeThreads } from "./serve/mod.ts";
import { watchHubFor } from "./watch/mod.ts";
import {
  bindOrThrow,
  errorMessage,
  type Listener,
  log,
  sleep,
  StartError,
  threadCount,
} from "./util/mod.ts";
import { VERSION } from "./version.ts";

/** A node and, when configured, its gossip agent, read router, reader and backup loop. */
export interface App {
  readonly node: Node;
  readonly gossip: Gossip | null;
  readonly router: Router | null;
  /** Answers reads: local partitions from LMDB, the rest through `router`. */
  readonly reader: Reader;
  readonly backups: Backups | null;
  /** The log archive (`BACKUP=1` with `ARCHIVE=1`). */
  readonly archive: Archive | null;
  /** The Kafka log, for operational checks (retention); null in embedded mode. */
  readonly kafka: KafkaLog | null;
}

/** The one wall clock of a process; every component gets it injected. */
const wallClock = (): number => Date.now();

/** A node with its log chosen by `config.log.kind`. */
export function buildNode(
  config: Config,
  metrics: Metrics = createMetrics(),
  snapshots: SnapshotSource | null = null,
): Node {
  const now = wallClock;
  // Not `log`: that name is the logger here.
  const { cluster, node, kafka } = config;
  const mutations: MutationLog = config.log.kind === "archive"
    ? new TimeTravelLog({
      ...restorePoolOptions(config),
      partitions: cluster.partitions,
      dir: `${config.store.dbPath}/${cluster.namespace}`,
      target: parseRestoreTo(config.s3.restoreTo!, cluster.partitions),
    })
    : config.log.kind === "embedded"
    ? new EmbeddedLog({
      path: `${config.store.dbPath}/${cluster.namespace}/log.mdb`,
      cluster,
      log: config.log,
      metrics,
      now,
    })
    : new KafkaLog({
      cluster,
      node,
      log: config.log,
      kafka,
      tlsCa: kafka.tlsCaFile === null ? null : Deno.readTextFileSync(kafka.tlsCaFile),
      startTimeoutMs: 60_000,
      metrics,
      now,
    });
  return new Node({ config, log: mutations, metrics, now, snapshots });
}

/** The node and, as configured, its gossip agent, router, snapshot restore and backup loop. */
export function buildApp(config: Config): App {
  const { cluster, node: self, gossip: gossipConfig, backup, s3 } = config;
  const metrics = createMetrics();
  const now = wallClock;
  const gossip = gossipConfig.enabled
    ? new Gossip({ cluster, node: self, gossip: gossipConfig, targetsMax: 1024, metrics, now })
    : null;
  const router = gossip === null
    ? null
    : new Router(gossip.membership, { cluster, gossip: gossipConfig, metrics, now });
  const objects = backup.enabled || s3.restore ? new S3ObjectStore({ s3 }) : null;
  const peer = router !== null && backup.peerBootstrap
    ? async (partition: number, path: string, signal: AbortSignal): Promise<Manifest | null> => {
      // Right after start, gossip may not have heard the peers yet: give it a few intervals.
      const deadline = now() + Math.max(2000, 4 * gossipConfig.broadcastMs);
      while (!router.servedByAlivePeer(partition) && now() < deadline && !signal.aborted) {
        await sleep(50, signal);
      }
      return parseManifest(await router.fetchSnapshot(partition, path, signal));
    }
    : null;
  const restorer = (s3.restore && objects !== null) || peer !== null
    ? new Restorer(s3.restore ? objects : null, peer, {
      cluster,
      backup,
      store: config.store,
      changesRetainMs: changesRetainMs(config),
      decode: s3.restoreDecode,
      metrics,
      now,
    })
    : null;
  const node = buildNode(config, metrics, restorer);
  const backups = backup.enabled && objects !== null
    ? new Backups(objects, {
      cluster,
      node: self,
      backup,
      archive: config.archive,
      scratchDir: `${node.storeDir}/.backup`,
      metrics,
      now: node.now,
    })
    : null;
  const archive = backups !== null && config.archive.enabled
    ? new Archive(objects!, node.log, { cluster, archive: config.archive, metrics, now: node.now })
    : null;
  const reader = new Reader(node, router, { limits: config.limits, now: node.now });
  const kafka = node.log instanceof KafkaLog ? node.log : null;
  return { node, gossip, router, reader, backups, archive, kafka };
}

/** A started node with its servers and loops; {@linkcode stop} takes them down in order. */
export interface RunningApp extends App {
  /** The bound public and internal ports. */
  readonly apiPort: number;
  readonly internalPort: number;
  /** The graceful stop (DESIGN §9); resolves once everything is closed. */
  stop(): Promise<void>;
  /** Resolves once a successor (`TAKEOVER`) has taken this node's folder and ports over. */
  readonly handedOver: Promise<void>;
}

function tlsOptions(config: Config): { cert: string; key: string } | Record<never, never> {
  if (config.api.tlsCertFile === null || config.api.tlsKeyFile === null) return {};
  const read = (variable: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      const message = `Cannot read ${variable}: ${errorMessage(error)}`;
      throw new StartError("tls_file_unreadable", message, { variable, path });
    }
  };
  return {
    cert: read("TLS_CERT_FILE", config.api.tlsCertFile),
    key: read("TLS_KEY_FILE", config.api.tlsKeyFile),
  };
}

/** Logs every setting by section (secrets redacted) and warns about an open API or internal port. */
function logStart(config: Config): void {
  log("info", "starting", { version: VERSION, deno: Deno.version.deno, ...redactedConfig(config) });
  if (config.api.tokensRead.length === 0 && config.api.tokensWrite.length === 0) {
    log("warn", "api_open", {
      message:
        "API_TOKENS_READ and API_TOKENS_WRITE are unset: anyone who can reach the API port can read and write",
    });
  }
  if (config.cluster.secret === null) {
    log("warn", "internal_open", {
      message: "CLUSTER_SECRET is unset: /internal/* is not authenticated",
    });
  }
}

/** How often {@linkcode logWhenReady} looks: the precision of `node_ready`'s `seconds`. */
const READY_LOOK_MS = 20;

/**
 * Logs `node_ready` once, when the node is first ready (`/readyz` 200): the seconds since the
 * process started and the partitions it serves.
 */
async function logWhenReady(node: Node, signal: AbortSignal): Promise<void> {
  while (!node.ready) {
    if (signal.aborted) return;
    await sleep(READY_LOOK_MS, signal);
  }
  log("info", "node_ready", {
    seconds: Math.round(performance.now()) / 1000,
    partitions_serving: node.servingPartitions().length,
  });
}

/** Warns when snapshots come less often than the log forgets: a gap could open between them. */
async function checkRetention(config: Config, kafka: KafkaLog): Promise<void> {
  const retentionMs = await kafka.retentionMs();
  if (retentionMs !== null && retentionMs >= 0 && config.backup.intervalSec * 1000 > retentionMs) {
    log("warn", "backup_interval_exceeds_retention", {
      backup_interval_sec: config.backup.intervalSec,
      retention_ms: retentionMs,
      message: "BACKUP_INTERVAL_SEC is longer than the mutations topic's retention.ms",
    });
  }
}

/**
 * A node handing over waits (at most this long) until none of its connections moved data within
 * {@linkcode HAND_OVER_BUSY_MS}: each client had its last answer (with `connection: close`) and
 * went to the successor. Without the kernel interfaces to look (not Linux), it waits the bound.
 */
const HAND_OVER_DRAIN_MS_MAX = 1000;
const HAND_OVER_BUSY_MS = 20;
/** Without them, it answers with `connection: close` this long before it stops accepting. */
const HAND_OVER_CLOSE_MS = 50;

/** Resolves once `opened` does, or after `holdMs` (a held request then gets whatever answer). */
function holdUntil(opened: Promise<void>, holdMs: number): () => Promise<void> {
  return () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, holdMs));
    return Promise.race([opened, timeout]).finally(() => clearTimeout(timer));
  };
}

/**
 * The port a server will bind, checked free first. Servers bind with `SO_REUSEPORT` (serving
 * threads share the public port; a hand-over successor binds beside its predecessor), which would
 * also let a second node on the same port share it silently: a plain bind first refuses that with
 * `listen_failed`, and resolves port 0 to the port every thread then binds.
 */
function freePort(listener: Listener, host: string, port: number): number {
  const probe = bindOrThrow(listener, host, port, () => Deno.listen({ hostname: host, port }));
  const bound = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return bound;
}

/** Opens the log (topics, partition-count guard) and verifies what a clean stop does not vouch for. */
async function openNode(node: Node): Promise<void> {
  try {
    await node.open();
  } catch (error) {
    // A damaged embedded log names the file and how to recover; anything else is one line.
    if (error instanceof StartError) throw error;
    throw new StartError("start_failed", errorMessage(error), {});
  }
}

/** Takes the data folder's lock; null when another node holds it and this start takes over. */
function lockOrTakeOver(config: Config): DataDirLock | null {
  try {
    return lockDataDir(config.store.dbPath);
  } catch (error) {
    const held = error instanceof StartError && error.event === "data_dir_in_use";
    if (held && config.lifecycle.takeover) return null;
    throw error;
  }
}

/** Takes the lock the predecessor just dropped (it may take the kernel a moment). */
async function lockAfterHandOver(path: string): Promise<DataDirLock> {
  for (let attempt = 0;; attempt++) {
    try {
      return lockDataDir(path);
    } catch (error) {
      if (attempt >= 100) throw error;
      await sleep(10, AbortSignal.timeout(5000));
    }
  }
}

/**
 * Starts a node as a process runs it: locks the data folder, opens the log (a node that cannot
 * start never listens), serves the public and internal ports, joins the region, consumes, and
 * runs the backup and sweep loops. A background failure the node cannot run past goes to
 * `fatal` (the process ends there).
 *
 * With `TAKEOVER` and the folder held by a running node (a hand-over restart,
 * src/node/hand_over.ts): listens first, holding requests; asks the running node to hand over;
 * then takes the lock, opens the folder and answers what it held once every partition serves.
 * Either way the node listens on its folder's control socket so a successor can take it over;
 * {@linkcode RunningApp.handedOver} resolves when one has.
 */
export async function startApp(
  config: Config,
  fatal: (error: unknown, event: string) => void,
): Promise<RunningApp> {
  // Before anything is opened: a second process on one folder would hand out offsets twice.
  let dataDir = lockOrTakeOver(config);
  expectAcceptStops();
  const takingOver = dataDir === null;
  logStart(config);
  const app = buildApp(config);
  const { node, gossip, router, reader, backups, archive, kafka } = app;
  // The log first (topics, partition-count guard): a node that cannot start never listens.
  if (!takingOver) await openNode(node);
  const tls = tlsOptions(config);
  const host = config.node.listenHost;
  const serveThreads = threadCount(config.api.serveThreads);
  const holdMs = 2 * config.lifecycle.shutdownTimeoutMs;
  let openGate: () => void = () => {};
  const whenOpen = takingOver
    ? holdUntil(new Promise<void>((resolve) => openGate = resolve), holdMs)
    : null;
  // A successor binds beside its predecessor, which holds both ports.
  const apiPort = takingOver ? config.api.port : freePort("api", host, config.api.port);
  const internalPort = takingOver
    ? config.api.internalPort
    : freePort("internal", host, config.api.internalPort);
  // One thread: the main thread serves the public port itself. More: that many workers do.
  // Set when a stop or hand-over begins: answers then close their HTTP/1.1 connections.
  const stopNear: Closing = { closing: false };
  // Set when a hand-over lets go of the folder early: writes and `after` reads go to the successor.
  const forwarding: Forwarding = { target: null, writes: false };
  // The main thread's watch streams, when it serves the public port itself.
  // The main thread's watch streams when it serves the public port (serving threads have theirs).
  const watch = serveThreads === 1
    ? watchHubFor(node, config, node.metrics, { peers: router })
    : null;
  const publicFront = serveThreads === 1
    ? new Front(publicHandler(node, reader, { stop: stopNear, forwarding, watch }), whenOpen)
    : null;
  const api = serveThreads === 1
    ? bindOrThrow("api", host, apiPort, () =>
      Deno.serve({
        hostname: host,
        port: apiPort,
        reusePort: true,
        ...tls,
        onListen: ({ port, hostname }) =>
          log("info", "api_listening", { hostname, port, tls: "cert" in tls, threads: 1 }),
      }, publicFront!.serve))
    : null;
  const threads = serveThreads === 1 ? null : await ServeThreads.start({
    count: serveThreads,
    config: { ...config, api: { ...config.api, port: apiPort } },
    node,
    peers: router,
    tls: "cert" in tls ? tls : null,
    held: takingOver,
  });
  const threadMetrics = threads === null ? null : () => threads.metrics();
  // A peer's proxied watch of partitions served here (local only, never proxied again).
  const internalWatch = watch ?? watchHubFor(node, config, node.metrics, {
    ...(threads === null ? {} : { slots: threads.state.watcherSlots(config.watch.watchersMax) }),
  });
  const internalFront = new Front(
    internalHandler(node, { gossip, reader, threadMetrics, stop: stopNear, watch: internalWatch }),
    whenOpen,
  );
  const internal = bindOrThrow("internal", host, internalPort, () =>
    Deno.serve({
      hostname: host,
      port: internalPort,
      reusePort: true,
      onListen: ({ port, hostname }) => log("info", "internal_listening", { hostname, port }),
    }, internalFront.serve));
  let takeover: Takeover | null = null;
  if (takingOver) {
    // Kafka connects now, while the predecessor still serves: it is not in the folder.
    try {
      await node.startLogEarly();
    } catch (error) {
      throw new StartError("start_failed", errorMessage(error), {});
    }
    const started = performance.now();
    takeover = await requestTakeover(config.store.dbPath, holdMs);
    dataDir = await lockAfterHandOver(config.store.dbPath);
    log("info", "takeover_released", {
      predecessor_pid: takeover.pid,
      ms: Math.round(performance.now() - started),
    });
    await openNode(node);
  }
  const lock = dataDir!;
  // Deno.serve never closes an idle connection itself: see src/api/idle_sweeper.ts.
  const sweeper = IdleSweeper.open({ api: config.api, port: apiPort, metrics: node.metrics });
  if (sweeper === null) {
    log("warn", "idle_sweep_unavailable", {
      message:
        "not Linux or no FFI: idle connections are not closed and CONNECTIONS_MAX is not kept",
    });
  }
  if (gossip !== null) {
    node.attachPeers({
      announceLeaving: () => gossip.announceLeaving(),
      servedElsewhere: (p) => gossip.membership.servedElsewhere(p),
      anyAlivePeer: () => gossip.membership.list().some((m) => m.health === "alive"),
    });
  }
  const gossipStop = new AbortController();
  const gossiping = gossip === null ? Promise.resolve() : gossip.run(
    joinHostPort(config.gossip.advertiseAddr, internal.addr.port),
    () => node.servingPartitions(),
    gossipStop.signal,
  ).catch((error) => fatal(error, "gossip_failed"));
  // Gossip runs before partitions are assigned, so peer bootstrap can find peers.
  node.consume();
  const background = new AbortController();
  sampleEventLoop(node.metrics, background.signal);
  // Read when scraped: readiness is computed, not an event.
  node.metrics.registry.onRender(() => node.metrics.ready.labels().set(node.ready ? 1 : 0));
  void logWhenReady(node, background.signal);
  const backingUp = backups === null
    ? Promise.resolve()
    : backups.run(node, background.signal).catch((error) => {
      log("error", "backup_loop_failed", { error: errorMessage(error) });
    });
  const archiving = archive === null
    ? Promise.resolve()
    : archive.run(node, background.signal).catch((error) => {
      log("error", "archive_loop_failed", { error: errorMessage(error) });
    });
  const sweepingIdle = sweeper?.run(sweepIntervalMs(config.api.idleTimeoutMs), background.signal);
  const sweeping = (async () => {
    const everyMs = Math.min(60_000, Math.max(1000, config.store.unownedRetainSec * 500));
    while (!background.signal.aborted) {
      await node.sweepUnowned(node.now()).catch((error) =>
        log("warn", "sweep_failed", { error: errorMessage(error) })
      );
      await sleep(everyMs, background.signal);
    }
  })();
  if (backups !== null && kafka !== null) await checkRetention(config, kafka);

  let stopping = false;
  // Keep-alive clients reconnect elsewhere (a peer, the successor) after their next answer here,
  // rather than lose a request to the close.
  const closeConnections = async () => {
    stopNear.closing = true;
    // Watch streams end now: their clients resume from their last id on a peer or the successor.
    internalWatch?.close();
    await threads?.closing();
  };
  // What every stop ends with once the servers no longer take requests: the loops, then the node
  // (its files flushed unless a successor opens them from the same page cache at once).
  const stopNode = async (sync: boolean) => {
    router?.close();
    background.abort();
    await Promise.all([backingUp, archiving, sweeping, sweepingIdle]);
    await node.stop({ sync });
  };
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const signalled = performance.now();
    // Fail parked `after` reads at once, then stop accepting and drain in-flight requests;
    // then no write can race the close.
    node.drain();
    await closeConnections();
    // In a region cluster, keep serving reads until peers have taken the partitions over.
    await node.handOff();
    // And at least DRAIN_DELAY_MS in all: a load balancer sees /readyz fail and moves away.
    const delayMs = config.lifecycle.drainDelayMs - (performance.now() - signalled);
    if (delayMs > 0) await sleep(delayMs, background.signal);
    await (api === null ? threads!.shutdown() : api.shutdown());
    await stopNode(true);
    await control?.close();
    lock.release();
    gossipStop.abort();
    await gossiping;
    await internal.shutdown();
  };

  let handedOver: () => void = () => {};
  const handingOver = new Promise<void>((resolve) => handedOver = resolve);
  let handOverStarted = 0;
  // In-flight requests finish and every HTTP/1.1 client is asked to reconnect (to the successor:
  // this node has left the ports' SO_REUSEPORT groups by then); then the servers shut down.
  const drainConnections = async () => {
    // Not `background`: an early release has aborted it already, and its sleeps would then not
    // wait, turning the loop below into one that never yields to the requests it waits for.
    const waits = new AbortController().signal;
    if (sweeper !== null) {
      await closeConnections();
      const deadline = performance.now() + HAND_OVER_DRAIN_MS_MAX;
      let busy = Infinity;
      while (busy > 0 && performance.now() < deadline) {
        busy = sweeper.busyConnections(apiPort, HAND_OVER_BUSY_MS) +
          sweeper.busyConnections(internalPort, HAND_OVER_BUSY_MS);
        if (busy > 0) await sleep(2, waits);
      }
      log("info", "hand_over_drained", {
        busy_connections: busy,
        ms: Math.round(performance.now() - handOverStarted),
      });
    } else {
      await closeConnections();
      await sleep(HAND_OVER_CLOSE_MS, waits);
    }
    await Promise.all([api === null ? threads!.shutdown() : api.shutdown(), internal.shutdown()]);
  };
  // The folder is the successor's from here: gossip's port is free before it binds it (its new
  // incarnation replaces ours), and the lock goes.
  const letGo = async () => {
    gossipStop.abort();
    await gossiping;
    await control?.close();
    lock.release();
    log("info", "hand_over_released", { ms: Math.round(performance.now() - handOverStarted) });
  };
  // Whether this hand-over lets go of the folder before it stops answering (set when asked).
  let early = false;
  // Asked by a successor (TAKEOVER): it already listens on both ports, holding what it accepts.
  const handOver = async () => {
    if (stopping) throw new Error("the node is already stopping");
    stopping = true;
    handOverStarted = performance.now();
    // Out of both ports' SO_REUSEPORT groups first, while clients keep their connections (few
    // new ones can be waiting in the kernel's queue, which a close resets unless
    // net.ipv4.tcp_migrate_req = 1): every new connection goes to the successor from here.
    const stopped = sweeper === null
      ? 0
      : sweeper.stopListening(apiPort) + sweeper.stopListening(internalPort);
    // This node lets go of the folder at once and answers plain reads from its files until the
    // successor serves; `after` reads (and with the embedded log, a file in the folder, writes)
    // it passes on to the successor (src/api/forward.ts), which it reaches on the port it has
    // just left. That needs the listeners gone (a forward must not come back here) and plain
    // HTTP; with Kafka it goes on producing the writes it is sent.
    early = stopped >= 2 && !("cert" in tls);
    log("info", "handing_over", { listeners_stopped: stopped, early_release: early });
    if (early) {
      const embedded = config.log.kind === "embedded";
      const target = forwardTarget(host, apiPort);
      forwarding.writes = embedded;
      forwarding.target = target;
      await threads?.forwardTo(target, embedded);
      // What was appended here applied (parked `after` reads answered), nothing more applied.
      await node.freeze(HAND_OVER_DRAIN_MS_MAX, embedded);
      router?.close();
      background.abort();
      await Promise.all([backingUp, archiving, sweeping, sweepingIdle]);
    } else {
      // Requests in flight finish here, `after` reads among them: this node goes on applying
      // until they are done. Then it stops, leaving its files unflushed (the successor opens
      // them from the same page cache).
      await drainConnections();
      await stopNode(false);
    }
    await letGo();
  };
  // The successor serves (or went away, or did not say in time): this process ends.
  const served = async () => {
    if (early) {
      await drainConnections();
      await stopNode(false);
    }
    await node.closeLeftFiles();
    log("info", "handed_over", { ms: Math.round(performance.now() - handOverStarted) });
    handedOver();
  };
  const control = ControlSocket.listen(
    config.store.dbPath,
    handOver,
    () => void served().catch((error) => fatal(error, "hand_over_failed")),
    holdMs,
  );
  if (takingOver) {
    // Answer what was held once every partition serves (or the hold runs out).
    const deadline = performance.now() + holdMs;
    while (!node.ready && performance.now() < deadline) await sleep(2, background.signal);
    openGate();
    publicFront?.open();
    internalFront.open();
    threads?.open();
    log("info", "takeover_serving", { ready: node.ready });
    // The predecessor, which may still answer plain reads, ends now.
    await takeover?.serving();
  }
  return { ...app, apiPort, internalPort, stop, handedOver: handingOver };
}
