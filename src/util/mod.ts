/**
 * Small shared helpers with no dependencies: assertions, operational errors and their closed list
 * of codes, structured logging, abortable sleep, JSON parsing that keeps number tokens exact.
 *
 * @module
 */
export { assert, AssertionError } from "./assert.ts";
export { ERROR_CODES, type ErrorCode, isErrorCode } from "./error_codes.ts";
export { OperationalError } from "./errors.ts";
export {
  duplicateName,
  isRawJson,
  JSON_DEPTH_MAX,
  JsonRefusedError,
  parseJsonExact,
  scanJson,
} from "./json.ts";
export type { ExactOptions, JsonShape } from "./json.ts";
export { errorMessage, LEVELS, log, progress, setLogLevel } from "./log.ts";
export type { Progress } from "./log.ts";
export type { Level } from "./log.ts";
export { threadCount } from "./threads.ts";
export { sleep } from "./sleep.ts";
export { getU64, setU64, writeU64 } from "./u64.ts";
export { bindOrThrow, type Listener, StartError } from "./start_error.ts";
