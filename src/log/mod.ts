/**
 * The shared log: the implementations of the node's `MutationLog` port. The embedded log
 * (a local LMDB file, `embedded.ts`) is the default; the Kafka log is used when `KAFKA_SEEDS`
 * is set: `kafka.ts` connects the clients and produces, `kafka_topics.ts` creates the topics and
 * guards the partition count, `kafka_consume.ts` follows the group's assignments and delivers.
 *
 * What a correct log does is defined once, by the conformance suite in `conformance.ts`: both
 * implementations run it (`embedded_conformance_test.ts`, and
 * `tests/integration/kafka_log_conformance_test.ts` against a real broker). A new backend starts
 * by passing it.
 *
 * @module
 */
export { EmbeddedLog } from "./embedded.ts";
export type { EmbeddedLogOptions } from "./embedded.ts";
export { KafkaLog } from "./kafka.ts";
export type { KafkaLogOptions } from "./kafka.ts";
export { groupId, topicNames } from "./kafka_topics.ts";
