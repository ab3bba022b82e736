/**
 * The composition root: builds a node from a config, choosing the log implementation, and the
 * region cluster (gossip + read router) when it is enabled. The only module that knows every
 * component.
 *
 * @module
 */
import { Gossip, Router } from "./cluster/mod.ts";
import type { Config } from "./config/mod.ts";
import { EmbeddedLog, KafkaLog } from "./log/mod.ts";
import { createMetrics, type Metrics } from "./metrics/mod.ts";
import { type MutationLog, Node } from "./node/mod.ts";
import { assert } from "./util/mod.ts";

/** A node and, in cluster mode, its gossip agent and read router. */
export interface App {
  readonly node: Node;
  readonly gossip: Gossip | null;
  readonly router: Router | null;
}

/** A node with its log chosen by `config.log`. */
export function buildNode(config: Config, metrics: Metrics = createMetrics()): Node {
  const now = () => Date.now();
  let log: MutationLog;
  if (config.log === "embedded") {
    log = new EmbeddedLog({
      path: `${config.dbPath}/${config.namespace}/log.mdb`,
      partitions: config.partitions,
      queueMax: config.logQueueMax,
      deliverMax: config.applyBatchMax,
      mapBytes: config.lmdbMapBytes,
      metrics,
      now,
    });
  } else {
    log = new KafkaLog({
      seeds: config.kafkaSeeds,
      clientId: config.kafkaClientId,
      namespace: config.namespace,
      region: config.region,
      replicaGroup: config.replicaGroup,
      instanceId: config.instanceId,
      partitions: config.partitions,
      replicationFactor: config.kafkaReplicationFactor,
      retentionMs: config.kafkaRetentionMs,
      writeTimeoutMs: config.logWriteTimeoutMs,
      queueMax: config.logQueueMax,
      deliverMax: config.applyBatchMax,
      sessionTimeoutMs: config.kafkaSessionTimeoutMs,
      metrics,
      now,
    });
  }
  return new Node({ config, log, metrics, now });
}

/** The node and, when `config.clusterEnabled`, its gossip agent and router. */
export function buildApp(config: Config): App {
  const metrics = createMetrics();
  const node = buildNode(config, metrics);
  if (!config.clusterEnabled) return { node, gossip: null, router: null };
  assert(config.clusterSecret !== null, "cluster mode needs CLUSTER_SECRET (checked by config)");
  const gossip = new Gossip({
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
  const router = new Router(gossip.membership, {
    secret: config.clusterSecret,
    timeoutMs: config.proxyTimeoutMs,
    metrics,
  });
  return { node, gossip, router };
}
