/**
 * Operational errors: expected failures a client or operator can act on. Each has a stable
 * snake_case `code` from the closed list in `error_codes.ts`; deeper layers raise a code, and only
 * `api` maps it to an HTTP status, title and headers.
 */
import type { ErrorCode } from "./error_codes.ts";

/** An expected failure with a stable code (see {@linkcode ErrorCode}). */
export class OperationalError extends Error {
  /** Stable snake_case code, part of the API contract. */
  readonly code: ErrorCode;
  /** Extra members for the problem+json body. */
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    code: ErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = "OperationalError";
    this.code = code;
    this.details = details;
  }
}
