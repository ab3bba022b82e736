/**
 * What a correct {@linkcode MutationLog} does: one suite of `Deno.test`s that every
 * implementation runs (the embedded log in `embedded_conformance_test.ts`, Kafka in
 * `tests/integration/kafka_log_conformance_test.ts`), so "correct" has one definition. A new
 * log backend passes this suite before anything else.
 *
 * The suite drives the log through the port alone, with an in-memory {@linkcode PartitionConsumer}
 * (the node's side of the port) that checks every call it receives. It asserts only what both
 * implementations guarantee; where they differ by design, a {@linkcode LogCapabilities} flag
 * says which way the implementation goes and why.
 *
 * Not asserted, on purpose:
 * - message keys: a {@linkcode LogRecord} carries none (the embedded log does not keep them;
 *   Kafka keeps them for other tools);
 * - dense offsets: offsets increase but may leave gaps (`LogRecord.offset`), so the suite
 *   compares the delivered offsets with the acknowledged ones instead;
 * - `blocked()`: only Kafka's retention can take a partition's log away (kafka_faults_test.ts);
 * - the rejection of a message above MESSAGE_BYTES_MAX (`message_too_large`): the node refuses it
 *   before it reaches the log.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { LogRecord } from "../apply/mod.ts";
import type { AppendRequest, MutationLog, PartitionConsumer } from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";

/** How the suite wants a log built. */
export interface ConformanceLogOptions {
  readonly partitions: number;
  /** Most messages waiting to be made durable (`log_overloaded` beyond). */
  readonly queueMax: number;
  /** Most records in one `deliver()` call (`APPLY_BATCH_MAX`). */
  readonly applyBatchMax: number;
  /** The clock that stamps messages. */
  readonly now: () => number;
}

/**
 * Storage of one log (a folder, a Kafka namespace) that logs can be opened on, one after
 * another: opening a second log after the first was closed is a restart.
 */
export interface LogStorage {
  /** A new log on this storage, not yet started. */
  open(options: ConformanceLogOptions): MutationLog;
  /** Removes what the storage holds, when it can (called once, after every log closed). */
  destroy(): Promise<void>;
}

/** Where an implementation differs from the other by design. */
export interface LogCapabilities {
  /**
   * What happens to appends still waiting when `close()` is called. The embedded log commits
   * them (what it took in is made durable: "commits"); Kafka cannot promise an answer from a
   * broker while it disconnects, so each resolves or fails with `log_unavailable`
   * ("commits_or_rejects"). Either way none is left hanging.
   */
  readonly closeWithQueued: "commits" | "commits_or_rejects";
  /**
   * A message size the log refuses with `log_unavailable`, or null when it takes any size.
   * Kafka refuses messages above the broker's `message.max.bytes` (1 MiB by default); the
   * embedded log stores any value its map has room for.
   */
  readonly refusedMessageBytes: number | null;
  /** Bound on every wait for the log (ms): a broker's group join takes a few seconds. */
  readonly waitMs: number;
}

/** Options of the registered tests (e.g. `ignore` when the broker is absent). */
export type ConformanceTestOptions = Pick<
  Deno.TestDefinition,
  "ignore" | "sanitizeOps" | "sanitizeResources"
>;

/**
 * The largest message the node lets through by default (MESSAGE_BYTES_MAX): every log carries
 * it whole.
 */
const LARGE_MESSAGE_BYTES = 1_000_000;

/**
 * Registers the conformance tests of a {@linkcode MutationLog} implementation called `name`.
 * `newStorage` gives each test storage no other test has used.
 */
export function mutationLogConformance(
  name: string,
  newStorage: () => Promise<LogStorage>,
  capabilities: LogCapabilities,
  testOptions: ConformanceTestOptions = {},
): void {
  const test = (title: string, body: (h: Harness) => Promise<void>) =>
    Deno.test({
      name: `${name}: ${title}`,
      ...testOptions,
      fn: async () => {
        const harness = new Harness(await newStorage(), capabilities.waitMs);
        try {
          await body(harness);
        } finally {
          await harness.dispose();
        }
      },
    });

  test("append() resolves each message's offset in request order, and run() delivers exactly those bytes and timestamps at those offsets", async (h) => {
    const log = await h.start({ partitions: 3 });
    const sent = new Sent();
    const edge = [new Uint8Array(0), Uint8Array.from({ length: 256 }, (_, i) => i)];
    for (let round = 0; round < 4; round++) {
      h.clock += 1_000;
      // Not in partition order, so request order and partition order differ.
      const messages = [message(2, `r${round}p2`), message(0, `r${round}p0`)];
      if (round % 2 === 1) messages.push(message(1, `r${round}p1`));
      if (round < edge.length) messages[0] = { partition: 2, key: "edge", value: edge[round]! };
      sent.add(messages, await log.append(messages), h.clock);
    }
    h.clock += 1_000;
    const alone = [message(1, "alone")];
    sent.add(alone, await log.append(alone), h.clock);
    // A fresh log starts every partition at offset 0.
    for (let p = 0; p < 3; p++) equal(sent.offsets(p)[0], 0, `first offset of partition ${p}`);

    const run = h.run(log, new MemoryConsumer(() => 0, 100));
    await run.until("every acknowledged message", () => run.consumer.holds(sent.all()));
    await run.stop();
    for (let p = 0; p < 3; p++) deepEqual(run.consumer.records(p), sent.records(p));
  });

  test("readRange() reads a partition's messages in offset order from any offset: bytes and timestamps as acknowledged, at least one per call, none past the end", async (h) => {
    const log = await h.start({ partitions: 2 });
    const sent = new Sent();
    for (let i = 0; i < 40; i++) {
      h.clock += 10;
      const messages = [message(1, `m${i}-${"x".repeat(i * 7)}`)];
      if (i % 10 === 0) messages.push(message(0, `other${i}`));
      sent.add(messages, await log.append(messages), h.clock);
    }
    const expected = sent.records(1);
    const readAll = async (from: number, maxBytes: number): Promise<LogRecord[]> => {
      const out: LogRecord[] = [];
      for (let calls = 0; calls < 100; calls++) {
        const got = await log.readRange(1, from, maxBytes);
        ok(got !== "truncated", "a log nothing was removed from is not truncated");
        if (got.length === 0) return out;
        out.push(...got);
        from = got[got.length - 1]!.offset + 1;
      }
      throw new Error("readRange() did not reach the end in 100 calls");
    };
    const seen = (records: readonly LogRecord[]) =>
      records.map((r) => ({ offset: r.offset, timestamp: r.timestamp, value: r.value }));
    deepEqual(seen(await readAll(0, 1_000_000)), expected);
    // Small reads still make progress, one message at least per call.
    deepEqual(seen(await readAll(0, 1)), expected);
    const middle = expected[25]!.offset;
    deepEqual(seen(await readAll(middle, 300)), expected.slice(25));
    deepEqual(await log.readRange(1, expected.at(-1)!.offset + 1, 1_000), []);
    deepEqual((await readAll(0, 1_000_000)).length, expected.length);
    deepEqual(seen(await log.readRange(0, 0, 1_000_000) as LogRecord[]), sent.records(0));
  });

  test("appends to a partition get increasing offsets in call order, even when none waits for the one before", async (h) => {
    const log = await h.start({ partitions: 2 });
    const calls: AppendRequest[][] = Array.from(
      { length: 24 },
      (_, i) =>
        i % 3 === 0
          ? [message(0, `c${i}p0`), message(1, `c${i}p1`)]
          : [message(i % 2, `c${i}p${i % 2}`)],
    );
    const results = await Promise.all(calls.map((messages) => log.append(messages)));
    const sent = new Sent();
    for (let i = 0; i < calls.length; i++) {
      equal(results[i]!.length, calls[i]!.length, `offsets of call ${i}`);
      sent.add(calls[i]!, results[i]!, h.clock);
    }
    for (let p = 0; p < 2; p++) {
      const offsets = sent.offsets(p);
      equal(offsets[0], 0);
      for (let i = 1; i < offsets.length; i++) {
        ok(offsets[i]! > offsets[i - 1]!, `partition ${p}: call order ${offsets.join(",")}`);
      }
    }
    const run = h.run(log, new MemoryConsumer(() => 0, 100));
    await run.until("every acknowledged message", () => run.consumer.holds(sent.all()));
    await run.stop();
    for (let p = 0; p < 2; p++) deepEqual(run.consumer.records(p), sent.records(p));
  });

  // The port allows one message per partition per append (the node groups a request's records
  // per partition). Both logs take more and number them in message order, which this pins down
  // so that neither silently drops or reorders one.
  test("append() numbers two messages for one partition in message order", async (h) => {
    const log = await h.start({ partitions: 2 });
    const messages = [message(1, "first"), message(0, "other"), message(1, "second")];
    const offsets = await log.append(messages);
    equal(offsets.length, 3);
    ok(offsets[2]! > offsets[0]!, `offsets ${offsets.join(",")}`);
    const sent = new Sent();
    sent.add(messages, offsets, h.clock);
    const run = h.run(log, new MemoryConsumer(() => 0, 100));
    await run.until("every acknowledged message", () => run.consumer.holds(sent.all()));
    await run.stop();
    deepEqual(run.consumer.records(1).map(text), ["first", "second"]);
  });

  test("run() assigns every partition with its end offset, delivers from the offsets assigned() returns up to that end, then follows new appends", async (h) => {
    const log = await h.start({ partitions: 3 });
    const sent = new Sent();
    for (let i = 0; i < 5; i++) {
      const messages = i < 4 ? [message(0, `a${i}`), message(1, `b${i}`)] : [message(0, "a4")];
      sent.add(messages, await log.append(messages), h.clock);
    }
    // Partition 1 resumes after its first two messages (as if they were applied before);
    // partition 2 has nothing yet.
    const resume = sent.offsets(1)[2]!;
    const consumer = new MemoryConsumer((p) => p === 1 ? resume : 0, 100);
    const run = h.run(log, consumer);
    await run.until("the assignment", () => consumer.assignedPartitions().length === 3);
    deepEqual(consumer.assignedPartitions(), [0, 1, 2]);
    const ends = consumer.endOffsets();
    for (const p of [0, 1]) {
      const end = ends.get(p);
      ok(end !== undefined && end > sent.offsets(p).at(-1)!, `end offset of ${p}: ${end}`);
    }
    equal(ends.get(2), 0, "a partition never written to ends at 0");
    for (const [p, start] of consumer.startOffsets()) equal(start, 0, `log start of ${p}`);

    // Caught up: the log read each partition as far as the end it announced.
    await run.until(
      "catch-up to the end offsets",
      () => [0, 1, 2].every((p) => (consumer.position(p) ?? -1) >= ends.get(p)!),
    );
    deepEqual(consumer.records(0), sent.records(0));
    deepEqual(consumer.records(1), sent.records(1).filter((r) => r.offset >= resume));
    deepEqual(consumer.records(2), []);

    h.clock += 1_000;
    const later = [message(2, "c0"), message(0, "a5")];
    sent.add(later, await log.append(later), h.clock);
    await run.until(
      "the appends made while running",
      () => consumer.holds(sent.all(new Map([[1, resume]]))),
    );
    await run.stop();
    deepEqual(consumer.records(0), sent.records(0));
    deepEqual(consumer.records(2), sent.records(2));
  });

  test("run() hands deliver() at most applyBatchMax records of a partition at a time, and the next only once the last was applied", async (h) => {
    const log = await h.start({ partitions: 2, applyBatchMax: 3 });
    const sent = new Sent();
    const first = Array.from({ length: 30 }, (_, i) => [message(i < 20 ? 0 : 1, `m${i}`)]);
    const offsets = await Promise.all(first.map((m) => log.append(m)));
    first.forEach((m, i) => sent.add(m, offsets[i]!, h.clock));
    // Each delivery takes a few milliseconds, like an LMDB transaction.
    const consumer = new MemoryConsumer(() => 0, 3, 2);
    const run = h.run(log, consumer);
    const second = Array.from({ length: 10 }, (_, i) => [message(i % 2, `n${i}`)]);
    const more = await Promise.all(second.map((m) => log.append(m)));
    second.forEach((m, i) => sent.add(m, more[i]!, h.clock));
    await run.until("every acknowledged message", () => consumer.holds(sent.all()));
    await run.stop();
    for (let p = 0; p < 2; p++) deepEqual(consumer.records(p), sent.records(p));
    ok(consumer.deliveries >= 10, `${consumer.deliveries} deliveries of 40 records`);
  });

  test("run() ends once its signal aborts, after revoking every partition it assigned", async (h) => {
    const log = await h.start({ partitions: 3 });
    const consumer = new MemoryConsumer(() => 0, 100);
    const run = h.run(log, consumer);
    await run.until("the assignment", () => consumer.assignedPartitions().length === 3);
    await run.stop();
    deepEqual(consumer.revokedPartitions(), [0, 1, 2]);
    deepEqual(consumer.assignedPartitions(), [], "nothing is left assigned");
  });

  test("after a restart, every acknowledged message is delivered again from the offset assigned() returns, and offsets go on increasing", async (h) => {
    const first = await h.start({ partitions: 3 });
    const sent = new Sent();
    const before = Array.from({ length: 12 }, (_, i) => [message(i % 3, `before${i}`)]);
    const offsets = await Promise.all(before.map((m) => first.append(m)));
    before.forEach((m, i) => sent.add(m, offsets[i]!, h.clock));
    // Closed without ever running: close() releases the storage all the same.
    await h.close(first);

    const second = await h.start({ partitions: 3 });
    h.clock += 1_000;
    const after = [message(0, "after0"), message(1, "after1"), message(2, "after2")];
    const afterOffsets = await second.append(after);
    for (let p = 0; p < 3; p++) {
      ok(afterOffsets[p]! > sent.offsets(p).at(-1)!, `partition ${p} went on after a restart`);
    }
    sent.add(after, afterOffsets, h.clock);
    const all = h.run(second, new MemoryConsumer(() => 0, 100));
    await all.until("every acknowledged message", () => all.consumer.holds(sent.all()));
    await all.stop();
    for (let p = 0; p < 3; p++) deepEqual(all.consumer.records(p), sent.records(p));
    await h.close(second);

    // A node that applied part of each partition resumes there.
    const third = await h.start({ partitions: 3 });
    const from = (p: number) => sent.offsets(p)[2 + p]!;
    const resumed = h.run(third, new MemoryConsumer(from, 100));
    const expected = (p: number) => sent.records(p).filter((r) => r.offset >= from(p));
    await resumed.until(
      "the messages after each resume offset",
      () => [0, 1, 2].every((p) => resumed.consumer.records(p).length >= expected(p).length),
    );
    await resumed.stop();
    for (let p = 0; p < 3; p++) deepEqual(resumed.consumer.records(p), expected(p));
  });

  test("start() on storage written with another partition count fails with partition_count_mismatch", async (h) => {
    const first = await h.start({ partitions: 3 });
    await first.append([message(0, "a"), message(2, "b")]);
    await h.close(first);
    for (const partitions of [2, 4]) {
      const error = await h.start({ partitions }).then(() => null, (e: unknown) => e);
      equal(codeOf(error), "partition_count_mismatch", `PARTITIONS=${partitions}: ${error}`);
    }
    // The refusals changed nothing: the right count still starts and appends.
    const again = await h.start({ partitions: 3 });
    equal((await again.append([message(1, "c")])).length, 1);
  });

  test("append() refuses with log_overloaded what would take it past queueMax, and writes none of it", async (h) => {
    const log = await h.start({ partitions: 4, queueMax: 4 });
    // All in one event-loop turn: nothing is durable yet, so all four stay queued.
    const calls = [[message(0, "q0")], [message(1, "q1"), message(2, "q2")]];
    const accepted = calls.map((m) => log.append(m));
    const refused = log.append([message(0, "over0"), message(3, "over3")]);
    const fits = [message(3, "q3")];
    accepted.push(log.append(fits));
    calls.push(fits);
    equal(codeOf(await refused.then(() => null, (e: unknown) => e)), "log_overloaded");
    const sent = new Sent();
    const offsets = await Promise.all(accepted);
    calls.forEach((m, i) => sent.add(m, offsets[i]!, h.clock));
    // Once drained, a full queue's worth is accepted again.
    const full = [0, 1, 2, 3].map((p) => message(p, `again${p}`));
    sent.add(full, await log.append(full), h.clock);
    const run = h.run(log, new MemoryConsumer(() => 0, 100));
    await run.until("every acknowledged message", () => run.consumer.holds(sent.all()));
    await run.stop();
    for (let p = 0; p < 4; p++) deepEqual(run.consumer.records(p), sent.records(p));
  });

  test(
    `appends waiting when close() is called ${
      capabilities.closeWithQueued === "commits"
        ? "are committed"
        : "resolve or fail with log_unavailable"
    }, and what was acknowledged survives`,
    async (h) => {
      const log = await h.start({ partitions: 2 });
      const calls = Array.from({ length: 6 }, (_, i) => [message(i % 2, `w${i}`)]);
      const pending = calls.map((m) => log.append(m));
      await h.close(log);
      const outcomes = await h.bounded(
        "the waiting appends to settle",
        Promise.all(pending.map((p) => p.then((offsets) => offsets, (e: unknown) => e))),
      );
      const sent = new Sent();
      outcomes.forEach((outcome, i) => {
        if (Array.isArray(outcome)) sent.add(calls[i]!, outcome, h.clock);
        else if (capabilities.closeWithQueued === "commits") throw outcome;
        else equal(codeOf(outcome), "log_unavailable", String(outcome));
      });
      const reopened = await h.start({ partitions: 2 });
      const run = h.run(reopened, new MemoryConsumer(() => 0, 100));
      await run.until("every acknowledged message", () => run.consumer.holds(sent.all()));
      await run.stop();
      for (let p = 0; p < 2; p++) {
        // A refused write may still have landed (the client must treat it as unknown): the
        // acknowledged ones are all there, and nothing else but those refused.
        const got = run.consumer.records(p);
        for (const r of sent.records(p)) deepEqual(got.find((g) => g.offset === r.offset), r);
        const names = new Set(calls.flat().filter((m) => m.partition === p).map((m) => m.key));
        for (const r of got) ok(names.has(text(r)), `unexpected record ${text(r)}`);
      }
    },
  );

  test(
    `a ${LARGE_MESSAGE_BYTES}-byte message is carried whole${
      capabilities.refusedMessageBytes === null
        ? ""
        : `, a ${capabilities.refusedMessageBytes}-byte one is refused with log_unavailable`
    }`,
    async (h) => {
      const log = await h.start({ partitions: 2 });
      const large = pattern(LARGE_MESSAGE_BYTES, 7);
      const sent = new Sent();
      const messages = [{ partition: 1, key: "large", value: large }];
      sent.add(messages, await log.append(messages), h.clock);
      if (capabilities.refusedMessageBytes !== null) {
        const huge = pattern(capabilities.refusedMessageBytes, 3);
        const refused = await h.bounded(
          "the oversized append to fail",
          log.append([{ partition: 1, key: "huge", value: huge }]).then(() => null, (e) => e),
        );
        equal(codeOf(refused), "log_unavailable", String(refused));
        // The refusal leaves the partition writable.
        const next = [message(1, "after")];
        sent.add(next, await log.append(next), h.clock);
      }
      const run = h.run(log, new MemoryConsumer(() => 0, 100));
      await run.until("every acknowledged message", () => run.consumer.holds(sent.all()));
      await run.stop();
      deepEqual(run.consumer.records(1), sent.records(1));
    },
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message whose key is its text (so a delivered record can be named). */
function message(partition: number, body: string): AppendRequest {
  return { partition, key: body, value: encoder.encode(body) };
}

function text(record: LogRecord): string {
  return decoder.decode(record.value);
}

/** `length` bytes of every value, varying with `seed`. */
function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * seed + (i >>> 8)) & 0xff;
  return bytes;
}

function codeOf(error: unknown): string | null {
  return error instanceof OperationalError ? error.code : null;
}

/** A delivered record as the suite compares it: bytes copied into a plain `Uint8Array`. */
interface Seen {
  readonly offset: number;
  readonly timestamp: number;
  readonly value: Uint8Array;
}

/** What the log acknowledged: partition → offset → the record it must deliver there. */
class Sent {
  private readonly byPartition = new Map<number, Map<number, Seen>>();

  /** Records `messages`, acknowledged at `offsets` while the clock read `timestamp`. */
  add(messages: readonly AppendRequest[], offsets: readonly number[], timestamp: number): void {
    equal(offsets.length, messages.length, "one offset per message");
    messages.forEach((m, i) => {
      const offset = offsets[i]!;
      ok(Number.isSafeInteger(offset) && offset >= 0, `offset ${offset}`);
      const partition = this.byPartition.get(m.partition) ?? new Map<number, Seen>();
      ok(!partition.has(offset), `offset ${offset} of partition ${m.partition} given twice`);
      partition.set(offset, { offset, timestamp, value: Uint8Array.from(m.value) });
      this.byPartition.set(m.partition, partition);
    });
  }

  /** Acknowledged offsets of `partition`, ascending. */
  offsets(partition: number): number[] {
    return [...this.byPartition.get(partition)?.keys() ?? []].sort((a, b) => a - b);
  }

  /** Acknowledged records of `partition` in offset order. */
  records(partition: number): Seen[] {
    const map = this.byPartition.get(partition);
    return this.offsets(partition).map((o) => map!.get(o)!);
  }

  /**
   * `[partition, offset]` of every acknowledged record at or after its partition's entry in
   * `from` (0 where absent): offsets are per partition, so one number cannot bound them all.
   */
  all(from: ReadonlyMap<number, number> = new Map()): [number, number][] {
    const out: [number, number][] = [];
    for (const [p, map] of this.byPartition) {
      const first = from.get(p) ?? 0;
      for (const o of map.keys()) if (o >= first) out.push([p, o]);
    }
    return out;
  }
}

/**
 * The node's side of the port, in memory: keeps what it is given and checks each call against
 * the port's contract, collecting violations (a throw inside `deliver()` would only surface as
 * whatever the log makes of a failed apply).
 */
class MemoryConsumer implements PartitionConsumer {
  /** Breaches of the port's contract, in the order seen. */
  readonly violations: string[] = [];
  /** Number of `deliver()` calls. */
  deliveries = 0;
  private readonly assignedNow = new Set<number>();
  private readonly revokedAll: number[] = [];
  private readonly ends = new Map<number, number>();
  private readonly starts = new Map<number, number>();
  private readonly seen = new Map<number, Seen[]>();
  /** Per partition, where the log said it reads next (or the start offset given). */
  private readonly positions = new Map<number, number>();
  private readonly applying = new Set<number>();
  private readonly waiters = new Set<() => void>();

  /**
   * @param startAt the offset to resume `partition` from
   * @param applyBatchMax the most records a `deliver()` may carry
   * @param applyMs how long each delivery takes to apply
   */
  constructor(
    private readonly startAt: (partition: number) => number,
    private readonly applyBatchMax: number,
    private readonly applyMs = 0,
  ) {}

  assigned(
    partitions: readonly number[],
    endOffsets: ReadonlyMap<number, number>,
    startOffsets?: ReadonlyMap<number, number>,
  ): Promise<ReadonlyMap<number, number>> {
    const starts = new Map<number, number>();
    for (const p of partitions) {
      if (this.assignedNow.has(p)) this.violations.push(`partition ${p} assigned twice`);
      this.assignedNow.add(p);
      const end = endOffsets.get(p);
      if (end === undefined) this.violations.push(`no end offset for partition ${p}`);
      else this.ends.set(p, end);
      this.starts.set(p, startOffsets?.get(p) ?? 0);
      const start = this.startAt(p);
      starts.set(p, start);
      this.positions.set(p, start);
    }
    this.wake();
    return Promise.resolve(starts);
  }

  revoked(partitions: readonly number[]): Promise<void> {
    for (const p of partitions) {
      if (!this.assignedNow.delete(p)) this.violations.push(`revoked unassigned partition ${p}`);
      this.revokedAll.push(p);
    }
    this.wake();
    return Promise.resolve();
  }

  async deliver(
    partition: number,
    records: readonly LogRecord[],
    nextOffset: number,
    logEnd?: number,
  ): Promise<void> {
    this.deliveries++;
    const where = `deliver(${partition}, ${records.length} records, next ${nextOffset})`;
    if (!this.assignedNow.has(partition)) this.violations.push(`${where}: not assigned`);
    if (this.applying.has(partition)) {
      this.violations.push(`${where}: the previous delivery is still being applied`);
    }
    if (records.length > this.applyBatchMax) {
      this.violations.push(`${where}: more than applyBatchMax ${this.applyBatchMax}`);
    }
    let position = this.positions.get(partition) ?? 0;
    const list = this.seen.get(partition) ?? [];
    for (const r of records) {
      if (r.offset < position) {
        this.violations.push(`${where}: offset ${r.offset} below ${position} (order, or again)`);
      }
      position = r.offset + 1;
      list.push({ offset: r.offset, timestamp: r.timestamp, value: Uint8Array.from(r.value) });
    }
    if (nextOffset < position) this.violations.push(`${where}: nextOffset below ${position}`);
    if (logEnd !== undefined && logEnd < nextOffset) {
      this.violations.push(`${where}: logEnd ${logEnd} below nextOffset`);
    }
    this.seen.set(partition, list);
    this.positions.set(partition, Math.max(position, nextOffset));
    this.applying.add(partition);
    if (this.applyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.applyMs));
    this.applying.delete(partition);
    this.wake();
  }

  blocked(partition: number, reason: string): void {
    this.violations.push(`blocked(${partition}): ${reason} (nothing here can block a partition)`);
  }

  /** Partitions assigned and not revoked, ascending. */
  assignedPartitions(): number[] {
    return [...this.assignedNow].sort((a, b) => a - b);
  }

  /** Every partition revoked so far, ascending. */
  revokedPartitions(): number[] {
    return [...this.revokedAll].sort((a, b) => a - b);
  }

  /** The end offsets `assigned()` was given. */
  endOffsets(): ReadonlyMap<number, number> {
    return this.ends;
  }

  /** The log start offsets `assigned()` was given (0 where absent). */
  startOffsets(): ReadonlyMap<number, number> {
    return this.starts;
  }

  /**
   * Where the log reads `partition` next: the `nextOffset` of its last delivery, or the offset
   * `assigned()` returned before any.
   */
  position(partition: number): number | undefined {
    return this.positions.get(partition);
  }

  /** Records delivered for `partition`, in delivery order. */
  records(partition: number): Seen[] {
    return this.seen.get(partition) ?? [];
  }

  /** Whether every `[partition, offset]` was delivered. */
  holds(wanted: readonly [number, number][]): boolean {
    return wanted.every(([p, o]) => this.records(p).some((r) => r.offset === o));
  }

  /** Calls `listener` after each call the log makes; returns the way to stop. */
  watch(listener: () => void): () => void {
    this.waiters.add(listener);
    return () => this.waiters.delete(listener);
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** A running `log.run()` with its consumer and the abort that ends it. */
class Running {
  private readonly controller = new AbortController();
  readonly done: Promise<void>;

  constructor(
    log: MutationLog,
    readonly consumer: MemoryConsumer,
    private readonly waitMs: number,
  ) {
    this.done = log.run(consumer, this.controller.signal);
    this.done.catch(() => {}); // surfaced by until() and stop()
  }

  /** Resolves once `check()` holds; fails after the wait bound, or when run() ends first. */
  until(what: string, check: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const finish = (error: Error | null) => {
        clearTimeout(timer);
        unwatch();
        if (error === null) resolve();
        else reject(error);
      };
      const test = () => {
        if (this.consumer.violations.length > 0) {
          finish(new Error(`While waiting for ${what}: ${this.consumer.violations.join("; ")}`));
        } else if (check()) finish(null);
      };
      const timer = setTimeout(
        () => finish(new Error(`No ${what} within ${this.waitMs} ms`)),
        this.waitMs,
      );
      const unwatch = this.consumer.watch(test);
      this.done.then(
        () => finish(new Error(`run() ended while waiting for ${what}`)),
        (error) => finish(new Error(`run() failed while waiting for ${what}: ${error}`)),
      );
      test();
    });
  }

  /** Aborts the run and waits (bounded) for run() to end; the consumer saw no violation. */
  async stop(): Promise<void> {
    this.controller.abort();
    await bounded(`run() to end after its signal aborted`, this.done, this.waitMs);
    deepEqual(this.consumer.violations, []);
  }
}

function bounded<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One test's storage, clock, and the logs and runs it opened (all ended by dispose()). */
class Harness {
  /** The clock the logs stamp messages with: whole milliseconds near the real time. */
  clock = Math.floor(Date.now());
  private readonly logs = new Set<MutationLog>();
  private readonly runs = new Set<Running>();

  constructor(private readonly storage: LogStorage, private readonly waitMs: number) {}

  /** Opens and starts a log on the test's storage. */
  async start(overrides: Partial<ConformanceLogOptions> = {}): Promise<MutationLog> {
    const log = this.storage.open({
      partitions: 3,
      queueMax: 1000,
      applyBatchMax: 100,
      now: () => this.clock,
      ...overrides,
    });
    this.logs.add(log);
    await this.bounded("start()", log.start());
    return log;
  }

  /** Runs `log` into `consumer`. */
  run(log: MutationLog, consumer: MemoryConsumer): Running {
    const running = new Running(log, consumer, this.waitMs);
    this.runs.add(running);
    running.done.finally(() => this.runs.delete(running)).catch(() => {});
    return running;
  }

  /** Closes `log` (bounded). */
  async close(log: MutationLog): Promise<void> {
    this.logs.delete(log);
    await this.bounded("close()", log.close());
  }

  bounded<T>(what: string, promise: Promise<T>): Promise<T> {
    return bounded(what, promise, this.waitMs);
  }

  /** Ends what the test left running or open, then removes the storage. */
  async dispose(): Promise<void> {
    for (const run of this.runs) await run.stop().catch(() => {});
    for (const log of this.logs) await this.bounded("close()", log.close()).catch(() => {});
    await this.storage.destroy();
  }
}
