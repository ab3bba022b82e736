/**
 * Topic administration of the Kafka log: the namespace's topic and group names, creating missing
 * topics, the partition-count guard (the first record of `firescroll_{ns}_partitions` wins), the
 * offsets and `retention.ms` of a topic, and the bare "reader" connection these reads go through.
 *
 * @module
 */
import type { Admin, Kafka, Producer } from "kafkajs";
import type { LogRecord } from "../apply/mod.ts";
import type { ConfigCluster, ConfigKafka } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { assert } from "../util/assert.ts";
import { OperationalError } from "../util/errors.ts";
import { errorMessage, log } from "../util/log.ts";

/** The topics of a namespace. */
export interface TopicNames {
  /** `firescroll_{ns}_mutations`: the log, PARTITIONS partitions. */
  mutations: string;
  /** `firescroll_{ns}_partitions`: the partition-count guard, one partition, kept forever. */
  partitions: string;
}

/**
 * What the topics of a namespace are created with and checked against: `cluster.namespace` and
 * `partitions`, `kafka.replicationFactor` (-1 = the broker's default) and `kafka.retentionMs` of
 * a created mutations topic (null = the broker's default).
 */
export interface TopicSettings {
  readonly cluster: ConfigCluster;
  readonly kafka: ConfigKafka;
}

/** A partition's first (`low`) and next (`high`) offset, as kafkajs gives them. */
export interface TopicOffsets {
  readonly partition: number;
  readonly high: string;
  readonly low: string;
}

/** Topic names of a namespace. */
export function topicNames(namespace: string): TopicNames {
  return {
    mutations: `firescroll_${namespace}_mutations`,
    partitions: `firescroll_${namespace}_partitions`,
  };
}

/** Consumer group of a replica group. */
export function groupId(namespace: string, region: string, replicaGroup: string): string {
  return `firescroll_${namespace}_${region}_${replicaGroup}`;
}

/** The error of a node whose PARTITIONS differs from the namespace's. */
export function partitionCountMismatch(message: string): OperationalError {
  return new OperationalError("partition_count_mismatch", message);
}

/** The error of a Kafka request that cannot be answered now. */
export function logUnavailable(message: string): OperationalError {
  return new OperationalError("log_unavailable", message);
}

/** Reads `topics`' metadata into the reader; false when one of them does not exist. */
export async function readTopicMetadata(reader: BareCluster, topics: string[]): Promise<boolean> {
  try {
    await reader.addMultipleTargetTopics(topics);
    return true;
  } catch (error) {
    if ((error as { type?: string })?.type === "UNKNOWN_TOPIC_OR_PARTITION") return false;
    throw error;
  }
}

/** Creates whichever of the namespace's topics is missing. */
export async function ensureTopics(admin: Admin, settings: TopicSettings): Promise<void> {
  const names = topicNames(settings.cluster.namespace);
  const existing = new Set(await admin.listTopics());
  const topics = [];
  if (!existing.has(names.partitions)) {
    topics.push({
      topic: names.partitions,
      numPartitions: 1,
      replicationFactor: settings.kafka.replicationFactor,
      configEntries: [{ name: "retention.ms", value: "-1" }, {
        name: "retention.bytes",
        value: "-1",
      }],
    });
  }
  if (!existing.has(names.mutations)) {
    const configEntries = settings.kafka.retentionMs === null
      ? []
      : [{ name: "retention.ms", value: String(settings.kafka.retentionMs) }];
    topics.push({
      topic: names.mutations,
      numPartitions: settings.cluster.partitions,
      replicationFactor: settings.kafka.replicationFactor,
      configEntries,
    });
  }
  if (topics.length > 0) {
    // Several nodes may race to create: "already exists" is fine, createTopics returns false.
    await admin.createTopics({ topics, waitForLeaders: true });
    log("info", "kafka_topics_created", { topics: topics.map((t) => t.topic) });
  }
}

/**
 * First record of the partitions topic wins; a node with another count refuses to start. Only a
 * namespace's first start writes the record, with `producer` once `producerConnected`.
 */
export async function checkPartitionCount(
  reader: BareCluster,
  producer: Producer,
  producerConnected: Promise<void>,
  settings: TopicSettings,
): Promise<void> {
  const names = topicNames(settings.cluster.namespace);
  let recorded = await readRecordedPartitions(reader, names.partitions);
  if (recorded === null) {
    await producerConnected;
    await producer.send({
      topic: names.partitions,
      acks: -1,
      messages: [{
        partition: 0,
        key: "partitions",
        value: JSON.stringify({ partitions: settings.cluster.partitions }),
      }],
    });
    recorded = await readRecordedPartitions(reader, names.partitions);
  }
  assert(recorded !== null, "the partitions topic is empty after a successful write");
  if (recorded !== settings.cluster.partitions) {
    throw partitionCountMismatch(
      `Cannot start: namespace ${settings.cluster.namespace} was created with ${recorded} partitions (topic ${names.partitions}) but PARTITIONS=${settings.cluster.partitions}`,
    );
  }
}

/**
 * The `partitions` of the first record of the partitions topic, or null when it is empty. The
 * topic keeps everything (retention -1), so the first record is at offset 0; only when someone
 * gave the topic a retention does the broker answer "out of range", and the log start is asked.
 */
async function readRecordedPartitions(
  reader: BareCluster,
  topic: string,
): Promise<number | null> {
  const readAt = (offset: number) =>
    withTimeout(fetchRecord(reader, topic, offset), 30_000, "reading the partitions topic");
  let at = 0;
  let read = await readAt(at);
  if (read === "out_of_range") {
    const [offsets] = await reader.fetchTopicsOffset([
      { topic, partitions: [{ partition: 0 }], fromBeginning: true },
    ]);
    at = Number(offsets?.partitions[0]?.offset ?? 0);
    read = await readAt(at);
    if (read === "out_of_range") throw logUnavailable(`Cannot read ${topic}/0 at offset ${at}`);
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
    throw partitionCountMismatch(
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
export function createReader(kafka: Kafka, metrics: Metrics): BareCluster {
  const requests = metrics.kafkaRequests;
  return clusterFactory(kafka)({
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
async function fetchRecord(
  cluster: BareCluster,
  topic: string,
  offset: number,
): Promise<Uint8Array | null | "out_of_range"> {
  const records = await fetchRecords(cluster, topic, 0, offset, 1_048_576);
  return records === "out_of_range" ? records : records[0]?.value ?? null;
}

/**
 * The records of `partition` of `topic` from `offset` on (one Fetch of up to about `maxBytes`;
 * at least one whole batch when there is one), or "out_of_range" when the partition no longer
 * starts that low. Control records (transaction markers) are left out: they are not messages.
 */
export async function fetchRecords(
  cluster: BareCluster,
  topic: string,
  partition: number,
  offset: number,
  maxBytes: number,
): Promise<LogRecord[] | "out_of_range"> {
  await cluster.addTargetTopic(topic);
  const leader = cluster.findTopicPartitionMetadata(topic).find((p) => p.partitionId === partition)
    ?.leader;
  if (leader === undefined) throw logUnavailable(`Cannot find the leader of ${topic}/${partition}`);
  const broker = await cluster.findBroker({ nodeId: String(leader) });
  const response = await broker.fetch({
    replicaId: -1,
    isolationLevel: 1,
    maxWaitTime: 0,
    minBytes: 1,
    maxBytes,
    topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes }] }],
  }).catch((error: unknown) => {
    if ((error as { type?: string })?.type === "OFFSET_OUT_OF_RANGE") {
      return "out_of_range" as const;
    }
    throw error;
  });
  if (response === "out_of_range") return response;
  const found = response.responses[0]?.partitions.find((p) => p.partition === partition);
  if (found === undefined) return [];
  if (found.errorCode === OFFSET_OUT_OF_RANGE) return "out_of_range";
  if (found.errorCode !== 0) {
    throw logUnavailable(`Cannot read ${topic}/${partition}: Kafka error ${found.errorCode}`);
  }
  const records: LogRecord[] = [];
  // A fetch returns whole record batches: skip records before `offset`.
  for (const m of found.messages) {
    if (m.isControlRecord === true || Number(m.offset) < offset) continue;
    const value = m.value;
    records.push({
      offset: Number(m.offset),
      timestamp: Number(m.timestamp),
      value: value === null
        ? new Uint8Array(0)
        : new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    });
  }
  return records;
}

/**
 * Each partition's first and next offset (`low`, `high`) of `topic`: one round trip on the
 * reader (both ListOffsets requests in flight together), or the admin client's two or three
 * when the reader is gone or fails (a leader moved: its metadata refreshes on the next call).
 */
export async function topicOffsets(
  reader: BareCluster | null,
  admin: Admin,
  topic: string,
): Promise<TopicOffsets[]> {
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

/** `topic`'s `retention.ms` (-1 = forever), or null when it cannot be read. */
export async function topicRetentionMs(admin: Admin, topic: string): Promise<number | null> {
  try {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{
        type: 2, /* TOPIC */
        name: topic,
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

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(logUnavailable(`Cannot finish ${what}: no answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Kafka's error code for a fetch below the log start (or past its end). */
const OFFSET_OUT_OF_RANGE = 1;

/** The parts of kafkajs 2.2.4's internal `Cluster` the reader uses. */
export interface BareCluster {
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
          messages: {
            offset: string;
            timestamp: string;
            value: Uint8Array | null;
            isControlRecord?: boolean;
          }[];
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
