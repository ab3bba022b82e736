/**
 * The shared log: the implementations of the node's `MutationLog` port. The embedded log
 * (a local LMDB file) is the default; the Kafka log is used when `KAFKA_SEEDS` is set.
 *
 * @module
 */
export { EmbeddedLog } from "./embedded.ts";
export type { EmbeddedLogOptions } from "./embedded.ts";
export { groupId, KafkaLog, topicNames } from "./kafka.ts";
export type { KafkaLogOptions } from "./kafka.ts";
