/**
 * The one validated, frozen configuration of a node, read from environment variables.
 *
 * Every limit the node enforces lives here, with its default and its bounds, so that
 * `docs/configuration.md` can list them all and a bad value stops the node at boot with a message
 * naming the variable and the bound.
 */

/** Which implementation of the shared log a node uses. */
export type LogKind = "embedded" | "kafka";

/** The configuration of one node. Built by {@linkcode loadConfig}; never mutated. */
export interface Config {
  /** Namespace: prefixes topic names, consumer groups and the data directory. */
  readonly namespace: string;
  /** Region name (gossip stays within one region). */
  readonly region: string;
  /** Replica group within the region; each group holds a full copy of the data. */
  readonly replicaGroup: string;
  /** This node's id, unique within the cluster. */
  readonly instanceId: string;
  /** Number of log partitions (= LMDB files). Fixed for the life of a namespace. */
  readonly partitions: number;
  /** Which log: embedded when `KAFKA_SEEDS` is unset. */
  readonly log: LogKind;
  /** Kafka bootstrap brokers, `host:port`. Empty in embedded mode. */
  readonly kafkaSeeds: readonly string[];
  /** Kafka client id prefix. */
  readonly kafkaClientId: string;
  /** Connect to the brokers over TLS (hosted Kafka services need it). */
  readonly kafkaTls: boolean;
  /** PEM file of the CA that signed the brokers' certificates; null = the system's roots. */
  readonly kafkaTlsCaFile: string | null;
  /** SASL authentication, or null for none. */
  readonly kafkaSasl: {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
    readonly username: string;
    readonly password: string;
  } | null;
  /** Replication factor of topics this node creates; -1 = the broker's default. */
  readonly kafkaReplicationFactor: number;
  /** `retention.ms` of a mutations topic this node creates; null = the broker's default. */
  readonly kafkaRetentionMs: number | null;
  /** Consumer group session timeout: how fast a dead node's partitions move. */
  readonly kafkaSessionTimeoutMs: number;
  /** How long a write may wait for the log before it fails with 503 `log_unavailable`. */
  readonly logWriteTimeoutMs: number;
  /** Root folder of the LMDB files. */
  readonly dbPath: string;
  /** Address the public and internal HTTP servers bind to. */
  readonly listenHost: string;
  /** Public API port. */
  readonly apiPort: number;
  /** Internal port: metrics, status, proxy targets. */
  readonly internalPort: number;
  /** Close a public connection with no byte moving either way for this long; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Most public connections kept open: above it the longest-idle ones are shut down. */
  readonly connectionsMax: number;
  /** TLS certificate file (PEM) for the public port; TLS is on when both cert and key are set. */
  readonly tlsCertFile: string | null;
  /** TLS private key file (PEM). */
  readonly tlsKeyFile: string | null;
  /** Shared secret for `/internal/*` calls (and, later, gossip). Null = internal port open. */
  readonly clusterSecret: string | null;
  /** UDP port for gossip. */
  readonly gossipPort: number;
  /** Static gossip targets, `host:port`. */
  readonly gossipPeers: readonly string[];
  /** DNS name whose AAAA records are this region's nodes; default `${FLY_REGION}.${FLY_APP_NAME}.internal` on Fly. */
  readonly gossipDnsName: string | null;
  /** Resolver for `gossipDnsName`, `host:port`; null = the system resolver. */
  readonly gossipDnsServer: string | null;
  /** How often the DNS name is re-resolved. */
  readonly gossipDnsIntervalMs: number;
  /** Gossip broadcast interval; silence for 3 of them stops routing, 10 forgets the member. */
  readonly gossipBroadcastMs: number;
  /** Whether this node gossips and proxies (peers or a DNS name are configured). */
  readonly clusterEnabled: boolean;
  /** Host peers use to reach this node's internal port. */
  readonly advertiseHost: string;
  /** Bound on one proxied read (plus its `wait_ms`). */
  readonly proxyTimeoutMs: number;
  /** Bearer tokens allowed to read. Empty with `apiTokensWrite` empty = open API. */
  readonly apiTokensRead: readonly string[];
  /** Bearer tokens allowed to write (and read). */
  readonly apiTokensWrite: readonly string[];
  /** Largest accepted request body, bytes (413 `body_too_large` above). */
  readonly bodyBytesMax: number;
  /** Most records (or batch ops) in one request (400 `too_many_records` above). */
  readonly recordsPerRequestMax: number;
  /** Largest `data` value, bytes of its JSON encoding (413 `data_too_large` above). */
  readonly dataBytesMax: number;
  /** Longest `if` expression, UTF-8 bytes (400 `condition_too_long` above). */
  readonly conditionBytesMax: number;
  /** Largest encoded log message (one partition's share of a write), bytes. */
  readonly messageBytesMax: number;
  /** Most rows a list examines per request, matching or not (bounds filtered scans). */
  readonly listScanMax: number;
  /** Largest `limit` accepted by list. */
  readonly listLimitMax: number;
  /** Largest `wait_ms` accepted by get/list. */
  readonly waitMsMax: number;
  /** Compiled conditions kept in the cache. */
  readonly conditionCacheMax: number;
  /** Most expression text (UTF-16 units) the compiled-condition cache keeps. */
  readonly conditionCacheCharsMax: number;
  /** Most log messages applied in one LMDB write transaction. */
  readonly applyBatchMax: number;
  /** Most appends waiting for the embedded log's next group commit (503 `log_overloaded` above). */
  readonly logQueueMax: number;
  /** Most waiters parked on `after` offsets at once (503 `too_many_waiters` above). */
  readonly waitersMax: number;
  /** Longest a stopping cluster node keeps serving reads while peers take its partitions over. */
  readonly handOffTimeoutMs: number;
  /** Grace period for a SIGTERM/SIGINT stop before the process exits anyway. */
  readonly shutdownTimeoutMs: number;
  /** Largest LMDB map per partition, bytes. */
  readonly lmdbMapBytes: number;
  /** Time bound of one file verification child (a child still running after it: damaged). */
  readonly verifyTimeoutMs: number;
  /** Verification children running at once. */
  readonly verifyConcurrency: number;
  /** LMDB map size of the embedded log, which keeps every message (it is never truncated). */
  readonly embeddedLogMapBytes: number;
  /** Write partition snapshots to S3 every `backupIntervalSec` (`BACKUP=1`). */
  readonly backup: boolean;
  /** Restore partitions from the latest S3 snapshot when it is ahead of the local file. */
  readonly s3Restore: boolean;
  /** S3 endpoint URL; null = AWS's default for the region. */
  readonly s3Endpoint: string | null;
  /** Bucket of the snapshots; required with `backup` or `s3Restore`. */
  readonly s3Bucket: string | null;
  /** S3 signing region. */
  readonly s3Region: string;
  /** Path-style URLs (MinIO, versitygw) instead of virtual-hosted ones (AWS, Tigris). */
  readonly s3ForcePathStyle: boolean;
  /** Seconds between two backups of a partition. */
  readonly backupIntervalSec: number;
  /** Snapshots kept per partition (older ones are deleted). */
  readonly backupKeep: number;
  /** Bound on one partition's backup or restore (copy, upload / download, verify). */
  readonly backupTimeoutMs: number;
  /** Fetch a partition snapshot from a region peer when neither S3 nor the log can rebuild it. */
  readonly peerBootstrap: boolean;
  /** Seconds a revoked partition's file stays on disk for reuse before it is deleted. */
  readonly unownedRetainSec: number;
}

const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

function sasl(env: Env): Config["kafkaSasl"] {
  const mechanism = raw(env, "KAFKA_SASL_MECHANISM")?.toLowerCase();
  if (mechanism === undefined) return null;
  if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
    throw new ConfigError(
      "KAFKA_SASL_MECHANISM",
      `must be one of ${SASL_MECHANISMS.join(", ")}, got "${mechanism}"`,
    );
  }
  const username = raw(env, "KAFKA_SASL_USERNAME");
  const password = raw(env, "KAFKA_SASL_PASSWORD");
  if (username === undefined) {
    throw new ConfigError("KAFKA_SASL_USERNAME", "must be set with KAFKA_SASL_MECHANISM");
  }
  if (password === undefined) {
    throw new ConfigError("KAFKA_SASL_PASSWORD", "must be set with KAFKA_SASL_MECHANISM");
  }
  return Object.freeze({
    mechanism: mechanism as (typeof SASL_MECHANISMS)[number],
    username,
    password,
  });
}

function flag(env: Env, variable: string, fallback: boolean): boolean {
  const value = raw(env, variable);
  if (value === undefined) return fallback;
  if (value === "1" || value === "true") return true;
  if (value === "0" || value === "false") return false;
  throw new ConfigError(variable, `must be 1, 0, true or false, got "${value}"`);
}

/** A configuration value that is out of bounds or malformed. */
export class ConfigError extends Error {
  /** Stable code for logs. */
  readonly code = "invalid_config";
  /** The variable at fault. */
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`Cannot start: ${variable} ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/** Keys are a format constant, not a setting: every replica must accept the same keys. */
export const PK_BYTES_MAX = 512;
/** Largest sort key, UTF-8 bytes. */
export const SK_BYTES_MAX = 1024;

type Env = Readonly<Record<string, string | undefined>>;

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value)) {
    throw new ConfigError(name, `must be an integer in [${min}, ${max}], got "${value}"`);
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(name, `must be an integer in [${min}, ${max}], got ${value}`);
  }
  return n;
}

function name(env: Env, variable: string, fallback: string): string {
  const value = raw(env, variable) ?? fallback;
  // Names become topic names, consumer group ids and folder names: keep them to a safe alphabet.
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
    throw new ConfigError(variable, `must match [A-Za-z0-9_-]{1,64}, got "${value}"`);
  }
  return value;
}

function list(env: Env, variable: string): readonly string[] {
  const value = raw(env, variable);
  // Frozen like the config that holds it: a node's settings never change after boot.
  if (value === undefined) return Object.freeze([]);
  return Object.freeze(value.split(",").map((s) => s.trim()).filter((s) => s !== ""));
}

function port(env: Env, variable: string, fallback: number): number {
  return int(env, variable, fallback, 0, 65535);
}

function hostPort(variable: string, entry: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(entry);
  if (match === null || Number(match[2]) > 65535) {
    throw new ConfigError(variable, `entries must be host:port with port <= 65535, got "${entry}"`);
  }
  return entry;
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "node-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * Reads and validates the configuration from `env` (normally `Deno.env.toObject()`).
 * Throws {@linkcode ConfigError} naming the variable and its bound on any bad value.
 */
export function loadConfig(env: Env): Config {
  const kafkaSeeds = Object.freeze(list(env, "KAFKA_SEEDS").map((s) => hostPort("KAFKA_SEEDS", s)));
  const tlsCertFile = raw(env, "TLS_CERT_FILE") ?? null;
  const tlsKeyFile = raw(env, "TLS_KEY_FILE") ?? null;
  if ((tlsCertFile === null) !== (tlsKeyFile === null)) {
    throw new ConfigError(
      tlsCertFile === null ? "TLS_CERT_FILE" : "TLS_KEY_FILE",
      "must be set together with " + (tlsCertFile === null ? "TLS_KEY_FILE" : "TLS_CERT_FILE"),
    );
  }
  const clusterSecret = raw(env, "CLUSTER_SECRET") ?? null;
  if (clusterSecret !== null && clusterSecret.length < 16) {
    throw new ConfigError("CLUSTER_SECRET", "must be at least 16 characters");
  }
  const bodyBytesMax = int(env, "BODY_BYTES_MAX", 1 * MiB, 1 * KiB, 64 * MiB);
  const dataBytesMax = int(env, "DATA_BYTES_MAX", 256 * KiB, 16, 64 * MiB);
  // Kafka's default message.max.bytes is 1048588; stay under it with room for batch overhead.
  const messageBytesMax = int(env, "MESSAGE_BYTES_MAX", 1_000_000, 4 * KiB, 64 * MiB);
  if (dataBytesMax + 4 * KiB > messageBytesMax) {
    throw new ConfigError(
      "DATA_BYTES_MAX",
      `must leave 4 KiB of MESSAGE_BYTES_MAX (${messageBytesMax}) for keys and framing, got ${dataBytesMax}`,
    );
  }
  if (dataBytesMax > bodyBytesMax) {
    throw new ConfigError(
      "DATA_BYTES_MAX",
      `must be at most BODY_BYTES_MAX (${bodyBytesMax}), got ${dataBytesMax}`,
    );
  }
  const shutdownTimeoutMs = int(env, "SHUTDOWN_TIMEOUT_MS", 30_000, 100, 600_000);
  const backup = flag(env, "BACKUP", false);
  const s3Restore = flag(env, "S3_RESTORE", false);
  const s3Endpoint = raw(env, "S3_ENDPOINT") ?? raw(env, "AWS_ENDPOINT_URL_S3") ?? null;
  if (s3Endpoint !== null && !/^https?:\/\/[^\s/]+(\/.*)?$/.test(s3Endpoint)) {
    throw new ConfigError(
      raw(env, "S3_ENDPOINT") !== undefined ? "S3_ENDPOINT" : "AWS_ENDPOINT_URL_S3",
      `must be an http(s) URL, got "${s3Endpoint}"`,
    );
  }
  const s3Bucket = raw(env, "S3_BUCKET") ?? raw(env, "BUCKET_NAME") ?? null;
  if ((backup || s3Restore) && s3Bucket === null) {
    throw new ConfigError(
      "S3_BUCKET",
      "must be set (or BUCKET_NAME) when BACKUP=1 or S3_RESTORE=1",
    );
  }
  const listenHost = raw(env, "LISTEN_HOST") ?? "0.0.0.0";
  const gossipPeers = list(env, "GOSSIP_PEERS").map((s) => hostPort("GOSSIP_PEERS", s));
  const flyRegion = raw(env, "FLY_REGION");
  const flyApp = raw(env, "FLY_APP_NAME");
  const gossipDnsName = raw(env, "GOSSIP_DNS_NAME") ??
    (flyRegion !== undefined && flyApp !== undefined ? `${flyRegion}.${flyApp}.internal` : null);
  const gossipDnsServer = raw(env, "GOSSIP_DNS_SERVER") === undefined
    ? null
    : hostPort("GOSSIP_DNS_SERVER", raw(env, "GOSSIP_DNS_SERVER")!);
  const clusterEnabled = gossipPeers.length > 0 || gossipDnsName !== null;
  if (clusterEnabled && clusterSecret === null) {
    throw new ConfigError(
      "CLUSTER_SECRET",
      "must be set when GOSSIP_PEERS or GOSSIP_DNS_NAME (or FLY_REGION + FLY_APP_NAME) enable the cluster",
    );
  }
  const wildcard = listenHost === "0.0.0.0" || listenHost === "::" || listenHost === "[::]";
  const advertiseHost = raw(env, "ADVERTISE_ADDR") ?? raw(env, "FLY_PRIVATE_IP") ??
    (wildcard ? "127.0.0.1" : listenHost);
  const config: Config = {
    namespace: name(env, "NAMESPACE", "default"),
    region: name(env, "REGION", raw(env, "FLY_REGION") ?? "local"),
    replicaGroup: name(env, "REPLICA_GROUP", "default"),
    instanceId: name(env, "INSTANCE_ID", raw(env, "FLY_MACHINE_ID") ?? randomId()),
    partitions: int(env, "PARTITIONS", 16, 1, 4096),
    log: kafkaSeeds.length > 0 ? "kafka" : "embedded",
    kafkaSeeds,
    kafkaClientId: name(env, "KAFKA_CLIENT_ID", "firescroll"),
    kafkaTls: flag(env, "KAFKA_TLS", false),
    kafkaTlsCaFile: raw(env, "KAFKA_TLS_CA_FILE") ?? null,
    kafkaSasl: sasl(env),
    kafkaReplicationFactor: int(env, "KAFKA_REPLICATION_FACTOR", -1, -1, 32),
    kafkaRetentionMs: raw(env, "KAFKA_RETENTION_MS") === undefined
      ? null
      : int(env, "KAFKA_RETENTION_MS", 0, -1, Number.MAX_SAFE_INTEGER),
    kafkaSessionTimeoutMs: int(env, "KAFKA_SESSION_TIMEOUT_MS", 30_000, 6000, 300_000),
    logWriteTimeoutMs: int(env, "LOG_WRITE_TIMEOUT_MS", 10_000, 100, 300_000),
    dbPath: raw(env, "DB_PATH") ?? "./data",
    listenHost,
    apiPort: port(env, "API_PORT", 8190),
    internalPort: port(env, "INTERNAL_PORT", 8191),
    idleTimeoutMs: int(env, "IDLE_TIMEOUT_MS", 60_000, 0, 3_600_000),
    connectionsMax: int(env, "CONNECTIONS_MAX", 4096, 1, 1_000_000),
    tlsCertFile,
    tlsKeyFile,
    clusterSecret,
    gossipPort: port(env, "GOSSIP_PORT", 8192),
    gossipPeers,
    gossipDnsName,
    gossipDnsServer,
    gossipDnsIntervalMs: int(env, "GOSSIP_DNS_INTERVAL_MS", 5000, 100, 600_000),
    gossipBroadcastMs: int(env, "GOSSIP_BROADCAST_MS", 500, 50, 60_000),
    clusterEnabled,
    advertiseHost,
    proxyTimeoutMs: int(env, "PROXY_TIMEOUT_MS", 2000, 50, 60_000),
    apiTokensRead: list(env, "API_TOKENS_READ"),
    apiTokensWrite: list(env, "API_TOKENS_WRITE"),
    bodyBytesMax,
    recordsPerRequestMax: int(env, "RECORDS_PER_REQUEST_MAX", 1000, 1, 100_000),
    dataBytesMax,
    conditionBytesMax: int(env, "CONDITION_BYTES_MAX", 1024, 16, 64 * KiB),
    messageBytesMax,
    listLimitMax: int(env, "LIST_LIMIT_MAX", 1000, 1, 100_000),
    listScanMax: int(env, "LIST_SCAN_MAX", 10_000, 1, 10_000_000),
    waitMsMax: int(env, "WAIT_MS_MAX", 10_000, 0, 300_000),
    conditionCacheMax: int(env, "CONDITION_CACHE_MAX", 10_000, 1, 1_000_000),
    conditionCacheCharsMax: int(env, "CONDITION_CACHE_CHARS_MAX", 1_048_576, 1024, 1_073_741_824),
    applyBatchMax: int(env, "APPLY_BATCH_MAX", 256, 1, 100_000),
    logQueueMax: int(env, "LOG_QUEUE_MAX", 10_000, 1, 1_000_000),
    waitersMax: int(env, "WAITERS_MAX", 10_000, 1, 1_000_000),
    handOffTimeoutMs: int(
      env,
      "HANDOFF_TIMEOUT_MS",
      Math.min(15_000, Math.floor(shutdownTimeoutMs / 2)),
      0,
      600_000,
    ),
    shutdownTimeoutMs,
    lmdbMapBytes: int(env, "LMDB_MAP_BYTES", 1 * GiB, 16 * MiB, 1024 * GiB),
    verifyTimeoutMs: int(env, "VERIFY_TIMEOUT_MS", 300_000, 1000, 3_600_000),
    verifyConcurrency: int(env, "VERIFY_CONCURRENCY", 2, 1, 64),
    embeddedLogMapBytes: int(env, "EMBEDDED_LOG_MAP_BYTES", 64 * GiB, 16 * MiB, 1024 * GiB),
    backup,
    s3Restore,
    s3Endpoint,
    s3Bucket,
    s3Region: raw(env, "S3_REGION") ?? raw(env, "AWS_REGION") ?? "us-east-1",
    // An explicit S3_ENDPOINT is usually MinIO-like (path style); Tigris' AWS_ENDPOINT_URL_S3 is
    // virtual-hosted.
    s3ForcePathStyle: flag(env, "S3_FORCE_PATH_STYLE", raw(env, "S3_ENDPOINT") !== undefined),
    backupIntervalSec: int(env, "BACKUP_INTERVAL_SEC", 300, 1, 7 * 24 * 3600),
    backupKeep: int(env, "BACKUP_KEEP", 5, 1, 1000),
    backupTimeoutMs: int(env, "BACKUP_TIMEOUT_MS", 600_000, 1000, 24 * 3600 * 1000),
    peerBootstrap: flag(env, "PEER_BOOTSTRAP", true),
    unownedRetainSec: int(env, "UNOWNED_RETAIN_SEC", 24 * 3600, 0, 365 * 24 * 3600),
  };
  if (
    config.kafkaRetentionMs !== null && config.kafkaRetentionMs >= 0 &&
    config.kafkaRetentionMs < 1000
  ) {
    throw new ConfigError(
      "KAFKA_RETENTION_MS",
      `must be -1 (keep forever) or at least 1000, got ${config.kafkaRetentionMs}`,
    );
  }
  if (config.kafkaReplicationFactor === 0) {
    throw new ConfigError(
      "KAFKA_REPLICATION_FACTOR",
      "must be -1 (broker default) or in [1, 32], got 0",
    );
  }
  if (config.handOffTimeoutMs + 1000 > config.shutdownTimeoutMs) {
    throw new ConfigError(
      "HANDOFF_TIMEOUT_MS",
      `must leave 1000 ms of SHUTDOWN_TIMEOUT_MS (${config.shutdownTimeoutMs}) to drain and close, got ${config.handOffTimeoutMs}`,
    );
  }
  if (config.listScanMax < config.listLimitMax) {
    throw new ConfigError(
      "LIST_SCAN_MAX",
      `must be at least LIST_LIMIT_MAX (${config.listLimitMax}), got ${config.listScanMax}`,
    );
  }
  if (config.conditionCacheCharsMax < config.conditionBytesMax) {
    throw new ConfigError(
      "CONDITION_CACHE_CHARS_MAX",
      `must be at least CONDITION_BYTES_MAX (${config.conditionBytesMax}), got ${config.conditionCacheCharsMax}`,
    );
  }
  // The idle sweep sees bytes, not requests: a request waiting for `wait_ms` or the log is idle.
  const busyMs = Math.max(config.waitMsMax, config.logWriteTimeoutMs);
  if (config.idleTimeoutMs !== 0 && config.idleTimeoutMs <= busyMs) {
    throw new ConfigError(
      "IDLE_TIMEOUT_MS",
      `must be 0 (never) or longer than WAIT_MS_MAX and LOG_WRITE_TIMEOUT_MS (${busyMs}), got ${config.idleTimeoutMs}`,
    );
  }
  if (config.apiPort !== 0 && config.apiPort === config.internalPort) {
    throw new ConfigError("INTERNAL_PORT", `must differ from API_PORT (${config.apiPort})`);
  }
  return Object.freeze(config);
}
