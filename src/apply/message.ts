/**
 * The log message format (DESIGN §4): the Kafka value / embedded log entry, JSON
 * `{"v":1,"atomic":bool,"ops":[{"op":"put"|"delete","pk","sk","data"?,"if"?,"ttl_ms"?,"expires_at"?}]}`,
 * or a tick `{"v":1,"tick":true}`: no ops, sent by a node when a record of the partition has
 * expired and no other message came since, so that apply purges it (see `apply.ts`).
 *
 * Decoding is strict and depends on nothing but the bytes, so every replica accepts or rejects
 * the same messages; a rejected message is poison and is skipped, never retried.
 */
import {
  EXPIRES_AT_MAX,
  MESSAGE_CONDITION_CHARS_MAX,
  MESSAGE_OPS_MAX,
  MESSAGE_VERSION,
  TTL_MS_MAX,
} from "../config/mod.ts";
import { keyProblem } from "../keys/mod.ts";
import { JsonRefusedError, parseJsonExact } from "../util/json.ts";

/** The format's version and bounds are cluster-wide constants (`config/cluster.ts`). */
export {
  EXPIRES_AT_MAX,
  MESSAGE_CONDITION_CHARS_MAX,
  MESSAGE_OPS_MAX,
  MESSAGE_VERSION,
  TTL_MS_MAX,
};

/** A put: write `data` at `[pk, sk]` if `if` holds. */
export interface PutOp {
  readonly op: "put";
  readonly pk: string;
  readonly sk: string;
  /** Any JSON value. */
  readonly data: unknown;
  readonly if?: string;
  /** The record expires this long after the message's log timestamp (1 … `TTL_MS_MAX`). */
  readonly ttl_ms?: number;
  /** The record expires at this unix ms (0 … `EXPIRES_AT_MAX`); not with `ttl_ms`. */
  readonly expires_at?: number;
}

/** A delete of `[pk, sk]` if `if` holds. */
export interface DeleteOp {
  readonly op: "delete";
  readonly pk: string;
  readonly sk: string;
  readonly if?: string;
}

/** One operation of a mutation. */
export type Op = PutOp | DeleteOp;

/** One log message: ops of a single partition, applied in one transaction. */
export interface Mutation {
  readonly v: typeof MESSAGE_VERSION;
  /** All ops or none: any false condition aborts the whole message. */
  readonly atomic: boolean;
  /** Empty only in a tick. */
  readonly ops: readonly Op[];
}

/** The tick message: no ops (see the module doc). */
export const TICK: Mutation = Object.freeze({ v: MESSAGE_VERSION, atomic: false, ops: [] });

/** The log value of a tick. */
export function encodeTick(): Uint8Array {
  return encoder.encode(`{"v":${MESSAGE_VERSION},"tick":true}`);
}

/** Why an op's expiry fields are unusable, or null (shared by the API and the decoder). */
export function expiryProblem(op: Readonly<Record<string, unknown>>): string | null {
  const { ttl_ms: ttl, expires_at: at } = op;
  if (ttl !== undefined && at !== undefined) return "give ttl_ms or expires_at, not both";
  if (
    ttl !== undefined &&
    (!Number.isSafeInteger(ttl) || (ttl as number) < 1 || (ttl as number) > TTL_MS_MAX)
  ) {
    return `ttl_ms must be an integer in [1, ${TTL_MS_MAX}]`;
  }
  if (
    at !== undefined &&
    (!Number.isSafeInteger(at) || (at as number) < 0 || (at as number) > EXPIRES_AT_MAX)
  ) {
    return `expires_at must be an integer unix ms in [0, ${EXPIRES_AT_MAX}]`;
  }
  if ((ttl !== undefined || at !== undefined) && op.op === "delete") {
    return "a delete takes no ttl_ms or expires_at";
  }
  return null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Serialises a mutation as the log value. `data` parsed by `parseJsonExact` is written with every
 * number token as the client sent it.
 */
export function encodeMutation(mutation: Mutation): Uint8Array {
  return encoder.encode(JSON.stringify(mutation));
}

/** The outcome of decoding: a mutation, or why the bytes are poison. */
export type Decoded = { ok: true; mutation: Mutation } | { ok: false; reason: string };

function poison(reason: string): Decoded {
  return { ok: false, reason };
}

/**
 * Decodes and validates a log value. Never throws. Numbers in `data` keep their tokens
 * (`parseJsonExact`), so every replica stores the bytes the client sent.
 */
export function decodeMutation(value: Uint8Array): Decoded {
  let parsed: unknown;
  try {
    const text = decoder.decode(value);
    try {
      parsed = parseJsonExact(text);
    } catch (error) {
      if (!(error instanceof JsonRefusedError)) throw error;
      // Nested too deep to parse exactly (the API refuses such writes; another producer or older
      // code wrote it): read it as older code did, which every replica does alike.
      parsed = JSON.parse(text);
    }
  } catch {
    return poison("not UTF-8 JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return poison("not a JSON object");
  }
  const m = parsed as Record<string, unknown>;
  if (m.v !== MESSAGE_VERSION) return poison(`unknown version ${JSON.stringify(m.v)}`);
  if (m.tick === true) return { ok: true, mutation: TICK };
  if (typeof m.atomic !== "boolean") return poison("atomic must be a boolean");
  const ops = m.ops;
  if (!Array.isArray(ops) || ops.length === 0 || ops.length > MESSAGE_OPS_MAX) {
    return poison(`ops must be an array of 1..${MESSAGE_OPS_MAX}`);
  }
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Record<string, unknown> | null;
    if (typeof op !== "object" || op === null || Array.isArray(op)) {
      return poison(`ops[${i}] is not an object`);
    }
    if (op.op !== "put" && op.op !== "delete") return poison(`ops[${i}].op is unknown`);
    const problem = keyProblem(op.pk, op.sk);
    if (problem !== null) return poison(`ops[${i}]: ${problem}`);
    if (op.op === "put" && op.data === undefined) return poison(`ops[${i}] put without data`);
    if (
      op.if !== undefined &&
      (typeof op.if !== "string" || op.if.length > MESSAGE_CONDITION_CHARS_MAX)
    ) {
      return poison(`ops[${i}].if must be a string of at most ${MESSAGE_CONDITION_CHARS_MAX}`);
    }
    const expiry = expiryProblem(op);
    if (expiry !== null) return poison(`ops[${i}]: ${expiry}`);
  }
  return { ok: true, mutation: m as unknown as Mutation };
}
