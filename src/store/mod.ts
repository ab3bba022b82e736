/**
 * Storage: one {@linkcode PartitionStore} per log partition on LMDB, holding the records and the
 * meta (applied offset, hash chain) that say which prefix of the log the file reflects.
 *
 * @module
 */
export {
  CHAIN_ZERO,
  compareBytes,
  DIGEST_ZERO,
  PartitionStore,
  STORE_FORMAT,
  StoreCorruptError,
  StoreMismatchError,
  storePath,
} from "./partition_store.ts";
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
export type {
  AppliedPosition,
  ListPage,
  ListQuery,
  StoreMeta,
  StoreOptions,
  StoreTx,
} from "./partition_store.ts";
export { decodeRecordValue, encodeRecordValue, RECORD_FORMAT } from "./record_codec.ts";
export type { StoredRecord } from "./record_codec.ts";
