/**
 * What every replica of a namespace must share, apart from what each process may set for itself
 * (TigerBeetle's `ConfigCluster` vs `ConfigProcess`).
 *
 * Two kinds of shared values:
 *
 * - **Constants** (this module): formats and limits compiled into the code. Every replica reads
 *   every other replica's log messages and snapshot files, so a replica that disagreed on one of
 *   them would accept what another refuses, or store a key another cannot read. Changing one is
 *   a format change, not a setting.
 * - **Settings every replica must agree on**: the `cluster` section of the config,
 *   {@linkcode ConfigCluster}. They are read from the environment like the others, but a node
 *   whose value differs from its cluster's refuses to start (`PARTITIONS`: the partition-count
 *   guard of both logs) or cannot talk to its peers (`NAMESPACE`, `CLUSTER_SECRET`).
 *
 * Shared formats that live with the code that owns them: the partitioner (`keys/partitioner.ts`,
 * Kafka's murmur2), the hash chain (`apply/apply.ts`), topic and group names (`log/`), and the
 * gossip datagram (`cluster/message.ts`, whose wire types import nothing).
 *
 * The relations between these constants, and between them and the bounds of the settings, are
 * checked at startup by `assertClusterRelations()` in `config.ts`, called by `loadConfig()`.
 */

/** Settings every replica of a namespace must agree on (the `cluster` section of the config). */
export interface ConfigCluster {
  /** `NAMESPACE`: prefixes topic names, consumer groups, the data folder and S3 keys. */
  readonly namespace: string;
  /**
   * `PARTITIONS`: log partitions (= LMDB files). Fixed for the life of a namespace: both logs
   * refuse to start with a count other than the one the namespace was created with.
   */
  readonly partitions: number;
  /**
   * `CLUSTER_SECRET`: bearer secret of `/internal/*` and the gossip HMAC key; the nodes of a
   * region must share it to gossip and proxy. Null = internal port open, no cluster.
   */
  readonly secret: string | null;
}

/** Largest partition key, UTF-8 bytes: every replica must accept the same keys. */
export const PK_BYTES_MAX = 512;
/** Largest sort key, UTF-8 bytes. */
export const SK_BYTES_MAX = 1024;
/** The record key's prefix: the pk's UTF-8 length as a big-endian u16 (`keys/record_key.ts`). */
export const RECORD_KEY_PREFIX_BYTES = 2;
/** Largest encoded record key: `u16be(len(pk)) ‖ utf8(pk) ‖ utf8(sk)`. */
export const RECORD_KEY_BYTES_MAX = RECORD_KEY_PREFIX_BYTES + PK_BYTES_MAX + SK_BYTES_MAX;
/**
 * LMDB's key size limit as lmdb-js builds it (its `DEFAULT_MAX_KEY_SIZE`, the limit for 4 KiB
 * pages). A partition file is copied between replicas (snapshots), so its keys must fit on every
 * one; `PartitionStore` also checks the limit of the library it runs on.
 */
export const LMDB_KEY_BYTES_MAX = 1978;

/** Version of the log message format written by this code (`{"v":1,…}`). */
export const MESSAGE_VERSION = 1;
/** Most ops in one log message: a format bound, the same for every replica. */
export const MESSAGE_OPS_MAX = 100_000;
/** Longest condition in a log message, UTF-16 units: a format bound, the same for every replica. */
export const MESSAGE_CONDITION_CHARS_MAX = 65_536;
/**
 * Room `DATA_BYTES_MAX` must leave in `MESSAGE_BYTES_MAX` for one record's keys and the message's
 * framing, so that a record of the largest accepted `data` still fits in one message.
 */
export const MESSAGE_KEYS_AND_FRAMING_BYTES = 4 * 1024;
/**
 * Upper bound of a one-op message's JSON without its pk, sk, data and condition:
 * `{"v":1,"atomic":false,"ops":[{"op":"delete","pk":"","sk":"","data":…,"if":""}]}` and
 * the quotes around them (held by a test of `encodeMutation`).
 */
export const MESSAGE_ENVELOPE_BYTES_MAX = 128;

/** Version of the partition file layout, stored in each file's `meta`. */
export const STORE_FORMAT = 1;
/** The format byte of a record value in a partition file (a record without expiry). */
export const RECORD_FORMAT = 1;
/** The format byte of a record value with an expiry instant (`ttl_ms` / `expires_at`). */
export const RECORD_FORMAT_EXPIRING = 2;
/** Largest `ttl_ms` of a put: ten years. A format bound, the same for every replica. */
export const TTL_MS_MAX = 10 * 365 * 86_400_000;
/** Largest `expires_at` (unix ms): JavaScript's last representable date. */
export const EXPIRES_AT_MAX = 8_640_000_000_000_000;
