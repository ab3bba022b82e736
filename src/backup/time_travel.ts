/**
 * The log of a time-travel replica (`S3_RESTORE_TO`): at start, every partition is rebuilt from
 * S3 — the newest snapshot before the point plus the archived segments up to it (replay.ts) —
 * into the node's own partition files; then the node serves them as they are. It consumes no log
 * and takes no writes (409 `read_only`): an operator looks at yesterday's config before rolling
 * today's back, on a machine of its own.
 *
 * @module
 */
import type { LogRecord } from "../apply/mod.ts";
import type { RestoreTarget } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { AppendRequest, MutationLog, PartitionConsumer } from "../node/mod.ts";
import { storePath } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import type { ObjectStore } from "./object_store.ts";
import { restoredFields, type RestorePoint, restoreToPoint } from "./replay.ts";

/** What a time-travel log is built from. */
export interface TimeTravelOptions {
  readonly namespace: string;
  readonly partitions: number;
  /** The node's folder of partition files (`{DB_PATH}/{NAMESPACE}`). */
  readonly dir: string;
  readonly target: RestoreTarget;
  readonly mapBytes: number;
  readonly changesRetainMs: number;
  /** Bound on one partition's restore. */
  readonly timeoutMs: number;
  readonly metrics: Metrics;
  readonly now: () => number;
}

/** The point a partition restores to. */
export function pointOf(target: RestoreTarget, partition: number): RestorePoint {
  if (target.kind === "time") return { kind: "time", time: target.time };
  const offset = target.kind === "offsets" ? target.offsets.get(partition) : undefined;
  return offset === undefined ? { kind: "latest" } : { kind: "offset", offset };
}

/** A {@linkcode MutationLog} that holds the past: restored at start, never appended to. */
export class TimeTravelLog implements MutationLog {
  readonly kind = "archive";
  /** Each partition's restored offset + 1: where it is "caught up". */
  private readonly ends = new Map<number, number>();

  constructor(
    private readonly objects: ObjectStore,
    private readonly options: TimeTravelOptions,
  ) {}

  /** Restores every partition into the node's folder, replacing the files there. */
  async start(): Promise<void> {
    const { dir, partitions, namespace } = this.options;
    await Deno.mkdir(dir, { recursive: true });
    const started = performance.now();
    for (let partition = 0; partition < partitions; partition++) {
      const work = `${dir}/.time-travel-p${partition}`;
      await Deno.remove(work, { recursive: true }).catch(() => {});
      await Deno.mkdir(work, { recursive: true });
      try {
        const point = pointOf(this.options.target, partition);
        const restored = await restoreToPoint(this.objects, point, work, {
          namespace,
          partition,
          mapBytes: this.options.mapBytes,
          changesRetainMs: this.options.changesRetainMs,
          metrics: this.options.metrics,
          now: this.options.now,
        }, AbortSignal.timeout(this.options.timeoutMs));
        const path = storePath(dir, partition);
        await Deno.remove(`${path}-lock`).catch(() => {});
        await Deno.rename(restored.path, path);
        this.ends.set(partition, restored.offset + 1);
        log("info", "time_travel_restored", {
          partition,
          point,
          ...restoredFields(restored),
          done: partition + 1,
          total: partitions,
        });
      } finally {
        await Deno.remove(work, { recursive: true }).catch(() => {});
      }
    }
    log("info", "time_travel_ready", {
      partitions,
      seconds: Math.round(performance.now() - started) / 1000,
    });
  }

  append(_messages: readonly AppendRequest[]): Promise<number[]> {
    return Promise.reject(
      new OperationalError(
        "read_only",
        "Cannot write to a time-travel replica: it serves a past state restored from S3 (S3_RESTORE_TO); write to the cluster",
      ),
    );
  }

  /** Hands the node every partition, caught up at its restored offset, then waits. */
  async run(consumer: PartitionConsumer, signal: AbortSignal): Promise<void> {
    const all = Array.from({ length: this.options.partitions }, (_, p) => p);
    await consumer.assigned(all, this.ends, this.ends);
    if (!signal.aborted) {
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
    }
    await consumer.revoked(all);
  }

  readRange(): Promise<LogRecord[]> {
    return Promise.resolve([]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
