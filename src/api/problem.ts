/** The one place where errors become HTTP responses (RFC 9457 problem+json). */
import { OperationalError } from "../util/errors.ts";
import { errorMessage, log } from "../util/log.ts";
import type { Problem } from "./wire.ts";

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  500: "Internal Server Error",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Shorthand for a 400 with a code. */
export function badRequest(
  code: string,
  detail: string,
  details: Record<string, unknown> = {},
): OperationalError {
  return new OperationalError(code, 400, detail, details);
}

/** A problem+json response for `error`; unexpected errors are 500 `internal_error` and logged. */
export function problemResponse(error: unknown, headers: HeadersInit = {}): Response {
  let problem: Problem;
  if (error instanceof OperationalError) {
    problem = {
      type: `https://firescroll.dev/problems/${error.code}`,
      title: TITLES[error.status] ?? "Error",
      status: error.status,
      code: error.code,
      detail: error.message,
    };
    for (const [key, value] of Object.entries(error.details)) {
      if (!(key in problem)) problem[key] = value;
    }
  } else {
    log("error", "internal_error", { error: errorMessage(error), stack: (error as Error)?.stack });
    problem = {
      type: "https://firescroll.dev/problems/internal_error",
      title: TITLES[500]!,
      status: 500,
      code: "internal_error",
      detail: "The server failed unexpectedly; the error is logged.",
    };
  }
  const h = new Headers(headers);
  h.set("content-type", "application/problem+json");
  return new Response(JSON.stringify(problem), { status: problem.status, headers: h });
}
