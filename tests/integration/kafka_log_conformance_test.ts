/**
 * The {@linkcode MutationLog} conformance suite (src/log/conformance.ts) against the real Kafka
 * broker: each test gets a fresh namespace (fresh topics), and a restart is a new KafkaLog in the
 * same namespace and replica group.
 */
import { loadConfig } from "../../src/config/mod.ts";
import { mutationLogConformance } from "../../src/log/conformance.ts";
import { KafkaLog } from "../../src/log/mod.ts";
import { createMetrics } from "../../src/metrics/mod.ts";
import { freshNamespace, KAFKA, needsKafka } from "./_kafka.ts";

mutationLogConformance(
  "KafkaLog",
  () => {
    const namespace = freshNamespace("logconf");
    let instance = 0;
    return Promise.resolve({
      open: (options) => {
        const config = loadConfig({
          KAFKA_SEEDS: KAFKA!,
          KAFKA_CLIENT_ID: "conformance",
          NAMESPACE: namespace,
          REGION: "test",
          REPLICA_GROUP: "g",
          INSTANCE_ID: `i${++instance}`,
          PARTITIONS: String(options.partitions),
          LOG_WRITE_TIMEOUT_MS: "5000",
          LOG_QUEUE_MAX: String(options.queueMax),
          MESSAGE_BYTES_MAX: "1000000",
          APPLY_BATCH_MAX: String(options.applyBatchMax),
          KAFKA_SESSION_TIMEOUT_MS: "6000",
        });
        return new KafkaLog({
          cluster: config.cluster,
          node: config.node,
          log: config.log,
          kafka: config.kafka,
          tlsCa: null,
          startTimeoutMs: 15_000,
          metrics: createMetrics(),
          now: options.now,
        });
      },
      // The topics stay, as those of every other test's fresh namespace do.
      destroy: () => Promise.resolve(),
    });
  },
  // Kafka may fail appends waiting at close() (the broker's answer may never come) and refuses a
  // message above the broker's message.max.bytes (1 MiB by default) with log_unavailable.
  { closeWithQueued: "commits_or_rejects", refusedMessageBytes: 2 * 1024 * 1024, waitMs: 20_000 },
  needsKafka,
);
