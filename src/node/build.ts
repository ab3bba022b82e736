/** Builds a node from a config: picks the log implementation and creates the metrics. */
import type { Config } from "../config/mod.ts";
import { EmbeddedLog, type MutationLog } from "../log/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { OperationalError } from "../util/errors.ts";
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
    throw new OperationalError(
      "not_implemented",
      500,
      "Cannot start: the Kafka log is not built yet",
    );
  }
  return new Node({ config, log, metrics, now });
}
