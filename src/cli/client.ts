/**
 * HTTP to a node, with the client's failure rules: every request bounded by a timeout, a problem
 * answer turned into `error: <code>: <detail>` (exit 1), a node that cannot be reached or does not
 * answer in time into exit 4.
 *
 * @module
 */
import type { Problem } from "../api/wire.ts";
import { CliError, EXIT } from "./exit.ts";

/** How long one request may take when neither the command nor `--timeout-ms` says. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** Longest part of a non-problem error body quoted in the error line. */
const QUOTED_CHARS_MAX = 200;

/** The `fetch` the client uses (tests may pass their own). */
export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

/** Turns a failed `fetch` of `url` into exit 4: timed out, or not reachable at all. */
export function unreachable(url: string, error: unknown, timeoutMs: number): CliError {
  if (error instanceof DOMException && (error.name === "TimeoutError")) {
    return new CliError(
      EXIT.unreachable,
      "timeout",
      `Cannot read ${url}: no answer within ${timeoutMs} ms`,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(EXIT.unreachable, "cannot_connect", `Cannot reach ${url}: ${message}`);
}

/**
 * The error of a non-2xx answer: the problem's `code` and `detail` (exit 1); an answer that is not
 * a problem (a proxy's page) becomes `http_<status>` with the start of its body.
 */
export function answerError(status: number, contentType: string | null, text: string): CliError {
  if (contentType?.includes("json")) {
    try {
      const problem = JSON.parse(text) as Partial<Problem>;
      if (typeof problem.code === "string") {
        return new CliError(EXIT.problem, problem.code, String(problem.detail ?? problem.title));
      }
    } catch {
      // Not JSON after all: quoted below.
    }
  }
  const quoted = text.replace(/\s+/g, " ").trim().slice(0, QUOTED_CHARS_MAX);
  return new CliError(EXIT.problem, `http_${status}`, quoted === "" ? `HTTP ${status}` : quoted);
}

/** A node's HTTP API at one base URL. */
export class Client {
  /**
   * @param base `http(s)://host:port` without a trailing slash.
   * @param token sent as `Authorization: Bearer <token>` when not null.
   * @param timeoutMs bound on each request, the body's transfer included.
   */
  constructor(
    readonly base: string,
    readonly token: string | null,
    readonly timeoutMs: number,
    private readonly fetcher: Fetch = fetch,
  ) {}

  private headers(extra: Record<string, string>): Headers {
    const headers = new Headers(extra);
    if (this.token !== null) headers.set("authorization", `Bearer ${this.token}`);
    return headers;
  }

  /**
   * Sends a request and resolves with the response once its headers arrived, whatever its status.
   * `signal` (default: the timeout) bounds the whole exchange; a failure to connect is exit 4.
   */
  async open(
    method: "GET" | "POST",
    path: string,
    body: string | null,
    options: { signal?: AbortSignal; timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const url = this.base + path;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const extra = options.headers ?? {};
    try {
      return await this.fetcher(url, {
        method,
        headers: this.headers(
          body === null ? extra : { "content-type": "application/json", ...extra },
        ),
        ...(body === null ? {} : { body }),
        signal: options.signal ?? AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw unreachable(url, error, timeoutMs);
    }
  }

  /** Sends a request; resolves with the 2xx body's text, or throws the answer's problem. */
  async call(
    method: "GET" | "POST",
    path: string,
    body: string | null,
    timeoutMs: number = this.timeoutMs,
  ): Promise<string> {
    const signal = AbortSignal.timeout(timeoutMs);
    const response = await this.open(method, path, body, { signal, timeoutMs });
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw unreachable(this.base + path, error, timeoutMs);
    }
    if (response.status < 200 || response.status > 299) {
      throw answerError(response.status, response.headers.get("content-type"), text);
    }
    return text;
  }

  /** `POST path` with a JSON body text. */
  post(path: string, body: string, timeoutMs?: number): Promise<string> {
    return this.call("POST", path, body, timeoutMs);
  }
}
