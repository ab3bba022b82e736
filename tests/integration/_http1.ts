/**
 * A raw HTTP/1.1 keep-alive client for integration tests that must choose which connection — and
 * so which serving thread — answers a request. `fetch` pools connections out of the test's reach;
 * with `SERVE_THREADS` the kernel hands each new connection to one thread (`SO_REUSEPORT`) and
 * every request on it is answered by that thread, so holding a connection per thread is how a
 * test forces a request onto a thread ({@linkcode ThreadConnections}).
 *
 * Requests carry a `content-length` body; responses are read by `content-length`, `chunked`, or
 * up to the end of the connection. Sizes and time are bounded per request; one request at a time
 * per connection (no pipelining).
 *
 * ```ts
 * const conn = await Http1Connection.open(port);
 * const health = await conn.request("GET", "/healthz");
 * conn.close();
 * ```
 *
 * @module
 */
import type { HttpResult } from "../_helpers.ts";

/** Largest status line plus headers of a response. */
export const HEAD_BYTES_MAX = 64 * 1024;
/** Largest response body. */
export const BODY_BYTES_MAX = 8 * 1024 * 1024;
/** Default bound on one request, from its first byte written to its last byte read. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** Default bound on opening a connection. */
export const CONNECT_TIMEOUT_MS = 5000;

const READ_CHUNK_BYTES = 16 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a request sends besides its method and path. */
export interface Http1RequestOptions {
  /** Sent as it is when a string or bytes, as JSON otherwise (with `content-type: application/json`). */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** Bound on this request; {@linkcode REQUEST_TIMEOUT_MS} by default. */
  readonly timeoutMs?: number;
}

/** One HTTP/1.1 connection, kept alive between requests. */
export class Http1Connection {
  /** Bytes read but not yet consumed. */
  private pending = new Uint8Array(0);
  private busy = false;
  private closedFlag = false;
  private eof = false;

  private constructor(private readonly conn: Deno.TcpConn, readonly host: string) {}

  /** Connects to `hostname:port`, bounded by `timeoutMs`. */
  static async open(
    port: number,
    hostname = "127.0.0.1",
    timeoutMs = CONNECT_TIMEOUT_MS,
  ): Promise<Http1Connection> {
    const connecting = Deno.connect({ hostname, port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`Cannot connect to ${hostname}:${port}: no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const conn = await Promise.race([connecting, timeout]);
      return new Http1Connection(conn, `${hostname}:${port}`);
    } catch (error) {
      // A connect that completes after the timeout must not leak its socket.
      connecting.then((c) => c.close(), () => {});
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether the connection is closed (by `close()`, a timeout, the server, or an error). */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Closes the connection; idempotent. A request in flight fails. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }

  /**
   * Sends one request and reads its whole response. The connection is closed after a response
   * that says `connection: close` or that ends with the connection, and after any failure (a
   * half-read response leaves it unusable).
   */
  async request(
    method: string,
    path: string,
    options: Http1RequestOptions = {},
  ): Promise<HttpResult> {
    if (this.closedFlag) throw new Error(`Cannot send ${method} ${path}: connection is closed`);
    if (this.busy) throw new Error(`Cannot send ${method} ${path}: a request is in flight`);
    this.busy = true;
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, timeoutMs);
    try {
      await this.writeAll(this.encodeRequest(method, path, options));
      const result = await this.readResponse(method);
      if (result.headers.get("connection")?.toLowerCase() === "close") this.close();
      return result;
    } catch (error) {
      this.close();
      if (timedOut) {
        throw new Error(`Cannot finish ${method} ${path}: no response within ${timeoutMs} ms`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      this.busy = false;
    }
  }

  private encodeRequest(method: string, path: string, options: Http1RequestOptions): Uint8Array {
    const headers = new Map<string, string>();
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      headers.set(name.toLowerCase(), value);
    }
    let body: Uint8Array | null = null;
    if (typeof options.body === "string") body = encoder.encode(options.body);
    else if (options.body instanceof Uint8Array) body = options.body;
    else if (options.body !== undefined) {
      body = encoder.encode(JSON.stringify(options.body));
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
    }
    headers.set("host", this.host);
    if (body !== null) headers.set("content-length", String(body.length));
    let head = `${method} ${path} HTTP/1.1\r\n`;
    for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
    head += "\r\n";
    const headBytes = encoder.encode(head);
    if (body === null) return headBytes;
    const out = new Uint8Array(headBytes.length + body.length);
    out.set(headBytes);
    out.set(body, headBytes.length);
    return out;
  }

  private async writeAll(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  /** Reads more bytes into `pending`; false at the end of the connection. */
  private async fill(): Promise<boolean> {
    if (this.eof) return false;
    const chunk = new Uint8Array(READ_CHUNK_BYTES);
    const n = await this.conn.read(chunk);
    if (n === null) {
      this.eof = true;
      return false;
    }
    const joined = new Uint8Array(this.pending.length + n);
    joined.set(this.pending);
    joined.set(chunk.subarray(0, n), this.pending.length);
    this.pending = joined;
    return true;
  }

  private take(n: number): Uint8Array {
    const out = this.pending.slice(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }

  /** The next CRLF-terminated line (without the CRLF), at most `max` bytes. */
  private async line(max: number, what: string): Promise<string> {
    while (true) {
      const end = indexOfCrlf(this.pending);
      if (end >= 0) {
        const line = decoder.decode(this.take(end));
        this.take(2);
        return line;
      }
      if (this.pending.length > max) {
        throw new Error(`Cannot read ${what}: longer than ${max} bytes`);
      }
      if (!(await this.fill())) throw new Error(`Cannot read ${what}: the connection ended`);
    }
  }

  private async exactly(n: number, what: string): Promise<Uint8Array> {
    while (this.pending.length < n) {
      if (!(await this.fill())) throw new Error(`Cannot read ${what}: the connection ended`);
    }
    return this.take(n);
  }

  private async readResponse(method: string): Promise<HttpResult> {
    let headBytes = 0;
    const statusLine = await this.line(HEAD_BYTES_MAX, "the status line");
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (match === null) throw new Error(`Cannot parse the status line "${statusLine}"`);
    const status = Number(match[1]);
    const headers = new Headers();
    while (true) {
      const line = await this.line(HEAD_BYTES_MAX, "a header");
      headBytes += line.length + 2;
      if (headBytes > HEAD_BYTES_MAX) {
        throw new Error(`Cannot read headers: over ${HEAD_BYTES_MAX} bytes`);
      }
      if (line === "") break;
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`Cannot parse the header "${line}"`);
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    let body: Uint8Array;
    const length = headers.get("content-length");
    const chunked = headers.get("transfer-encoding")?.toLowerCase().includes("chunked") ?? false;
    if (method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = new Uint8Array(0);
    } else if (chunked) {
      body = await this.chunkedBody();
    } else if (length !== null) {
      const n = Number(length);
      if (!Number.isSafeInteger(n) || n < 0) {
        throw new Error(`Cannot parse content-length ${length}`);
      }
      if (n > BODY_BYTES_MAX) {
        throw new Error(`Cannot read a body of ${n} bytes: over ${BODY_BYTES_MAX}`);
      }
      body = await this.exactly(n, "the body");
    } else {
      // Neither length nor chunked: the body ends with the connection.
      while (await this.fill()) {
        if (this.pending.length > BODY_BYTES_MAX) {
          throw new Error(`Cannot read the body: over ${BODY_BYTES_MAX} bytes`);
        }
      }
      body = this.take(this.pending.length);
      this.close();
    }
    const text = decoder.decode(body);
    let json: unknown = null;
    try {
      json = text === "" ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    return { status, headers, text, json };
  }

  private async chunkedBody(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    while (true) {
      const sizeLine = await this.line(1024, "a chunk size");
      const size = parseInt(sizeLine.split(";")[0]!.trim(), 16);
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new Error(`Cannot parse the chunk size "${sizeLine}"`);
      }
      if (size === 0) break;
      total += size;
      if (total > BODY_BYTES_MAX) {
        throw new Error(`Cannot read the body: over ${BODY_BYTES_MAX} bytes`);
      }
      parts.push(await this.exactly(size, "a chunk"));
      await this.exactly(2, "a chunk's CRLF");
    }
    // Trailers, up to the empty line.
    let trailerBytes = 0;
    while (true) {
      const line = await this.line(HEAD_BYTES_MAX, "a trailer");
      trailerBytes += line.length + 2;
      if (trailerBytes > HEAD_BYTES_MAX) {
        throw new Error(`Cannot read trailers: over ${HEAD_BYTES_MAX} bytes`);
      }
      if (line === "") break;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

function indexOfCrlf(bytes: Uint8Array): number {
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  }
  return -1;
}

/** Bound on connections opened to find one on every serving thread. */
export const THREAD_CONNECT_ATTEMPTS_MAX = 200;

/**
 * Keep-alive connections to a node's public port, `perThread` of them on each of its `threads`
 * serving threads (found by asking `/healthz`, which names the thread, on each new connection).
 */
export class ThreadConnections {
  private constructor(
    private readonly port: number,
    private readonly threads: number,
    private readonly byThread: Map<number, Http1Connection[]>,
    private readonly hostname: string,
  ) {}

  /**
   * Opens connections until `perThread` answer from each of threads 1..`threads`, at most
   * {@linkcode THREAD_CONNECT_ATTEMPTS_MAX}; closes the surplus. Fails (closing everything) if a
   * thread never turns up or `/healthz` names a thread out of range.
   */
  static async open(
    port: number,
    threads: number,
    perThread = 1,
    hostname = "127.0.0.1",
  ): Promise<ThreadConnections> {
    const pool = new ThreadConnections(port, threads, new Map(), hostname);
    for (let t = 1; t <= threads; t++) pool.byThread.set(t, []);
    try {
      await pool.fill(perThread);
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  /** The thread a connection is served by, from its `/healthz`. */
  static async threadOf(conn: Http1Connection): Promise<number> {
    const health = await conn.request("GET", "/healthz");
    if (health.status !== 200 || health.json?.status !== "ok") {
      throw new Error(`Cannot tell the thread: /healthz answered ${health.status} ${health.text}`);
    }
    const thread = health.json.thread;
    if (!Number.isSafeInteger(thread)) {
      throw new Error(`Cannot tell the thread: /healthz has no thread number: ${health.text}`);
    }
    return thread;
  }

  /** The `index`-th connection to `thread`; a closed one is replaced by a new one to that thread. */
  async on(thread: number, index = 0): Promise<Http1Connection> {
    const list = this.byThread.get(thread);
    if (list === undefined || index < 0 || index >= list.length) {
      throw new Error(`Cannot use connection ${index} of thread ${thread}: not held`);
    }
    if (list[index]!.closed) {
      list.splice(index, 1);
      await this.fill(list.length + 1, thread);
      // The new connection went to the end: put it back where the caller expects it.
      list.splice(index, 0, list.pop()!);
    }
    return list[index]!;
  }

  /** Closes every connection. */
  close(): void {
    for (const list of this.byThread.values()) for (const conn of list) conn.close();
  }

  /** Opens connections until each thread (or only `only`) holds `perThread` open ones. */
  private async fill(perThread: number, only?: number): Promise<void> {
    const short = () =>
      [...this.byThread.entries()].some(([t, list]) =>
        (only === undefined || t === only) && list.length < perThread
      );
    for (let attempt = 0; short(); attempt++) {
      if (attempt >= THREAD_CONNECT_ATTEMPTS_MAX) {
        const held = [...this.byThread.entries()].map(([t, l]) => `${t}: ${l.length}`).join(", ");
        throw new Error(
          `Cannot reach every serving thread: ${THREAD_CONNECT_ATTEMPTS_MAX} connections gave ${held}`,
        );
      }
      const conn = await Http1Connection.open(this.port, this.hostname);
      let keep = false;
      try {
        const thread = await ThreadConnections.threadOf(conn);
        const list = this.byThread.get(thread);
        if (list === undefined) {
          throw new Error(`Cannot use thread ${thread}: the node has threads 1..${this.threads}`);
        }
        if ((only === undefined || thread === only) && list.length < perThread) {
          list.push(conn);
          keep = true;
        }
      } finally {
        if (!keep) conn.close();
      }
    }
  }
}
