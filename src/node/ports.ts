/**
 * The ports a node needs from the outside, implemented by outer components (DESIGN §2: `log`
 * depends on `node`, never the reverse).
 *
 * The shared write-ahead log seen by a node: append mutations, and consume the partitions the log
 * assigns to this node. Implemented by the embedded LMDB log and by Kafka.
 */
import type { LogRecord } from "../apply/mod.ts";

/** One message to append. */
export interface AppendRequest {
  /** Target partition (from the shared partitioner). */
  readonly partition: number;
  /** Message key (the first op's pk). */
  readonly key: string;
  /** Encoded mutation. */
  readonly value: Uint8Array;
}

/** Receives what the log assigns and delivers. Implemented by the node. */
export interface PartitionConsumer {
  /**
   * Partitions were assigned to this node. `endOffsets` holds each partition's log end offset
   * (the next offset to be written) as seen now; a partition is caught up once it has read that
   * far. `startOffsets` holds the first offset the log still has (retention may have deleted
   * the rest; absent = 0). Resolves to the offset to start reading each partition from (stored
   * offset + 1).
   */
  assigned(
    partitions: readonly number[],
    endOffsets: ReadonlyMap<number, number>,
    startOffsets?: ReadonlyMap<number, number>,
  ): Promise<ReadonlyMap<number, number>>;
  /** Partitions were taken away; resolves once they stopped serving and are closed. */
  revoked(partitions: readonly number[]): Promise<void>;
  /**
   * Records of one partition in offset order. `nextOffset` is where the log will read next,
   * which may be past the last record when the log has gaps; `logEnd`, when known, is the log's
   * end offset (high watermark) as of this read, for the consumer-lag metric. Resolves once
   * applied: the log does not deliver the same partition again before that.
   */
  deliver(
    partition: number,
    records: readonly LogRecord[],
    nextOffset: number,
    logEnd?: number,
  ): Promise<void>;
  /** The log cannot feed `partition` any further (e.g. retention deleted what it needs). */
  blocked(partition: number, reason: string): void;
}

/** The log a node writes to and consumes. */
export interface MutationLog {
  /** Which implementation (`archive`: a time-travel replica's, restored from S3). */
  readonly kind: "embedded" | "kafka" | "archive";
  /** Connects, creates what is missing, checks the partition count guard. */
  start(): Promise<void>;
  /**
   * Appends messages (at most one per partition per call) and resolves to their offsets, in
   * request order, once they are durable. Rejects with an `OperationalError` (`log_unavailable`,
   * `log_overloaded`) when it cannot.
   */
  append(messages: readonly AppendRequest[]): Promise<number[]>;
  /** Consumes assigned partitions into `consumer` until `signal` aborts. */
  run(consumer: PartitionConsumer, signal: AbortSignal): Promise<void>;
  /**
   * Messages of `partition` from offset `from` on, in order: about `maxBytes` of them, at least
   * one when there is one, none at the end; "truncated" when the log no longer starts that low
   * (retention). What the log archive uploads (backup/archive.ts).
   */
  readRange(partition: number, from: number, maxBytes: number): Promise<LogRecord[] | "truncated">;
  /** Releases connections and files. */
  close(): Promise<void>;
}

/** A key to read through a peer, with its partition. */
export interface PeerKey {
  readonly pk: string;
  readonly sk: string;
  readonly partition: number;
}

/**
 * Reads of partitions this node does not serve, through a live peer of the region (one hop).
 * Implemented by the cluster's router.
 */
export interface PeerReads {
  /** Whether an alive (not leaving, not suspect) peer serves `partition`. */
  servedByAlivePeer(partition: number): boolean;
  /**
   * One record JSON (or null) per key, in order, read from peers; follows a partition moving
   * between peers within `waitMs`. Rejects with 503 `partition_unavailable` when no peer can
   * answer, or with the peer's own problem (504 `not_caught_up`, 400).
   */
  get(
    keys: readonly PeerKey[],
    after: ReadonlyMap<number, number>,
    waitMs: number,
  ): Promise<(string | null)[]>;
  /** A list page (JSON text) from a peer serving `partition`; `body` is the client's request. */
  list(partition: number, body: string, waitMs: number): Promise<string>;
  /**
   * A read of the past from a peer serving `partition`: the peer's text answer to `body` (a
   * validated client body) on its internal route for `kind` (a get answers one line per key).
   * Follows the partition within `waitMs` like `list`.
   */
  past(kind: "get" | "history", partition: number, body: string, waitMs: number): Promise<string>;
  /**
   * The internal `host:port` of an alive peer serving `partition` (a random one of them), where a
   * watch of it is proxied; null when none does.
   */
  watchPeer(partition: number): Promise<string | null>;
}

/** A verified snapshot file ready to replace a partition's file. */
export interface FetchedSnapshot {
  /** Temporary path, on the same file system as the partition files. */
  readonly path: string;
  /** Its last applied offset. */
  readonly offset: number;
  /** A snapshot from S3, one extended with the S3 log archive, or a region peer's. */
  readonly source: "s3" | "archive" | "peer";
}

/** Where a partition's file can come from besides the log (S3, region peers). */
export interface SnapshotSource {
  /**
   * A verified snapshot of `partition` ahead of `localOffset` and behind `logEnd`, written into
   * `dir`, or null. `logStart` is the first offset the log still holds: when the file cannot
   * reach it, the S3 log archive carries a snapshot on towards it, and peers are asked too.
   */
  fetch(
    partition: number,
    localOffset: number,
    logStart: number,
    logEnd: number,
    dir: string,
  ): Promise<FetchedSnapshot | null>;
}

/**
 * Other readers of this node's partition files: the serving threads (src/serve/). The node keeps
 * them in step; they never write.
 */
export interface ReadReplicas {
  /** A partition changed state, or readiness or draining changed: look at the node again. */
  changed(): void;
  /** `partition` committed up to `offset` (in the file, visible to every thread). */
  applied(partition: number, offset: number): void;
  /** Resolves once no other reader holds `partition`'s file open: the node may close it. */
  release(partition: number): Promise<void>;
}
