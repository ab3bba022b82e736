/**
 * Start failures: what stops a node before it serves (a held data folder, a port in use, an
 * unreadable file). Each carries a stable `event` code and the fields that name the cause, so
 * `main.ts` reports it as one JSON line and a non-zero exit instead of an uncaught stack trace.
 */
export class StartError extends Error {
  /** Stable snake_case event code of the log line (`listen_failed`, `data_dir_in_use`, …). */
  readonly event: string;
  /** JSON-serialisable fields naming the cause (address, path, pid, …). */
  readonly fields: Readonly<Record<string, unknown>>;
  constructor(event: string, message: string, fields: Readonly<Record<string, unknown>> = {}) {
    super(message);
    this.name = "StartError";
    this.event = event;
    this.fields = fields;
  }
}

/** Which socket a node failed to bind. */
export type Listener = "api" | "internal" | "gossip";

/**
 * Binds with `bind()`, turning an OS refusal (address in use, privileged port, address not on this
 * host) into a `listen_failed` {@linkcode StartError} naming the listener, the address, the port
 * and the OS error.
 */
export function bindOrThrow<T>(listener: Listener, host: string, port: number, bind: () => T): T {
  try {
    return bind();
  } catch (error) {
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const os = error instanceof Error ? error.name : "Error";
    const message = error instanceof Error ? error.message : String(error);
    throw new StartError("listen_failed", `Cannot listen on ${address} (${listener}): ${message}`, {
      listener,
      address,
      port,
      os_error: os,
    });
  }
}
