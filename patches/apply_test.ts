import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { setImmediate } from "node:timers";
import { applyHunks, parsePatch, patchAll, patchTarget } from "./apply.mjs";

const here = new URL(".", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;
const require = createRequire(import.meta.url);

interface KafkaEncoder {
  writeVarInt(value: number): KafkaEncoder;
  writeVarLong(value: unknown): KafkaEncoder;
  readonly buffer: Uint8Array;
}
const Encoder = require("../node_modules/kafkajs/src/protocol/encoder.js") as {
  new (size?: number): KafkaEncoder;
};
const Decoder = require("../node_modules/kafkajs/src/protocol/decoder.js") as {
  new (buffer: Uint8Array): { readVarLong(): { toString(): string }; readVarInt(): number };
};
const Long = require("../node_modules/kafkajs/src/utils/long.js") as {
  fromString(text: string): unknown;
};

/** Kafka's zig-zag varint of a signed value, from the protocol's definition (BigInt). */
function referenceVarint(value: bigint, bits: 32n | 64n): number[] {
  const mask = (1n << bits) - 1n;
  let zigzag = ((value << 1n) ^ (value >> (bits - 1n))) & mask;
  const out: number[] = [];
  while (zigzag >= 0x80n) {
    out.push(Number((zigzag & 0x7fn) | 0x80n));
    zigzag >>= 7n;
  }
  out.push(Number(zigzag));
  return out;
}

/** Signed values at every varint length boundary, and some in between. */
function edgeValues(bits: 32n | 64n): bigint[] {
  const values = new Set<bigint>([0n, 1n, -1n, 63n, -64n, 64n, -65n]);
  for (let shift = 6n; shift < bits - 1n; shift += 7n) {
    for (const delta of [-1n, 0n, 1n]) {
      values.add((1n << shift) + delta);
      values.add(-(1n << shift) + delta);
    }
  }
  values.add((1n << (bits - 1n)) - 1n);
  values.add(-(1n << (bits - 1n)));
  let seed = 0x2545f491;
  for (let i = 0; i < 500; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const v = BigInt(seed) - 0x8000_0000n;
    values.add(bits === 32n ? v : v * 0x1_0000_0001n);
  }
  return [...values];
}

Deno.test("the installed kafkajs carries every committed patch", () => {
  const results = patchAll(root, here, "check");
  ok(results.length >= 3, "kafkajs+2.2.4.patch: the encoder, the decoder, the request queue");
  for (const r of results) equal(r.applied, 0, `${r.file} is patched`);
});

Deno.test("the patched kafkajs encoder writes varints byte for byte as the protocol defines", () => {
  for (const value of edgeValues(32n)) {
    const bytes = [...new Encoder().writeVarInt(Number(value)).buffer];
    deepEqual(bytes, referenceVarint(value, 32n), `varint ${value}`);
    equal(new Decoder(new Uint8Array(bytes)).readVarInt(), Number(value), `read back ${value}`);
  }
  for (const value of edgeValues(64n)) {
    const bytes = [...new Encoder().writeVarLong(Long.fromString(String(value))).buffer];
    deepEqual(bytes, referenceVarint(value, 64n), `varlong ${value}`);
    equal(new Decoder(new Uint8Array(bytes)).readVarLong().toString(), String(value));
    if (value >= -(2n ** 53n) && value <= 2n ** 53n) {
      const fromNumber = [...new Encoder().writeVarLong(Number(value)).buffer];
      deepEqual(fromNumber, bytes, `varlong ${value} given as a number`);
    }
  }
  // Many writes into one encoder: the buffer grows past its first 512 bytes.
  const encoder = new Encoder();
  const expected: number[] = [];
  for (const value of edgeValues(32n)) {
    encoder.writeVarInt(Number(value));
    expected.push(...referenceVarint(value, 32n));
  }
  ok(expected.length > 512);
  deepEqual([...encoder.buffer], expected);
});

Deno.test("patches apply once, are recognised when applied, and refuse text they do not fit", () => {
  const patch = parsePatch(readFileSync(`${here}/kafkajs+2.2.4.patch`, "utf8"));
  deepEqual(patch.map((f) => f.path), [
    "node_modules/kafkajs/src/protocol/decoder.js",
    "node_modules/kafkajs/src/protocol/encoder.js",
    "node_modules/kafkajs/src/network/requestQueue/index.js",
    "node_modules/kafkajs/src/consumer/runner.js",
    "node_modules/kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js",
    "node_modules/kafkajs/src/consumer/consumerGroup.js",
    "node_modules/kafkajs/src/consumer/offsetManager/index.js",
  ]);
  for (const file of patch) {
    const patched = readFileSync(`${root}/${file.path}`, "utf8");
    // The original, recovered by applying the hunks backwards.
    const reversed = file.hunks.map((h) => ({ oldText: h.newText, newText: h.oldText }));
    const original = applyHunks(patched, reversed);
    equal(original.applied, file.hunks.length);
    const once = applyHunks(original.content, file.hunks);
    equal(once.applied, file.hunks.length);
    equal(once.content, patched);
    const twice = applyHunks(once.content, file.hunks);
    deepEqual([twice.applied, twice.already, twice.content], [0, file.hunks.length, patched]);
    throws(() => applyHunks("something else entirely", file.hunks), /does not apply/);
  }
  deepEqual(patchTarget("kafkajs+2.2.4.patch"), ["kafkajs", "2.2.4"]);
  deepEqual(patchTarget("@scope+name+1.0.0.patch"), ["@scope/name", "1.0.0"]);
});

Deno.test("the patched kafkajs request queue schedules no check while nothing is pending", () => {
  const RequestQueue = require("../node_modules/kafkajs/src/network/requestQueue/index.js") as {
    new (options: Record<string, unknown>): {
      pending: unknown[];
      throttledUntil: number;
      throttleCheckTimeoutId: unknown;
      checkPendingRequests(): void;
      destroy(): void;
    };
  };
  const noop = () => {};
  const logger = { debug: noop, info: noop, warn: noop, error: noop };
  const queue = new RequestQueue({
    instrumentationEmitter: null,
    maxInFlightRequests: 1,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:1",
    logger,
    isConnected: () => true,
  });
  try {
    // Unpatched, this armed a timer with a negative delay that re-armed itself forever: a 1 ms
    // loop per connection on an idle client.
    queue.checkPendingRequests();
    equal(queue.throttleCheckTimeoutId, null, "nothing pending: no timer");
    // Throttled with something pending: a check is still scheduled for the end of the throttle.
    queue.throttledUntil = Date.now() + 60_000;
    queue.pending.push({});
    queue.checkPendingRequests();
    ok(queue.throttleCheckTimeoutId !== null, "pending while throttled: a timer");
  } finally {
    queue.destroy();
  }
});

Deno.test("the patched kafkajs runner never waits for a heartbeat and re-joins on its failure", async () => {
  const Runner = require("../node_modules/kafkajs/src/consumer/runner.js") as {
    new (options: Record<string, unknown>): {
      running: boolean;
      heartbeatTimer: unknown;
      heartbeat(): Promise<void>;
      startHeartbeatTimer(): void;
      stop(): Promise<void>;
    };
  };
  const noop = () => {};
  const logger: Record<string, unknown> = { debug: noop, info: noop, warn: noop, error: noop };
  logger.namespace = () => logger;
  let sent = 0;
  let answer: (error?: Error) => void = noop;
  const group = {
    generationId: 1,
    heartbeat: () => {
      sent++;
      return new Promise<void>((resolve, reject) => {
        answer = (error) => error === undefined ? resolve() : reject(error);
      });
    },
    getNodeIds: () => [],
  };
  const runner = new Runner({
    logger,
    consumerGroup: group,
    instrumentationEmitter: { emit: noop },
    concurrency: 1,
    eachBatch: noop,
    heartbeatInterval: 60_000,
    onCrash: noop,
    autoCommit: false,
  });
  // Unpatched, the fetch loop waited here for the coordinator's answer: one round trip each time.
  let returned = false;
  await Promise.race([
    runner.heartbeat().then(() => returned = true),
    new Promise((resolve) => setTimeout(resolve, 50)),
  ]);
  ok(returned, "heartbeat() returns before the coordinator answers");
  equal(sent, 1);
  const rebalancing = Object.assign(new Error("rebalancing"), { type: "REBALANCE_IN_PROGRESS" });
  answer(rebalancing);
  await new Promise((resolve) => setTimeout(resolve, 0));
  // The failure reaches the fetch loop on its next call, which re-joins the group.
  await runner.heartbeat().then(() => ok(false, "the failure is thrown"), (error) => {
    equal(error, rebalancing);
  });
  // A failure from an older generation (the group was re-joined meanwhile) is dropped.
  await runner.heartbeat();
  answer(rebalancing);
  await new Promise((resolve) => setTimeout(resolve, 0));
  group.generationId = 2;
  await runner.heartbeat();
  equal(sent, 3);
  // The timer sends heartbeats while the fetch loop is busy elsewhere; stop() clears it.
  runner.running = true;
  runner.startHeartbeatTimer();
  ok(runner.heartbeatTimer !== null && runner.heartbeatTimer !== undefined);
  await runner.stop();
  equal(runner.heartbeatTimer, null);
});

Deno.test("the patched kafkajs consumer group ends an idle fetch's wait when a partition resumes", async () => {
  const ConsumerGroup = require("../node_modules/kafkajs/src/consumer/consumerGroup.js") as {
    prototype: {
      fetch(nodeId: number): Promise<unknown[]>;
      resume(topicPartitions: unknown[]): void;
    };
  };
  const noop = () => {};
  // Only what fetch() touches when every assigned partition is paused.
  const group = Object.assign(Object.create(ConsumerGroup.prototype), {
    logger: { debug: noop, info: noop, warn: noop, error: noop },
    cluster: { refreshMetadataIfNecessary: () => Promise.resolve() },
    checkForStaleAssignment: noop,
    subscriptionState: { assigned: () => [], resume: noop },
    filterPartitionsByNode: (_nodeId: number, topicPartitions: unknown[]) => topicPartitions,
    seekOffsets: () => Promise.resolve(),
    offsetManager: { committedOffsets: () => ({}) },
    getActiveTopicPartitions: () => ({}),
    maxWaitTime: 3000,
  }) as typeof ConsumerGroup.prototype;
  const started = Date.now();
  const fetched = group.fetch(1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  // Unpatched, the fetch loop slept the whole maxWaitTime before it looked again.
  group.resume([]);
  deepEqual(await fetched, []);
  ok(Date.now() - started < 1000, `the wait ended at resume (${Date.now() - started} ms)`);
});

Deno.test("the patched kafkajs fetch decoder gives the event loop turns and decodes every record", async () => {
  const decodeMessages = require(
    "../node_modules/kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js",
  ) as (decoder: unknown) => Promise<{ offset: string; value: Buffer }[]>;
  const { RecordBatch } = require(
    "../node_modules/kafkajs/src/protocol/recordBatch/v0/index.js",
  ) as {
    RecordBatch: (options: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
  };
  const Record = require("../node_modules/kafkajs/src/protocol/recordBatch/record/v0/index.js") as (
    options: Record<string, unknown>,
  ) => unknown;
  // Enough to decode for longer than the patch's 20 ms between turns.
  const batches = 4000;
  const perBatch = 10;
  const parts: Buffer[] = [];
  for (let b = 0; b < batches; b++) {
    const records = Array.from(
      { length: perBatch },
      (_, i) => Record({ offsetDelta: i, key: null, value: Buffer.from(`v${b}.${i}`) }),
    );
    const batch = await RecordBatch({
      firstOffset: Long.fromString(String(b * perBatch)),
      lastOffsetDelta: perBatch - 1,
      records,
    });
    parts.push(batch.buffer);
  }
  const messages = Buffer.concat(parts);
  const size = Buffer.alloc(4);
  size.writeInt32BE(messages.length);
  let turned = false;
  setImmediate(() => turned = true);
  const records = await decodeMessages(new Decoder(Buffer.concat([size, messages])));
  // Unpatched, a whole fetch response decoded in promise continuations alone: nothing else ran.
  ok(turned, "an immediate ran while the response was decoded");
  equal(records.length, batches * perBatch);
  equal(records.at(-1)!.offset, String(batches * perBatch - 1));
  equal(records.at(-1)!.value.toString(), `v${batches - 1}.${perBatch - 1}`);
});
