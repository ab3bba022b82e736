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
import type { Config } from "./config/mod.ts";
import { EmbeddedLog, KafkaLog } from "./log/mod.ts";
import { createMetrics, type Metrics } from "./metrics/mod.ts";
import { lockDataDir, type MutationLog, Node, Reader, type SnapshotSource } from "./node/mod.ts";
import { assert, bindOrThrow, errorMessage, log, sleep, StartError } from "./util/mod.ts";

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

/** A node with its log chosen by `config.log`. */
export function buildNode(
  config: Config,
  metrics: Metrics = createMetrics(),
  snapshots: SnapshotSource | null = null,
): Node {
  const now = wallClock;
  let log: MutationLog;
  if (config.log === "embedded") {
    log = new EmbeddedLog({
      path: `${config.dbPath}/${config.namespace}/log.mdb`,
      partitions: config.partitions,
      queueMax: config.logQueueMax,
      deliverMax: config.applyBatchMax,
      mapBytes: config.embeddedLogMapBytes,
      metrics,
      now,
    });
  } else {
    log = new KafkaLog({
      seeds: config.kafkaSeeds,
      clientId: config.kafkaClientId,
      tls: config.kafkaTlsCaFile !== null
        ? { ca: Deno.readTextFileSync(config.kafkaTlsCaFile) }
        : config.kafkaTls,
      sasl: config.kafkaSasl,
      namespace: config.namespace,
      region: config.region,
      replicaGroup: config.replicaGroup,
      instanceId: config.instanceId,
      partitions: config.partitions,
      replicationFactor: config.kafkaReplicationFactor,
      retentionMs: config.kafkaRetentionMs,
      writeTimeoutMs: config.logWriteTimeoutMs,
      queueMax: config.logQueueMax,
      sendBytesMax: config.messageBytesMax,
      deliverMax: config.applyBatchMax,
      sessionTimeoutMs: config.kafkaSessionTimeoutMs,
      startTimeoutMs: 60_000,
      metrics,
      now,
    });
  }
  return new Node({ config, log, metrics, now, snapshots });
}

/** The node and, as configured, its gossip agent, router, snapshot restore and backup loop. */
export function buildApp(config: Config): App {
  const metrics = createMetrics();
  const gossip = config.clusterEnabled ? buildGossip(config, metrics) : null;
  const router = gossip === null ? null : new Router(gossip.membership, {
    secret: config.clusterSecret!,
    timeoutMs: config.proxyTimeoutMs,
    metrics,
    now: wallClock,
  });
  const objects = config.backup || config.s3Restore
    ? new S3ObjectStore({
      endpoint: config.s3Endpoint,
      region: config.s3Region,
      bucket: config.s3Bucket!,
      forcePathStyle: config.s3ForcePathStyle,
    })
    : null;
  const now = wallClock;
  const peer = router !== null && config.peerBootstrap
    ? async (partition: number, path: string, signal: AbortSignal): Promise<Manifest | null> => {
      // Right after start, gossip may not have heard the peers yet: give it a few intervals.
      const deadline = now() + Math.max(2000, 4 * config.gossipBroadcastMs);
      while (!router.servedByAlivePeer(partition) && now() < deadline && !signal.aborted) {
        await sleep(50, signal);
      }
      return parseManifest(await router.fetchSnapshot(partition, path, signal));
    }
    : null;
  const restorer = (config.s3Restore && objects !== null) || peer !== null
    ? new Restorer(config.s3Restore ? objects : null, peer, {
      namespace: config.namespace,
      timeoutMs: config.backupTimeoutMs,
      attemptsMax: Math.max(2, config.backupKeep),
      metrics,
    })
    : null;
  const node = buildNode(config, metrics, restorer);
  const backups = config.backup && objects !== null
    ? new Backups(objects, {
      namespace: config.namespace,
      instanceId: config.instanceId,
      scratchDir: `${node.storeDir}/.backup`,
      intervalSec: config.backupIntervalSec,
      keep: config.backupKeep,
      timeoutMs: config.backupTimeoutMs,
      metrics,
    })
    : null;
  const reader = new Reader(node, router, { listScanMax: config.listScanMax, now: node.now });
  const kafka = node.log instanceof KafkaLog ? node.log : null;
  return { node, gossip, router, reader, backups, kafka };
}

function buildGossip(config: Config, metrics: Metrics): Gossip {
  assert(config.clusterSecret !== null, "cluster mode needs CLUSTER_SECRET (checked by config)");
  return new Gossip({
    selfId: config.instanceId,
    namespace: config.namespace,
    region: config.region,
    group: config.replicaGroup,
    partitions: config.partitions,
    secret: config.clusterSecret,
    bindHost: config.listenHost,
    port: config.gossipPort,
    intervalMs: config.gossipBroadcastMs,
    peers: config.gossipPeers,
    dnsName: config.gossipDnsName,
    dnsServer: config.gossipDnsServer,
    dnsIntervalMs: config.gossipDnsIntervalMs,
    targetsMax: 1024,
    metrics,
    now: wallClock,
  });
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
  if (config.tlsCertFile === null || config.tlsKeyFile === null) return {};
  const read = (variable: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      const message = `Cannot read ${variable}: ${errorMessage(error)}`;
      throw new StartError("tls_file_unreadable", message, { variable, path });
    }
  };
  return {
    cert: read("TLS_CERT_FILE", config.tlsCertFile),
    key: read("TLS_KEY_FILE", config.tlsKeyFile),
  };
}

/** Logs the settings (secrets redacted) and warns about an open API or internal port. */
function logStart(config: Config): void {
  const { clusterSecret: _, apiTokensRead, apiTokensWrite, ...shown } = config;
  log("info", "starting", {
    ...shown,
    apiTokensRead: apiTokensRead.length,
    apiTokensWrite: apiTokensWrite.length,
  });
  if (apiTokensRead.length === 0 && apiTokensWrite.length === 0) {
    log("warn", "api_open", {
      message:
        "API_TOKENS_READ and API_TOKENS_WRITE are unset: anyone who can reach the API port can read and write",
    });
  }
  if (config.clusterSecret === null) {
    log("warn", "internal_open", {
      message: "CLUSTER_SECRET is unset: /internal/* is not authenticated",
    });
  }
}

/** Warns when snapshots come less often than the log forgets: a gap could open between them. */
async function checkRetention(config: Config, kafka: KafkaLog): Promise<void> {
  const retentionMs = await kafka.retentionMs();
  if (retentionMs !== null && retentionMs >= 0 && config.backupIntervalSec * 1000 > retentionMs) {
    log("warn", "backup_interval_exceeds_retention", {
      backup_interval_sec: config.backupIntervalSec,
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
  const dataDir = lockDataDir(config.dbPath);
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
  const api = bindOrThrow("api", config.listenHost, config.apiPort, () =>
    Deno.serve({
      hostname: config.listenHost,
      port: config.apiPort,
      ...tls,
      onListen: ({ port, hostname }) =>
        log("info", "api_listening", { hostname, port, tls: "cert" in tls }),
    }, publicHandler(node, reader)));
  const internal = bindOrThrow(
    "internal",
    config.listenHost,
    config.internalPort,
    () =>
      Deno.serve({
        hostname: config.listenHost,
        port: config.internalPort,
        onListen: ({ port, hostname }) => log("info", "internal_listening", { hostname, port }),
      }, internalHandler(node, gossip, reader)),
  );
  // Deno.serve never closes an idle connection itself: see src/api/idle_sweeper.ts.
  const sweeper = IdleSweeper.open({
    port: api.addr.port,
    idleTimeoutMs: config.idleTimeoutMs,
    connectionsMax: config.connectionsMax,
    metrics: node.metrics,
  });
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
    joinHostPort(config.advertiseHost, internal.addr.port),
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
  const sweepingIdle = sweeper?.run(sweepIntervalMs(config.idleTimeoutMs), background.signal);
  const sweeping = (async () => {
    const everyMs = Math.min(60_000, Math.max(1000, config.unownedRetainSec * 500));
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
    await api.shutdown();
    router?.close();
    background.abort();
    await Promise.all([backingUp, sweeping, sweepingIdle]);
    await node.stop();
    dataDir.release();
    gossipStop.abort();
    await gossiping;
    await internal.shutdown();
  };
  return { ...app, apiPort: api.addr.port, internalPort: internal.addr.port, stop };
}
