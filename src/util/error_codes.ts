/**
 * The closed list of operational error codes. Clients match on these strings, so a code is never
 * renamed or reused for another meaning; adding one means a row in `api/problem.ts` (status,
 * title) and one in docs/api.md's error table (`api/problem_test.ts` holds the three together).
 */
export const ERROR_CODES = [
  // Requests a client must fix (400).
  "invalid_json",
  "incomplete_body",
  "invalid_request",
  "unknown_field",
  "no_records",
  "too_many_records",
  "invalid_key",
  "missing_data",
  "invalid_op",
  "invalid_condition",
  "condition_too_long",
  "batch_spans_partitions",
  "invalid_after",
  "invalid_wait",
  "invalid_limit",
  "invalid_ttl",
  "invalid_as_of",
  // Who may call what, and where.
  "unauthorized",
  "forbidden",
  "not_found",
  "method_not_allowed",
  "watch_disabled",
  "history_disabled",
  "history_expired",
  "read_only",
  // Sizes over a limit.
  "body_too_large",
  "data_too_large",
  "message_too_large",
  // The node or its log cannot answer now; retrying later may succeed.
  "partition_unavailable",
  "log_unavailable",
  "log_overloaded",
  "too_many_waiters",
  "too_many_watchers",
  "snapshot_busy",
  "not_caught_up",
  // Failures of the node itself; the last three stop a start or a restore and are only logged.
  "internal_error",
  "partition_count_mismatch",
  "kafka_auth_failed",
  "snapshot_rejected",
] as const;

/** One of {@linkcode ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[number];

const KNOWN: ReadonlySet<string> = new Set(ERROR_CODES);

/** Whether `value` is one of {@linkcode ERROR_CODES} (e.g. the code of a peer's problem). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && KNOWN.has(value);
}
