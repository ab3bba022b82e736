/**
 * Hand-over restarts (`TAKEOVER=1`): a new process takes a running node's data folder and ports
 * over without a failed request. The node holding the folder's lock (data_dir.ts) listens on a
 * Unix socket in the folder, `{DB_PATH}/.control.sock`; whoever may write the folder may ask it to
 * hand over, which is the same authority the lock already rests on.
 *
 * The conversation is JSON lines on one connection:
 *
 * ```
 * successor → holder   {"op":"takeover","pid":<successor pid>}
 * holder → successor   {"event":"released","pid":<holder pid>}   (lock dropped)
 *                      {"event":"refused","reason":"…"}           (already stopping)
 * successor → holder   {"op":"serving"}                           (it answers requests now)
 * ```
 *
 * Before asking, the successor listens on the same public and internal ports (`SO_REUSEPORT`)
 * and holds the requests it accepts; the holder, asked, stops accepting (the kernel now gives
 * every new connection to the successor), lets go of the folder and says so. The successor takes
 * the lock, opens the folder and answers what it held, then says so; the holder ends once told
 * (or once the successor's connection closes, or after a bound). How the holder lets go — closing
 * everything first, or answering plain reads from its files until the successor serves — is
 * src/app.ts's.
 *
 * @module
 */
import { errorMessage, log, StartError } from "../util/mod.ts";

/** Name of the control socket inside `DB_PATH`. */
export const CONTROL_SOCKET_NAME = ".control.sock";

/** Longest line either side sends or reads. */
const LINE_BYTES_MAX = 4096;
/** Longest a connection may take to send its request line. */
const REQUEST_TIMEOUT_MS = 5000;
/** Unix socket paths are limited to 108 bytes (`sun_path`), the terminating NUL included. */
const SOCKET_PATH_BYTES_MAX = 107;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Reads one line (without its newline), at most {@linkcode LINE_BYTES_MAX} bytes; null at the end
 * of the stream, past the limit, or when `signal` aborts (which closes the connection).
 */
async function readLine(conn: Deno.Conn, signal: AbortSignal): Promise<string | null> {
  const buffer = new Uint8Array(LINE_BYTES_MAX);
  let length = 0;
  const close = () => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  signal.addEventListener("abort", close, { once: true });
  try {
    while (length < buffer.length) {
      const n = await conn.read(buffer.subarray(length));
      if (n === null) return null;
      const end = buffer.subarray(length, length + n).indexOf(10);
      length += n;
      if (end >= 0) return decoder.decode(buffer.subarray(0, length - n + end));
    }
    return null;
  } catch (error) {
    if (signal.aborted) return null;
    throw error;
  } finally {
    signal.removeEventListener("abort", close);
  }
}

async function writeLine(conn: Deno.Conn, value: unknown): Promise<void> {
  const bytes = encoder.encode(JSON.stringify(value) + "\n");
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** The socket path of a data folder, or null when the path is too long for a Unix socket. */
export function controlSocketPath(dbPath: string): string | null {
  const path = `${dbPath}/${CONTROL_SOCKET_NAME}`;
  return encoder.encode(path).length <= SOCKET_PATH_BYTES_MAX ? path : null;
}

/** The holder's end: answers one takeover request by handing over. */
export class ControlSocket {
  /** The accept loop; it ends once the listener is closed. */
  private serving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly listener: Deno.Listener,
    private readonly path: string,
  ) {}

  /**
   * Listens on the folder's control socket (the caller holds the folder's lock, so a socket file
   * left there is stale and replaced). `handOver` lets go of the folder and drops the lock; the
   * successor is told once it resolves, and `served` runs once the successor says it serves, its
   * connection closes, or `servingWaitMs` passes (the process may end there). Null (logged) when
   * the socket cannot be made: the node runs, but cannot be taken over.
   */
  static listen(
    dbPath: string,
    handOver: () => Promise<void>,
    served: () => void,
    servingWaitMs: number,
  ): ControlSocket | null {
    const path = controlSocketPath(dbPath);
    if (path === null) {
      log("warn", "takeover_unavailable", { reason: "DB_PATH is too long for a Unix socket" });
      return null;
    }
    let listener: Deno.Listener;
    try {
      Deno.removeSync(path);
    } catch {
      // Not there: the usual case.
    }
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (error) {
      log("warn", "takeover_unavailable", { path, reason: errorMessage(error) });
      return null;
    }
    const socket = new ControlSocket(listener, path);
    socket.serving = socket.serve(handOver, served, servingWaitMs).catch((error) =>
      log("warn", "control_socket_failed", { error: errorMessage(error) })
    );
    return socket;
  }

  private async serve(
    handOver: () => Promise<void>,
    served: () => void,
    servingWaitMs: number,
  ): Promise<void> {
    let handing = false;
    for await (const conn of this.listener) {
      void (async () => {
        try {
          const line = await readLine(conn, AbortSignal.timeout(REQUEST_TIMEOUT_MS));
          const request = line === null
            ? null
            : JSON.parse(line) as { op?: unknown; pid?: unknown };
          if (request?.op !== "takeover") return;
          if (handing) {
            await writeLine(conn, { event: "refused", reason: "already handing over" });
            return;
          }
          handing = true;
          log("info", "takeover_requested", { successor_pid: request.pid });
          await handOver();
          try {
            await writeLine(conn, { event: "released", pid: Deno.pid });
            const started = performance.now();
            const line = await readLine(conn, AbortSignal.timeout(servingWaitMs));
            log("info", "successor_serving", {
              told: line !== null && (JSON.parse(line) as { op?: unknown }).op === "serving",
              ms: Math.round(performance.now() - started),
            });
          } finally {
            served();
          }
        } catch (error) {
          log("warn", "takeover_request_failed", { error: errorMessage(error) });
        } finally {
          try {
            conn.close();
          } catch {
            // Closed by the peer.
          }
        }
      })();
    }
  }

  /**
   * Stops listening and removes the socket file; resolves once it is gone. Deno unlinks a Unix
   * listener's path when the listener is dropped, which happens only when its pending accept
   * ends: a caller that dropped the folder's lock before that would let this process remove the
   * socket its successor has just made at the same path. Idempotent.
   */
  async close(): Promise<void> {
    try {
      this.listener.close();
    } catch {
      // Already closed.
    }
    await this.serving;
    try {
      Deno.removeSync(this.path);
    } catch {
      // Gone.
    }
  }
}

/** A hand-over in progress, on the successor's side. */
export interface Takeover {
  /** The holder's pid. */
  readonly pid: number;
  /** Tells the holder this process answers requests now, and ends the conversation. */
  serving(): Promise<void>;
}

/**
 * The successor's end: asks the holder of `dbPath` to hand over and resolves once it has released
 * the folder. Throws a `StartError` (`takeover_failed`) when there is no holder to ask, it refuses,
 * or it does not answer within `timeoutMs`.
 */
export async function requestTakeover(dbPath: string, timeoutMs: number): Promise<Takeover> {
  const path = controlSocketPath(dbPath);
  const fail = (reason: string) =>
    new StartError("takeover_failed", `Cannot take ${dbPath} over: ${reason}`, { path: dbPath });
  if (path === null) throw fail("DB_PATH is too long for a Unix socket");
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    throw fail(`no node answers on ${path} (${errorMessage(error)})`);
  }
  const close = () => {
    try {
      conn.close();
    } catch {
      // Closed by the peer.
    }
  };
  try {
    await writeLine(conn, { op: "takeover", pid: Deno.pid });
    const timeout = AbortSignal.timeout(timeoutMs);
    const line = await readLine(conn, timeout);
    if (line === null) {
      throw fail(
        timeout.aborted
          ? `the node did not release the folder within ${timeoutMs} ms`
          : "the node closed the control socket without releasing the folder",
      );
    }
    const reply = JSON.parse(line) as { event?: unknown; pid?: unknown; reason?: unknown };
    if (reply.event !== "released") throw fail(`the node refused: ${String(reply.reason)}`);
    return {
      pid: typeof reply.pid === "number" ? reply.pid : 0,
      serving: async () => {
        try {
          await writeLine(conn, { op: "serving" });
        } catch {
          // The holder is gone already: nothing to tell.
        } finally {
          close();
        }
      },
    };
  } catch (error) {
    close();
    throw error;
  }
}
