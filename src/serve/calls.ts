/**
 * Calls between the main thread and a serving thread over `postMessage`: each call carries an id
 * and gets one reply, a value or an error. Operational errors cross as their code, message and
 * details and are rebuilt as {@linkcode OperationalError}s on the other side, so a write refused
 * on the main thread (`log_unavailable`, `log_overloaded`) reaches the client of any thread with
 * the same problem. Calls in flight are bounded in number and time.
 *
 * @module
 */
import { isErrorCode } from "../util/error_codes.ts";
import { OperationalError } from "../util/errors.ts";

/** Either end of a worker channel (a `Worker`, or a worker's global scope). */
export interface Port {
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

/** An error as it crosses threads. */
export interface WireError {
  /** The operational error code, or null for anything else (a bug: 500 on the client side). */
  readonly code: string | null;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** A call message. */
export interface CallMessage {
  readonly kind: "call";
  readonly id: number;
  readonly op: string;
  readonly args: unknown;
}

/** The reply to a call: `error` set, or `value`. */
export interface ReplyMessage {
  readonly kind: "reply";
  readonly id: number;
  readonly value?: unknown;
  readonly error?: WireError;
}

/** `error` as it crosses threads. */
export function toWire(error: unknown): WireError {
  if (error instanceof OperationalError) {
    return { code: error.code, message: error.message, details: error.details };
  }
  return {
    code: null,
    message: error instanceof Error ? error.message : String(error),
    details: {},
  };
}

/** The error a {@linkcode WireError} stands for. */
export function fromWire(wire: WireError): Error {
  if (wire.code !== null && isErrorCode(wire.code)) {
    return new OperationalError(wire.code, wire.message, wire.details);
  }
  return new Error(wire.message);
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** The calling side of a channel. */
export class Calls {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /**
   * Calls over `port`: at most `max` in flight (a call past it fails at once), each failing
   * after `timeoutMs` without a reply.
   */
  constructor(
    private readonly port: Port,
    private readonly max: number,
    private readonly timeoutMs: number,
  ) {}

  /** Sends `op(args)` and resolves to the reply's value (rejects with its error). */
  call(op: string, args: unknown, transfer: Transferable[] = []): Promise<unknown> {
    if (this.pending.size >= this.max) {
      return Promise.reject(new Error(`Cannot call ${op}: ${this.max} calls are in flight`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`Cannot call ${op}: no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const message: CallMessage = { kind: "call", id, op, args };
      this.port.postMessage(message, transfer);
    });
  }

  /** Settles the call `reply` answers (an unknown id — timed out — is dropped). */
  settle(reply: ReplyMessage): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.error !== undefined) pending.reject(fromWire(reply.error));
    else pending.resolve(reply.value);
  }

  /** Fails every call in flight (the other side is gone). */
  failAll(reason: string): void {
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(new Error(reason));
    }
  }
}

/** Runs `handle` for a call and posts its reply on `port`. */
export async function answer(
  port: Port,
  call: CallMessage,
  handle: (op: string, args: unknown) => Promise<unknown>,
): Promise<void> {
  let reply: ReplyMessage;
  try {
    reply = { kind: "reply", id: call.id, value: await handle(call.op, call.args) };
  } catch (error) {
    reply = { kind: "reply", id: call.id, error: toWire(error) };
  }
  port.postMessage(reply);
}
