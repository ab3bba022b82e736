/**
 * Small shared helpers with no dependencies: assertions, operational errors, structured logging,
 * abortable sleep.
 *
 * @module
 */
export { assert, AssertionError } from "./assert.ts";
export { OperationalError } from "./errors.ts";
export { errorMessage, log, setLogLevel } from "./log.ts";
export type { Level } from "./log.ts";
export { sleep } from "./sleep.ts";
export { bindOrThrow, type Listener, StartError } from "./start_error.ts";
