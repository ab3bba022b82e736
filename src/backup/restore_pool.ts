/**
 * Restores several partitions to a point at once, each in a worker thread of its own: apply is
 * synchronous JavaScript, so one thread replays one partition at the speed of one core, and a
 * whole node's restore (`deno task restore --partition all`, a time-travel replica's start) goes
 * as many times faster as there are cores to run it. Each partition has its own file, so the
 * replays share nothing but the S3 endpoint.
 *
 * One of the threads is the caller's own: with one, the partitions are restored there, one after
 * the other.
 *
 * @module
 */
import { changesRetainMs, type Config, type ConfigS3 } from "../config/mod.ts";
import { threadCount } from "../util/threads.ts";
import { createMetrics } from "../metrics/mod.ts";
import type { Level } from "../util/log.ts";
import { S3ObjectStore } from "./object_store.ts";
import {
  type RestoreDecode,
  type RestoredPartition,
  type RestorePoint,
  restoreToPoint,
} from "./replay.ts";

/** One partition to restore: to `point`, into `dir` (a folder of its own). */
export interface RestoreJob {
  readonly partition: number;
  readonly point: RestorePoint;
  readonly dir: string;
}

/** What every restore of a pool shares. */
export interface RestorePoolOptions {
  readonly s3: ConfigS3;
  readonly namespace: string;
  readonly mapBytes: number;
  readonly changesRetainMs: number;
  /** Bound on one partition's restore. */
  readonly timeoutMs: number;
  /** Partitions restored at once (at least 1). */
  readonly threads: number;
  /** `LOG_LEVEL` of the worker threads (this thread's is set already). */
  readonly logLevel: Level;
  /** `S3_RESTORE_DECODE`; `auto` decodes inline when partitions restore side by side. */
  readonly decode: RestoreDecode;
}

/** The pool's options as the config sets them (`S3_RESTORE_THREADS`, `LOG_LEVEL`, …). */
export function restorePoolOptions(config: Config): RestorePoolOptions {
  return {
    s3: config.s3,
    namespace: config.cluster.namespace,
    mapBytes: config.store.lmdbMapBytes,
    changesRetainMs: changesRetainMs(config),
    timeoutMs: config.backup.timeoutMs,
    threads: threadCount(config.s3.restoreThreads),
    logLevel: config.node.logLevel,
    decode: config.s3.restoreDecode,
  };
}

/** A job and its options, as a worker receives them. */
export interface RestoreRequest {
  readonly job: RestoreJob;
  readonly options: Omit<RestorePoolOptions, "threads">;
}

/** A worker's answer: the restored partition, or why it failed. */
export type RestoreReply =
  | { readonly ok: true; readonly restored: RestoredPartition }
  | { readonly ok: false; readonly name: string; readonly message: string };

/** Runs one job in this thread (what a worker does with a request). */
export function restoreJob(request: RestoreRequest): Promise<RestoredPartition> {
  const { job, options } = request;
  return restoreToPoint(
    new S3ObjectStore({ s3: options.s3 }),
    job.point,
    job.dir,
    {
      namespace: options.namespace,
      partition: job.partition,
      mapBytes: options.mapBytes,
      changesRetainMs: options.changesRetainMs,
      metrics: createMetrics(),
      now: () => Date.now(),
      decode: options.decode,
    },
    AbortSignal.timeout(options.timeoutMs),
  );
}

/** A partition that could not be restored: the name and message of the error met. */
export class RestoreFailed extends Error {
  constructor(readonly partition: number, name: string, message: string) {
    super(message);
    this.name = name;
  }
}

function failed(partition: number, error: unknown): RestoreFailed {
  if (error instanceof RestoreFailed) return error;
  const e = error instanceof Error ? error : new Error(String(error));
  return new RestoreFailed(partition, e.name, e.message);
}

/** Runs one job in a new worker thread, which ends with it. */
function inWorker(request: RestoreRequest): Promise<RestoredPartition> {
  const worker = new Worker(new URL("./restore_worker.ts", import.meta.url), {
    type: "module",
    name: `restore-p${request.job.partition}`,
  });
  return new Promise<RestoredPartition>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<RestoreReply>) => {
      const reply = event.data;
      if (reply.ok) resolve(reply.restored);
      else reject(new RestoreFailed(request.job.partition, reply.name, reply.message));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new RestoreFailed(request.job.partition, "Error", event.message));
    };
    worker.postMessage(request);
  }).finally(() => worker.terminate());
}

/**
 * Restores every job, at most `threads` at once, calling `restored` for each as it finishes (one
 * call at a time). The first failure (a restore's or `restored`'s) is thrown as a
 * {@linkcode RestoreFailed} once the restores already running have ended; no new one starts
 * after it.
 */
export async function restorePartitions(
  jobs: readonly RestoreJob[],
  options: RestorePoolOptions,
  restored: (job: RestoreJob, partition: RestoredPartition) => Promise<void>,
): Promise<void> {
  const { s3, namespace, mapBytes, changesRetainMs, timeoutMs, threads, logLevel, decode } =
    options;
  const lanes = Math.max(1, Math.min(threads, jobs.length));
  const shared = {
    s3,
    namespace,
    mapBytes,
    changesRetainMs,
    timeoutMs,
    logLevel,
    // Partitions restoring side by side keep the CPUs busy: no decoding thread beside each.
    decode: decode === "auto" && lanes > 1 ? "inline" as const : decode,
  };
  let next = 0;
  let failure: RestoreFailed | null = null;
  let reporting = Promise.resolve();
  // This thread would only wait: the first lane replays here (a worker is no faster).
  const lane = async (_: unknown, number: number) => {
    const run = number === 0 ? restoreJob : inWorker;
    while (failure === null && next < jobs.length) {
      const job = jobs[next++]!;
      try {
        const partition = await run({ job, options: shared });
        reporting = reporting.then(() => restored(job, partition));
        await reporting;
      } catch (error) {
        failure ??= failed(job.partition, error);
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  if (failure !== null) throw failure;
}
