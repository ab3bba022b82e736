/**
 * The connection guard of the public port: closes idle connections and caps open ones.
 *
 * Deno 2.9's `Deno.serve` never closes an idle HTTP/1.1 connection (nor one that never finishes
 * its request header) and has no option to; its API does not expose connections either. So the
 * guard owns the TCP listener: it accepts, counts, and pipes each connection's bytes to a
 * `Deno.serve` listening on loopback only, closing a connection when no byte has moved either way
 * for `idleTimeoutMs`. Above `connectionsMax` a new connection gets one 503
 * `too_many_connections` problem and is closed. The bytes are opaque, so HTTP/1.1 keep-alive, h2c
 * prior knowledge and TLS (terminated by the `Deno.serve` behind) pass unchanged.
 */
import { OperationalError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { rawProblemResponse } from "./problem.ts";

/** What {@linkcode guardConnections} needs. */
export interface ConnectionGuardOptions {
  /** Address and port to accept on (port 0: any free port). */
  readonly hostname: string;
  readonly port: number;
  /** Loopback address of the `Deno.serve` that answers the requests. */
  readonly target: Deno.NetAddr;
  /** A connection with no byte moving either way for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Most connections open at once; more are refused with a 503. */
  readonly connectionsMax: number;
  /** Called once listening. */
  readonly onListen?: (addr: Deno.NetAddr) => void;
}

/** A running guard. */
export interface ConnectionGuard {
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly open: number;
  /** Stops accepting; open connections end when the server behind them closes them. */
  close(): void;
}

// Two buffers per connection: 64 KiB each made an idle connection cost 133 KiB (measured).
const BUFFER_BYTES = 16 * 1024;

const TOO_MANY = rawProblemResponse(
  new OperationalError(
    "too_many_connections",
    503,
    "Cannot accept the connection: CONNECTIONS_MAX connections are open",
  ),
);

interface Piped {
  lastActiveMs: number;
  readonly client: Deno.Conn;
  upstream: Deno.Conn | null;
  closed: boolean;
}

function closeQuietly(conn: Deno.Conn | null): void {
  if (conn === null) return;
  try {
    conn.close();
  } catch {
    // Already closed by the other side's loop.
  }
}

function shut(piped: Piped): void {
  if (piped.closed) return;
  piped.closed = true;
  closeQuietly(piped.client);
  closeQuietly(piped.upstream);
}

/** Copies `from` to `to` until either ends, marking activity on every chunk. */
async function pump(piped: Piped, from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(BUFFER_BYTES);
  try {
    while (!piped.closed) {
      const n = await from.read(buffer);
      if (n === null) break;
      piped.lastActiveMs = performance.now();
      let at = 0;
      while (at < n) at += await to.write(buffer.subarray(at, n));
      piped.lastActiveMs = performance.now();
    }
  } catch {
    // A reset or a close by the sweeper ends the connection like an EOF.
  }
  shut(piped);
}

/** Accepts on `hostname:port` and pipes every connection to `targetPath`, within the limits. */
export function guardConnections(options: ConnectionGuardOptions): ConnectionGuard {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const open = new Set<Piped>();
  // One timer for all connections: a connection is closed between 1× and 1.25× the timeout.
  const sweepEveryMs = Math.max(25, Math.floor(options.idleTimeoutMs / 4));
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const piped of open) {
      if (now - piped.lastActiveMs > options.idleTimeoutMs) shut(piped);
    }
  }, sweepEveryMs);
  const serve = async (client: Deno.Conn) => {
    if (open.size >= options.connectionsMax) {
      try {
        await client.write(TOO_MANY);
      } catch {
        // The client went away first.
      }
      closeQuietly(client);
      return;
    }
    const piped: Piped = { lastActiveMs: performance.now(), client, upstream: null, closed: false };
    open.add(piped);
    try {
      piped.upstream = await Deno.connect({
        hostname: options.target.hostname,
        port: options.target.port,
      });
      if (piped.closed) closeQuietly(piped.upstream);
      else {await Promise.all([
          pump(piped, client, piped.upstream),
          pump(piped, piped.upstream, client),
        ]);}
    } catch {
      // The server behind is gone (stopping): the connection ends.
    } finally {
      shut(piped);
      open.delete(piped);
    }
  };
  (async () => {
    try {
      for await (const client of listener) void serve(client);
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) {
        log("error", "accept_failed", { error: (error as Error).message });
      }
    }
    clearInterval(sweeper);
  })();
  const addr = listener.addr as Deno.NetAddr;
  options.onListen?.(addr);
  return {
    addr,
    get open() {
      return open.size;
    },
    close() {
      try {
        listener.close();
      } catch {
        // Closed already.
      }
    },
  };
}
