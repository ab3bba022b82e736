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
import type { AppendRequest, MutationLog, PartitionConsumer } from "../node/mod.ts";
import { storePath } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { restoredFields, type RestorePoint } from "./replay.ts";
import { type RestoreJob, restorePartitions, type RestorePoolOptions } from "./restore_pool.ts";

/** What a time-travel log is built from: the restore pool's options, and where to restore to. */
export interface TimeTravelOptions extends RestorePoolOptions {
  readonly partitions: number;
  /** The node's folder of partition files (`{DB_PATH}/{NAMESPACE}`). */
  readonly dir: string;
  readonly target: RestoreTarget;
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

  constructor(private readonly options: TimeTravelOptions) {}

  /**
   * Restores every partition into the node's folder, replacing the files there:
   * `restoreThreads` at once, each in a thread of its own (restore_pool.ts).
   */
  async start(): Promise<void> {
    const { dir, partitions } = this.options;
    await Deno.mkdir(dir, { recursive: true });
    const started = performance.now();
    const jobs: RestoreJob[] = [];
    for (let partition = 0; partition < partitions; partition++) {
      const work = `${dir}/.time-travel-p${partition}`;
      await Deno.remove(work, { recursive: true }).catch(() => {});
      await Deno.mkdir(work, { recursive: true });
      jobs.push({ partition, point: pointOf(this.options.target, partition), dir: work });
    }
    let done = 0;
    try {
      await restorePartitions(jobs, this.options, async (job, restored) => {
        const path = storePath(dir, job.partition);
        await Deno.remove(`${path}-lock`).catch(() => {});
        await Deno.rename(restored.path, path);
        this.ends.set(job.partition, restored.offset + 1);
        log("info", "time_travel_restored", {
          partition: job.partition,
          point: job.point,
          ...restoredFields(restored),
          done: ++done,
          total: partitions,
        });
      });
    } finally {
      for (const job of jobs) await Deno.remove(job.dir, { recursive: true }).catch(() => {});
    }
    log("info", "time_travel_ready", {
      partitions,
      threads: this.options.threads,
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
