/**
 * The one validated, frozen configuration of a node, read from environment variables through
 * the settings table (`settings.ts`), in sections named after the components that consume them.
 *
 * Every limit the node enforces is a row of that table, with its default and its bounds, so that
 * `docs/configuration.md` can list them all and a bad value stops the node at boot with a message
 * naming the variable and the bound. Checks that relate two settings are explicit code below.
 */
import {
  type ConfigCluster,
  LMDB_KEY_BYTES_MAX,
  MESSAGE_CONDITION_CHARS_MAX,
  MESSAGE_ENVELOPE_BYTES_MAX,
  MESSAGE_KEYS_AND_FRAMING_BYTES,
  MESSAGE_OPS_MAX,
  PK_BYTES_MAX,
  RECORD_KEY_BYTES_MAX,
  RECORD_KEY_PREFIX_BYTES,
  SK_BYTES_MAX,
} from "./cluster.ts";
import {
  isDerived,
  LOG_LEVELS,
  RESTORE_DECODE,
  SASL_MECHANISMS,
  type Setting,
  SETTINGS,
} from "./settings.ts";

/**
 * Which implementation of the shared log a node uses; `archive` is a time-travel replica's
 * (`S3_RESTORE_TO`): its partitions restored from S3 to a past point, and no writes.
 */
export type LogKind = "embedded" | "kafka" | "archive";

/** Who this process is and where it listens: may differ between the nodes of a cluster. */
export interface ConfigNode {
  /** `REGION`: gossip and proxying stay within a region. */
  readonly region: string;
  /** `REPLICA_GROUP`: each replica group of a region holds a full copy of the data. */
  readonly replicaGroup: string;
  /** `INSTANCE_ID`: this node's id, unique within the cluster. */
  readonly instanceId: string;
  /** `LISTEN_HOST`: address the HTTP servers and the gossip socket bind to. */
  readonly listenHost: string;
  /** `LOG_LEVEL`: log lines below it are not written (every thread of the process). */
  readonly logLevel: (typeof LOG_LEVELS)[number];
}

/** The partition files (node). */
export interface ConfigStore {
  /** `DB_PATH`: root folder of the LMDB files. */
  readonly dbPath: string;
  /** `LMDB_MAP_BYTES`: largest LMDB map per partition, bytes. */
  readonly lmdbMapBytes: number;
  /** `VERIFY_TIMEOUT_MS`: time bound of one file verification child (still running: damaged). */
  readonly verifyTimeoutMs: number;
  /** `VERIFY_CONCURRENCY`: verification children running at once. */
  readonly verifyConcurrency: number;
  /** `UNOWNED_RETAIN_SEC`: seconds a revoked partition's file stays on disk for reuse. */
  readonly unownedRetainSec: number;
}

/** Both log implementations. */
export interface ConfigLog {
  /** Derived: embedded when `KAFKA_SEEDS` is unset. */
  readonly kind: LogKind;
  /** `LOG_WRITE_TIMEOUT_MS`: how long a write may wait for the log (503 `log_unavailable`). */
  readonly writeTimeoutMs: number;
  /** `LOG_QUEUE_MAX`: appends waiting for the log at once (503 `log_overloaded` above). */
  readonly queueMax: number;
  /** `APPLY_BATCH_MAX`: log messages delivered and applied in one LMDB write transaction. */
  readonly applyBatchMax: number;
  /** `MESSAGE_BYTES_MAX`: largest encoded log message (one partition's share of a write). */
  readonly messageBytesMax: number;
  /** `EMBEDDED_LOG_MAP_BYTES`: LMDB map of the embedded log, which keeps every message. */
  readonly embeddedLogMapBytes: number;
}

/** The Kafka log. */
export interface ConfigKafka {
  /** `KAFKA_SEEDS`: bootstrap brokers, `host:port`. Empty in embedded mode. */
  readonly seeds: readonly string[];
  /** `KAFKA_CLIENT_ID`: client id prefix. */
  readonly clientId: string;
  /** `KAFKA_TLS`: connect to the brokers over TLS (hosted Kafka services need it). */
  readonly tls: boolean;
  /** `KAFKA_TLS_CA_FILE`: PEM file of the brokers' CA; null = the system's roots. */
  readonly tlsCaFile: string | null;
  /** `KAFKA_SASL_MECHANISM`: null = no SASL; when set, username and password are set too. */
  readonly saslMechanism: (typeof SASL_MECHANISMS)[number] | null;
  /** `KAFKA_SASL_USERNAME`. */
  readonly saslUsername: string | null;
  /** `KAFKA_SASL_PASSWORD` (a secret). */
  readonly saslPassword: string | null;
  /** `KAFKA_REPLICATION_FACTOR`: of topics this node creates; -1 = the broker's default. */
  readonly replicationFactor: number;
  /** `KAFKA_RETENTION_MS`: of a mutations topic this node creates; null = the broker's default. */
  readonly retentionMs: number | null;
  /** `KAFKA_SESSION_TIMEOUT_MS`: how fast a dead node's partitions move. */
  readonly sessionTimeoutMs: number;
}

/** The public and internal HTTP servers. */
export interface ConfigApi {
  /** `API_PORT`: public API port. */
  readonly port: number;
  /** `INTERNAL_PORT`: metrics, status, proxy targets. */
  readonly internalPort: number;
  /** `TLS_CERT_FILE`: PEM certificate of the public port; TLS is on when cert and key are set. */
  readonly tlsCertFile: string | null;
  /** `TLS_KEY_FILE`: PEM private key. */
  readonly tlsKeyFile: string | null;
  /** `IDLE_TIMEOUT_MS`: close a public connection idle this long; 0 = never. */
  readonly idleTimeoutMs: number;
  /** `CONNECTIONS_MAX`: public connections kept; above it the longest-idle go. */
  readonly connectionsMax: number;
  /**
   * `SERVE_THREADS`: threads serving the public port (0 = one per CPU the process may use; 1 = the
   * main thread alone, which also applies).
   */
  readonly serveThreads: number;
  /** `API_TOKENS_READ`: bearer tokens that may read. Both lists empty = open API. */
  readonly tokensRead: readonly string[];
  /** `API_TOKENS_WRITE`: bearer tokens that may write (and read). */
  readonly tokensWrite: readonly string[];
}

/** What one request may ask (api, node). */
export interface ConfigLimits {
  /** `BODY_BYTES_MAX`: largest request body (413 `body_too_large` above). */
  readonly bodyBytesMax: number;
  /** `RECORDS_PER_REQUEST_MAX`: records or batch ops per request (400 `too_many_records`). */
  readonly recordsPerRequestMax: number;
  /** `DATA_BYTES_MAX`: largest `data`, bytes of its JSON (413 `data_too_large` above). */
  readonly dataBytesMax: number;
  /** `CONDITION_BYTES_MAX`: longest `if`, UTF-8 bytes (400 `condition_too_long` above). */
  readonly conditionBytesMax: number;
  /** `LIST_LIMIT_MAX`: largest `limit` of a list. */
  readonly listLimitMax: number;
  /** `LIST_SCAN_MAX`: rows a list examines per request, matching or not. */
  readonly listScanMax: number;
  /** `WAIT_MS_MAX`: largest `wait_ms` of get and list. */
  readonly waitMsMax: number;
  /** `WAITERS_MAX`: reads parked on `after` at once (503 `too_many_waiters` above). */
  readonly waitersMax: number;
  /** `CONDITION_CACHE_MAX`: compiled conditions kept. */
  readonly conditionCacheMax: number;
  /** `CONDITION_CACHE_CHARS_MAX`: expression text (UTF-16 units) the cache keeps. */
  readonly conditionCacheCharsMax: number;
}

/** The region cluster: gossip and read proxying. */
export interface ConfigGossip {
  /** Derived: this node gossips and proxies (peers or a DNS name are configured). */
  readonly enabled: boolean;
  /** `GOSSIP_PORT`: UDP port. */
  readonly port: number;
  /** `GOSSIP_PEERS`: static targets, `host:port`. */
  readonly peers: readonly string[];
  /** `GOSSIP_DNS_NAME`: name whose AAAA records are this region's nodes. */
  readonly dnsName: string | null;
  /** `GOSSIP_DNS_SERVER`: resolver `host:port`; null = the system's. */
  readonly dnsServer: string | null;
  /** `GOSSIP_DNS_INTERVAL_MS`: how often the DNS name is re-resolved. */
  readonly dnsIntervalMs: number;
  /** `GOSSIP_BROADCAST_MS`: silence for 3 of them stops routing, 10 forgets the member. */
  readonly broadcastMs: number;
  /** `ADVERTISE_ADDR`: host peers use to reach this node's internal port. */
  readonly advertiseAddr: string;
  /** `PROXY_TIMEOUT_MS`: bound on one proxied read (plus its `wait_ms`). */
  readonly proxyTimeoutMs: number;
}

/** Partition snapshots: S3 backups and peer bootstrap. */
export interface ConfigBackup {
  /** `BACKUP`: write partition snapshots to S3 every `intervalSec`. */
  readonly enabled: boolean;
  /** `BACKUP_INTERVAL_SEC`: seconds between two backups of a partition. */
  readonly intervalSec: number;
  /** `BACKUP_KEEP`: snapshots kept per partition. */
  readonly keep: number;
  /** `BACKUP_TIMEOUT_MS`: bound on one partition's backup or restore. */
  readonly timeoutMs: number;
  /** `PEER_BOOTSTRAP`: fetch a snapshot from a region peer when S3 and the log cannot help. */
  readonly peerBootstrap: boolean;
  /**
   * `BACKUP_FULL_INTERVAL_SEC`: with the log archive on, the most seconds between two full
   * snapshots of a partition (the archive carries what happens in between).
   */
  readonly fullIntervalSec: number;
  /**
   * `BACKUP_FULL_PERCENT`: with the log archive on, a full snapshot also once the segments
   * archived since the last one reach this percentage of its size.
   */
  readonly fullPercent: number;
}

/** The log archive: every message of the partitions a node backs up, in S3 as segments. */
export interface ConfigArchive {
  /** `ARCHIVE`: archive the log while `BACKUP=1`. */
  readonly enabled: boolean;
  /** `ARCHIVE_SEGMENT_SEC`: a segment holds one bucket of this many seconds of log time. */
  readonly segmentSec: number;
  /** `ARCHIVE_SEGMENT_BYTES`: a segment closes before its messages pass this many bytes. */
  readonly segmentBytes: number;
  /** `ARCHIVE_CHECK_SEC`: how often the archive is listed for holes to fill. */
  readonly checkSec: number;
}

/** The object store of the snapshots. */
export interface ConfigS3 {
  /** `S3_RESTORE`: restore from the latest snapshot when it is ahead of the local file. */
  readonly restore: boolean;
  /**
   * `S3_RESTORE_TO`: a time-travel replica restores every partition to this point (an RFC 3339
   * time, `{"<partition>":offset}` JSON, or `latest`) and serves it read-only; null: a normal node.
   */
  readonly restoreTo: string | null;
  /**
   * `S3_RESTORE_THREADS`: partitions restored to a point at once, each in a thread of its own
   * (0: one per CPU the process may use).
   */
  readonly restoreThreads: number;
  /** `S3_RESTORE_DECODE`: where a restore decodes the archive's messages (`ReplayOptions.decode`). */
  readonly restoreDecode: (typeof RESTORE_DECODE)[number];
  /** `S3_ENDPOINT`: null = AWS's default for the region. */
  readonly endpoint: string | null;
  /** `S3_BUCKET`: required with `backup.enabled` or `restore`. */
  readonly bucket: string | null;
  /** `S3_REGION`: signing region. */
  readonly region: string;
  /** `S3_FORCE_PATH_STYLE`: path-style URLs (MinIO, versitygw), not virtual-hosted ones. */
  readonly forcePathStyle: boolean;
}

/** Stopping. */
export interface ConfigLifecycle {
  /**
   * `TAKEOVER` (or `--takeover`): a hand-over restart; the node running on this `DB_PATH` drains
   * and hands its folder and ports over.
   */
  readonly takeover: boolean;
  /** `SHUTDOWN_TIMEOUT_MS`: grace period of a SIGTERM/SIGINT stop. */
  readonly shutdownTimeoutMs: number;
  /** `HANDOFF_TIMEOUT_MS`: how long a stopping cluster node serves reads while peers take over. */
  readonly handoffTimeoutMs: number;
  /**
   * `DRAIN_DELAY_MS`: after SIGTERM, the least time the node keeps accepting (readiness 503), so
   * load balancers (Fly's proxy) and peers move away first.
   */
  readonly drainDelayMs: number;
}

/** Watches (changefeeds) and the change log they read. */
export interface ConfigWatch {
  /** `WATCH_RETAIN_SEC`: seconds of log time each partition keeps its changes; 0 turns watch off. */
  readonly retainSec: number;
  /** `WATCHERS_MAX`: watch streams open at once on this node (503 `too_many_watchers` above). */
  readonly watchersMax: number;
  /** `WATCH_BUFFER_BYTES`: bytes queued for one watcher before it gets `overflow` and is closed. */
  readonly bufferBytes: number;
  /** `WATCH_HEARTBEAT_MS`: an idle stream gets a comment line this often. */
  readonly heartbeatMs: number;
}

/** Version history and reads of the past (`as_of`). */
export interface ConfigHistory {
  /**
   * `HISTORY_RETAIN_SEC`: seconds of log time each partition keeps the versions of changed and
   * deleted records; 0 turns `/records/history` and `as_of` off.
   */
  readonly retainSec: number;
}

/**
 * The configuration of one node, in sections. Built by {@linkcode loadConfig}; never mutated.
 * `cluster` holds what every replica must agree on; the rest may differ per process.
 */
export interface Config {
  readonly cluster: ConfigCluster;
  readonly node: ConfigNode;
  readonly store: ConfigStore;
  readonly log: ConfigLog;
  readonly kafka: ConfigKafka;
  readonly api: ConfigApi;
  readonly limits: ConfigLimits;
  readonly gossip: ConfigGossip;
  readonly backup: ConfigBackup;
  readonly archive: ConfigArchive;
  readonly s3: ConfigS3;
  readonly lifecycle: ConfigLifecycle;
  readonly watch: ConfigWatch;
  readonly history: ConfigHistory;
}

/**
 * How long each partition file keeps its change log, ms of log time: one change log serves
 * watches and history, so it is kept as long as the longer of the two needs.
 */
export function changesRetainMs(config: Pick<Config, "watch" | "history">): number {
  return Math.max(config.watch.retainSec, config.history.retainSec) * 1000;
}

/** Where a time-travel replica restores its partitions to (`S3_RESTORE_TO`). */
export type RestoreTarget =
  | { readonly kind: "latest" }
  | { readonly kind: "time"; readonly time: number }
  /** Partitions not listed restore to the end of their archive. */
  | { readonly kind: "offsets"; readonly offsets: ReadonlyMap<number, number> };

const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses `S3_RESTORE_TO`; throws a {@linkcode ConfigError} naming what is wrong. */
export function parseRestoreTo(text: string, partitions: number): RestoreTarget {
  const fail = (why: string): never => {
    throw new ConfigError("S3_RESTORE_TO", why);
  };
  const value = text.trim();
  if (value === "latest") return { kind: "latest" };
  if (value.startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return fail(
        `must be JSON {"<partition>": offset}, got ${JSON.stringify(value.slice(0, 80))}`,
      );
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return fail(`must be a JSON object {"<partition>": offset}`);
    }
    const offsets = new Map<number, number>();
    for (const [key, offset] of Object.entries(parsed)) {
      const partition = Number(key);
      if (!/^\d+$/.test(key) || partition >= partitions) {
        fail(`names partition "${key}", not one of 0–${partitions - 1}`);
      }
      if (!Number.isSafeInteger(offset) || (offset as number) < -1) {
        fail(`gives partition ${key} offset ${JSON.stringify(offset)}, not an integer >= -1`);
      }
      offsets.set(partition, offset as number);
    }
    return { kind: "offsets", offsets };
  }
  const time = Date.parse(value);
  if (!RFC_3339.test(value) || Number.isNaN(time)) {
    fail(
      `must be an RFC 3339 time (2026-12-01T09:30:00Z), {"<partition>": offset} JSON or latest, got ${
        JSON.stringify(value.slice(0, 80))
      }`,
    );
  }
  return { kind: "time", time };
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

type Env = Readonly<Record<string, string | undefined>>;
type Value = number | string | boolean | null | readonly string[];

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

function int(variable: string, value: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(value)) {
    throw new ConfigError(variable, `must be an integer in [${min}, ${max}], got "${value}"`);
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(variable, `must be an integer in [${min}, ${max}], got ${value}`);
  }
  return n;
}

function hostPort(variable: string, entry: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(entry);
  if (match === null || Number(match[2]) > 65535) {
    throw new ConfigError(variable, `entries must be host:port with port <= 65535, got "${entry}"`);
  }
  return entry;
}

function list(value: string): readonly string[] {
  // Frozen like the config that holds it: a node's settings never change after boot.
  return Object.freeze(value.split(",").map((s) => s.trim()).filter((s) => s !== ""));
}

/** `value`, set in `variable`, read as `setting` says; throws a ConfigError naming `variable`. */
function parse(setting: Setting, variable: string, value: string): Value {
  switch (setting.kind) {
    case "int":
    case "port":
      return int(variable, value, setting.min ?? 0, setting.max ?? Number.MAX_SAFE_INTEGER);
    case "flag":
      if (value === "1" || value === "true") return true;
      if (value === "0" || value === "false") return false;
      throw new ConfigError(variable, `must be 1, 0, true or false, got "${value}"`);
    case "name":
      // Names become topic names, consumer group ids and folder names: a safe alphabet.
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
        throw new ConfigError(variable, `must match [A-Za-z0-9_-]{1,64}, got "${value}"`);
      }
      return value;
    case "text":
      if (setting.min !== undefined && value.length < setting.min) {
        throw new ConfigError(variable, `must be at least ${setting.min} characters`);
      }
      return value;
    case "list":
      return list(value);
    case "hostPort":
      return hostPort(variable, value);
    case "hostPorts":
      return Object.freeze(list(value).map((entry) => hostPort(variable, entry)));
    case "url":
      if (!/^https?:\/\/[^\s/]+(\/.*)?$/.test(value)) {
        throw new ConfigError(variable, `must be an http(s) URL, got "${value}"`);
      }
      return value;
    case "choice": {
      const choice = value.toLowerCase();
      const choices = setting.choices ?? [];
      if (!choices.includes(choice)) {
        throw new ConfigError(variable, `must be one of ${choices.join(", ")}, got "${choice}"`);
      }
      return choice;
    }
  }
}

/**
 * Reads every row of `settings` from `env` into its section: the variable, else its fallbacks in
 * order, else the default. Derived defaults are computed after every other row is read.
 */
function readSettings(
  env: Env,
  settings: readonly Setting[],
): Record<string, Record<string, Value>> {
  const sections: Record<string, Record<string, Value>> = {};
  const values = new Map<string, Value>();
  for (const derivedPass of [false, true]) {
    for (const setting of settings) {
      if (isDerived(setting.default) !== derivedPass) continue;
      let value: Value | undefined;
      for (const variable of [setting.env, ...(setting.fallbacks ?? [])]) {
        const text = raw(env, variable);
        if (text === undefined) continue;
        // The error names the variable that holds the bad value, fallback or not.
        value = parse(setting, variable, text);
        break;
      }
      value ??= defaultOf(setting, env, values);
      values.set(setting.env, value);
      (sections[setting.section] ??= {})[setting.field] = value;
    }
  }
  return sections;
}

function defaultOf(setting: Setting, env: Env, values: ReadonlyMap<string, Value>): Value {
  const fallback = setting.default;
  if (!isDerived(fallback)) {
    if (fallback === null && (setting.kind === "list" || setting.kind === "hostPorts")) {
      return Object.freeze([]);
    }
    return fallback;
  }
  const reads = fallback.reads ?? [];
  return fallback.derive({
    value(variable) {
      if (!values.has(variable)) {
        throw new Error(`${setting.env}'s default reads ${variable}, not read before it`);
      }
      return values.get(variable);
    },
    raw(variable) {
      if (!reads.includes(variable)) {
        throw new Error(`${setting.env}'s default reads ${variable}, not in its reads`);
      }
      return raw(env, variable);
    },
  });
}

/**
 * Reads and validates the configuration from `env` (normally `Deno.env.toObject()`).
 * Throws {@linkcode ConfigError} naming the variable and its bound on any bad value.
 */
export function loadConfig(env: Env): Config {
  assertClusterRelations();
  const read = readSettings(env, SETTINGS) as unknown as {
    [S in keyof Config]: { -readonly [F in keyof Config[S]]: Config[S][F] };
  };
  read.log.kind = read.s3.restoreTo !== null
    ? "archive"
    : read.kafka.seeds.length > 0
    ? "kafka"
    : "embedded";
  // A time-travel replica serves the past: no peer may route a read of the present to it.
  read.gossip.enabled = read.s3.restoreTo === null &&
    (read.gossip.peers.length > 0 || read.gossip.dnsName !== null);
  const config: Config = read;
  checkRelations(config);
  for (const section of Object.values(config)) Object.freeze(section);
  return Object.freeze(config);
}

/** The checks that relate two or more settings; each names the variable to change. */
function checkRelations(
  { cluster, kafka, api, limits, log, gossip, backup, s3, lifecycle }: Config,
) {
  if ((api.tlsCertFile === null) !== (api.tlsKeyFile === null)) {
    throw new ConfigError(
      api.tlsCertFile === null ? "TLS_CERT_FILE" : "TLS_KEY_FILE",
      "must be set together with " + (api.tlsCertFile === null ? "TLS_KEY_FILE" : "TLS_CERT_FILE"),
    );
  }
  if (limits.dataBytesMax + MESSAGE_KEYS_AND_FRAMING_BYTES > log.messageBytesMax) {
    throw new ConfigError(
      "DATA_BYTES_MAX",
      `must leave ${
        MESSAGE_KEYS_AND_FRAMING_BYTES / 1024
      } KiB of MESSAGE_BYTES_MAX (${log.messageBytesMax}) for keys and framing, got ${limits.dataBytesMax}`,
    );
  }
  if (limits.dataBytesMax > limits.bodyBytesMax) {
    throw new ConfigError(
      "DATA_BYTES_MAX",
      `must be at most BODY_BYTES_MAX (${limits.bodyBytesMax}), got ${limits.dataBytesMax}`,
    );
  }
  if ((backup.enabled || s3.restore || s3.restoreTo !== null) && s3.bucket === null) {
    throw new ConfigError(
      "S3_BUCKET",
      "must be set (or BUCKET_NAME) when BACKUP=1, S3_RESTORE=1 or S3_RESTORE_TO is set",
    );
  }
  if (s3.restoreTo !== null) {
    parseRestoreTo(s3.restoreTo, cluster.partitions);
    if (backup.enabled) {
      throw new ConfigError(
        "BACKUP",
        "must be 0 on a time-travel replica (S3_RESTORE_TO): it would back up the past as new",
      );
    }
  }
  if (gossip.enabled && cluster.secret === null) {
    throw new ConfigError(
      "CLUSTER_SECRET",
      "must be set when GOSSIP_PEERS or GOSSIP_DNS_NAME (or FLY_REGION + FLY_APP_NAME) enable the cluster",
    );
  }
  if (kafka.saslMechanism !== null) {
    if (kafka.saslUsername === null) {
      throw new ConfigError("KAFKA_SASL_USERNAME", "must be set with KAFKA_SASL_MECHANISM");
    }
    if (kafka.saslPassword === null) {
      throw new ConfigError("KAFKA_SASL_PASSWORD", "must be set with KAFKA_SASL_MECHANISM");
    }
  }
  if (kafka.retentionMs !== null && kafka.retentionMs >= 0 && kafka.retentionMs < 1000) {
    throw new ConfigError(
      "KAFKA_RETENTION_MS",
      `must be -1 (keep forever) or at least 1000, got ${kafka.retentionMs}`,
    );
  }
  if (kafka.replicationFactor === 0) {
    throw new ConfigError(
      "KAFKA_REPLICATION_FACTOR",
      "must be -1 (broker default) or in [1, 32], got 0",
    );
  }
  if (lifecycle.handoffTimeoutMs + 1000 > lifecycle.shutdownTimeoutMs) {
    throw new ConfigError(
      "HANDOFF_TIMEOUT_MS",
      `must leave 1000 ms of SHUTDOWN_TIMEOUT_MS (${lifecycle.shutdownTimeoutMs}) to drain and close, got ${lifecycle.handoffTimeoutMs}`,
    );
  }
  if (
    Math.max(lifecycle.handoffTimeoutMs, lifecycle.drainDelayMs) + 1000 >
      lifecycle.shutdownTimeoutMs
  ) {
    throw new ConfigError(
      "DRAIN_DELAY_MS",
      `must leave 1000 ms of SHUTDOWN_TIMEOUT_MS (${lifecycle.shutdownTimeoutMs}) to drain and close, got ${lifecycle.drainDelayMs}`,
    );
  }
  if (limits.listScanMax < limits.listLimitMax) {
    throw new ConfigError(
      "LIST_SCAN_MAX",
      `must be at least LIST_LIMIT_MAX (${limits.listLimitMax}), got ${limits.listScanMax}`,
    );
  }
  if (limits.conditionCacheCharsMax < limits.conditionBytesMax) {
    throw new ConfigError(
      "CONDITION_CACHE_CHARS_MAX",
      `must be at least CONDITION_BYTES_MAX (${limits.conditionBytesMax}), got ${limits.conditionCacheCharsMax}`,
    );
  }
  // The idle sweep sees bytes, not requests: a request waiting for `wait_ms` or the log is idle.
  const busyMs = Math.max(limits.waitMsMax, log.writeTimeoutMs);
  if (api.idleTimeoutMs !== 0 && api.idleTimeoutMs <= busyMs) {
    throw new ConfigError(
      "IDLE_TIMEOUT_MS",
      `must be 0 (never) or longer than WAIT_MS_MAX and LOG_WRITE_TIMEOUT_MS (${busyMs}), got ${api.idleTimeoutMs}`,
    );
  }
  if (api.port !== 0 && api.port === api.internalPort) {
    throw new ConfigError("INTERNAL_PORT", `must differ from API_PORT (${api.port})`);
  }
}

/** The values {@linkcode clusterRelationProblems} checks: the constants of `cluster.ts`. */
export interface ClusterConstants {
  readonly pkBytesMax: number;
  readonly skBytesMax: number;
  readonly recordKeyPrefixBytes: number;
  readonly recordKeyBytesMax: number;
  readonly lmdbKeyBytesMax: number;
  readonly messageOpsMax: number;
  readonly messageConditionCharsMax: number;
  readonly messageKeysAndFramingBytes: number;
  readonly messageEnvelopeBytesMax: number;
}

/** The constants this build runs with. */
export const CLUSTER_CONSTANTS: ClusterConstants = Object.freeze({
  pkBytesMax: PK_BYTES_MAX,
  skBytesMax: SK_BYTES_MAX,
  recordKeyPrefixBytes: RECORD_KEY_PREFIX_BYTES,
  recordKeyBytesMax: RECORD_KEY_BYTES_MAX,
  lmdbKeyBytesMax: LMDB_KEY_BYTES_MAX,
  messageOpsMax: MESSAGE_OPS_MAX,
  messageConditionCharsMax: MESSAGE_CONDITION_CHARS_MAX,
  messageKeysAndFramingBytes: MESSAGE_KEYS_AND_FRAMING_BYTES,
  messageEnvelopeBytesMax: MESSAGE_ENVELOPE_BYTES_MAX,
});

function bound(settings: readonly Setting[], env: string, which: "min" | "max"): number {
  const value = settings.find((s) => s.env === env)?.[which];
  if (value === undefined) throw new Error(`the settings table has no ${which} for ${env}`);
  return value;
}

/**
 * The relations between the cluster-wide constants, and between them and the bounds of the
 * settings, that do not hold in `c` with `settings`: empty when all hold. Each relation says
 * what would break if it did not.
 */
export function clusterRelationProblems(
  c: ClusterConstants = CLUSTER_CONSTANTS,
  settings: readonly Setting[] = SETTINGS,
): string[] {
  const problems: string[] = [];
  const need = (holds: boolean, problem: string) => {
    if (!holds) problems.push(problem);
  };
  need(
    c.recordKeyBytesMax === c.recordKeyPrefixBytes + c.pkBytesMax + c.skBytesMax,
    "the record key is a u16 pk length, the pk and the sk",
  );
  need(c.pkBytesMax <= 0xffff, "the pk's length must fit the record key's u16 prefix");
  need(
    c.recordKeyBytesMax <= c.lmdbKeyBytesMax,
    `a record key of the largest pk and sk (${c.recordKeyBytesMax} bytes) must fit LMDB's key limit (${c.lmdbKeyBytesMax})`,
  );
  need(
    c.pkBytesMax + c.skBytesMax + c.messageEnvelopeBytesMax <= c.messageKeysAndFramingBytes,
    "the largest pk and sk and a message's framing must fit the room DATA_BYTES_MAX leaves",
  );
  need(
    c.messageKeysAndFramingBytes <= bound(settings, "MESSAGE_BYTES_MAX", "min"),
    "keys and framing must fit the smallest MESSAGE_BYTES_MAX",
  );
  need(
    bound(settings, "RECORDS_PER_REQUEST_MAX", "max") <= c.messageOpsMax,
    "the records of the largest request must fit one log message's ops",
  );
  // The API counts UTF-8 bytes, decoding counts UTF-16 units: a unit is at least one byte.
  need(
    bound(settings, "CONDITION_BYTES_MAX", "max") <= c.messageConditionCharsMax,
    "the longest condition the API accepts must not make a log message poison",
  );
  return problems;
}

/**
 * Asserts that the cluster-wide constants and the settings' bounds agree (see
 * {@linkcode clusterRelationProblems}). A failure is a build error: it throws before any setting
 * is read.
 */
export function assertClusterRelations(): void {
  const problems = clusterRelationProblems();
  if (problems.length > 0) {
    throw new Error(`Cannot start: the cluster constants contradict: ${problems.join("; ")}`);
  }
}

/**
 * The config as the `starting` log line shows it: every setting, in sections, with the secrets
 * of the settings table hidden (a secret text as `redacted`, a secret list as its length).
 */
export function redactedConfig(config: Config): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [section, fields] of Object.entries(config)) out[section] = { ...fields };
  for (const setting of SETTINGS) {
    if (setting.secret !== true) continue;
    const shown = out[setting.section]!;
    const value = shown[setting.field];
    shown[setting.field] = Array.isArray(value) ? value.length : value === null ? null : "redacted";
  }
  return out;
}
