/**
 * Keys: the partitioner (Kafka's murmur2) and the LMDB record-key encoding, shared by the read
 * path, the write path and proxying so that they can never disagree about where a key lives.
 *
 * @module
 */
export { murmur2, partitionOf } from "./partitioner.ts";
export {
  decodeRecordKey,
  decodeSk,
  encodeRecordKey,
  keyProblem,
  keyWithSk,
  pkPrefix,
  RECORD_KEY_BYTES_MAX,
  utf8Length,
  writeRecordKey,
} from "./record_key.ts";
export { writeUtf8 } from "./utf8.ts";
