/**
 * Apply: turns log messages into store transactions. Owns the log message format, condition
 * evaluation (jexl, cached) and the hash chain. Both log implementations feed
 * {@linkcode applyBatch}, so a partition's state depends only on the log. A restore that decodes
 * on another thread feeds {@linkcode applyDecodedBatch} the same messages with their ops already
 * decoded (`plain.ts`) and their chain computed: the same transaction. A message written the way
 * the API writes it is read from its bytes (`plain_scan.ts`) rather than decoded.
 *
 * @module
 */
export { applyBatch, applyDecodedBatch, nextChain } from "./apply.ts";
export type { ApplyContext, DecodedBatch, LogRecord } from "./apply.ts";
export { encodePlain } from "./plain.ts";
export { ConditionCache, ConditionError } from "./conditions.ts";
export type { Verdict } from "./conditions.ts";
export {
  decodeMutation,
  encodeMutation,
  encodeTick,
  expiryProblem,
  MESSAGE_CONDITION_CHARS_MAX,
  MESSAGE_OPS_MAX,
  MESSAGE_VERSION,
} from "./message.ts";
export type { Decoded, DeleteOp, Mutation, Op, PutOp } from "./message.ts";
