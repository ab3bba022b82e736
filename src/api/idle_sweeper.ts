/**
 * Closes idle public connections (`IDLE_TIMEOUT_MS`) and, above `CONNECTIONS_MAX`, the longest-idle
 * ones, without touching the request path.
 *
 * Deno 2.9's `Deno.serve` has no idle timeout (an idle keep-alive connection, a half-sent header
 * and a silent connection are all kept forever) and does not expose its connections. A proxy that
 * owns the port and pipes to `Deno.serve` can time them out, but it copied every byte through
 * JavaScript twice and cost ~40 % of get throughput (bench/RESULTS.md, 2026-12-02). Instead, a
 * sweep every few seconds asks the kernel: for each of this process's file descriptors that is a
 * TCP socket whose local port is the public port and that is connected, `TCP_INFO` tells how many
 * milliseconds ago data was last sent and received on it. A socket idle longer than the timeout is
 * `shutdown()`: the HTTP server then reads end-of-stream and drops the connection itself (its file
 * descriptor is never closed behind its back, so it cannot be reused under it).
 *
 * Linux only (`/proc/self/fd`, `TCP_INFO`, libc through FFI). Elsewhere, or without FFI permission,
 * {@linkcode IdleSweeper.open} returns null and the caller logs that idle connections stay open.
 */
import type { ConfigApi } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { sleep } from "../util/mod.ts";

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const SHUT_RD = 0;
const SHUT_RDWR = 2;
const AF_INET = 2;
const AF_INET6 = 10;
/** `tcpi_state` values (include/net/tcp_states.h) of sockets a client is connected to. */
const TCP_ESTABLISHED = 1;
const TCP_CLOSE_WAIT = 8;
/** `tcpi_state` of a listening socket. */
const TCP_LISTEN = 10;
/** Offsets in `struct tcp_info` (include/uapi/linux/tcp.h), stable since Linux 2.6. */
const TCPI_LAST_DATA_SENT = 44;
const TCPI_LAST_DATA_RECV = 52;
const TCP_INFO_BYTES = 104;
const SOCKADDR_BYTES = 128;
/** Most sockets one sweep looks at: far above any `CONNECTIONS_MAX` a process can hold. */
const SWEEP_FDS_MAX = 1_048_576;

const SYMBOLS = {
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** What one sweep saw and did. */
export interface SweepResult {
  /** Connected sockets of the port before the sweep closed any. */
  readonly open: number;
  /** Shut down because idle for at least the timeout. */
  readonly idle: number;
  /** Shut down because more than `connectionsMax` were open (longest idle first). */
  readonly overLimit: number;
}

/**
 * How to sweep: the `api` config section whole (`idleTimeoutMs`, after which an idle connection
 * is shut down, 0 = never; `connectionsMax`, above which the longest idle go first, never one
 * active within 1 s) and the port the public server is bound to.
 */
export interface IdleSweeperOptions {
  readonly api: ConfigApi;
  /** The public port as bound (`api.port` may be 0): only sockets accepted on it are touched. */
  readonly port: number;
  readonly metrics: Metrics;
}

/** This process's file descriptors (every thread's), at most {@linkcode SWEEP_FDS_MAX}. */
function* fileDescriptors(): Generator<number> {
  let seen = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    if (++seen > SWEEP_FDS_MAX) return;
    yield Number(entry.name);
  }
}

/** Connections idle at least this long may be closed to get back under `connectionsMax`. */
const OVER_LIMIT_IDLE_MS_MIN = 1000;

/** Finds and shuts down idle connections of one listening port. */
export class IdleSweeper {
  private readonly sockaddr = new Uint8Array(SOCKADDR_BYTES);
  private readonly sockaddrLength = new Uint32Array(1);
  private readonly info = new Uint8Array(TCP_INFO_BYTES);
  private readonly infoView = new DataView(this.info.buffer);
  private readonly infoLength = new Uint32Array(1);

  private constructor(
    private readonly library: Deno.DynamicLibrary<typeof SYMBOLS>,
    private readonly options: IdleSweeperOptions,
  ) {}

  /** A sweeper, or null where the kernel interfaces it needs are missing (not Linux, no FFI). */
  static open(options: IdleSweeperOptions): IdleSweeper | null {
    if (Deno.build.os !== "linux") return null;
    try {
      Deno.statSync("/proc/self/fd");
      return new IdleSweeper(Deno.dlopen("libc.so.6", SYMBOLS), options);
    } catch {
      return null;
    }
  }

  /**
   * One sweep. Synchronous on purpose: while it runs no file descriptor of this thread's HTTP
   * server can be closed and reused, so the socket checked is the socket shut down. Serving
   * threads (src/serve/) close their own descriptors meanwhile: one may be closed and reused
   * between the `TCP_INFO` look and the `shutdown()` two calls later, shutting down at worst one
   * fresh connection (docs/architecture.md, "Serving threads").
   */
  sweep(): SweepResult {
    const libc = this.library.symbols;
    const { idleTimeoutMs, connectionsMax } = this.options.api;
    const connections: { fd: number; idleMs: number }[] = [];
    let idle = 0;
    for (const fd of fileDescriptors()) {
      const idleMs = this.connectionIdleMs(libc, fd);
      if (idleMs === null) continue;
      if (idleTimeoutMs > 0 && idleMs >= idleTimeoutMs) {
        if (libc.shutdown(fd, SHUT_RDWR) === 0) idle++;
        continue;
      }
      connections.push({ fd, idleMs });
    }
    let overLimit = 0;
    const excess = connections.length - connectionsMax;
    if (excess > 0) {
      connections.sort((a, b) => b.idleMs - a.idleMs);
      for (const { fd, idleMs } of connections) {
        if (overLimit >= excess || idleMs < OVER_LIMIT_IDLE_MS_MIN) break;
        if (libc.shutdown(fd, SHUT_RDWR) === 0) overLimit++;
      }
    }
    const { metrics } = this.options;
    const open = connections.length + idle;
    metrics.apiConnections.labels().set(open - idle - overLimit);
    if (idle > 0) metrics.apiConnectionsClosed.labels("idle").inc(idle);
    if (overLimit > 0) metrics.apiConnectionsClosed.labels("over_limit").inc(overLimit);
    return { open, idle, overLimit };
  }

  /** Milliseconds since data last moved on `fd`, if it is a connection accepted on the port. */
  private connectionIdleMs(libc: Libc, fd: number, port = this.options.port): number | null {
    const state = this.tcpState(libc, fd, port);
    // The listening socket has the same local port; only connected ones are clients.
    if (state !== TCP_ESTABLISHED && state !== TCP_CLOSE_WAIT) return null;
    return Math.min(
      this.infoView.getUint32(TCPI_LAST_DATA_SENT, true),
      this.infoView.getUint32(TCPI_LAST_DATA_RECV, true),
    );
  }

  /** The TCP state of `fd` (its `TCP_INFO` left in `this.info`) if it is bound to `port`. */
  private tcpState(libc: Libc, fd: number, port: number): number | null {
    this.sockaddrLength[0] = SOCKADDR_BYTES;
    if (libc.getsockname(fd, this.sockaddr, new Uint8Array(this.sockaddrLength.buffer)) !== 0) {
      return null; // not a socket
    }
    const family = this.sockaddr[0]! | (this.sockaddr[1]! << 8);
    if (family !== AF_INET && family !== AF_INET6) return null;
    if (((this.sockaddr[2]! << 8) | this.sockaddr[3]!) !== port) return null;
    this.infoLength[0] = TCP_INFO_BYTES;
    const infoLength = new Uint8Array(this.infoLength.buffer);
    if (libc.getsockopt(fd, IPPROTO_TCP, TCP_INFO, this.info, infoLength) !== 0) return null;
    return this.info[0]!;
  }

  /**
   * Stops this process listening on `port` — every serving thread's socket — without touching
   * its connections: `shutdown()` on a listening socket takes it out of the kernel's
   * `SO_REUSEPORT` group at once, so new connections go to the other listeners (a hand-over
   * successor). Connections the kernel had queued for it and not yet handed to an `accept()` are
   * reset, unless `net.ipv4.tcp_migrate_req = 1` moves them to a sibling (docs/operations.md). The
   * servers' accept loops then fail with EINVAL, which the caller expects. Returns how many
   * sockets stopped.
   */
  stopListening(port: number): number {
    const libc = this.library.symbols;
    let stopped = 0;
    for (const fd of fileDescriptors()) {
      if (this.tcpState(libc, fd, port) !== TCP_LISTEN) continue;
      if (libc.shutdown(fd, SHUT_RD) === 0) stopped++;
    }
    return stopped;
  }

  /** Connections accepted on `port` that received or sent data within the last `withinMs`. */
  busyConnections(port: number, withinMs: number): number {
    const libc = this.library.symbols;
    let busy = 0;
    for (const fd of fileDescriptors()) {
      const idleMs = this.connectionIdleMs(libc, fd, port);
      if (idleMs !== null && idleMs < withinMs) busy++;
    }
    return busy;
  }

  /** Sweeps every `everyMs` until `signal` aborts. */
  async run(everyMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(everyMs, signal);
      if (!signal.aborted) this.sweep();
    }
  }

  /** Releases libc. */
  close(): void {
    this.library.close();
  }
}

/** How often to sweep for a timeout: an idle connection lives at most timeout + this. */
export function sweepIntervalMs(idleTimeoutMs: number): number {
  if (idleTimeoutMs === 0) return 5000;
  return Math.max(100, Math.min(5000, Math.floor(idleTimeoutMs / 4)));
}
