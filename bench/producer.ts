// deno-lint-ignore-file no-console
/**
 * The ceilings of the Kafka write path (bench/kafka.sh): N closed-loop writers producing
 * one-record messages, with nothing consumed, in one of two modes:
 *
 * - `raw`: kafkajs alone. One producer with the settings of `src/log/kafka.ts` (idempotent,
 *   `maxInFlightRequests: 5`, acks -1, explicit partition); each writer awaits its own
 *   `producer.send` of one message before sending the next. The topic
 *   `firescroll_<namespace>_mutations` is created here (PARTITIONS partitions).
 * - `append`: the project's `KafkaLog.append` alone. The log is built exactly as the node builds
 *   it (`buildNode(loadConfig(env))` in `src/app.ts`, so every setting — LOG_QUEUE_MAX,
 *   MESSAGE_BYTES_MAX, timeouts — is the node's), started (topics created, partition count
 *   checked), and never run: no consumer. Each writer appends one message and awaits its offset.
 *
 * Messages are what the node appends for a one-record put: `encodeMutation` of one put (pk
 * `<mode>c<N>-<writer>-<seq>`, sk `profile`, the ≈100-byte data of bench/seed.ts), on the
 * partition the node's partitioner picks for that pk, keyed by the pk.
 *
 * Usage:
 *   deno run --allow-all bench/producer.ts --mode raw|append --brokers 127.0.0.1:19092 \
 *     --namespace NS [--partitions 16] [--concurrency 1,16,64] [--duration-s 10] [--json FILE]
 * Prints one JSON object per concurrency on stdout (one line each), progress on stderr. Latency
 * is from just before the send/append to its resolution, in this process.
 *
 * @module
 */
import process from "node:process";
import { Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import { buildNode } from "../src/app.ts";
import { encodeMutation } from "../src/apply/mod.ts";
import { loadConfig } from "../src/config/mod.ts";
import { partitionOf } from "../src/keys/mod.ts";
import { createMetrics } from "../src/metrics/mod.ts";
import { topicNames } from "../src/log/mod.ts";
import { recordData } from "./seed.ts";
import { quantile } from "./write.ts";
import { flag, intFlag, required } from "./_args.ts";

/** One message as the node would append it. */
interface Message {
  readonly partition: number;
  readonly key: string;
  readonly value: Uint8Array;
}

/** Sends one message and resolves once it is acknowledged. */
type Send = (m: Message) => Promise<void>;

/** What one concurrency level measured. Latencies in milliseconds. */
export interface ProducerResult {
  readonly mode: string;
  readonly concurrency: number;
  readonly seconds: number;
  readonly messages: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly per_s: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** CPU of this process (all threads) in % of one CPU, and per acknowledged message in µs. */
  readonly cpu_pct: number;
  readonly cpu_us_per_message: number;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function measure(
  mode: string,
  send: Send,
  partitions: number,
  concurrency: number,
  durationS: number,
): Promise<ProducerResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const cpu0 = cpuSeconds();
  const started = performance.now();
  const stopAt = started + durationS * 1000;
  const writer = async (w: number) => {
    for (let seq = 0; performance.now() < stopAt; seq++) {
      const pk = `${mode}c${concurrency}-${w}-${seq}`;
      const value = encodeMutation({
        v: 1,
        atomic: false,
        ops: [{ op: "put", pk, sk: "profile", data: recordData(seq) }],
      });
      const t0 = performance.now();
      try {
        await send({ partition: partitionOf(pk, partitions), key: pk, value });
        latencies.push(performance.now() - t0);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
        // A failing broker must not turn this loop into a busy spin.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => writer(w)));
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds() - cpu0;
  const sorted = Float64Array.from(latencies).sort();
  const round = (n: number, d = 2) => Number.isFinite(n) ? Number(n.toFixed(d)) : null;
  return {
    mode,
    concurrency,
    seconds: round(seconds)!,
    messages: latencies.length,
    errors,
    firstError,
    per_s: Math.round(latencies.length / seconds),
    p50: round(quantile(sorted, 0.5))!,
    p99: round(quantile(sorted, 0.99))!,
    max: round(sorted.length === 0 ? NaN : sorted[sorted.length - 1]!)!,
    cpu_pct: round((100 * cpu) / seconds, 1)!,
    cpu_us_per_message: Math.round(latencies.length === 0 ? 0 : (cpu * 1e6) / latencies.length),
  };
}

/** A kafkajs producer with the settings of src/log/kafka.ts, on a topic created here. */
async function rawSender(
  brokers: string,
  namespace: string,
  partitions: number,
): Promise<{ send: Send; close: () => Promise<void> }> {
  const kafka = new Kafka({
    clientId: "firescroll-bench-raw",
    brokers: brokers.split(","),
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    logLevel: logLevel.WARN,
  });
  const topic = topicNames(namespace).mutations;
  const admin = kafka.admin();
  await admin.connect();
  // A broker that has just started may still answer metadata requests with "does not host this
  // topic-partition": retry the creation, bounded.
  for (let attempt = 1;; attempt++) {
    try {
      await admin.createTopics({
        topics: [{ topic, numPartitions: partitions }],
        waitForLeaders: true,
      });
      break;
    } catch (error) {
      if (attempt >= 30) throw error;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  // Right after a broker starts, createTopics can return before every broker-side metadata
  // cache knows the partitions ("does not host this topic-partition"): wait, bounded.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await admin.fetchTopicMetadata({ topics: [topic] }).then(
      (m) => m.topics[0]?.partitions.filter((p) => p.leader >= 0).length === partitions,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`topic ${topic} has no leaders after 30 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await admin.disconnect();
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 5,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: Number.MAX_SAFE_INTEGER },
  });
  await producer.connect();
  return {
    send: async (m) => {
      await producer.send({
        topic,
        acks: -1,
        timeout: 10_000,
        messages: [{
          partition: m.partition,
          key: m.key,
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          timestamp: String(Date.now()),
        }],
      });
    },
    close: () => producer.disconnect(),
  };
}

/** The node's own log (KafkaLog), started but never consuming. */
async function appendSender(
  brokers: string,
  namespace: string,
  partitions: number,
): Promise<{ send: Send; close: () => Promise<void> }> {
  const config = loadConfig({
    KAFKA_SEEDS: brokers,
    NAMESPACE: namespace,
    PARTITIONS: String(partitions),
    INSTANCE_ID: "bench-append",
    DB_PATH: await Deno.makeTempDir({ prefix: "firescroll-bench-append-" }),
  });
  const node = buildNode(config, createMetrics());
  const log = node.log;
  if (log.kind !== "kafka") throw new Error("Cannot run: the node built an embedded log");
  await log.start();
  return {
    send: async (m) => {
      await log.append([m]);
    },
    close: async () => {
      await log.close();
      await Deno.remove(config.store.dbPath, { recursive: true });
    },
  };
}

async function main(): Promise<void> {
  const mode = required("mode", "run");
  if (mode !== "raw" && mode !== "append") throw new Error("Cannot run: --mode is raw or append");
  const brokers = required("brokers", "run");
  const namespace = required("namespace", "run");
  const partitions = intFlag("partitions", {
    env: "PARTITIONS",
    fallback: 16,
    min: 1,
    max: 4096,
    what: "run",
  });
  const durationS = intFlag("duration-s", { fallback: 10, min: 1, max: 3600, what: "run" });
  const concurrency = (flag("concurrency") ?? "1,16,64").split(",").map(Number);
  if (concurrency.some((c) => !Number.isSafeInteger(c) || c < 1 || c > 4096)) {
    throw new Error("Cannot run: --concurrency lists integers in [1, 4096]");
  }
  const sender = mode === "raw"
    ? await rawSender(brokers, namespace, partitions)
    : await appendSender(brokers, namespace, partitions);
  const results: ProducerResult[] = [];
  try {
    // Unmeasured warm-up: connections, metadata, producer id, JIT.
    await measure(`${mode}w`, sender.send, partitions, Math.max(...concurrency), 1);
    for (const c of concurrency) {
      console.error(`[producer] ${mode}: ${c} writer(s), ${durationS} s`);
      const r = await measure(mode, sender.send, partitions, c, durationS);
      console.error(`[producer] ${JSON.stringify(r)}`);
      results.push(r);
    }
  } finally {
    await sender.close().catch(() => {});
  }
  const json = flag("json");
  if (json !== undefined) await Deno.writeTextFile(json, JSON.stringify(results) + "\n");
  for (const r of results) console.log(JSON.stringify(r));
}

if (import.meta.main) {
  try {
    await main();
    // kafkajs may leave timers behind after disconnect.
    Deno.exit(0);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
