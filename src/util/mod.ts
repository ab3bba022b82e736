/**
 * Small shared helpers with no dependencies: assertions and structured logging.
 *
 * @module
 */
export { assert, AssertionError } from "./assert.ts";
export { OperationalError } from "./errors.ts";
export { errorMessage, log, setLogLevel } from "./log.ts";
export type { Level } from "./log.ts";
