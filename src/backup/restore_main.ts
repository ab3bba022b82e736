/**
 * `deno task restore --partition N --to <point> --out DIR`: writes a partition file restored from
 * S3 (the newest snapshot before the point plus the log archive up to it, every piece verified)
 * to `DIR/p{N}.mdb`, without starting a node. S3 and the namespace come from the same variables
 * as the node's (`S3_BUCKET`, `S3_ENDPOINT`, `NAMESPACE`, AWS credentials…).
 *
 * `--to` is an offset, an RFC 3339 time, or `latest`; `--partition all` restores every partition.
 *
 * `deno task restore --rebuild-log [--partition N|all]` (with `KAFKA_SEEDS`): after the mutations
 * topic was lost, writes every archived message back into the new, empty topic at the offset it
 * had (rebuild_log.ts), so the cluster can take writes again where the archive ends.
 *
 * One JSON line per partition on stdout. Exit 0 when every partition was done, 1 when one could
 * not be (the archive does not reach the point, a damaged object, S3 or Kafka failing, a topic
 * that is not empty: the reason on stderr), 2 on a usage or configuration error.
 *
 * @module
 */
import { type Config, loadConfig, parseRestoreTo } from "../config/mod.ts";
import { KafkaLog } from "../log/mod.ts";
import { createMetrics } from "../metrics/mod.ts";
import { setLogLevel } from "../util/mod.ts";
import { storePath } from "../store/mod.ts";
import { S3ObjectStore } from "./object_store.ts";
import { rebuildPartition } from "./rebuild_log.ts";
import { restoredFields, type RestorePoint } from "./replay.ts";
import {
  RestoreFailed,
  type RestoreJob,
  restorePartitions,
  restorePoolOptions,
} from "./restore_pool.ts";
import { pointOf } from "./time_travel.ts";

const USAGE =
  "usage: deno task restore --partition <N|all> --to <offset|RFC 3339 time|latest> --out <dir>\n" +
  "       deno task restore --rebuild-log [--partition <N|all>]   (KAFKA_SEEDS set)";

const encoder = new TextEncoder();

function write(stream: { writeSync(p: Uint8Array): number }, line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}

/** The flags of the command line, or a usage problem. */
export function parseArgs(
  args: readonly string[],
): { partition: number | "all"; to: string; out: string } | {
  partition: number | "all";
  rebuild: true;
} | string {
  const flags = new Map<string, string>();
  let rebuild = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--rebuild-log") {
      rebuild = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const [name, inline] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (!["--partition", "--to", "--out"].includes(name)) return `unknown argument ${arg}`;
    const value = inline ?? args[++i];
    if (value === undefined || value === "") return `${name} needs a value`;
    flags.set(name, value);
  }
  const partition = flags.get("--partition");
  const to = flags.get("--to");
  const out = flags.get("--out");
  if (rebuild) {
    if (to !== undefined || out !== undefined) return "--rebuild-log takes no --to or --out";
    if (partition !== undefined && partition !== "all" && !/^\d+$/.test(partition)) {
      return `--partition ${partition}: not N or all`;
    }
    return {
      partition: partition === undefined || partition === "all" ? "all" : Number(partition),
      rebuild: true,
    };
  }
  if (partition === undefined || to === undefined || out === undefined) {
    return "--partition, --to and --out are all needed";
  }
  if (partition !== "all" && !/^\d+$/.test(partition)) {
    return `--partition ${partition}: not N or all`;
  }
  return { partition: partition === "all" ? "all" : Number(partition), to, out };
}

/** The point `--to` names for `partition`: a bare integer is an offset. */
export function pointFor(to: string, partition: number, partitions: number): RestorePoint {
  if (/^-?\d+$/.test(to.trim())) return { kind: "offset", offset: Number(to) };
  return pointOf(parseRestoreTo(to, partitions), partition);
}

async function main(): Promise<number> {
  const parsed = parseArgs(Deno.args);
  if (typeof parsed === "string") {
    write(Deno.stderr, `${parsed}\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(Deno.env.toObject());
    setLogLevel(config.node.logLevel);
    if (config.s3.bucket === null) throw new Error("Cannot restore: S3_BUCKET is not set");
    const { partitions } = config.cluster;
    if (parsed.partition !== "all" && parsed.partition >= partitions) {
      throw new Error(`Cannot restore partition ${parsed.partition}: PARTITIONS is ${partitions}`);
    }
    if (!("rebuild" in parsed)) pointFor(parsed.to, 0, partitions);
  } catch (error) {
    write(Deno.stderr, (error as Error).message);
    return 2;
  }
  const objects = new S3ObjectStore({ s3: config.s3 });
  const list = parsed.partition === "all"
    ? Array.from({ length: config.cluster.partitions }, (_, p) => p)
    : [parsed.partition];
  if ("rebuild" in parsed) return await rebuild(config, objects, list);
  await Deno.mkdir(parsed.out, { recursive: true });
  const jobs: RestoreJob[] = [];
  const started = new Map<number, number>();
  try {
    for (const partition of list) {
      const target = storePath(parsed.out, partition);
      if (await exists(target)) {
        throw new RestoreFailed(partition, "Error", `Cannot restore: ${target} exists`);
      }
      const point = pointFor(parsed.to, partition, config.cluster.partitions);
      const dir = await Deno.makeTempDir({ dir: parsed.out, prefix: `.restore-p${partition}-` });
      jobs.push({ partition, point, dir });
      started.set(partition, performance.now());
    }
    await restorePartitions(jobs, restorePoolOptions(config), async ({ partition }, restored) => {
      const target = storePath(parsed.out, partition);
      await Deno.rename(restored.path, target);
      const seconds = (performance.now() - started.get(partition)!) / 1000;
      write(
        Deno.stdout,
        JSON.stringify({
          partition,
          file: target,
          ...restoredFields(restored),
          seconds: Math.round(seconds * 1000) / 1000,
          replay_seconds: Math.round(restored.replaySeconds * 1000) / 1000,
          replayed_per_second: restored.replaySeconds > 0
            ? Math.round(restored.replayed / restored.replaySeconds)
            : null,
        }),
      );
    });
    return 0;
  } catch (error) {
    const partition = error instanceof RestoreFailed ? `partition ${error.partition}: ` : "";
    write(Deno.stderr, `${partition}${(error as Error).message}`);
    return 1;
  } finally {
    for (const job of jobs) await Deno.remove(job.dir, { recursive: true }).catch(() => {});
  }
}

/** `--rebuild-log`: the archive back into the new, empty topic, partition by partition. */
async function rebuild(config: Config, objects: S3ObjectStore, list: number[]): Promise<number> {
  if (config.log.kind !== "kafka") {
    write(
      Deno.stderr,
      "Cannot rebuild the log: KAFKA_SEEDS is not set (the embedded log is not rebuilt)",
    );
    return 2;
  }
  const { kafka } = config;
  const target = new KafkaLog({
    cluster: config.cluster,
    node: config.node,
    log: config.log,
    kafka,
    tlsCa: kafka.tlsCaFile === null ? null : Deno.readTextFileSync(kafka.tlsCaFile),
    startTimeoutMs: 60_000,
    metrics: createMetrics(),
    now: () => Date.now(),
  });
  try {
    await target.start();
    for (const partition of list) {
      const started = performance.now();
      const done = await rebuildPartition(
        objects,
        target,
        config.cluster.namespace,
        partition,
        AbortSignal.timeout(config.backup.timeoutMs),
      );
      const seconds = (performance.now() - started) / 1000;
      write(Deno.stdout, JSON.stringify({ ...done, seconds: Math.round(seconds * 1000) / 1000 }));
    }
    return 0;
  } catch (error) {
    write(Deno.stderr, (error as Error).message);
    return 1;
  } finally {
    await target.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) Deno.exit(await main());
