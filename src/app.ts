/**
 * The composition root: builds a node from a config, choosing the log implementation, the region
 * cluster (gossip + read router) when it is enabled, and the reader; starts it as a process runs
 * it (servers, loops) and stops it in order. The only module that knows every component.
 *
 * @module
 */
import { IdleSweeper, internalHandler, publicHandler, sweepIntervalMs } from "./api/mod.ts";
import { Backups, type Manifest, parseManifest, Restorer, S3ObjectStore } from "./backup/mod.ts";
import { Gossip, joinHostPort, Router } from "./cluster/mod.ts";
import { type Config, redactedConfig } from "./config/mod.ts";
import { EmbeddedLog, KafkaLog } from "./log/mod.ts";
import { createMetrics, type Metrics } from "./metrics/mod.ts";
import { lockDataDir, type MutationLog, Node, Reader, type SnapshotSource } from "./node/mod.ts";
import { serveThreadCount, ServeThreads } from "./serve/mod.ts";
import { bindOrThrow, errorMessage, log, sleep, StartError } from "./util/mod.ts";

/** A node and, when configured, its gossip agent, read router, reader and backup loop. */
export interface App {
  readonly node: Node;
  readonly gossip: Gossip | null;
  readonly router: Router | null;
  /** Answers reads: local partitions from LMDB, the rest through `router`. */
  readonly reader: Reader;
  readonly backups: Backups | null;
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
  const mutations: MutationLog = config.log.kind === "embedded"
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
    ? new Restorer(s3.restore ? objects : null, peer, { cluster, backup, metrics, now })
    : null;
  const node = buildNode(config, metrics, restorer);
  const backups = backup.enabled && objects !== null
    ? new Backups(objects, {
      cluster,
      node: self,
      backup,
      scratchDir: `${node.storeDir}/.backup`,
      metrics,
      now: node.now,
    })
    : null;
  const reader = new Reader(node, router, { limits: config.limits, now: node.now });
  const kafka = node.log instanceof KafkaLog ? node.log : null;
  return { node, gossip, router, reader, backups, kafka };
}

/** A started node with its servers and loops; {@linkcode stop} takes them down in order. */
export interface RunningApp extends App {
  /** The bound public and internal ports. */
  readonly apiPort: number;
  readonly internalPort: number;
  /** The graceful stop (DESIGN §9); resolves once everything is closed. */
  stop(): Promise<void>;
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
  log("info", "starting", redactedConfig(config));
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
 * Starts a node as a process runs it: locks the data folder, opens the log (a node that cannot
 * start never listens), serves the public and internal ports, joins the region, consumes, and
 * runs the backup and sweep loops. A background failure the node cannot run past goes to
 * `fatal` (the process ends there).
 */
export async function startApp(
  config: Config,
  fatal: (error: unknown, event: string) => void,
): Promise<RunningApp> {
  // Before anything is opened: a second process on one folder would hand out offsets twice.
  const dataDir = lockDataDir(config.store.dbPath);
  logStart(config);
  const app = buildApp(config);
  const { node, gossip, router, reader, backups, kafka } = app;
  try {
    // The log first (topics, partition-count guard): a node that cannot start never listens.
    await node.open();
  } catch (error) {
    // A damaged embedded log names the file and how to recover; anything else is one line.
    if (error instanceof StartError) throw error;
    throw new StartError("start_failed", errorMessage(error), {});
  }
  const tls = tlsOptions(config);
  const threadCount = serveThreadCount(config.api.serveThreads);
  // One thread: the main thread serves the public port itself. More: that many workers do.
  const api = threadCount === 1
    ? bindOrThrow("api", config.node.listenHost, config.api.port, () =>
      Deno.serve({
        hostname: config.node.listenHost,
        port: config.api.port,
        ...tls,
        onListen: ({ port, hostname }) =>
          log("info", "api_listening", { hostname, port, tls: "cert" in tls, threads: 1 }),
      }, publicHandler(node, reader)))
    : null;
  const threads = threadCount === 1 ? null : await ServeThreads.start({
    count: threadCount,
    config,
    node,
    peers: router,
    tls: "cert" in tls ? tls : null,
  });
  const apiPort = api === null ? threads!.port : (api.addr as Deno.NetAddr).port;
  const internal = bindOrThrow(
    "internal",
    config.node.listenHost,
    config.api.internalPort,
    () =>
      Deno.serve({
        hostname: config.node.listenHost,
        port: config.api.internalPort,
        onListen: ({ port, hostname }) => log("info", "internal_listening", { hostname, port }),
      }, internalHandler(node, gossip, reader, threads === null ? null : () => threads.metrics())),
  );
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
  const backingUp = backups === null
    ? Promise.resolve()
    : backups.run(node, background.signal).catch((error) => {
      log("error", "backup_loop_failed", { error: errorMessage(error) });
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

  const stop = async () => {
    // Fail parked `after` reads at once, then stop accepting and drain in-flight requests;
    // then no write can race the close.
    node.drain();
    // In a region cluster, keep serving reads until peers have taken the partitions over.
    await node.handOff();
    await (api === null ? threads!.shutdown() : api.shutdown());
    router?.close();
    background.abort();
    await Promise.all([backingUp, sweeping, sweepingIdle]);
    await node.stop();
    dataDir.release();
    gossipStop.abort();
    await gossiping;
    await internal.shutdown();
  };
  return { ...app, apiPort, internalPort: internal.addr.port, stop };
}
