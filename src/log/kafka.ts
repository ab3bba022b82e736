/**
 * The Kafka log (kafkajs): topics `firescroll_{ns}_mutations` (PARTITIONS partitions) and
 * `firescroll_{ns}_partitions` (the partition-count guard), an idempotent producer with acks=-1,
 * and one consumer group per replica group.
 *
 * The offset stored in LMDB is the truth about where a partition resumes: newly assigned
 * partitions are paused, opened, sought to stored offset + 1 and only then resumed. Kafka's
 * committed offsets follow what was applied and serve monitoring only.
 */
import {
  type Admin,
  type Batch,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaMessage,
  logLevel,
  Partitioners,
  type Producer,
  type SASLOptions,
} from "kafkajs";
import type { LogRecord } from "../apply/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { assert } from "../util/assert.ts";
import { OperationalError } from "../util/errors.ts";
import { errorMessage, log } from "../util/log.ts";
import type { AppendRequest, MutationLog, PartitionConsumer } from "../node/mod.ts";

/** Settings of the Kafka log. */
export interface KafkaLogOptions {
  readonly seeds: readonly string[];
  readonly clientId: string;
  /** TLS to the brokers: true (system roots), a CA in PEM, or off. */
  readonly tls: boolean | { readonly ca: string };
  /** SASL credentials, or null. */
  readonly sasl: {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
    readonly username: string;
    readonly password: string;
  } | null;
  readonly namespace: string;
  readonly region: string;
  readonly replicaGroup: string;
  readonly instanceId: string;
  readonly partitions: number;
  /** Replication factor of created topics; -1 = the broker's default. */
  readonly replicationFactor: number;
  /** `retention.ms` of a created mutations topic; null = the broker's default. */
  readonly retentionMs: number | null;
  /** Bound on one append, retries included (503 `log_unavailable` past it). */
  readonly writeTimeoutMs: number;
  /** Most messages in flight to Kafka at once (503 `log_overloaded` above). */
  readonly queueMax: number;
  /** Most value bytes in one produce request (beyond one append, which may be alone). */
  readonly sendBytesMax: number;
  /** Most records handed to the consumer in one call (one LMDB transaction). */
  readonly deliverMax: number;
  /** Consumer group session timeout. */
  readonly sessionTimeoutMs: number;
  /** How long start-up retries transient broker errors before giving up. */
  readonly startTimeoutMs: number;
  readonly metrics: Metrics;
  readonly now: () => number;
}

/** Produce requests in flight at once (the idempotent producer allows at most 5). */
const SENDS_MAX = 4;
/** Most messages in one produce request. */
const SEND_MESSAGES_MAX = 5000;

interface PendingAppend {
  readonly messages: readonly AppendRequest[];
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: unknown) => void;
}

/** Topic names of a namespace. */
export function topicNames(namespace: string): { mutations: string; partitions: string } {
  return {
    mutations: `firescroll_${namespace}_mutations`,
    partitions: `firescroll_${namespace}_partitions`,
  };
}

/** Consumer group of a replica group. */
export function groupId(namespace: string, region: string, replicaGroup: string): string {
  return `firescroll_${namespace}_${region}_${replicaGroup}`;
}

function mismatch(message: string): OperationalError {
  return new OperationalError("partition_count_mismatch", 500, message);
}

function unavailable(message: string): OperationalError {
  return new OperationalError("log_unavailable", 503, message);
}

const EMPTY = new Uint8Array(0);

function toRecord(message: KafkaMessage): LogRecord {
  const value = message.value;
  return {
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    // A null value (tombstone) is not a mutation: it decodes as poison like any foreign bytes.
    value: value === null
      ? EMPTY
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
  };
}

/** The Kafka implementation of {@linkcode MutationLog}. */
export class KafkaLog implements MutationLog {
  readonly kind = "kafka";
  private readonly kafka: Kafka;
  private readonly topics: { mutations: string; partitions: string };
  private admin: Admin | null = null;
  private producer: Producer | null = null;
  private consumer: Consumer | null = null;
  /** Messages queued or being produced (bounded by `queueMax`). */
  private inFlight = 0;
  private readonly pending: PendingAppend[] = [];
  private sending = 0;

  constructor(private readonly options: KafkaLogOptions) {
    this.topics = topicNames(options.namespace);
    this.kafka = new Kafka({
      clientId: `${options.clientId}-${options.instanceId}`,
      brokers: [...options.seeds],
      ...(options.tls === false
        ? {}
        : { ssl: options.tls === true ? true : { ca: [options.tls.ca] } }),
      ...(options.sasl === null ? {} : { sasl: { ...options.sasl } as SASLOptions }),
      connectionTimeout: 3000,
      requestTimeout: Math.max(5000, options.writeTimeoutMs),
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 1_000_000 },
      logLevel: logLevel.WARN,
      logCreator: () => ({ namespace, level, label, log: entry }) => {
        const { message, ...rest } = entry;
        log(level <= logLevel.ERROR ? "error" : "warn", "kafka", {
          namespace,
          label,
          message,
          ...rest,
        });
      },
    });
  }

  /**
   * Connects, creates missing topics and checks the partition count. A broker that just started
   * (or topics created a moment ago) answers with transient errors for a few seconds — "does not
   * host this topic-partition", coordinator loading — so the whole sequence is retried for up to
   * `startTimeoutMs`; a partition-count mismatch is final at once.
   */
  async start(): Promise<void> {
    const deadline = Date.now() + this.options.startTimeoutMs;
    for (let attempt = 1;; attempt++) {
      try {
        await this.startOnce();
        return;
      } catch (error) {
        if ((error as Error)?.name === "KafkaJSSASLAuthenticationError") {
          // Retrying cannot fix credentials: say so and stop.
          throw new OperationalError(
            "kafka_auth_failed",
            500,
            `Cannot start: Kafka refused the SASL credentials (KAFKA_SASL_*): ${
              errorMessage(error)
            }`,
          );
        }
        const final = error instanceof OperationalError &&
          error.code === "partition_count_mismatch";
        if (final || Date.now() > deadline) throw error;
        log("warn", "kafka_start_retry", { attempt, error: errorMessage(error) });
        await this.producer?.disconnect().catch(() => {});
        await this.admin?.disconnect().catch(() => {});
        this.producer = null;
        this.admin = null;
        await new Promise((r) => setTimeout(r, Math.min(2000, 250 * attempt)));
      }
    }
  }

  private async startOnce(): Promise<void> {
    const admin = this.kafka.admin({ retry: { retries: 10 } });
    await admin.connect();
    this.admin = admin;
    await this.ensureTopics(admin);
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 5,
      allowAutoTopicCreation: false,
      // Every message names its partition; the partitioner is never consulted.
      createPartitioner: Partitioners.DefaultPartitioner,
      // The idempotent producer keeps retrying (kafkajs warns about anything less); the HTTP
      // request is bounded by LOG_WRITE_TIMEOUT_MS and the number of sends by LOG_QUEUE_MAX.
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: Number.MAX_SAFE_INTEGER },
    });
    await producer.connect();
    this.producer = producer;
    await this.checkPartitionCount(admin, producer);
  }

  private async ensureTopics(admin: Admin): Promise<void> {
    const existing = new Set(await admin.listTopics());
    const topics = [];
    if (!existing.has(this.topics.partitions)) {
      topics.push({
        topic: this.topics.partitions,
        numPartitions: 1,
        replicationFactor: this.options.replicationFactor,
        configEntries: [{ name: "retention.ms", value: "-1" }, {
          name: "retention.bytes",
          value: "-1",
        }],
      });
    }
    if (!existing.has(this.topics.mutations)) {
      const configEntries = this.options.retentionMs === null
        ? []
        : [{ name: "retention.ms", value: String(this.options.retentionMs) }];
      topics.push({
        topic: this.topics.mutations,
        numPartitions: this.options.partitions,
        replicationFactor: this.options.replicationFactor,
        configEntries,
      });
    }
    if (topics.length > 0) {
      // Several nodes may race to create: "already exists" is fine, createTopics returns false.
      await admin.createTopics({ topics, waitForLeaders: true });
      log("info", "kafka_topics_created", { topics: topics.map((t) => t.topic) });
    }
    const metadata = await admin.fetchTopicMetadata({ topics: [this.topics.mutations] });
    const live = metadata.topics[0]?.partitions.length ?? 0;
    if (live !== this.options.partitions) {
      throw mismatch(
        `Cannot start: topic ${this.topics.mutations} has ${live} partitions but PARTITIONS=${this.options.partitions}`,
      );
    }
  }

  /** First record of the partitions topic wins; a node with another count refuses to start. */
  private async checkPartitionCount(admin: Admin, producer: Producer): Promise<void> {
    let recorded = await this.readRecordedPartitions(admin);
    if (recorded === null) {
      await producer.send({
        topic: this.topics.partitions,
        acks: -1,
        messages: [{
          partition: 0,
          key: "partitions",
          value: JSON.stringify({ partitions: this.options.partitions }),
        }],
      });
      recorded = await this.readRecordedPartitions(admin);
    }
    assert(recorded !== null, "the partitions topic is empty after a successful write");
    if (recorded !== this.options.partitions) {
      throw mismatch(
        `Cannot start: namespace ${this.options.namespace} was created with ${recorded} partitions (topic ${this.topics.partitions}) but PARTITIONS=${this.options.partitions}`,
      );
    }
  }

  /** The `partitions` of the first record of the partitions topic, or null when it is empty. */
  private async readRecordedPartitions(admin: Admin): Promise<number | null> {
    const [offsets] = await admin.fetchTopicOffsets(this.topics.partitions);
    if (offsets === undefined || Number(offsets.high) <= Number(offsets.low)) return null;
    // A throwaway consumer without a group reads offset `low` of partition 0.
    const reader = this.kafka.consumer({
      groupId: `firescroll_${this.options.namespace}_guard_${this.options.instanceId}`,
    });
    try {
      await reader.connect();
      await reader.subscribe({ topic: this.topics.partitions, fromBeginning: true });
      const first = new Promise<string>((resolve) => {
        reader.run({
          eachMessage: ({ message }) => {
            resolve(message.value?.toString() ?? "");
            return Promise.resolve();
          },
        });
      });
      const text = await withTimeout(first, 30_000, "reading the partitions topic");
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
      const n = (parsed as { partitions?: unknown } | null)?.partitions;
      if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1) {
        throw mismatch(
          `Cannot start: the first record of ${this.topics.partitions} is not {"partitions":N}: ${
            text.slice(0, 200)
          }`,
        );
      }
      return n;
    } finally {
      await reader.disconnect().catch(() => {});
      await admin.deleteGroups([
        `firescroll_${this.options.namespace}_guard_${this.options.instanceId}`,
      ]).catch(() => {});
    }
  }

  /**
   * Queues the messages for the next produce request and resolves to their offsets. Up to
   * {@linkcode SENDS_MAX} produce requests are in flight; appends that arrive meanwhile travel
   * together in the next one (the Kafka counterpart of the embedded log's group commit), so many
   * concurrent small writes cost few round trips to the broker.
   */
  append(messages: readonly AppendRequest[]): Promise<number[]> {
    assert(this.producer !== null, "kafka log is not started");
    if (this.inFlight + messages.length > this.options.queueMax) {
      return Promise.reject(
        new OperationalError(
          "log_overloaded",
          503,
          `Cannot append: ${this.inFlight} messages are already waiting for Kafka`,
        ),
      );
    }
    this.inFlight += messages.length;
    const sent = new Promise<number[]>((resolve, reject) => {
      this.pending.push({ messages, resolve, reject });
    });
    this.pump();
    // A timed-out write keeps going in the background and may still land: the client got a 503
    // and must treat the write as unknown (conditions make retries safe).
    sent.catch(() => {});
    return withTimeout(sent, this.options.writeTimeoutMs, "writing to Kafka");
  }

  /** Starts produce requests for queued appends while fewer than SENDS_MAX are in flight. */
  private pump(): void {
    while (this.sending < SENDS_MAX && this.pending.length > 0) {
      // Bounded in messages and bytes: a partition's record batch must stay under the broker's
      // message.max.bytes, which MESSAGE_BYTES_MAX already keeps each single message under.
      let count = 0;
      let bytes = 0;
      let take = 0;
      while (take < this.pending.length && count < SEND_MESSAGES_MAX) {
        const size = this.pending[take]!.messages.reduce((n, m) => n + m.value.length, 0);
        if (take > 0 && bytes + size > this.options.sendBytesMax) break;
        count += this.pending[take]!.messages.length;
        bytes += size;
        take++;
      }
      const batch = this.pending.splice(0, take);
      this.sending++;
      this.send(batch).finally(() => {
        this.sending--;
        for (const p of batch) this.inFlight -= p.messages.length;
        this.pump();
      });
    }
  }

  /** One produce request for several appends; each gets its messages' offsets. */
  private async send(batch: readonly PendingAppend[]): Promise<void> {
    const timestamp = String(this.options.now());
    const messages = [];
    for (const pending of batch) {
      for (const m of pending.messages) {
        messages.push({
          partition: m.partition,
          key: m.key,
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          timestamp,
        });
      }
    }
    let metadata;
    try {
      metadata = await this.producer!.send({
        topic: this.topics.mutations,
        acks: -1,
        timeout: this.options.writeTimeoutMs,
        messages,
      });
    } catch (error) {
      const failure = unavailable(`Cannot write to Kafka: ${errorMessage(error)}`);
      for (const pending of batch) pending.reject(failure);
      return;
    }
    // One record batch per partition gets contiguous offsets from its base, in message order.
    const next = new Map<number, number>();
    for (const m of metadata) next.set(m.partition, Number(m.baseOffset ?? m.offset));
    for (const pending of batch) {
      const offsets = pending.messages.map((m) => {
        const offset = next.get(m.partition);
        assert(offset !== undefined && Number.isSafeInteger(offset), "Kafka returned no offset");
        next.set(m.partition, offset + 1);
        return offset;
      });
      pending.resolve(offsets);
    }
    this.options.metrics.logAppends.labels().inc(messages.length);
    this.options.metrics.logCommits.labels().inc();
  }

  run(partitionConsumer: PartitionConsumer, signal: AbortSignal): Promise<void> {
    const admin = this.admin;
    assert(admin !== null, "kafka log is not started");
    const topic = this.topics.mutations;
    const consumer = this.kafka.consumer({
      groupId: groupId(this.options.namespace, this.options.region, this.options.replicaGroup),
      sessionTimeout: this.options.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.options.sessionTimeoutMs / 5)),
      rebalanceTimeout: Math.max(10_000, this.options.sessionTimeoutMs * 2),
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100,
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 1_000_000 },
    });
    this.consumer = consumer;
    /** Partitions this node has opened, and the next offset each must read. */
    const expected = new Map<number, number>();
    let joinedOnce = false;
    /** Membership changes are handled one at a time, in order. */
    let changes = Promise.resolve();

    const onAssignment = (assigned: readonly number[]) => {
      const now = new Set(assigned);
      const added = assigned.filter((p) => !expected.has(p));
      const removed = [...expected.keys()].filter((p) => !now.has(p));
      // The first join is reported even when it brings nothing: the node is then a member.
      if (added.length === 0 && removed.length === 0 && joinedOnce) return;
      joinedOnce = true;
      // Nothing of a new partition is fetched before its stored offset is known.
      if (added.length > 0) consumer.pause([{ topic, partitions: added }]);
      changes = changes.then(async () => {
        if (removed.length > 0) {
          for (const p of removed) expected.delete(p);
          await partitionConsumer.revoked(removed);
        }
        if (added.length > 0 || expected.size === 0) {
          const ends = new Map<number, number>();
          const lows = new Map<number, number>();
          for (const o of await admin.fetchTopicOffsets(topic)) {
            ends.set(o.partition, Number(o.high));
            lows.set(o.partition, Number(o.low));
          }
          const starts = await partitionConsumer.assigned(added, ends, lows);
          for (const p of added) {
            const start = starts.get(p) ?? 0;
            expected.set(p, start);
            consumer.seek({ topic, partition: p, offset: String(start) });
          }
          consumer.resume([{ topic, partitions: added }]);
        }
        log("info", "kafka_assignment", { assigned: [...now].sort((a, b) => a - b) });
      }).catch((error) => {
        log("error", "kafka_assignment_failed", { error: errorMessage(error) });
        throw error;
      });
    };

    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      onAssignment(event.payload.memberAssignment[topic] ?? []);
    });

    const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning }: EachBatchPayload) => {
      await changes;
      const partition = batch.partition;
      const next = expected.get(partition);
      if (next === undefined || !isRunning()) return;
      const first = batch.firstOffset();
      if (first !== null && Number(first) > next) {
        const [offsets] = (await admin.fetchTopicOffsets(topic)).filter((o) =>
          o.partition === partition
        );
        const low = Number(offsets?.low ?? 0);
        if (low > next) {
          // The log no longer holds what this partition needs: applying from `low` would skip
          // mutations silently. Stop here and say so; a snapshot is needed (DESIGN §7).
          consumer.pause([{ topic, partitions: [partition] }]);
          partitionConsumer.blocked(
            partition,
            `the log starts at offset ${low} but this partition needs offset ${next}`,
          );
          return;
        }
        // Fetched from a committed offset ahead of LMDB (e.g. a wiped disk): go back.
        consumer.seek({ topic, partition, offset: String(next) });
        return;
      }
      await this.deliverBatch(partitionConsumer, batch, next, expected, resolveOffset, heartbeat);
    };

    const done = (async () => {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: true,
        autoCommitInterval: 1000,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.min(this.options.partitions, 8),
        eachBatch,
      });
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await consumer.disconnect();
      await changes.catch(() => {});
      await partitionConsumer.revoked([...expected.keys()]);
      expected.clear();
    })();
    return done;
  }

  private async deliverBatch(
    partitionConsumer: PartitionConsumer,
    batch: Batch,
    next: number,
    expected: Map<number, number>,
    resolveOffset: (offset: string) => void,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    const partition = batch.partition;
    const max = this.options.deliverMax;
    let chunk: LogRecord[] = [];
    let position = next;
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (offset < position) continue;
      chunk.push(toRecord(message));
      if (chunk.length === max) {
        position = offset + 1;
        await partitionConsumer.deliver(partition, chunk, position, Number(batch.highWatermark));
        expected.set(partition, position);
        resolveOffset(message.offset);
        await heartbeat();
        chunk = [];
      }
    }
    const last = Number(batch.lastOffset());
    const end = Math.max(position, last + 1);
    await partitionConsumer.deliver(partition, chunk, end, Number(batch.highWatermark));
    expected.set(partition, end);
    resolveOffset(batch.lastOffset());
  }

  /** The mutations topic's `retention.ms` (-1 = forever), or null when it cannot be read. */
  async retentionMs(): Promise<number | null> {
    const admin = this.admin;
    if (admin === null) return null;
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{
          type: 2, /* TOPIC */
          name: this.topics.mutations,
          configNames: ["retention.ms"],
        }],
      });
      const entry = described.resources[0]?.configEntries.find((e) =>
        e.configName === "retention.ms"
      );
      return entry === undefined ? null : Number(entry.configValue);
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    await this.producer?.disconnect().catch(() => {});
    await this.admin?.disconnect().catch(() => {});
    this.producer = null;
    this.admin = null;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(unavailable(`Cannot finish ${what}: no answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
