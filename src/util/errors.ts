/**
 * Operational errors: expected failures a client or operator can act on. Each has a stable
 * snake_case `code` and the HTTP status it maps to; only `api` turns them into responses.
 */
export class OperationalError extends Error {
  /** Stable snake_case code, part of the API contract. */
  readonly code: string;
  /** HTTP status for the problem response. */
  readonly status: number;
  /** Extra members for the problem+json body. */
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    code: string,
    status: number,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = "OperationalError";
    this.code = code;
    this.status = status;
    this.details = details;
  }
}
