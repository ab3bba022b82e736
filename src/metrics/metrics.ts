/**
 * Every metric FireScroll exports, created once per process. This list and process.ts (the
 * process's memory, CPU, file descriptors, event loop and build info, named as the Prometheus
 * client libraries name them) are the documentation: a metric that is not in one of them does not
 * exist. FireScroll's own names are `firescroll_<component>_<thing>_<unit>`.
 */
import { type ProcessMetrics, registerProcessMetrics } from "./process.ts";
import {
  type CounterFamily,
  type GaugeFamily,
  type HistogramFamily,
  Registry,
} from "./registry.ts";

const LATENCY_BUCKETS_S = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const LAG_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The metric handles of one node. */
export interface Metrics extends ProcessMetrics {
  /** The registry that renders them all. */
  readonly registry: Registry;
  /** `firescroll_api_request_duration_seconds{route,status}`: public API request duration. */
  readonly requestDuration: HistogramFamily;
  /** `firescroll_api_connections`: public connections open at the last idle sweep. */
  readonly apiConnections: GaugeFamily;
  /** `firescroll_api_connections_closed_total{reason}`: connections shut down (idle, over_limit). */
  readonly apiConnectionsClosed: CounterFamily;
  /** `firescroll_apply_lag_seconds`: apply time minus the message's log timestamp. */
  readonly applyLag: HistogramFamily;
  /** `firescroll_apply_offset{partition}`: last applied log offset. */
  readonly appliedOffset: GaugeFamily;
  /** `firescroll_apply_consumer_lag_messages{partition}`: log messages not yet read (end − next). */
  readonly consumerLag: GaugeFamily;
  /** `firescroll_apply_messages_total`: log messages applied (poison included). */
  readonly appliedMessages: CounterFamily;
  /** `firescroll_apply_transactions_total`: partition transactions that applied messages. */
  readonly applyTransactions: CounterFamily;
  /** `firescroll_apply_condition_false_total`: operations skipped because `if` was false. */
  readonly conditionFalse: CounterFamily;
  /** `firescroll_apply_condition_errors_total`: `if` evaluations that failed (counted as false). */
  readonly conditionErrors: CounterFamily;
  /** `firescroll_apply_poison_messages_total`: undecodable log messages skipped. */
  readonly poisonMessages: CounterFamily;
  /** `firescroll_log_appends_total`: messages appended to the log by this node. */
  readonly logAppends: CounterFamily;
  /** `firescroll_log_commits_total`: group commits (embedded fsyncs, Kafka produce requests). */
  readonly logCommits: CounterFamily;
  /** `firescroll_log_commit_duration_seconds`: embedded log commit (write + fsync) duration. */
  readonly logCommitDuration: HistogramFamily;
  /** `firescroll_kafka_requests_total{client,api}`: requests sent to Kafka brokers and answered. */
  readonly kafkaRequests: CounterFamily;
  /** `firescroll_cluster_gossip_members{state}`: region members by health (alive, leaving, suspect). */
  readonly gossipMembers: GaugeFamily;
  /** `firescroll_cluster_gossip_dropped_total{reason}`: datagrams dropped (bad signature, stale…). */
  readonly gossipDropped: CounterFamily;
  /** `firescroll_cluster_gossip_send_errors_total`: datagrams that could not be sent. */
  readonly gossipSendErrors: CounterFamily;
  /** `firescroll_cluster_gossip_dns_errors_total`: failed DNS discovery lookups. */
  readonly gossipDnsErrors: CounterFamily;
  /** `firescroll_cluster_proxy_requests_total{result}`: proxied reads by result. */
  readonly proxyRequests: CounterFamily;
  /** `firescroll_backup_last_success_timestamp_seconds{partition}`: when the last backup finished. */
  readonly backupLastSuccess: GaugeFamily;
  /** `firescroll_backup_duration_seconds`: one partition's backup (copy, hash, upload). */
  readonly backupDuration: HistogramFamily;
  /** `firescroll_backup_failures_total`: backups that failed (retried next interval). */
  readonly backupFailures: CounterFamily;
  /** `firescroll_backup_uploaded_bytes_total`: snapshot bytes uploaded. */
  readonly backupBytes: CounterFamily;
  /** `firescroll_backup_restores_total{source,result}`: snapshot restores (s3, peer) by result. */
  readonly restores: CounterFamily;
  /** `firescroll_archive_segments_total{result}`: log segments uploaded, already there, failed. */
  readonly archiveSegments: CounterFamily;
  /** `firescroll_archive_uploaded_bytes_total`: compressed segment bytes uploaded. */
  readonly archiveBytes: CounterFamily;
  /** `firescroll_archive_offset{partition}`: the last offset archived (by any node). */
  readonly archiveOffset: GaugeFamily;
  /** `firescroll_archive_gaps{partition}`: holes in a partition's archive the log cannot fill. */
  readonly archiveGaps: GaugeFamily;
  /** `firescroll_archive_repairs_total`: segments uploaded to fill a hole in the archive. */
  readonly archiveRepairs: CounterFamily;
  /** `firescroll_store_corrupt_files_total{kind}`: LMDB files that failed verification. */
  readonly storeCorruptFiles: CounterFamily;
  /** `firescroll_node_partition_blocked_total`: partitions the log could not feed. */
  readonly partitionsBlocked: CounterFamily;
  /** `firescroll_node_partitions{state}`: partitions owned / serving. */
  readonly partitions: GaugeFamily;
  /** `firescroll_node_ready`: 1 when `/readyz` answers 200, set by whoever renders `/metrics`. */
  readonly ready: GaugeFamily;
  /** `firescroll_watch_streams`: watch streams open. */
  readonly watchers: GaugeFamily;
  /** `firescroll_watch_events_total`: change events written to watch streams. */
  readonly watchEvents: CounterFamily;
  /** `firescroll_watch_resets_total`: watches resumed from a cursor older than the change log. */
  readonly watchResets: CounterFamily;
  /** `firescroll_watch_overflows_total`: watch streams closed because their reader fell behind. */
  readonly watchOverflows: CounterFamily;
}

/** Creates the registry and every metric handle. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  return {
    registry,
    requestDuration: registry.histogram(
      "firescroll_api_request_duration_seconds",
      "Public API request duration by route and status.",
      LATENCY_BUCKETS_S,
      ["route", "status"],
    ),
    apiConnections: registry.gauge(
      "firescroll_api_connections",
      "Public API connections open at the last idle sweep.",
    ),
    apiConnectionsClosed: registry.counter(
      "firescroll_api_connections_closed_total",
      "Public API connections shut down by the node: idle (IDLE_TIMEOUT_MS), over_limit (CONNECTIONS_MAX).",
      ["reason"],
    ),
    applyLag: registry.histogram(
      "firescroll_apply_lag_seconds",
      "Time from a message's log timestamp to its application on this node.",
      LAG_BUCKETS_S,
    ),
    appliedOffset: registry.gauge(
      "firescroll_apply_offset",
      "Last applied log offset per partition.",
      ["partition"],
    ),
    consumerLag: registry.gauge(
      "firescroll_apply_consumer_lag_messages",
      "Log messages of a partition not yet read by this node (log end offset minus next offset).",
      ["partition"],
    ),
    appliedMessages: registry.counter(
      "firescroll_apply_messages_total",
      "Log messages applied, poison messages included.",
    ),
    applyTransactions: registry.counter(
      "firescroll_apply_transactions_total",
      "Partition store transactions that applied log messages (messages per transaction = apply batching).",
    ),
    conditionFalse: registry.counter(
      "firescroll_apply_condition_false_total",
      "Operations not applied because their condition was false.",
    ),
    conditionErrors: registry.counter(
      "firescroll_apply_condition_errors_total",
      "Condition evaluations that failed and counted as false.",
    ),
    poisonMessages: registry.counter(
      "firescroll_apply_poison_messages_total",
      "Log messages that did not decode and were skipped.",
    ),
    logAppends: registry.counter(
      "firescroll_log_appends_total",
      "Messages appended to the log by this node.",
    ),
    logCommits: registry.counter(
      "firescroll_log_commits_total",
      "Group commits: embedded log transactions, or Kafka produce requests.",
    ),
    kafkaRequests: registry.counter(
      "firescroll_kafka_requests_total",
      "Requests to Kafka brokers that got an answer, by client (admin, producer, consumer, reader: the bare connection of the partition-count guard and the assignment offsets) and API (Produce, Fetch, Metadata, ...).",
      ["client", "api"],
    ),
    logCommitDuration: registry.histogram(
      "firescroll_log_commit_duration_seconds",
      "Embedded log group commit duration (write and fsync).",
      LATENCY_BUCKETS_S,
    ),
    gossipMembers: registry.gauge(
      "firescroll_cluster_gossip_members",
      "Members of this node's region by health: alive, leaving, suspect.",
      ["state"],
    ),
    gossipDropped: registry.counter(
      "firescroll_cluster_gossip_dropped_total",
      "Gossip datagrams dropped, by reason.",
      ["reason"],
    ),
    gossipSendErrors: registry.counter(
      "firescroll_cluster_gossip_send_errors_total",
      "Gossip datagrams that could not be sent.",
    ),
    gossipDnsErrors: registry.counter(
      "firescroll_cluster_gossip_dns_errors_total",
      "Failed DNS discovery lookups.",
    ),
    proxyRequests: registry.counter(
      "firescroll_cluster_proxy_requests_total",
      "Reads proxied to a region peer, by result: ok, retried, failed, unavailable.",
      ["result"],
    ),
    backupLastSuccess: registry.gauge(
      "firescroll_backup_last_success_timestamp_seconds",
      "Unix time of the last successful backup per partition.",
      ["partition"],
    ),
    backupDuration: registry.histogram(
      "firescroll_backup_duration_seconds",
      "Duration of one partition's backup: copy, hash, upload.",
      [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    ),
    backupFailures: registry.counter(
      "firescroll_backup_failures_total",
      "Partition backups that failed (retried at the next interval).",
    ),
    backupBytes: registry.counter(
      "firescroll_backup_uploaded_bytes_total",
      "Snapshot bytes uploaded.",
    ),
    restores: registry.counter(
      "firescroll_backup_restores_total",
      "Snapshot restores by source (s3, peer) and result (ok, rejected, failed, unavailable).",
      ["source", "result"],
    ),
    archiveSegments: registry.counter(
      "firescroll_archive_segments_total",
      "Log archive segments by result: uploaded, exists (another node uploaded it first), failed.",
      ["result"],
    ),
    archiveBytes: registry.counter(
      "firescroll_archive_uploaded_bytes_total",
      "Compressed log archive bytes uploaded.",
    ),
    archiveOffset: registry.gauge(
      "firescroll_archive_offset",
      "The last log offset in the archive per partition this node archives.",
      ["partition"],
    ),
    archiveGaps: registry.gauge(
      "firescroll_archive_gaps",
      "Holes in a partition's log archive that the log no longer holds the messages to fill.",
      ["partition"],
    ),
    archiveRepairs: registry.counter(
      "firescroll_archive_repairs_total",
      "Log archive segments uploaded to fill a hole (a deleted segment, a node that fell behind).",
    ),
    storeCorruptFiles: registry.counter(
      "firescroll_store_corrupt_files_total",
      "LMDB files that failed verification at start, by kind (partition, log); partition files are moved aside and rebuilt.",
      ["kind"],
    ),
    partitionsBlocked: registry.counter(
      "firescroll_node_partition_blocked_total",
      "Times a partition could not catch up because the log no longer holds what it needs.",
    ),
    partitions: registry.gauge(
      "firescroll_node_partitions",
      "Partitions by state: owned, serving.",
      ["state"],
    ),
    ready: registry.gauge(
      "firescroll_node_ready",
      "1 when the node is ready (/readyz answers 200: every owned partition serves), else 0.",
      [],
      { perProcess: true },
    ),
    watchers: registry.gauge("firescroll_watch_streams", "Watch streams open."),
    watchEvents: registry.counter(
      "firescroll_watch_events_total",
      "Change events written to watch streams (one per stream per change).",
    ),
    watchResets: registry.counter(
      "firescroll_watch_resets_total",
      "Watches that resumed from a cursor older than the change log holds and got event: reset.",
    ),
    watchOverflows: registry.counter(
      "firescroll_watch_overflows_total",
      "Watch streams closed with event: overflow because their reader fell WATCH_BUFFER_BYTES behind.",
    ),
    ...registerProcessMetrics(registry),
  };
}
