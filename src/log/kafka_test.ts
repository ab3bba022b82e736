import { deepEqual, equal, ok } from "node:assert/strict";
import { type ConfigLog, loadConfig } from "../config/mod.ts";
import { createMetrics } from "../metrics/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { KafkaLog } from "./kafka.ts";
import type { AppendRequest } from "../node/mod.ts";

interface SendCall {
  readonly messages: readonly { partition: number; value: Uint8Array }[];
  answer(bases: Record<number, number>): void;
  fail(error: Error): void;
}

/**
 * A KafkaLog whose producer is a stand-in that records each produce request and lets the test
 * answer it: the producer path (grouping, offsets, deadlines, bounds) without a broker.
 */
function fakeLog(options: Partial<ConfigLog> = {}) {
  const calls: SendCall[] = [];
  const producer = {
    send(request: { messages: SendCall["messages"] }) {
      return new Promise((resolve, reject) => {
        calls.push({
          messages: request.messages,
          answer: (bases) =>
            resolve(
              Object.entries(bases).map(([p, base]) => ({
                topicName: "t",
                partition: Number(p),
                errorCode: 0,
                baseOffset: String(base),
              })),
            ),
          fail: reject,
        });
      });
    },
    disconnect: () => Promise.resolve(),
  };
  const config = loadConfig({
    KAFKA_SEEDS: "127.0.0.1:1",
    KAFKA_CLIENT_ID: "test",
    NAMESPACE: "unit",
    REGION: "r",
    REPLICA_GROUP: "g",
    INSTANCE_ID: "i",
    PARTITIONS: "4",
    LOG_WRITE_TIMEOUT_MS: "5000",
    LOG_QUEUE_MAX: "1000",
    MESSAGE_BYTES_MAX: String(1 << 20),
    APPLY_BATCH_MAX: "100",
    KAFKA_SESSION_TIMEOUT_MS: "10000",
  });
  const log = new KafkaLog({
    cluster: config.cluster,
    node: config.node,
    kafka: config.kafka,
    // Below the settings' bounds (a 50 ms write timeout) to keep the tests short.
    log: { ...config.log, ...options },
    tlsCa: null,
    startTimeoutMs: 1_000,
    metrics: createMetrics(),
    now: () => 1_000,
  });
  (log as unknown as { producer: unknown }).producer = producer;
  return { log, calls };
}

function message(partition: number, text = "m"): AppendRequest {
  return { partition, key: "k", value: new TextEncoder().encode(text) };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function code(error: unknown): string | undefined {
  return error instanceof OperationalError ? error.code : undefined;
}

Deno.test("appends that arrive while a produce request is in flight share the next one, with offsets from each partition's base", async () => {
  const { log, calls } = fakeLog();
  try {
    const a = log.append([message(0)]);
    const b = log.append([message(0)]);
    await tick();
    // The first append went alone; the second waits for it rather than racing it.
    equal(calls.length, 1);
    equal(calls[0]!.messages.length, 1);
    const c = log.append([message(1), message(1)]);
    await tick();
    equal(calls.length, 1);
    calls[0]!.answer({ 0: 10 });
    deepEqual(await a, [10]);
    await tick();
    equal(calls.length, 2);
    equal(calls[1]!.messages.length, 3);
    calls[1]!.answer({ 0: 11, 1: 5 });
    deepEqual(await b, [11]);
    deepEqual(await c, [5, 6]);
  } finally {
    await log.close();
  }
});

Deno.test("an append Kafka does not answer in time fails with log_unavailable, and the late answer is ignored", async () => {
  const { log, calls } = fakeLog({ writeTimeoutMs: 50, queueMax: 2 });
  try {
    const started = Date.now();
    const late = log.append([message(0)]);
    let error: unknown;
    await late.catch((e) => error = e);
    equal(code(error), "log_unavailable");
    ok(Date.now() - started >= 45, "failed before its deadline");
    // Still in flight to Kafka: it counts against the queue bound until Kafka answers.
    let overloaded: unknown;
    await log.append([message(0), message(1)]).catch((e) => overloaded = e);
    equal(code(overloaded), "log_overloaded");
    calls[0]!.answer({ 0: 3 });
    await tick();
    const next = log.append([message(2)]);
    await tick();
    calls[1]!.answer({ 2: 7 });
    deepEqual(await next, [7]);
  } finally {
    await log.close();
  }
});

Deno.test("a failed produce request fails each of its appends with log_unavailable", async () => {
  const { log, calls } = fakeLog();
  try {
    const first = log.append([message(0)]);
    const second = log.append([message(1)]);
    const third = log.append([message(2)]);
    await tick();
    calls[0]!.answer({ 0: 0 });
    await first;
    await tick();
    calls[1]!.fail(new Error("broker went away"));
    const codes = await Promise.all([second, third].map((p) => p.then(() => "ok", code)));
    deepEqual(codes, ["log_unavailable", "log_unavailable"]);
  } finally {
    await log.close();
  }
});

Deno.test("appends still waiting when the log closes fail with log_unavailable", async () => {
  const { log } = fakeLog();
  const waiting = log.append([message(0)]);
  await log.close();
  let error: unknown;
  await waiting.catch((e) => error = e);
  equal(code(error), "log_unavailable");
});
