/**
 * What a server runs in front of its handler, for the moments around a start and a stop:
 *
 * - **held**: a hand-over successor (`TAKEOVER`) listens before it has the data folder; each request
 *   waits until it has (or the hold runs out), then is answered.
 * - **open**: requests go straight to the handler (one extra call, no promise).
 *
 * And {@linkcode Closing}, which the handlers consult as they answer: a node about to stop
 * accepting answers every HTTP/1.1 request with `connection: close`, so a keep-alive client
 * reconnects — to the successor, or through the load balancer to another node — instead of sending
 * its next request on a connection the server is about to close under it (the one request a close
 * can lose). It is checked when the answer is ready, so requests in flight when the stop begins
 * get it too. HTTP/2 has its own goodbye (the server's GOAWAY at shutdown) and must not get the
 * header: `Deno.serve` does not say which protocol a request came on, so a request with a `host`
 * header is taken as HTTP/1.1 (HTTP/1.1 requires it; HTTP/2 clients send `:authority` instead).
 *
 * @module
 */
import { log } from "../util/log.ts";

/** A server's request handler. */
export type Handler = (request: Request) => Promise<Response>;

/** The handler of a server, held, open or closing; see the module doc. */
export class Front {
  private current: Handler;

  /**
   * In front of `handler`; `whenOpen`, when given, holds each request until it resolves (it
   * bounds its own wait).
   */
  constructor(private readonly handler: Handler, whenOpen: (() => Promise<void>) | null = null) {
    this.current = whenOpen === null
      ? handler
      : (request) => whenOpen().then(() => handler(request));
  }

  /** What the server runs. */
  readonly serve = (request: Request): Promise<Response> => this.current(request);

  /** Requests go straight to the handler from now on (held ones finish their own wait). */
  open(): void {
    this.current = this.handler;
  }
}

/** Whether a server's answers close their HTTP/1.1 connections (set once a stop is near). */
export interface Closing {
  closing: boolean;
}

/** A {@linkcode Closing} that never closes (tests, and handlers built without one). */
export const NEVER_CLOSING: Readonly<Closing> = Object.freeze({ closing: false });

/** `response`, told to close its connection when the request came over HTTP/1.1. */
export function closeConnection(request: Request, response: Response): Response {
  if (request.headers.has("host")) response.headers.set("connection", "close");
  return response;
}

/**
 * Deno's accept loop rejects with EINVAL once its listening socket is shut down (a hand-over
 * takes the node out of the ports' SO_REUSEPORT groups, src/api/idle_sweeper.ts): expected, and
 * logged once instead of ending the process as an unhandled rejection.
 */
export function expectAcceptStops(): void {
  let logged = false;
  globalThis.addEventListener("unhandledrejection", (event) => {
    const text = String(event.reason);
    if (!text.includes("Http") || !text.includes("os error 22")) return;
    event.preventDefault();
    if (!logged) log("info", "accept_stopped", { error: text });
    logged = true;
  });
}
