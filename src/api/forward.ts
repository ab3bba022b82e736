/**
 * Passing requests on to a hand-over successor. Once a node handing over has let go of its data
 * folder (src/node/hand_over.ts) it no longer applies, so it cannot take a write (its log is the
 * successor's now) nor wait for an offset; it goes on answering plain reads from its files, which
 * are exactly as the successor starts from, and passes reads with `after` (and, with the
 * embedded log, writes) to the successor on the same port: it has left that port's `SO_REUSEPORT` group, so a connection to
 * it reaches the successor, which holds the request until it serves.
 *
 * @module
 */
import { OperationalError } from "../util/errors.ts";

/**
 * Where a node's answers go instead (`target`, e.g. `http://127.0.0.1:8190`), or null; and
 * whether writes go there too (the embedded log, a file the successor now owns) or are still
 * appended here (Kafka, which any process may produce to).
 */
export interface Forwarding {
  target: string | null;
  writes: boolean;
}

/** A {@linkcode Forwarding} that never forwards. */
export const NEVER_FORWARDING: Readonly<Forwarding> = Object.freeze({
  target: null,
  writes: false,
});

/**
 * The base URL through which this host reaches a server listening on `host:port` (an unspecified
 * address is reached through loopback).
 */
export function forwardTarget(host: string, port: number): string {
  if (host === "0.0.0.0" || host === "") return `http://127.0.0.1:${port}`;
  if (host === "::") return `http://[::1]:${port}`;
  return host.includes(":") ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

/**
 * Sends a `POST path` with body `text` (read within the node's limits) and the request's
 * `authorization` to `target`, and answers with what comes back. 503 (`log_unavailable` for a
 * write, `partition_unavailable` for a read) when the successor cannot be reached.
 */
export async function forwardRequest(
  target: string,
  path: string,
  request: Request,
  text: string,
  write: boolean,
): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  const authorization = request.headers.get("authorization");
  if (authorization !== null) headers.authorization = authorization;
  let answer: Response;
  try {
    answer = await fetch(`${target}${path}`, { method: "POST", headers, body: text });
  } catch (error) {
    throw new OperationalError(
      write ? "log_unavailable" : "partition_unavailable",
      `Cannot ${
        write ? "write" : "read"
      }: this node is handing over and its successor did not answer (${(error as Error).message})`,
    );
  }
  const body = await answer.text();
  const out = new Headers({
    "content-type": answer.headers.get("content-type") ?? "application/json",
  });
  const retryAfter = answer.headers.get("retry-after");
  if (retryAfter !== null) out.set("retry-after", retryAfter);
  return new Response(body, { status: answer.status, headers: out });
}
