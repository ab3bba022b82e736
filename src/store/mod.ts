/**
 * Storage: one {@linkcode PartitionStore} per log partition on LMDB, holding the records, the
 * meta (applied offset, hash chain) that say which prefix of the log the file reflects and the
 * change log watches read (`changes.ts`), and
 * {@linkcode PartitionReader}s: read-only views of a partition's file for other threads or
 * processes.
 *
 * @module
 */
export {
  CHAIN_ZERO,
  DIGEST_ZERO,
  PartitionStore,
  STORE_FORMAT,
  StoreCorruptError,
  StoreMismatchError,
  storePath,
} from "./partition_store.ts";
export { PartitionReader, type ReaderOptions } from "./partition_reader.ts";
export { type Change, type ChangeCursor, type ChangeKind } from "./changes.ts";
export { type Point, TooMuchHistoryError, type Version } from "./history.ts";
export { compareBytes, type ListPage, type ListQuery } from "./record_reads.ts";
export {
  CLEAN_STOP_FILE,
  type CleanStop,
  type FileStamp,
  needsVerify,
  parseCleanStop,
  stampOf,
  takeCleanStop,
  writeCleanStop,
} from "./clean_stop.ts";
export {
  boundedAll,
  VerifierUnavailableError,
  verifyHere,
  verifyInChild,
  type VerifyKind,
  type VerifyResult,
} from "./verify.ts";
export type { AppliedPosition, StoreMeta, StoreOptions, StoreTx } from "./partition_store.ts";
export {
  decodeRecordValue,
  encodeRecordValue,
  RECORD_FORMAT,
  RECORD_FORMAT_EXPIRING,
} from "./record_codec.ts";
export type { RecordHead, StoredRecord } from "./record_codec.ts";
