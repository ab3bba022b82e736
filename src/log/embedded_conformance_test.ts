/** The {@linkcode MutationLog} conformance suite against the embedded log, in a temporary folder. */
import { loadConfig } from "../config/mod.ts";
import { createMetrics } from "../metrics/mod.ts";
import { mutationLogConformance } from "./conformance.ts";
import { EmbeddedLog } from "./embedded.ts";

mutationLogConformance(
  "EmbeddedLog",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "firescroll_log_conformance_" });
    return {
      open: (options) => {
        const config = loadConfig({
          PARTITIONS: String(options.partitions),
          LOG_QUEUE_MAX: String(options.queueMax),
          APPLY_BATCH_MAX: String(options.applyBatchMax),
          EMBEDDED_LOG_MAP_BYTES: String(64 * 1024 * 1024),
        });
        return new EmbeddedLog({
          path: `${dir}/ns/log.mdb`,
          cluster: config.cluster,
          log: config.log,
          metrics: createMetrics(),
          now: options.now,
        });
      },
      destroy: () => Deno.remove(dir, { recursive: true }),
    };
  },
  // The embedded log commits what it took in when it closes, and takes any message size: the
  // node holds messages to MESSAGE_BYTES_MAX before they reach it.
  { closeWithQueued: "commits", refusedMessageBytes: null, waitMs: 5_000 },
);
