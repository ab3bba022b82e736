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
import { setImmediate } from "node:timers";
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

/** Most messages in one produce request. */
const SEND_MESSAGES_MAX = 5000;
/**
 * How often the consumer commits the offsets it applied to Kafka. They serve monitoring only
 * (LMDB holds where a partition resumes), so they are committed rarely and off the fetch path.
 */
const COMMIT_INTERVAL_MS = 5000;
/** Bound on the last offset commit at shutdown. */
const FINAL_COMMIT_TIMEOUT_MS = 2000;
/**
 * How long the broker may hold a fetch that finds nothing new. Data answers a fetch at once
 * (`minBytes` 1), so this costs no latency; it bounds how often an idle consumer asks (the bulk of
 * an idle node's CPU: 250 ms cost 0.5–0.7 % of a core) and how late a partition resumed while a
 * fetch is held is first fetched (a rebalance that adds partitions to a consuming node; at start,
 * with nothing held, a resume starts the fetch at once).
 */
const FETCH_MAX_WAIT_MS = 500;
/**
 * Catch-up gives the event loop a turn after this much apply without one (ms). Applying is
 * synchronous and the fetch loop moves on through promise continuations alone, which never let a
 * timer or a socket run: without a turn, heartbeats, the coordinator's answers and the HTTP
 * requests waiting for this node sat out a whole fetch of backlog (5 s and an eviction from the
 * group, on a starved machine).
 */
const APPLY_TURN_MS = 20;

interface PendingAppend {
  readonly messages: readonly AppendRequest[];
  /** Value bytes of `messages`. */
  readonly bytes: number;
  /** When the caller gets 503 `log_unavailable` if Kafka has not answered (ms, `Date.now()`). */
  readonly deadline: number;
  /** Settled: answered by Kafka or timed out (a later outcome is then ignored). */
  done: boolean;
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
  return new OperationalError("partition_count_mismatch", message);
}

function unavailable(message: string): OperationalError {
  return new OperationalError("log_unavailable", message);
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
  /** When the current stretch of apply without an event-loop turn began (`performance.now()`). */
  private stretchStart = 0;
  /** An immediate is armed that ends the current stretch when the event loop next turns. */
  private watching = false;
  /** The turn the partitions' apply loops wait for together, while one is pending. */
  private turn: Promise<void> | null = null;

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
    const admin = this.kafka.admin({ retry: { retries: 10 } });
    this.countRequests("admin", admin);
    this.admin = admin;
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
    this.countRequests("producer", producer);
    // Set before it connects, so that a failed attempt's clean-up disconnects it too.
    this.producer = producer;
    const reader = this.createReader();
    this.reader = reader;
    const topics = [this.topics.partitions, this.topics.mutations];
    // The consumer connects now too, and subscribes (a Metadata request) once the topic surely
    // exists, alongside the guard's read; it joins its group only in run(), after the guard.
    const consumer = this.createConsumer();
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
      if (!await this.readTopicMetadata(reader, topics)) {
        await adminConnected;
        await this.ensureTopics(admin);
        await reader.addMultipleTargetTopics(topics);
      }
      const live = reader.findTopicPartitionMetadata(this.topics.mutations).length;
      if (live !== this.options.partitions) {
        throw mismatch(
          `Cannot start: topic ${this.topics.mutations} has ${live} partitions but PARTITIONS=${this.options.partitions}`,
        );
      }
      const subscribed = consumer.subscribe({ topic: this.topics.mutations, fromBeginning: true });
      subscribed.catch(() => {}); // awaited below, after the guard
      await this.checkPartitionCount(producerConnected, reader);
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
  private createConsumer(): Consumer {
    const consumer = this.kafka.consumer({
      groupId: groupId(this.options.namespace, this.options.region, this.options.replicaGroup),
      sessionTimeout: this.options.sessionTimeoutMs,
      // At most 3 s: a member learns of a rebalance at its next heartbeat, whatever the session.
      heartbeatInterval: Math.max(
        500,
        Math.min(3000, Math.floor(this.options.sessionTimeoutMs / 5)),
      ),
      rebalanceTimeout: Math.max(10_000, this.options.sessionTimeoutMs * 2),
      allowAutoTopicCreation: false,
      minBytes: 1,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 1_000_000 },
    });
    this.countRequests("consumer", consumer);
    return consumer;
  }

  /** Reads `topics`' metadata into the reader; false when one of them does not exist. */
  private async readTopicMetadata(reader: BareCluster, topics: string[]): Promise<boolean> {
    try {
      await reader.addMultipleTargetTopics(topics);
      return true;
    } catch (error) {
      if ((error as { type?: string })?.type === "UNKNOWN_TOPIC_OR_PARTITION") return false;
      throw error;
    }
  }

  /** Creates whichever of the namespace's topics is missing. */
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
  }

  /** First record of the partitions topic wins; a node with another count refuses to start. */
  private async checkPartitionCount(
    producerConnected: Promise<void>,
    reader: BareCluster,
  ): Promise<void> {
    let recorded = await this.readRecordedPartitions(reader);
    if (recorded === null) {
      const producer = this.producer;
      assert(producer !== null, "kafka log is not started");
      await producerConnected;
      await producer.send({
        topic: this.topics.partitions,
        acks: -1,
        messages: [{
          partition: 0,
          key: "partitions",
          value: JSON.stringify({ partitions: this.options.partitions }),
        }],
      });
      recorded = await this.readRecordedPartitions(reader);
    }
    assert(recorded !== null, "the partitions topic is empty after a successful write");
    if (recorded !== this.options.partitions) {
      throw mismatch(
        `Cannot start: namespace ${this.options.namespace} was created with ${recorded} partitions (topic ${this.topics.partitions}) but PARTITIONS=${this.options.partitions}`,
      );
    }
  }

  /**
   * The `partitions` of the first record of the partitions topic, or null when it is empty. The
   * topic keeps everything (retention -1), so the first record is at offset 0; only when someone
   * gave the topic a retention does the broker answer "out of range", and the log start is asked.
   */
  private async readRecordedPartitions(reader: BareCluster): Promise<number | null> {
    const topic = this.topics.partitions;
    const readAt = (offset: number) =>
      withTimeout(this.fetchRecord(reader, topic, offset), 30_000, "reading the partitions topic");
    let at = 0;
    let read = await readAt(at);
    if (read === "out_of_range") {
      const [offsets] = await reader.fetchTopicsOffset([
        { topic, partitions: [{ partition: 0 }], fromBeginning: true },
      ]);
      at = Number(offsets?.partitions[0]?.offset ?? 0);
      read = await readAt(at);
      if (read === "out_of_range") throw unavailable(`Cannot read ${topic}/0 at offset ${at}`);
    }
    if (read === null) return null;
    const text = new TextDecoder().decode(read);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    const n = (parsed as { partitions?: unknown } | null)?.partitions;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1) {
      throw mismatch(
        `Cannot start: the first record of ${topic} (offset ${at}) is not {"partitions":N}: ${
          text.slice(0, 200)
        }`,
      );
    }
    return n;
  }

  /**
   * A bare connection to the brokers, for the guard's reads and the assignment's offsets: kafkajs
   * has no consumer without a group, and a throw-away group cost 14 requests (join, sync, offsets,
   * leave, delete) at every start, each a round trip to a far broker. It comes from kafkajs
   * 2.2.4's cluster factory, a private member of `Kafka` (pinned with the patch in patches/; the
   * guard's integration tests fail if it moves). Its requests count as client "reader".
   */
  private createReader(): BareCluster {
    const requests = this.options.metrics.kafkaRequests;
    return clusterFactory(this.kafka)({
      metadataMaxAge: 300_000,
      allowAutoTopicCreation: false,
      // Only `emit` is called on it: count the requests like those of the other clients.
      instrumentationEmitter: {
        emit: (name: string, payload: { apiName?: string }) => {
          if (name === "network.request" && payload.apiName !== undefined) {
            requests.labels("reader", payload.apiName).inc();
          }
        },
      },
    });
  }

  /**
   * The value of the first record at or after `offset` in partition 0 of `topic` (one Fetch), null
   * when there is none, or "out_of_range" when the partition no longer starts that low.
   */
  private async fetchRecord(
    cluster: BareCluster,
    topic: string,
    offset: number,
  ): Promise<Uint8Array | null | "out_of_range"> {
    await cluster.addTargetTopic(topic);
    const leader = cluster.findTopicPartitionMetadata(topic).find((p) => p.partitionId === 0)
      ?.leader;
    if (leader === undefined) throw unavailable(`Cannot find the leader of ${topic}/0`);
    const broker = await cluster.findBroker({ nodeId: String(leader) });
    const response = await broker.fetch({
      replicaId: -1,
      isolationLevel: 1,
      maxWaitTime: 0,
      minBytes: 1,
      maxBytes: 1_048_576,
      topics: [{
        topic,
        partitions: [{ partition: 0, fetchOffset: String(offset), maxBytes: 1_048_576 }],
      }],
    }).catch((error: unknown) => {
      if ((error as { type?: string })?.type === "OFFSET_OUT_OF_RANGE") {
        return "out_of_range" as const;
      }
      throw error;
    });
    if (response === "out_of_range") return response;
    const partition = response.responses[0]?.partitions.find((p) => p.partition === 0);
    if (partition === undefined) return null;
    if (partition.errorCode === OFFSET_OUT_OF_RANGE) return "out_of_range";
    if (partition.errorCode !== 0) {
      throw unavailable(`Cannot read ${topic}/0: Kafka error ${partition.errorCode}`);
    }
    // A fetch returns whole record batches: skip records before `offset`.
    const record = partition.messages.find((m) => Number(m.offset) >= offset);
    return record?.value ?? null;
  }

  /**
   * Each partition's first and next offset (`low`, `high`) of `topic`: one round trip on the
   * reader (both ListOffsets requests in flight together), or the admin client's two or three
   * when the reader is gone or fails (a leader moved: its metadata refreshes on the next call).
   */
  private async topicOffsets(
    admin: Admin,
    topic: string,
  ): Promise<{ partition: number; high: string; low: string }[]> {
    const reader = this.reader;
    if (reader !== null) {
      try {
        await reader.addTargetTopic(topic);
        const partitions = reader.findTopicPartitionMetadata(topic).map((p) => ({
          partition: p.partitionId,
        }));
        const [high, low] = await Promise.all([
          reader.fetchTopicsOffset([{ topic, partitions, fromBeginning: false }]),
          reader.fetchTopicsOffset([{ topic, partitions, fromBeginning: true }]),
        ]);
        const lows = new Map(low[0]?.partitions.map((p) => [p.partition, p.offset]));
        const out = (high[0]?.partitions ?? []).map((p) => ({
          partition: p.partition,
          high: p.offset,
          low: lows.get(p.partition) ?? "",
        }));
        if (out.length === partitions.length && out.every((o) => o.low !== "")) return out;
      } catch (error) {
        await reader.refreshMetadata().catch(() => {});
        log("warn", "kafka_reader_offsets_failed", { topic, error: errorMessage(error) });
      }
    }
    return await admin.fetchTopicOffsets(topic);
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
    if (this.inFlight + messages.length > this.options.queueMax) {
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
    const deadline = Date.now() + this.options.writeTimeoutMs;
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
    const now = Date.now();
    const waiting = this.waiting;
    let head = this.waitingHead;
    while (head < waiting.length && (waiting[head]!.done || waiting[head]!.deadline <= now)) {
      const entry = waiting[head++]!;
      if (!entry.done) {
        entry.reject(
          unavailable(
            `Cannot finish writing to Kafka: no answer within ${this.options.writeTimeoutMs} ms`,
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
    const delay = Math.max(0, this.waiting[head]!.deadline - Date.now());
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
          bytes + next.bytes > this.options.sendBytesMax)
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
    this.options.metrics.logAppends.labels().inc(count);
    this.options.metrics.logCommits.labels().inc();
  }

  run(partitionConsumer: PartitionConsumer, signal: AbortSignal): Promise<void> {
    const admin = this.admin;
    assert(admin !== null, "kafka log is not started");
    const topic = this.topics.mutations;
    const consumer = this.consumer;
    assert(consumer !== null, "kafka log is not started");
    /**
     * The first assignment's offsets, asked for while the group is being joined: one round trip
     * less before the first fetch. Ends read a moment before the assignment are as good a point
     * to call caught up as ends read at it; later assignments ask afresh.
     */
    let early: Promise<{ partition: number; high: string; low: string }[] | null> | null = this
      .topicOffsets(admin, topic).catch(() => null);
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
          const known = early === null ? null : await early;
          early = null;
          for (const o of known ?? await this.topicOffsets(admin, topic)) {
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

    /** The next offset last committed to Kafka per partition. */
    const committed = new Map<number, number>();
    let committing: Promise<void> | null = null;
    /**
     * Commits what was applied since the last commit (partitions this node still holds). Never
     * on the fetch path: kafkajs's auto-commit waits for the commit before the next fetch, and
     * commits once per partition on each seek.
     */
    const commitApplied = (): Promise<void> => {
      if (committing !== null) return committing;
      const offsets: { topic: string; partition: number; offset: string }[] = [];
      for (const [partition, offset] of expected) {
        if (committed.get(partition) !== offset) {
          offsets.push({ topic, partition, offset: String(offset) });
        }
      }
      if (offsets.length === 0) return Promise.resolve();
      committing = consumer.commitOffsets(offsets).then(() => {
        for (const o of offsets) committed.set(o.partition, Number(o.offset));
      }, (error) => {
        // Monitoring only: the next round tries again.
        log("warn", "kafka_commit_failed", { error: errorMessage(error) });
      }).finally(() => {
        committing = null;
      });
      return committing;
    };

    const done = (async () => {
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.min(this.options.partitions, 8),
        eachBatch,
      });
      const commitTimer = setInterval(() => void commitApplied(), COMMIT_INTERVAL_MS);
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener("abort", () => resolve(), { once: true });
      });
      clearInterval(commitTimer);
      let finalTimer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        commitApplied(),
        new Promise<void>((resolve) => finalTimer = setTimeout(resolve, FINAL_COMMIT_TIMEOUT_MS)),
      ]);
      clearTimeout(finalTimer);
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
        await this.turnWhenBusy();
        chunk = [];
      }
    }
    const last = Number(batch.lastOffset());
    const end = Math.max(position, last + 1);
    await partitionConsumer.deliver(partition, chunk, end, Number(batch.highWatermark));
    expected.set(partition, end);
    resolveOffset(batch.lastOffset());
    await this.turnWhenBusy();
  }

  /**
   * Lets timers and sockets run (a `setImmediate`, ~15 µs; `setTimeout(0)` is clamped to 4 ms
   * once nested) when apply has held the event loop for {@linkcode APPLY_TURN_MS}. The first call
   * since the loop last turned only starts the clock, so a fetch cycle of steady-state writes
   * goes on to its next fetch without a pause. The partitions' apply loops (up to 8 at once)
   * share one turn and one clock: each waiting on a turn of its own would let all of them run
   * on, one after another, in the same phase of the loop.
   */
  private turnWhenBusy(): Promise<void> | void {
    if (this.turn !== null) return this.turn;
    if (!this.watching) {
      this.watching = true;
      this.stretchStart = performance.now();
      setImmediate(() => {
        this.watching = false;
      });
      return;
    }
    if (performance.now() - this.stretchStart < APPLY_TURN_MS) return;
    this.turn = new Promise<void>((resolve) =>
      setImmediate(() => {
        this.turn = null;
        resolve();
      })
    );
    return this.turn;
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
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    const closed = unavailable("Cannot finish writing to Kafka: the log is closing");
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

/** Kafka's error code for a fetch below the log start (or past its end). */
const OFFSET_OUT_OF_RANGE = 1;

/** The parts of kafkajs 2.2.4's internal `Cluster` the reader uses. */
interface BareCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  refreshMetadata(): Promise<void>;
  fetchTopicsOffset(
    topics: { topic: string; partitions: { partition: number }[]; fromBeginning: boolean }[],
  ): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
  findTopicPartitionMetadata(topic: string): { partitionId: number; leader: number }[];
  findBroker(query: { nodeId: string }): Promise<{
    fetch(request: {
      replicaId: number;
      isolationLevel: number;
      maxWaitTime: number;
      minBytes: number;
      maxBytes: number;
      topics: {
        topic: string;
        partitions: { partition: number; fetchOffset: string; maxBytes: number }[];
      }[];
    }): Promise<{
      responses: {
        partitions: {
          partition: number;
          errorCode: number;
          messages: { offset: string; value: Uint8Array | null }[];
        }[];
      }[];
    }>;
  }>;
}

type ClusterFactory = (options: {
  metadataMaxAge: number;
  allowAutoTopicCreation: boolean;
  instrumentationEmitter: { emit(name: string, payload: { apiName?: string }): void };
}) => BareCluster;

/** kafkajs's per-client cluster factory (`Symbol('private:Kafka:createCluster')` on `Kafka`). */
function clusterFactory(kafka: Kafka): ClusterFactory {
  const key = Object.getOwnPropertySymbols(kafka).find((symbol) =>
    symbol.description === "private:Kafka:createCluster"
  );
  const factory = key === undefined
    ? undefined
    : (kafka as unknown as Record<symbol, unknown>)[key];
  assert(typeof factory === "function", "kafkajs has its private cluster factory (2.2.4)");
  return factory as ClusterFactory;
}
