/**
 * The Kafka log (kafkajs): topics `firescroll_{ns}_mutations` (PARTITIONS partitions) and
 * `firescroll_{ns}_partitions` (the partition-count guard), an idempotent producer with acks=-1,
 * and one consumer group per replica group.
 *
 * The offset stored in LMDB is the truth about where a partition resumes: newly assigned
 * partitions are paused, opened, sought to stored offset + 1 and only then resumed. Kafka's
 * committed offsets follow what was applied and serve monitoring only.
 *
 * Topic administration and the partition-count guard are in `kafka_topics.ts`, the consuming
 * loop of `run()` in `kafka_consume.ts`; this file connects the clients and produces.
 */
import type { Admin, Consumer, Kafka, Producer, SASLOptions } from "kafkajs";
import type { LogRecord } from "../apply/mod.ts";
import type { ConfigCluster, ConfigKafka, ConfigLog, ConfigNode } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { assert } from "../util/assert.ts";
import { OperationalError } from "../util/errors.ts";
import { errorMessage, log } from "../util/log.ts";
import { sleep } from "../util/sleep.ts";
import type { AppendRequest, MutationLog, PartitionConsumer } from "../node/mod.ts";
import { ConsumeLoop } from "./kafka_consume.ts";
import {
  type BareCluster,
  checkPartitionCount,
  createReader,
  ensureTopics,
  fetchRecords,
  groupId,
  logUnavailable,
  partitionCountMismatch,
  readTopicMetadata,
  type TopicNames,
  topicNames,
  topicOffsets,
  topicRetentionMs,
  type TopicSettings,
} from "./kafka_topics.ts";

/**
 * What the Kafka log is built from: its config sections whole and what is injected. It reads
 * `cluster.namespace`/`partitions` (topics), `node.region`/`replicaGroup`/`instanceId` (group
 * and client ids), `kafka.*` (brokers, security, topic settings, session timeout) and `log.*`:
 * `writeTimeoutMs` bounds one append with retries (503 `log_unavailable` past it), `queueMax`
 * the messages in flight (503 `log_overloaded` above), `messageBytesMax` the value bytes of one
 * produce request (beyond one append, which may be alone), `applyBatchMax` the records handed to
 * the consumer in one call (one LMDB transaction).
 */
export interface KafkaLogOptions extends TopicSettings {
  readonly cluster: ConfigCluster;
  readonly node: ConfigNode;
  readonly log: ConfigLog;
  readonly kafka: ConfigKafka;
  /** The PEM text of `kafka.tlsCaFile` (read by the caller), or null. */
  readonly tlsCa: string | null;
  /** How long start-up retries transient broker errors before giving up. */
  readonly startTimeoutMs: number;
  readonly metrics: Metrics;
  readonly now: () => number;
}

/** Most messages in one produce request. */
const SEND_MESSAGES_MAX = 5000;
/**
 * How long the broker may hold a fetch that finds nothing new. Data answers a fetch at once
 * (`minBytes` 1), so this costs no latency; it bounds how often an idle consumer asks (the bulk of
 * an idle node's CPU: 250 ms cost 0.5–0.7 % of a core) and how late a partition resumed while a
 * fetch is held is first fetched (a rebalance that adds partitions to a consuming node; at start,
 * with nothing held, a resume starts the fetch at once).
 */
const FETCH_MAX_WAIT_MS = 500;

interface PendingAppend {
  readonly messages: readonly AppendRequest[];
  /** Value bytes of `messages`. */
  readonly bytes: number;
  /** When the caller gets 503 `log_unavailable` (`performance.now()` ms, the timers' time base). */
  readonly deadline: number;
  /** Settled: answered by Kafka or timed out (a later outcome is then ignored). */
  done: boolean;
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: unknown) => void;
}

/** The kafkajs module. */
type KafkaJs = typeof import("kafkajs");

/** The Kafka implementation of {@linkcode MutationLog}. */
export class KafkaLog implements MutationLog {
  readonly kind = "kafka";
  /** kafkajs, imported by the first start: a node on the embedded log never loads it. */
  private kafkajs: KafkaJs | null = null;
  /** The client, made by the first start. */
  private kafka: Kafka | null = null;
  private readonly topics: TopicNames;
  private admin: Admin | null = null;
  private producer: Producer | null = null;
  /**
   * A bare connection (no group) for the guard's reads and the assignment's offsets: each costs
   * one round trip on it, where the admin client's helpers make two or three in a row.
   */
  private reader: BareCluster | null = null;
  private consumer: Consumer | null = null;
  /** Messages queued or being produced (bounded by `queueMax`). */
  private inFlight = 0;
  /** Appends waiting for the next produce request. */
  private pending: PendingAppend[] = [];
  /** Whether a produce request is in flight. */
  private sending = false;
  /**
   * Appends not yet settled, in arrival order (so in deadline order), from `waitingHead` on: the
   * one timer of {@linkcode sweep} serves all of them instead of a timer per append.
   */
  private waiting: PendingAppend[] = [];
  private waitingHead = 0;
  private sweepTimer: ReturnType<typeof setTimeout> | null = null;
  /** Aborted by {@linkcode close}: ends the start's retry pauses. */
  private readonly closing = new AbortController();

  constructor(private readonly options: KafkaLogOptions) {
    this.topics = topicNames(options.cluster.namespace);
  }

  /** The kafkajs client of these options. */
  private createClient({ Kafka, logLevel }: KafkaJs): Kafka {
    const { kafka } = this.options;
    return new Kafka({
      clientId: `${kafka.clientId}-${this.options.node.instanceId}`,
      brokers: [...kafka.seeds],
      // A CA file turns TLS on by itself, as it always has.
      ...(this.options.tlsCa !== null
        ? { ssl: { ca: [this.options.tlsCa] } }
        : kafka.tls
        ? { ssl: true }
        : {}),
      ...(kafka.saslMechanism === null ? {} : {
        sasl: {
          mechanism: kafka.saslMechanism,
          username: kafka.saslUsername ?? "",
          password: kafka.saslPassword ?? "",
        } as SASLOptions,
      }),
      connectionTimeout: 3000,
      requestTimeout: Math.max(5000, this.options.log.writeTimeoutMs),
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
    const deadline = performance.now() + this.options.startTimeoutMs;
    for (let attempt = 1;; attempt++) {
      try {
        await this.startOnce();
        return;
      } catch (error) {
        if ((error as Error)?.name === "KafkaJSSASLAuthenticationError") {
          // Retrying cannot fix credentials: say so and stop.
          throw new OperationalError(
            "kafka_auth_failed",
            `Cannot start: Kafka refused the SASL credentials (KAFKA_SASL_*): ${
              errorMessage(error)
            }`,
          );
        }
        const final = error instanceof OperationalError &&
          error.code === "partition_count_mismatch";
        if (final || performance.now() > deadline || this.closing.signal.aborted) throw error;
        log("warn", "kafka_start_retry", { attempt, error: errorMessage(error) });
        await this.producer?.disconnect().catch(() => {});
        await this.admin?.disconnect().catch(() => {});
        this.producer = null;
        this.admin = null;
        await sleep(Math.min(2000, 250 * attempt), this.closing.signal);
      }
    }
  }

  /**
   * Counts `client`'s answered requests by API in `firescroll_kafka_requests_total`: what a start,
   * a write or a fetch cycle costs in round trips, which is what a far region pays for.
   */
  private countRequests(client: string, emitter: Admin | Producer | Consumer): void {
    const family = this.options.metrics.kafkaRequests;
    const counted = emitter as unknown as {
      events: { REQUEST: string };
      on(event: string, listener: (event: { payload: { apiName: string } }) => void): unknown;
    };
    counted.on(
      counted.events.REQUEST,
      (event) => family.labels(client, event.payload.apiName).inc(),
    );
  }

  /**
   * One start attempt. The three connections (admin, producer, the bare reader) open in
   * parallel: none needs the topics to exist, and a far broker costs a round trip for every
   * request made one after another.
   */
  private async startOnce(): Promise<void> {
    const kafkajs = this.kafkajs ??= await import("kafkajs");
    const kafka = this.kafka ??= this.createClient(kafkajs);
    const admin = kafka.admin({ retry: { retries: 10 } });
    this.countRequests("admin", admin);
    this.admin = admin;
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 5,
      allowAutoTopicCreation: false,
      // Every message names its partition; the partitioner is never consulted.
      createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
      // The idempotent producer keeps retrying (kafkajs warns about anything less); the HTTP
      // request is bounded by LOG_WRITE_TIMEOUT_MS and the number of sends by LOG_QUEUE_MAX.
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: Number.MAX_SAFE_INTEGER },
    });
    this.countRequests("producer", producer);
    // Set before it connects, so that a failed attempt's clean-up disconnects it too.
    this.producer = producer;
    const reader = createReader(kafka, this.options.metrics);
    this.reader = reader;
    const topics = [this.topics.partitions, this.topics.mutations];
    // The consumer connects now too, and subscribes (a Metadata request) once the topic surely
    // exists, alongside the guard's read; it joins its group only in run(), after the guard.
    const consumer = this.createConsumer(kafka);
    this.consumer = consumer;
    // The admin client is needed only to create topics, and the producer (three round trips to
    // connect) only to write the guard's record into a new namespace: neither holds up the rest.
    const adminConnected = admin.connect();
    const producerConnected = producer.connect();
    adminConnected.catch(() => {}); // awaited below; an earlier failure must not leave it unhandled
    producerConnected.catch(() => {});
    try {
      await Promise.all([reader.connect(), consumer.connect()]);
      // Both topics' metadata in one request on the reader. Only a namespace's first start (a
      // topic missing) asks the admin client, which spends four Metadata requests in a row.
      if (!await readTopicMetadata(reader, topics)) {
        await adminConnected;
        await ensureTopics(admin, this.options);
        await reader.addMultipleTargetTopics(topics);
      }
      const live = reader.findTopicPartitionMetadata(this.topics.mutations).length;
      if (live !== this.options.cluster.partitions) {
        throw partitionCountMismatch(
          `Cannot start: topic ${this.topics.mutations} has ${live} partitions but PARTITIONS=${this.options.cluster.partitions}`,
        );
      }
      const subscribed = consumer.subscribe({ topic: this.topics.mutations, fromBeginning: true });
      subscribed.catch(() => {}); // awaited below, after the guard
      await checkPartitionCount(reader, producer, producerConnected, this.options);
      await Promise.all([subscribed, adminConnected, producerConnected]);
    } catch (error) {
      await reader.disconnect().catch(() => {});
      this.reader = null;
      await consumer.disconnect().catch(() => {});
      this.consumer = null;
      throw error;
    }
  }

  /** The replica group's consumer (not yet a member: run() joins). */
  private createConsumer(kafka: Kafka): Consumer {
    const consumer = kafka.consumer({
      groupId: groupId(
        this.options.cluster.namespace,
        this.options.node.region,
        this.options.node.replicaGroup,
      ),
      sessionTimeout: this.options.kafka.sessionTimeoutMs,
      // At most 3 s: a member learns of a rebalance at its next heartbeat, whatever the session.
      heartbeatInterval: Math.max(
        500,
        Math.min(3000, Math.floor(this.options.kafka.sessionTimeoutMs / 5)),
      ),
      rebalanceTimeout: Math.max(10_000, this.options.kafka.sessionTimeoutMs * 2),
      allowAutoTopicCreation: false,
      minBytes: 1,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 1_000_000 },
    });
    this.countRequests("consumer", consumer);
    return consumer;
  }

  /**
   * Queues the messages for the next produce request and resolves to their offsets. One produce
   * request is in flight at a time, and it takes everything queued when the previous one returns
   * (the Kafka counterpart of the embedded log's group commit): kafkajs's idempotent producer
   * holds a per-broker lock for a request's whole round trip, so a second request in flight
   * would only wait, sealed small, behind the first.
   */
  append(messages: readonly AppendRequest[]): Promise<number[]> {
    assert(this.producer !== null, "kafka log is not started");
    if (this.inFlight + messages.length > this.options.log.queueMax) {
      return Promise.reject(
        new OperationalError(
          "log_overloaded",
          `Cannot append: ${this.inFlight} messages are already waiting for Kafka`,
        ),
      );
    }
    this.inFlight += messages.length;
    let bytes = 0;
    for (const m of messages) bytes += m.value.byteLength;
    const deadline = performance.now() + this.options.log.writeTimeoutMs;
    const sent = new Promise<number[]>((resolve, reject) => {
      const entry: PendingAppend = {
        messages,
        bytes,
        deadline,
        done: false,
        resolve: (offsets) => {
          if (entry.done) return;
          entry.done = true;
          resolve(offsets);
        },
        reject: (error) => {
          if (entry.done) return;
          entry.done = true;
          reject(error);
        },
      };
      this.pending.push(entry);
      this.waiting.push(entry);
    });
    if (this.sweepTimer === null) this.armSweep();
    this.pump();
    return sent;
  }

  /**
   * Fails the appends past their deadline with 503 `log_unavailable`. A timed-out write keeps
   * going in the background and may still land: the client must treat it as unknown
   * (conditions make retries safe).
   */
  private sweep(): void {
    this.sweepTimer = null;
    const now = performance.now();
    const waiting = this.waiting;
    let head = this.waitingHead;
    while (head < waiting.length && (waiting[head]!.done || waiting[head]!.deadline <= now)) {
      const entry = waiting[head++]!;
      if (!entry.done) {
        entry.reject(
          logUnavailable(
            `Cannot finish writing to Kafka: no answer within ${this.options.log.writeTimeoutMs} ms`,
          ),
        );
      }
    }
    this.waitingHead = head;
    this.armSweep();
  }

  /** Drops settled appends from the front of `waiting` and arms the timer for the oldest left. */
  private armSweep(): void {
    const waiting = this.waiting;
    let head = this.waitingHead;
    while (head < waiting.length && waiting[head]!.done) head++;
    if (head === waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
      return;
    }
    if (head > 1024 && head * 2 > waiting.length) {
      this.waiting = waiting.slice(head);
      head = 0;
    }
    this.waitingHead = head;
    const delay = Math.max(0, this.waiting[head]!.deadline - performance.now());
    this.sweepTimer = setTimeout(() => this.sweep(), delay);
  }

  /** Starts a produce request for the queued appends unless one is in flight. */
  private pump(): void {
    if (this.sending || this.pending.length === 0) return;
    // Bounded in messages and bytes: a partition's record batch must stay under the broker's
    // message.max.bytes, which MESSAGE_BYTES_MAX already keeps each single message under.
    const pending = this.pending;
    let count = 0;
    let bytes = 0;
    let take = 0;
    while (take < pending.length) {
      const next = pending[take]!;
      if (
        take > 0 && (count + next.messages.length > SEND_MESSAGES_MAX ||
          bytes + next.bytes > this.options.log.messageBytesMax)
      ) break;
      count += next.messages.length;
      bytes += next.bytes;
      take++;
    }
    let batch: PendingAppend[];
    if (take === pending.length) {
      batch = pending;
      this.pending = [];
    } else {
      batch = pending.splice(0, take);
    }
    this.sending = true;
    this.send(batch, count).finally(() => {
      this.sending = false;
      this.inFlight -= count;
      this.pump();
      // Answered appends leave the front of `waiting` now rather than at the next deadline.
      if (this.sweepTimer !== null && this.waiting[this.waitingHead]?.done === true) {
        clearTimeout(this.sweepTimer);
        this.armSweep();
      }
    });
  }

  /** One produce request for several appends; each gets its messages' offsets. */
  private async send(batch: readonly PendingAppend[], count: number): Promise<void> {
    const timestamp = String(this.options.now());
    const messages = new Array<
      { partition: number; key: string; value: Buffer; timestamp: string }
    >(count);
    let i = 0;
    for (const pending of batch) {
      for (const m of pending.messages) {
        messages[i++] = {
          partition: m.partition,
          key: m.key,
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          timestamp,
        };
      }
    }
    let metadata;
    try {
      metadata = await this.producer!.send({
        topic: this.topics.mutations,
        acks: -1,
        timeout: this.options.log.writeTimeoutMs,
        messages,
      });
    } catch (error) {
      const failure = logUnavailable(`Cannot write to Kafka: ${errorMessage(error)}`);
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
    this.options.metrics.logAppends.labels().inc(count);
    this.options.metrics.logCommits.labels().inc();
  }

  run(partitionConsumer: PartitionConsumer, signal: AbortSignal): Promise<void> {
    const admin = this.admin;
    assert(admin !== null, "kafka log is not started");
    const topic = this.topics.mutations;
    const consumer = this.consumer;
    assert(consumer !== null, "kafka log is not started");
    const loop = new ConsumeLoop({
      consumer,
      admin,
      topic,
      partitions: this.options.cluster.partitions,
      applyBatchMax: this.options.log.applyBatchMax,
      offsets: () => topicOffsets(this.reader, admin, topic),
    }, partitionConsumer);
    return loop.run(signal);
  }

  async readRange(
    partition: number,
    from: number,
    maxBytes: number,
  ): Promise<LogRecord[] | "truncated"> {
    const reader = this.reader;
    if (reader === null) throw logUnavailable("Cannot read the log: it is not started");
    const records = await fetchRecords(reader, this.topics.mutations, partition, from, maxBytes)
      .catch(async (error) => {
        // A leader moved: the next read finds the new one.
        await reader.refreshMetadata().catch(() => {});
        throw error;
      });
    if (records !== "out_of_range") return records;
    // Out of range is below the start or past the end; past the end is no message yet.
    const [offsets] = await reader.fetchTopicsOffset([
      { topic: this.topics.mutations, partitions: [{ partition }], fromBeginning: true },
    ]);
    const low = Number(offsets?.partitions.find((p) => p.partition === partition)?.offset ?? 0);
    return from < low ? "truncated" : [];
  }

  /** The first and next offset of a partition of the mutations topic. */
  async partitionOffsets(partition: number): Promise<{ low: number; high: number }> {
    const admin = this.admin;
    assert(admin !== null, "kafka log is not started");
    const all = await topicOffsets(this.reader, admin, this.topics.mutations);
    const found = all.find((o) => o.partition === partition);
    if (found === undefined) {
      throw logUnavailable(`Cannot read the offsets of partition ${partition}`);
    }
    return { low: Number(found.low), high: Number(found.high) };
  }

  /** Deletes a partition's messages before `offset` (Kafka's DeleteRecords). */
  async deleteBefore(partition: number, offset: number): Promise<void> {
    const admin = this.admin;
    assert(admin !== null, "kafka log is not started");
    await admin.deleteTopicRecords({
      topic: this.topics.mutations,
      partitions: [{ partition, offset: String(offset) }],
    });
  }

  /** The mutations topic's `retention.ms` (-1 = forever), or null when it cannot be read. */
  async retentionMs(): Promise<number | null> {
    const admin = this.admin;
    if (admin === null) return null;
    return await topicRetentionMs(admin, this.topics.mutations);
  }

  async close(): Promise<void> {
    this.closing.abort();
    await this.producer?.disconnect().catch(() => {});
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    const closed = logUnavailable("Cannot finish writing to Kafka: the log is closing");
    for (let i = this.waitingHead; i < this.waiting.length; i++) this.waiting[i]!.reject(closed);
    this.waiting = [];
    this.waitingHead = 0;
    await this.admin?.disconnect().catch(() => {});
    await this.reader?.disconnect().catch(() => {});
    // Connected at start even when run() never came (run() disconnects it when it ends).
    await this.consumer?.disconnect().catch(() => {});
    this.producer = null;
    this.admin = null;
    this.reader = null;
    this.consumer = null;
  }
}
