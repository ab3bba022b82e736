/**
 * The one place where errors become HTTP responses (RFC 9457 problem+json), and the one table
 * that gives each error code its status, title and headers. Deeper layers raise a code, never a
 * status; docs/api.md's error table lists the same codes and statuses (`problem_test.ts`).
 */
import type { ErrorCode } from "../util/error_codes.ts";
import { OperationalError } from "../util/errors.ts";
import { errorMessage, log } from "../util/log.ts";
import type { Problem } from "./wire.ts";

/** How one error code reaches the client. */
export interface ProblemType {
  /** HTTP status of the response. */
  readonly status: number;
  /** The problem's `title`: the status's reason phrase, the same for every occurrence. */
  readonly title: string;
  /** Response headers every occurrence carries (none today: no code promises `Retry-After`). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Every error code's status and title. 405's `Allow` header depends on the route, so the handlers
 * add it; the last three codes stop a start or a restore and are never sent, they are here so
 * that the list stays closed.
 */
export const PROBLEMS = {
  invalid_json: { status: 400, title: "Bad Request" },
  incomplete_body: { status: 400, title: "Bad Request" },
  invalid_request: { status: 400, title: "Bad Request" },
  unknown_field: { status: 400, title: "Bad Request" },
  no_records: { status: 400, title: "Bad Request" },
  too_many_records: { status: 400, title: "Bad Request" },
  invalid_key: { status: 400, title: "Bad Request" },
  missing_data: { status: 400, title: "Bad Request" },
  invalid_op: { status: 400, title: "Bad Request" },
  invalid_condition: { status: 400, title: "Bad Request" },
  condition_too_long: { status: 400, title: "Bad Request" },
  batch_spans_partitions: { status: 400, title: "Bad Request" },
  invalid_after: { status: 400, title: "Bad Request" },
  invalid_wait: { status: 400, title: "Bad Request" },
  invalid_limit: { status: 400, title: "Bad Request" },
  invalid_ttl: { status: 400, title: "Bad Request" },
  invalid_as_of: { status: 400, title: "Bad Request" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not Found" },
  method_not_allowed: { status: 405, title: "Method Not Allowed" },
  watch_disabled: { status: 404, title: "Not Found" },
  history_disabled: { status: 404, title: "Not Found" },
  history_expired: { status: 410, title: "Gone" },
  read_only: { status: 409, title: "Conflict" },
  body_too_large: { status: 413, title: "Content Too Large" },
  data_too_large: { status: 413, title: "Content Too Large" },
  message_too_large: { status: 413, title: "Content Too Large" },
  partition_unavailable: { status: 503, title: "Service Unavailable" },
  log_unavailable: { status: 503, title: "Service Unavailable" },
  log_overloaded: { status: 503, title: "Service Unavailable" },
  too_many_waiters: { status: 503, title: "Service Unavailable" },
  too_many_watchers: { status: 503, title: "Service Unavailable" },
  snapshot_busy: { status: 503, title: "Service Unavailable" },
  not_caught_up: { status: 504, title: "Gateway Timeout" },
  internal_error: { status: 500, title: "Internal Server Error" },
  partition_count_mismatch: { status: 500, title: "Internal Server Error" },
  kafka_auth_failed: { status: 500, title: "Internal Server Error" },
  snapshot_rejected: { status: 502, title: "Bad Gateway" },
} as const satisfies Record<ErrorCode, ProblemType>;

/** The HTTP status `code` is answered with. */
export function statusOf(code: ErrorCode): number {
  return PROBLEMS[code].status;
}

/** The codes answered with 400: what {@linkcode badRequest} takes. */
export type BadRequestCode = {
  [C in ErrorCode]: (typeof PROBLEMS)[C]["status"] extends 400 ? C : never;
}[ErrorCode];

/** Shorthand for an error whose code is a 400. */
export function badRequest(
  code: BadRequestCode,
  detail: string,
  details: Record<string, unknown> = {},
): OperationalError {
  return new OperationalError(code, detail, details);
}

/** A problem+json response for `error`; unexpected errors are 500 `internal_error` and logged. */
export function problemResponse(error: unknown, headers: HeadersInit = {}): Response {
  let code: ErrorCode;
  let detail: string;
  if (error instanceof OperationalError) {
    code = error.code;
    detail = error.message;
  } else {
    log("error", "internal_error", { error: errorMessage(error), stack: (error as Error)?.stack });
    code = "internal_error";
    detail = "The server failed unexpectedly; the error is logged.";
  }
  const type: ProblemType = PROBLEMS[code];
  const problem: Problem = {
    type: `https://firescroll.dev/problems/${code}`,
    title: type.title,
    status: type.status,
    code,
    detail,
  };
  if (error instanceof OperationalError) {
    for (const [key, value] of Object.entries(error.details)) {
      if (!(key in problem)) problem[key] = value;
    }
  }
  const h = new Headers(headers);
  if (type.headers !== undefined) {
    for (const [name, value] of Object.entries(type.headers)) h.set(name, value);
  }
  h.set("content-type", "application/problem+json");
  return new Response(JSON.stringify(problem), { status: problem.status, headers: h });
}
