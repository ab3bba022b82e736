/** Builds a node from a config: picks the log implementation and creates the metrics. */
import type { Config } from "../config/mod.ts";
import { EmbeddedLog, KafkaLog, type MutationLog } from "../log/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { Node } from "./node.ts";

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
