/**
 * The log message format (DESIGN §4): the Kafka value / embedded log entry, JSON
 * `{"v":1,"atomic":bool,"ops":[{"op":"put"|"delete","pk","sk","data"?,"if"?}]}`.
 *
 * Decoding is strict and depends on nothing but the bytes, so every replica accepts or rejects
 * the same messages; a rejected message is poison and is skipped, never retried.
 */
import { MESSAGE_CONDITION_CHARS_MAX, MESSAGE_OPS_MAX, MESSAGE_VERSION } from "../config/mod.ts";
import { keyProblem } from "../keys/mod.ts";
import { JsonRefusedError, parseJsonExact } from "../util/json.ts";

/** The format's version and bounds are cluster-wide constants (`config/cluster.ts`). */
export { MESSAGE_CONDITION_CHARS_MAX, MESSAGE_OPS_MAX, MESSAGE_VERSION };

/** A put: write `data` at `[pk, sk]` if `if` holds. */
export interface PutOp {
  readonly op: "put";
  readonly pk: string;
  readonly sk: string;
  /** Any JSON value. */
  readonly data: unknown;
  readonly if?: string;
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
  readonly ops: readonly Op[];
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
  }
  return { ok: true, mutation: m as unknown as Mutation };
}
