/**
 * The settings table: one row per environment variable — its section and field in
 * {@linkcode Config}, its kind, default and bounds, and one line on what it does. `loadConfig()`
 * reads the environment through it, `docs/configuration.md` is tested against it, and the
 * `starting` log line redacts the rows marked secret.
 *
 * **One name per setting.** A row's field is the camelCase of its variable, without the section's
 * prefix when the variable carries it (`GOSSIP_BROADCAST_MS` → `gossip.broadcastMs`,
 * `KAFKA_SESSION_TIMEOUT_MS` → `kafka.sessionTimeoutMs`, `APPLY_BATCH_MAX` → `log.applyBatchMax`);
 * a variable that is the section's name alone is its `enabled` flag (`BACKUP` → `backup.enabled`).
 * A section's prefix is its name in capitals followed by `_`. Components take their sections
 * whole, so the same name reaches the code that uses it; `settings_test.ts` holds every row to
 * this rule.
 */
import type { Config } from "./config.ts";

/** The sections of {@linkcode Config}, named after the components that consume them. */
export type SectionName = keyof Config;

/** How a variable's text becomes a value. */
export type SettingKind =
  /** An integer in `[min, max]`. */
  | "int"
  /** A TCP or UDP port, `[0, 65535]`. */
  | "port"
  /** `1`/`true` or `0`/`false`. */
  | "flag"
  /** `[A-Za-z0-9_-]{1,64}`: it becomes part of topic names, group ids and folder names. */
  | "name"
  /** Any text (a path, a host, a secret); `min` is its least length when given. */
  | "text"
  /** Comma-separated text; empty entries are dropped. */
  | "list"
  /** One `host:port`. */
  | "hostPort"
  /** Comma-separated `host:port` entries. */
  | "hostPorts"
  /** An `http(s)://` URL. */
  | "url"
  /** One of `choices`, case-insensitive (read in lower case). */
  | "choice";

/** What a derived default may read while it is computed. */
export interface DeriveContext {
  /** The value of another setting whose default is not derived. */
  value(variable: string): unknown;
  /** The raw text of a variable named in the row's `reads`, or undefined when unset or blank. */
  raw(variable: string): string | undefined;
}

/** A default computed from other settings or variables, at load time. */
export interface DerivedDefault {
  /** Variables (not settings) the default reads with `raw()`, e.g. `FLY_APP_NAME`. */
  readonly reads?: readonly string[];
  readonly derive: (context: DeriveContext) => number | string | boolean | null;
}

/** The value a row takes when its variable (and every fallback) is unset. */
export type SettingDefault = number | string | boolean | null | DerivedDefault;

interface RowOf<S extends SectionName> {
  /** The environment variable. */
  readonly env: string;
  readonly section: S;
  /** The field within the section: see the naming rule in the module doc. */
  readonly field: keyof Config[S] & string;
  readonly kind: SettingKind;
  /** Unset (`null`) is an empty list for `list` and `hostPorts`. */
  readonly default: SettingDefault;
  /** Least value (`int`, `port`) or least length (`text`). */
  readonly min?: number;
  /** Greatest value (`int`, `port`). */
  readonly max?: number;
  /** The accepted values of a `choice`, lower case. */
  readonly choices?: readonly string[];
  /** Variables read, in order, when this one is unset (names other platforms use). */
  readonly fallbacks?: readonly string[];
  /**
   * The default as `docs/configuration.md` states it, for rows with fallbacks or a derived
   * default (other defaults are compared by value).
   */
  readonly defaultDoc?: string;
  /** Kept out of logs: a secret text is shown as `redacted`, a secret list as its length. */
  readonly secret?: boolean;
  /** One line: what the setting does. */
  readonly doc: string;
}

/** One row of the settings table. */
export type Setting = { [S in SectionName]: RowOf<S> }[SectionName];

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The Kafka SASL mechanisms kafkajs supports. */
export const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

/** The values of `S3_RESTORE_DECODE`: where a restore decodes the archive's messages. */
export const RESTORE_DECODE = ["auto", "thread", "inline"] as const;

/** The levels of `LOG_LEVEL`, least severe first (those of src/util/log.ts). */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** Every setting, grouped by section. Defaults derived from other rows are read after the rest. */
export const SETTINGS: readonly Setting[] = [
  // cluster: what every replica of the namespace must agree on (see cluster.ts).
  {
    env: "NAMESPACE",
    section: "cluster",
    field: "namespace",
    kind: "name",
    default: "default",
    doc: "prefixes topic names, consumer groups, the data folder and S3 keys",
  },
  {
    env: "PARTITIONS",
    section: "cluster",
    field: "partitions",
    kind: "int",
    default: 16,
    min: 1,
    max: 4096,
    doc: "log partitions (= LMDB files); fixed for the life of a namespace",
  },
  {
    env: "CLUSTER_SECRET",
    section: "cluster",
    field: "secret",
    kind: "text",
    default: null,
    min: 16,
    secret: true,
    doc: "bearer secret of /internal/* and the gossip HMAC key; required in cluster mode",
  },
  // node: who this process is, and where it listens.
  {
    env: "REGION",
    section: "node",
    field: "region",
    kind: "name",
    default: "local",
    fallbacks: ["FLY_REGION"],
    defaultDoc: "`FLY_REGION`, else `local`",
    doc: "region of this node; gossip and proxying stay inside a region",
  },
  {
    env: "REPLICA_GROUP",
    section: "node",
    field: "replicaGroup",
    kind: "name",
    default: "default",
    doc: "replica group within the region; each group holds a full copy",
  },
  {
    env: "INSTANCE_ID",
    section: "node",
    field: "instanceId",
    kind: "name",
    default: { derive: randomId },
    fallbacks: ["FLY_MACHINE_ID"],
    defaultDoc: "`FLY_MACHINE_ID`, else `node-<random>`",
    doc: "this node's id, unique within the cluster",
  },
  {
    env: "LISTEN_HOST",
    section: "node",
    field: "listenHost",
    kind: "text",
    default: "0.0.0.0",
    doc: "address the HTTP servers and the gossip socket bind to",
  },
  {
    env: "LOG_LEVEL",
    section: "node",
    field: "logLevel",
    kind: "choice",
    choices: LOG_LEVELS,
    default: "info",
    doc: "least severe log lines written: debug, info, warn or error",
  },
  // store: the partition files.
  {
    env: "DB_PATH",
    section: "store",
    field: "dbPath",
    kind: "text",
    default: "./data",
    doc: "root folder of the LMDB files",
  },
  {
    env: "LMDB_MAP_BYTES",
    section: "store",
    field: "lmdbMapBytes",
    kind: "int",
    default: 1 * GiB,
    min: 16 * MiB,
    max: 1024 * GiB,
    doc: "largest LMDB map of one partition file, bytes",
  },
  {
    env: "VERIFY_TIMEOUT_MS",
    section: "store",
    field: "verifyTimeoutMs",
    kind: "int",
    default: 300_000,
    min: 1000,
    max: 3_600_000,
    doc: "time bound of one file verification child (still running after it: damaged)",
  },
  {
    env: "VERIFY_CONCURRENCY",
    section: "store",
    field: "verifyConcurrency",
    kind: "int",
    default: 2,
    min: 1,
    max: 64,
    doc: "verification children running at once",
  },
  {
    env: "UNOWNED_RETAIN_SEC",
    section: "store",
    field: "unownedRetainSec",
    kind: "int",
    default: 24 * 3600,
    min: 0,
    max: 365 * 24 * 3600,
    doc: "seconds a revoked partition's file stays on disk for reuse before it is deleted",
  },
  // log: both log implementations.
  {
    env: "LOG_WRITE_TIMEOUT_MS",
    section: "log",
    field: "writeTimeoutMs",
    kind: "int",
    default: 10_000,
    min: 100,
    max: 300_000,
    doc: "how long a write may wait for the log before 503 log_unavailable",
  },
  {
    env: "LOG_QUEUE_MAX",
    section: "log",
    field: "queueMax",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 1_000_000,
    doc: "appends waiting for the log (503 log_overloaded above)",
  },
  {
    env: "APPLY_BATCH_MAX",
    section: "log",
    field: "applyBatchMax",
    kind: "int",
    default: 256,
    min: 1,
    max: 100_000,
    doc: "log messages delivered and applied in one LMDB write transaction",
  },
  {
    env: "MESSAGE_BYTES_MAX",
    section: "log",
    field: "messageBytesMax",
    kind: "int",
    // Kafka's default message.max.bytes is 1048588; stay under it with room for batch overhead.
    default: 1_000_000,
    min: 4 * KiB,
    max: 64 * MiB,
    doc: "largest encoded log message (one partition's share of a write), bytes",
  },
  {
    env: "EMBEDDED_LOG_MAP_BYTES",
    section: "log",
    field: "embeddedLogMapBytes",
    kind: "int",
    default: 64 * GiB,
    min: 16 * MiB,
    max: 1024 * GiB,
    doc: "LMDB map of the embedded log, which keeps every message, bytes",
  },
  // kafka: the Kafka log.
  {
    env: "KAFKA_SEEDS",
    section: "kafka",
    field: "seeds",
    kind: "hostPorts",
    default: null,
    doc: "Kafka bootstrap brokers; unset = the embedded log",
  },
  {
    env: "KAFKA_CLIENT_ID",
    section: "kafka",
    field: "clientId",
    kind: "name",
    default: "firescroll",
    doc: "Kafka client id prefix",
  },
  {
    env: "KAFKA_TLS",
    section: "kafka",
    field: "tls",
    kind: "flag",
    default: false,
    doc: "connect to the brokers over TLS",
  },
  {
    env: "KAFKA_TLS_CA_FILE",
    section: "kafka",
    field: "tlsCaFile",
    kind: "text",
    default: null,
    doc: "PEM file of the brokers' CA; unset = the system's roots",
  },
  {
    env: "KAFKA_SASL_MECHANISM",
    section: "kafka",
    field: "saslMechanism",
    kind: "choice",
    choices: SASL_MECHANISMS,
    default: null,
    doc: "SASL mechanism; unset = no SASL",
  },
  {
    env: "KAFKA_SASL_USERNAME",
    section: "kafka",
    field: "saslUsername",
    kind: "text",
    default: null,
    doc: "SASL user, required with a mechanism",
  },
  {
    env: "KAFKA_SASL_PASSWORD",
    section: "kafka",
    field: "saslPassword",
    kind: "text",
    default: null,
    secret: true,
    doc: "SASL password, required with a mechanism",
  },
  {
    env: "KAFKA_REPLICATION_FACTOR",
    section: "kafka",
    field: "replicationFactor",
    kind: "int",
    default: -1,
    min: -1,
    max: 32,
    doc: "replication factor of the topics this node creates; -1 = the broker's default",
  },
  {
    env: "KAFKA_RETENTION_MS",
    section: "kafka",
    field: "retentionMs",
    kind: "int",
    default: null,
    min: -1,
    max: Number.MAX_SAFE_INTEGER,
    doc: "retention.ms of a mutations topic this node creates; unset = the broker's default",
  },
  {
    env: "KAFKA_SESSION_TIMEOUT_MS",
    section: "kafka",
    field: "sessionTimeoutMs",
    kind: "int",
    default: 30_000,
    min: 6000,
    max: 300_000,
    doc: "consumer group session timeout: how fast a dead node's partitions move",
  },
  // api: the public and internal HTTP servers.
  {
    env: "API_PORT",
    section: "api",
    field: "port",
    kind: "port",
    default: 8190,
    min: 0,
    max: 65535,
    doc: "public API port; 0 = any free port",
  },
  {
    env: "INTERNAL_PORT",
    section: "api",
    field: "internalPort",
    kind: "port",
    default: 8191,
    min: 0,
    max: 65535,
    doc: "internal port: metrics, status, proxy targets",
  },
  {
    env: "TLS_CERT_FILE",
    section: "api",
    field: "tlsCertFile",
    kind: "text",
    default: null,
    doc: "PEM certificate of the public port; TLS is on when both cert and key are set",
  },
  {
    env: "TLS_KEY_FILE",
    section: "api",
    field: "tlsKeyFile",
    kind: "text",
    default: null,
    doc: "PEM private key of TLS_CERT_FILE",
  },
  {
    env: "IDLE_TIMEOUT_MS",
    section: "api",
    field: "idleTimeoutMs",
    kind: "int",
    default: 60_000,
    min: 0,
    max: 3_600_000,
    doc: "close a public connection with no byte moving either way for this long; 0 = never",
  },
  {
    env: "CONNECTIONS_MAX",
    section: "api",
    field: "connectionsMax",
    kind: "int",
    default: 4096,
    min: 1,
    max: 1_000_000,
    doc: "public connections kept open; above it the longest-idle ones are shut down",
  },
  {
    env: "SERVE_THREADS",
    section: "api",
    field: "serveThreads",
    kind: "int",
    default: 0,
    min: 0,
    max: 256,
    doc:
      "threads serving the public port, each reading the partition files; 0 = one per CPU the process may use, 1 = the main thread alone",
  },
  {
    env: "API_TOKENS_READ",
    section: "api",
    field: "tokensRead",
    kind: "list",
    default: null,
    secret: true,
    doc: "bearer tokens that may read; with API_TOKENS_WRITE unset too, the API is open",
  },
  {
    env: "API_TOKENS_WRITE",
    section: "api",
    field: "tokensWrite",
    kind: "list",
    default: null,
    secret: true,
    doc: "bearer tokens that may write (and read)",
  },
  // limits: what one request may ask, enforced by the API before anything is written.
  {
    env: "BODY_BYTES_MAX",
    section: "limits",
    field: "bodyBytesMax",
    kind: "int",
    default: 1 * MiB,
    min: 1 * KiB,
    max: 64 * MiB,
    doc: "largest accepted request body, bytes (413 body_too_large above)",
  },
  {
    env: "RECORDS_PER_REQUEST_MAX",
    section: "limits",
    field: "recordsPerRequestMax",
    kind: "int",
    default: 1000,
    min: 1,
    max: 100_000,
    doc: "records (or batch ops) in one request (400 too_many_records above)",
  },
  {
    env: "DATA_BYTES_MAX",
    section: "limits",
    field: "dataBytesMax",
    kind: "int",
    default: 256 * KiB,
    min: 16,
    max: 64 * MiB,
    doc: "largest data value, bytes of its JSON (413 data_too_large above)",
  },
  {
    env: "CONDITION_BYTES_MAX",
    section: "limits",
    field: "conditionBytesMax",
    kind: "int",
    default: 1024,
    min: 16,
    max: 64 * KiB,
    doc: "longest if expression, UTF-8 bytes (400 condition_too_long above)",
  },
  {
    env: "LIST_LIMIT_MAX",
    section: "limits",
    field: "listLimitMax",
    kind: "int",
    default: 1000,
    min: 1,
    max: 100_000,
    doc: "largest limit accepted by list",
  },
  {
    env: "LIST_SCAN_MAX",
    section: "limits",
    field: "listScanMax",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 10_000_000,
    doc: "rows a list examines per request, matching or not",
  },
  {
    env: "WAIT_MS_MAX",
    section: "limits",
    field: "waitMsMax",
    kind: "int",
    default: 10_000,
    min: 0,
    max: 300_000,
    doc: "largest wait_ms accepted by get and list",
  },
  {
    env: "WAITERS_MAX",
    section: "limits",
    field: "waitersMax",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 1_000_000,
    doc: "reads parked on after offsets at once (503 too_many_waiters above)",
  },
  {
    env: "CONDITION_CACHE_MAX",
    section: "limits",
    field: "conditionCacheMax",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 1_000_000,
    doc: "compiled conditions kept in the cache",
  },
  {
    env: "CONDITION_CACHE_CHARS_MAX",
    section: "limits",
    field: "conditionCacheCharsMax",
    kind: "int",
    default: 1_048_576,
    min: 1024,
    max: 1_073_741_824,
    doc: "expression text (UTF-16 units) the compiled-condition cache keeps",
  },
  // gossip: the region cluster (gossip and read proxying).
  {
    env: "GOSSIP_PORT",
    section: "gossip",
    field: "port",
    kind: "port",
    default: 8192,
    min: 0,
    max: 65535,
    doc: "UDP port for gossip",
  },
  {
    env: "GOSSIP_PEERS",
    section: "gossip",
    field: "peers",
    kind: "hostPorts",
    default: null,
    doc: "static gossip targets",
  },
  {
    env: "GOSSIP_DNS_NAME",
    section: "gossip",
    field: "dnsName",
    kind: "text",
    default: {
      reads: ["FLY_REGION", "FLY_APP_NAME"],
      derive: (c) => {
        const region = c.raw("FLY_REGION");
        const app = c.raw("FLY_APP_NAME");
        return region !== undefined && app !== undefined ? `${region}.${app}.internal` : null;
      },
    },
    defaultDoc: "`${FLY_REGION}.${FLY_APP_NAME}.internal` when both are set, else unset",
    doc: "DNS name whose AAAA records are this region's nodes",
  },
  {
    env: "GOSSIP_DNS_SERVER",
    section: "gossip",
    field: "dnsServer",
    kind: "hostPort",
    default: null,
    doc: "resolver of GOSSIP_DNS_NAME; unset = the system resolver",
  },
  {
    env: "GOSSIP_DNS_INTERVAL_MS",
    section: "gossip",
    field: "dnsIntervalMs",
    kind: "int",
    default: 5000,
    min: 100,
    max: 600_000,
    doc: "how often GOSSIP_DNS_NAME is re-resolved",
  },
  {
    env: "GOSSIP_BROADCAST_MS",
    section: "gossip",
    field: "broadcastMs",
    kind: "int",
    default: 500,
    min: 50,
    max: 60_000,
    doc: "gossip interval; 3 silent ones stop routing to a peer, 10 forget it",
  },
  {
    env: "ADVERTISE_ADDR",
    section: "gossip",
    field: "advertiseAddr",
    kind: "text",
    default: {
      derive: (c) => {
        const listenHost = c.value("LISTEN_HOST") as string;
        const wildcard = listenHost === "0.0.0.0" || listenHost === "::" || listenHost === "[::]";
        return wildcard ? "127.0.0.1" : listenHost;
      },
    },
    fallbacks: ["FLY_PRIVATE_IP"],
    defaultDoc:
      "`FLY_PRIVATE_IP`, else `127.0.0.1` when `LISTEN_HOST` is a wildcard, else `LISTEN_HOST`",
    doc: "host peers use to reach this node's internal port",
  },
  {
    env: "PROXY_TIMEOUT_MS",
    section: "gossip",
    field: "proxyTimeoutMs",
    kind: "int",
    default: 2000,
    min: 50,
    max: 60_000,
    doc: "bound on one proxied read (plus its wait_ms)",
  },
  // backup: snapshots to S3 and from peers.
  {
    env: "BACKUP",
    section: "backup",
    field: "enabled",
    kind: "flag",
    default: false,
    doc: "snapshot every owned, serving partition to S3 every BACKUP_INTERVAL_SEC",
  },
  {
    env: "BACKUP_INTERVAL_SEC",
    section: "backup",
    field: "intervalSec",
    kind: "int",
    default: 300,
    min: 1,
    max: 7 * 24 * 3600,
    doc: "seconds between two backups of a partition",
  },
  {
    env: "BACKUP_KEEP",
    section: "backup",
    field: "keep",
    kind: "int",
    default: 5,
    min: 1,
    max: 1000,
    doc: "snapshots kept per partition (older ones are deleted)",
  },
  {
    env: "BACKUP_TIMEOUT_MS",
    section: "backup",
    field: "timeoutMs",
    kind: "int",
    default: 600_000,
    min: 1000,
    max: 24 * 3600 * 1000,
    doc: "bound on one partition's backup or restore",
  },
  {
    env: "PEER_BOOTSTRAP",
    section: "backup",
    field: "peerBootstrap",
    kind: "flag",
    default: true,
    doc: "fetch a snapshot from a region peer when neither S3 nor the log can rebuild a partition",
  },
  {
    env: "BACKUP_FULL_INTERVAL_SEC",
    section: "backup",
    field: "fullIntervalSec",
    kind: "int",
    default: 86_400,
    min: 1,
    max: 30 * 86_400,
    doc:
      "with the log archive on: the most seconds between two full snapshots of a partition (the archive carries the changes in between)",
  },
  {
    env: "BACKUP_FULL_PERCENT",
    section: "backup",
    field: "fullPercent",
    kind: "int",
    default: 25,
    min: 1,
    max: 10_000,
    doc:
      "with the log archive on: also take a full snapshot once the segments archived since the last one reach this percentage of its size",
  },
  // archive: the log, in S3 as segments.
  {
    env: "ARCHIVE",
    section: "archive",
    field: "enabled",
    kind: "flag",
    default: true,
    doc: "with BACKUP=1, also archive every log message of the partitions backed up, as segments",
  },
  {
    env: "ARCHIVE_SEGMENT_SEC",
    section: "archive",
    field: "segmentSec",
    kind: "int",
    default: 10,
    min: 1,
    max: 3600,
    doc:
      "a segment holds the messages of one bucket of this many seconds of log time; it is uploaded about this long after its first message",
  },
  {
    env: "ARCHIVE_SEGMENT_BYTES",
    section: "archive",
    field: "segmentBytes",
    kind: "int",
    default: 8 * 1024 * 1024,
    min: 64 * 1024,
    max: 256 * 1024 * 1024,
    doc: "a segment closes before its messages pass this many bytes",
  },
  {
    env: "ARCHIVE_CHECK_SEC",
    section: "archive",
    field: "checkSec",
    kind: "int",
    default: 300,
    min: 1,
    max: 86_400,
    doc:
      "how often a node lists a partition's archive for holes (a deleted segment, a node that fell behind) and fills them from the log",
  },
  // s3: the object store of the snapshots.
  {
    env: "S3_RESTORE",
    section: "s3",
    field: "restore",
    kind: "flag",
    default: false,
    doc: "restore a partition from its latest S3 snapshot when it is ahead of the local file",
  },
  {
    env: "S3_RESTORE_TO",
    section: "s3",
    field: "restoreTo",
    kind: "text",
    default: null,
    doc:
      'start a read-only time-travel replica restored from S3 to this point: an RFC 3339 time, {"<partition>":offset} JSON, or latest',
  },
  {
    env: "S3_RESTORE_THREADS",
    section: "s3",
    field: "restoreThreads",
    kind: "int",
    default: 0,
    min: 0,
    max: 256,
    doc:
      "partitions a time-travel replica (and deno task restore --partition all) restores at once, each in a thread of its own; 0 = one per CPU the process may use",
  },
  {
    env: "S3_RESTORE_DECODE",
    section: "s3",
    field: "restoreDecode",
    kind: "choice",
    choices: RESTORE_DECODE,
    default: "auto",
    doc:
      "where a restore decodes and chains the archive's messages: thread = a thread of its own beside the one writing the file, inline = in that one, auto = a thread when the process may use two CPUs, one partition restores at a time and it replays 20,000 offsets or more",
  },
  {
    env: "S3_ENDPOINT",
    section: "s3",
    field: "endpoint",
    kind: "url",
    default: null,
    fallbacks: ["AWS_ENDPOINT_URL_S3"],
    defaultDoc: "`AWS_ENDPOINT_URL_S3` (Tigris), else AWS",
    doc: "S3 endpoint URL; unset = AWS's for the region",
  },
  {
    env: "S3_BUCKET",
    section: "s3",
    field: "bucket",
    kind: "text",
    default: null,
    fallbacks: ["BUCKET_NAME"],
    defaultDoc: "`BUCKET_NAME` (Tigris)",
    doc: "bucket of the snapshots; required with BACKUP=1 or S3_RESTORE=1",
  },
  {
    env: "S3_REGION",
    section: "s3",
    field: "region",
    kind: "text",
    default: "us-east-1",
    fallbacks: ["AWS_REGION"],
    defaultDoc: "`AWS_REGION`, else `us-east-1`",
    doc: "S3 signing region",
  },
  {
    env: "S3_FORCE_PATH_STYLE",
    section: "s3",
    field: "forcePathStyle",
    kind: "flag",
    default: {
      // An explicit S3_ENDPOINT is usually MinIO-like (path style); Tigris' AWS_ENDPOINT_URL_S3
      // is virtual-hosted.
      reads: ["S3_ENDPOINT"],
      derive: (c) => c.raw("S3_ENDPOINT") !== undefined,
    },
    defaultDoc: "1 when `S3_ENDPOINT` is set, else 0",
    doc: "path-style URLs (MinIO, versitygw) instead of virtual-hosted ones (AWS, Tigris)",
  },
  // lifecycle: stopping.
  {
    env: "TAKEOVER",
    section: "lifecycle",
    field: "takeover",
    kind: "flag",
    default: false,
    doc:
      "start as a hand-over restart: take DB_PATH and the ports over from the node running there, which drains and exits (also `--takeover`)",
  },
  {
    env: "SHUTDOWN_TIMEOUT_MS",
    section: "lifecycle",
    field: "shutdownTimeoutMs",
    kind: "int",
    default: 30_000,
    min: 100,
    max: 600_000,
    doc: "grace period of a SIGTERM/SIGINT stop before the process exits anyway",
  },
  {
    env: "HANDOFF_TIMEOUT_MS",
    section: "lifecycle",
    field: "handoffTimeoutMs",
    kind: "int",
    default: {
      derive: (c) => Math.min(15_000, Math.floor((c.value("SHUTDOWN_TIMEOUT_MS") as number) / 2)),
    },
    min: 0,
    max: 600_000,
    defaultDoc: "min(15000, `SHUTDOWN_TIMEOUT_MS` / 2)",
    doc: "longest a stopping cluster node keeps serving reads while peers take its partitions",
  },
  {
    env: "DRAIN_DELAY_MS",
    section: "lifecycle",
    field: "drainDelayMs",
    kind: "int",
    default: 0,
    min: 0,
    max: 60_000,
    doc:
      "after SIGTERM, keep accepting and serving (with /readyz at 503) for at least this long, so load balancers and peers route elsewhere before the node stops accepting",
  },
  // history: versions of changed records, and reads of the past.
  {
    env: "HISTORY_RETAIN_SEC",
    section: "history",
    field: "retainSec",
    kind: "int",
    default: 86_400,
    min: 0,
    max: 30 * 86_400,
    doc:
      "seconds of log time each partition keeps the versions of changed and deleted records (/records/history, as_of); 0 turns both off",
  },
  // watch: changefeeds and the change log they read.
  {
    env: "WATCH_RETAIN_SEC",
    section: "watch",
    field: "retainSec",
    kind: "int",
    default: 3600,
    min: 0,
    max: 30 * 86_400,
    doc:
      "seconds of log time each partition keeps its changes for watches to resume from (older cursors get event: reset); 0 turns watch off",
  },
  {
    env: "WATCHERS_MAX",
    section: "watch",
    field: "watchersMax",
    kind: "int",
    default: 4096,
    min: 1,
    max: 1_000_000,
    doc: "watch streams open at once on this node (503 too_many_watchers above)",
  },
  {
    env: "WATCH_BUFFER_BYTES",
    section: "watch",
    field: "bufferBytes",
    kind: "int",
    default: 256 * KiB,
    min: 4 * KiB,
    max: 64 * MiB,
    doc:
      "bytes queued for one watcher that reads too slowly before it gets event: overflow and is closed (it resumes from its last id)",
  },
  {
    env: "WATCH_HEARTBEAT_MS",
    section: "watch",
    field: "heartbeatMs",
    kind: "int",
    default: 15_000,
    min: 100,
    max: 300_000,
    doc: "an idle watch stream gets a comment line this often, so proxies keep it open",
  },
];

/** Fields that no variable sets: computed by `loadConfig()` from other settings. */
export const DERIVED_FIELDS: Readonly<Record<string, string>> = {
  "log.kind":
    "archive when S3_RESTORE_TO is set, else embedded when KAFKA_SEEDS is unset, else kafka",
  "gossip.enabled": "GOSSIP_PEERS or GOSSIP_DNS_NAME is set, and S3_RESTORE_TO is not",
};

/** Whether a default is computed at load time. */
export function isDerived(value: SettingDefault): value is DerivedDefault {
  return typeof value === "object" && value !== null;
}

/** Every variable the config reads: the settings, their fallbacks, and what defaults read. */
export function variablesRead(settings: readonly Setting[] = SETTINGS): Set<string> {
  const names = new Set<string>();
  for (const s of settings) {
    names.add(s.env);
    for (const f of s.fallbacks ?? []) names.add(f);
    if (isDerived(s.default)) { for (const r of s.default.reads ?? []) names.add(r); }
  }
  return names;
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "node-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
