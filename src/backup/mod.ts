/**
 * Backup: partition snapshots in S3-compatible storage (DESIGN §8). The backup loop (compacting
 * online copy → multipart upload → manifest → `latest.json` → retention), the restorer that puts
 * the furthest verified snapshot (S3 or a region peer) in place before a partition is consumed,
 * and the snapshot files and manifests both share. The log archive (`archive.ts`) uploads every
 * message of the partitions backed up, as segments (`segment.ts`: encoded, compressed, verified);
 * `replay.ts` restores a partition to a point from them — downloading and decoding segments ahead,
 * in a worker thread beside it when a CPU is free (`replay_decode.ts`) — and `restore_pool.ts`
 * restores several at once, each in a thread of its own (`deno task restore --partition all`, a
 * time-travel replica).
 *
 * @module
 */
export { Archive, archiveHoles, archiveSegments } from "./archive.ts";
export type { ArchiveOptions, ArchiveSource, SegmentRef } from "./archive.ts";
export { Backups } from "./backup.ts";
export type { BackupOptions, BackupSource } from "./backup.ts";
export { S3ObjectStore } from "./object_store.ts";
export type { ListedObject, ObjectStore, S3Options } from "./object_store.ts";
export { type RestorePoint, restoreToPoint, RestoreUnreachable } from "./replay.ts";
export {
  RestoreFailed,
  type RestoreJob,
  restorePartitions,
  restorePoolOptions,
} from "./restore_pool.ts";
export type { RestorePoolOptions } from "./restore_pool.ts";
export type { ReplayOptions, RestoredPartition } from "./replay.ts";
export { Restorer } from "./restore.ts";
export type { PeerSnapshotFetcher, RestoreOptions } from "./restore.ts";
export {
  createSnapshot,
  hashFile,
  latestKey,
  manifestOffsets,
  parseManifest,
  partitionPrefix,
  SnapshotRejected,
  snapshotStem,
  verifySnapshot,
} from "./snapshot.ts";
export type { Manifest } from "./snapshot.ts";
export { pointOf, TimeTravelLog } from "./time_travel.ts";
export type { TimeTravelOptions } from "./time_travel.ts";
export {
  compress,
  decodeSegmentBody,
  decompress,
  encodeSegmentBody,
  parseSegmentKey,
  type Segment,
  type SegmentBounds,
  SegmentCorruptError,
  type SegmentHeader,
  segmentKey,
  segmentLength,
} from "./segment.ts";
