/**
 * The composition root: builds a node from a config, choosing the log implementation, and the
 * region cluster (gossip + read router) when it is enabled. The only module that knows every
 * component.
 *
 * @module
 */
import { Backups, type Manifest, parseManifest, Restorer, S3ObjectStore } from "./backup/mod.ts";
import { Gossip, Router } from "./cluster/mod.ts";
import type { Config } from "./config/mod.ts";
import { EmbeddedLog, KafkaLog } from "./log/mod.ts";
import { createMetrics, type Metrics } from "./metrics/mod.ts";
import { type MutationLog, Node, type SnapshotSource } from "./node/mod.ts";
import { assert, sleep } from "./util/mod.ts";

/** A node and, when configured, its gossip agent, read router and backup loop. */
export interface App {
  readonly node: Node;
  readonly gossip: Gossip | null;
  readonly router: Router | null;
  readonly backups: Backups | null;
  /** The Kafka log, for operational checks (retention); null in embedded mode. */
  readonly kafka: KafkaLog | null;
}

/** A node with its log chosen by `config.log`. */
export function buildNode(
  config: Config,
  metrics: Metrics = createMetrics(),
  snapshots: SnapshotSource | null = null,
): Node {
  const now = () => Date.now();
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
  });
  const objects = config.backup || config.s3Restore
    ? new S3ObjectStore({
      endpoint: config.s3Endpoint,
      region: config.s3Region,
      bucket: config.s3Bucket!,
      forcePathStyle: config.s3ForcePathStyle,
    })
    : null;
  const peer = router !== null && config.peerBootstrap
    ? async (partition: number, path: string, signal: AbortSignal): Promise<Manifest | null> => {
      // Right after start, gossip may not have heard the peers yet: give it a few intervals.
      const deadline = Date.now() + Math.max(2000, 4 * config.gossipBroadcastMs);
      while (!router.servedByAlivePeer(partition) && Date.now() < deadline) {
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
  return { node, gossip, router, backups, kafka: node.log instanceof KafkaLog ? node.log : null };
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
    now: () => Date.now(),
  });
}
