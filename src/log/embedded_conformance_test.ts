/** The {@linkcode MutationLog} conformance suite against the embedded log, in a temporary folder. */
import { createMetrics } from "../metrics/mod.ts";
import { mutationLogConformance } from "./conformance.ts";
import { EmbeddedLog } from "./embedded.ts";

mutationLogConformance(
  "EmbeddedLog",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "firescroll_log_conformance_" });
    return {
      open: (options) =>
        new EmbeddedLog({
          path: `${dir}/ns/log.mdb`,
          partitions: options.partitions,
          queueMax: options.queueMax,
          deliverMax: options.deliverMax,
          mapBytes: 64 * 1024 * 1024,
          metrics: createMetrics(),
          now: options.now,
        }),
      destroy: () => Deno.remove(dir, { recursive: true }),
    };
  },
  // The embedded log commits what it took in when it closes, and takes any message size: the
  // node holds messages to MESSAGE_BYTES_MAX before they reach it.
  { closeWithQueued: "commits", refusedMessageBytes: null, waitMs: 5_000 },
);
