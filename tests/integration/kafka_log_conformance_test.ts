/**
 * The {@linkcode MutationLog} conformance suite (src/log/conformance.ts) against the real Kafka
 * broker: each test gets a fresh namespace (fresh topics), and a restart is a new KafkaLog in the
 * same namespace and replica group.
 */
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
      open: (options) =>
        new KafkaLog({
          seeds: [KAFKA!],
          clientId: "conformance",
          tls: false,
          sasl: null,
          namespace,
          region: "test",
          replicaGroup: "g",
          instanceId: `i${++instance}`,
          partitions: options.partitions,
          replicationFactor: -1,
          retentionMs: null,
          writeTimeoutMs: 5_000,
          queueMax: options.queueMax,
          sendBytesMax: 1_000_000,
          deliverMax: options.deliverMax,
          sessionTimeoutMs: 6_000,
          startTimeoutMs: 15_000,
          metrics: createMetrics(),
          now: options.now,
        }),
      // The topics stay, as those of every other test's fresh namespace do.
      destroy: () => Promise.resolve(),
    });
  },
  // Kafka may fail appends waiting at close() (the broker's answer may never come) and refuses a
  // message above the broker's message.max.bytes (1 MiB by default) with log_unavailable.
  { closeWithQueued: "commits_or_rejects", refusedMessageBytes: 2 * 1024 * 1024, waitMs: 20_000 },
  needsKafka,
);
