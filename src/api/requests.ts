/**
 * Validation of request bodies into typed commands. Every limit of the config is enforced here,
 * before anything reaches the log: a rejected request writes nothing.
 */
import {
  type ConditionCache,
  ConditionError,
  expiryProblem,
  type Mutation,
  type Op,
  type PutOp,
} from "../apply/mod.ts";
import type { Config } from "../config/mod.ts";
import { keyProblem, partitionOf, utf8Length } from "../keys/mod.ts";
import type {
  AsOf,
  GetKey,
  GetRequest,
  HistoryRequest,
  ListRequest,
  ReadAfter,
} from "../node/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { type Cursors, parseId } from "../watch/cursor.ts";
import { badRequest } from "./problem.ts";

/** The validated read requests are the reader's types (src/node/reader.ts). */
export type { GetKey, GetRequest, ListRequest, ReadAfter };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function requireObject(value: unknown, where: string): Json {
  if (!isObject(value)) {
    throw badRequest("invalid_request", `Cannot use ${where}: must be a JSON object`);
  }
  return value;
}

function rejectUnknown(object: Json, allowed: ReadonlySet<string>, where: string): void {
  // for…in over a JSON.parse result visits exactly its own keys, without allocating an array.
  for (const key in object) {
    if (!allowed.has(key)) {
      throw badRequest("unknown_field", `Cannot use ${where}: unknown field "${key}"`, {
        field: key,
      });
    }
  }
}

function checkKey(pk: unknown, sk: unknown, where: string): void {
  const problem = keyProblem(pk, sk);
  if (problem !== null) throw badRequest("invalid_key", `Cannot use ${where}: ${problem}`);
}

function checkCondition(
  expression: unknown,
  where: string,
  config: Config,
  conditions: ConditionCache,
): string | undefined {
  if (expression === undefined || expression === null) return undefined;
  if (typeof expression !== "string") {
    throw badRequest("invalid_condition", `Cannot use ${where}.if: must be a string`);
  }
  if (utf8Length(expression) > config.limits.conditionBytesMax) {
    throw badRequest(
      "condition_too_long",
      `Cannot use ${where}.if: longer than CONDITION_BYTES_MAX (${config.limits.conditionBytesMax} bytes)`,
      { limit: config.limits.conditionBytesMax },
    );
  }
  try {
    conditions.compile(expression);
  } catch (error) {
    if (error instanceof ConditionError) {
      throw badRequest(
        "invalid_condition",
        `Cannot use ${where}.if: ${error.message}`,
        { ...error.details },
      );
    }
    throw error;
  }
  return expression;
}

function checkData(data: unknown, where: string, config: Config): void {
  if (data === undefined) throw badRequest("missing_data", `Cannot use ${where}: data is required`);
  // Write bodies are parsed by parseJsonExact: this is the size of the text that will be stored.
  const bytes = utf8Length(JSON.stringify(data));
  if (bytes > config.limits.dataBytesMax) {
    throw new OperationalError(
      "data_too_large",
      `Cannot use ${where}: data is ${bytes} bytes, more than DATA_BYTES_MAX (${config.limits.dataBytesMax})`,
      { limit: config.limits.dataBytesMax, bytes },
    );
  }
}

/** The record array of a request, accepting the seed's `Records` spelling too. */
function recordsOf(body: Json, field: "records" | "ops", config: Config): unknown[] {
  const value = field === "records" ? (body.records ?? body.Records) : body.ops;
  if (!Array.isArray(value)) {
    throw badRequest("invalid_request", `Cannot use body: "${field}" must be an array`);
  }
  if (value.length === 0) {
    throw badRequest("no_records", `Cannot use body: "${field}" is empty`);
  }
  if (value.length > config.limits.recordsPerRequestMax) {
    throw badRequest(
      "too_many_records",
      `Cannot use body: ${value.length} ${field}, more than RECORDS_PER_REQUEST_MAX (${config.limits.recordsPerRequestMax})`,
      { limit: config.limits.recordsPerRequestMax },
    );
  }
  return value;
}

const WRITE_BODY = new Set(["records", "Records"]);
const PUT_FIELDS = new Set(["pk", "sk", "data", "if", "ttl_ms", "expires_at"]);
const DELETE_FIELDS = new Set(["pk", "sk", "if"]);
const BATCH_BODY = new Set(["ops"]);
const BATCH_FIELDS = new Set(["op", "pk", "sk", "data", "if", "ttl_ms", "expires_at"]);

function group(ops: readonly Op[], partitions: number): Map<number, Mutation> {
  const byPartition = new Map<number, Op[]>();
  for (const op of ops) {
    const p = partitionOf(op.pk, partitions);
    let list = byPartition.get(p);
    if (list === undefined) byPartition.set(p, list = []);
    list.push(op);
  }
  const out = new Map<number, Mutation>();
  for (const [p, list] of byPartition) out.set(p, { v: 1, atomic: false, ops: list });
  return out;
}

function parseOp(
  raw: unknown,
  kind: "put" | "delete",
  where: string,
  config: Config,
  conditions: ConditionCache,
): Op {
  const record = requireObject(raw, where);
  rejectUnknown(record, kind === "put" ? PUT_FIELDS : DELETE_FIELDS, where);
  checkKey(record.pk, record.sk, where);
  const pk = record.pk as string;
  const sk = record.sk as string;
  const condition = checkCondition(record.if, where, config, conditions);
  const ttl = record.ttl_ms ?? undefined;
  const at = record.expires_at ?? undefined;
  const expiry = expiryProblem({ op: kind, ttl_ms: ttl, expires_at: at });
  if (expiry !== null) throw badRequest("invalid_ttl", `Cannot use ${where}: ${expiry}`);
  if (kind === "put") {
    checkData(record.data, where, config);
    const put: PutOp = { op: "put", pk, sk, data: record.data };
    return {
      ...put,
      ...(condition === undefined ? {} : { if: condition }),
      ...(ttl === undefined ? {} : { ttl_ms: ttl as number }),
      ...(at === undefined ? {} : { expires_at: at as number }),
    };
  }
  return condition === undefined
    ? { op: "delete", pk, sk }
    : { op: "delete", pk, sk, if: condition };
}

/** `/records/put` and `/records/delete`: one mutation per partition touched. */
export function parseWrite(
  body: unknown,
  kind: "put" | "delete",
  config: Config,
  conditions: ConditionCache,
): Map<number, Mutation> {
  const object = requireObject(body, "body");
  rejectUnknown(object, WRITE_BODY, "body");
  const raw = recordsOf(object, "records", config);
  const ops = raw.map((r, i) => parseOp(r, kind, `records[${i}]`, config, conditions));
  return group(ops, config.cluster.partitions);
}

/** `/records/batch`: one atomic mutation; every op must fall in the same partition. */
export function parseBatch(
  body: unknown,
  config: Config,
  conditions: ConditionCache,
): Map<number, Mutation> {
  const object = requireObject(body, "body");
  rejectUnknown(object, BATCH_BODY, "body");
  const raw = recordsOf(object, "ops", config);
  const ops: Op[] = [];
  for (let i = 0; i < raw.length; i++) {
    const where = `ops[${i}]`;
    const op = requireObject(raw[i], where);
    rejectUnknown(op, BATCH_FIELDS, where);
    if (op.op !== "put" && op.op !== "delete") {
      throw badRequest("invalid_op", `Cannot use ${where}: op must be "put" or "delete"`);
    }
    const { op: _, ...rest } = op;
    if (op.op === "delete" && rest.data !== undefined) {
      throw badRequest("unknown_field", `Cannot use ${where}: a delete takes no data`, {
        field: "data",
      });
    }
    ops.push(parseOp(rest, op.op, where, config, conditions));
  }
  const grouped = group(ops, config.cluster.partitions);
  if (grouped.size > 1) {
    const partitions = [...grouped.keys()].sort((a, b) => a - b);
    throw badRequest(
      "batch_spans_partitions",
      `Cannot apply batch atomically: its keys fall in partitions ${
        partitions.join(", ")
      }; a batch must stay in one partition`,
      { partitions },
    );
  }
  const [partition] = grouped.keys();
  return new Map([[partition!, { v: 1, atomic: true, ops }]]);
}

/**
 * An `after` object `{"<partition>": <offset>}` (absent or null: empty): what a read waits for,
 * and where a watch resumes.
 */
export function parseAfterMap(
  value: unknown,
  config: Config,
  field: "after" | "as_of" = "after",
): Map<number, number> {
  const code = field === "after" ? "invalid_after" : "invalid_as_of";
  const after = new Map<number, number>();
  if (value === undefined || value === null) return after;
  if (!isObject(value)) {
    throw badRequest(code, `Cannot use "${field}": must be an object {"<partition>": <offset>}`);
  }
  for (const [key, offset] of Object.entries(value)) {
    const p = Number(key);
    if (!/^\d+$/.test(key) || p >= config.cluster.partitions) {
      throw badRequest(
        code,
        `Cannot use "${field}": "${key}" is not a partition in [0, ${
          config.cluster.partitions - 1
        }]`,
      );
    }
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < -1) {
      throw badRequest(
        code,
        `Cannot use "${field}": offset of partition ${key} must be an integer ≥ -1`,
      );
    }
    after.set(p, offset);
  }
  return after;
}

/** `as_of` (a map of offsets) or `as_of_ms` (unix ms of log time): a read of the past. */
function parseAsOf(object: Json, config: Config): AsOf | undefined {
  const map = object.as_of ?? null;
  const ms = object.as_of_ms ?? null;
  if (map === null && ms === null) return undefined;
  if (config.history.retainSec === 0) {
    throw new OperationalError(
      "history_disabled",
      "Cannot read the past: HISTORY_RETAIN_SEC is 0 here",
    );
  }
  if (map !== null && ms !== null) {
    throw badRequest("invalid_as_of", 'Cannot read the past: give "as_of" or "as_of_ms", not both');
  }
  if (ms !== null) {
    if (typeof ms !== "number" || !Number.isSafeInteger(ms) || ms < 0) {
      throw badRequest("invalid_as_of", 'Cannot use "as_of_ms": must be an integer unix ms ≥ 0');
    }
    return { ms };
  }
  return { offsets: parseAfterMap(map, config, "as_of") };
}

function parseAfter(object: Json, config: Config): ReadAfter {
  const after = parseAfterMap(object.after, config);
  let waitMs = 0;
  if (object.wait_ms !== undefined && object.wait_ms !== null) {
    const w = object.wait_ms;
    if (typeof w !== "number" || !Number.isSafeInteger(w) || w < 0 || w > config.limits.waitMsMax) {
      throw badRequest(
        "invalid_wait",
        `Cannot use "wait_ms": must be an integer in [0, ${config.limits.waitMsMax}] (WAIT_MS_MAX)`,
        { limit: config.limits.waitMsMax },
      );
    }
    waitMs = w;
  }
  return { after, waitMs };
}

const GET_BODY = new Set(["records", "Records", "after", "wait_ms", "as_of", "as_of_ms"]);
const GET_FIELDS = new Set(["pk", "sk"]);

/** `/records/get`. */
export function parseGet(body: unknown, config: Config): GetRequest {
  const object = requireObject(body, "body");
  rejectUnknown(object, GET_BODY, "body");
  const raw = recordsOf(object, "records", config);
  const keys: GetKey[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const where = `records[${i}]`;
    const key = requireObject(raw[i], where);
    rejectUnknown(key, GET_FIELDS, where);
    checkKey(key.pk, key.sk, where);
    const pk = key.pk as string;
    keys[i] = { pk, sk: key.sk as string, partition: partitionOf(pk, config.cluster.partitions) };
  }
  const asOf = parseAsOf(object, config);
  return { keys, ...parseAfter(object, config), ...(asOf === undefined ? {} : { asOf }) };
}

const HISTORY_BODY = new Set(["pk", "sk", "limit", "before_version", "after", "wait_ms"]);

/** `/records/history`. */
export function parseHistory(body: unknown, config: Config): HistoryRequest {
  const object = requireObject(body, "body");
  rejectUnknown(object, HISTORY_BODY, "body");
  if (config.history.retainSec === 0) {
    throw new OperationalError(
      "history_disabled",
      "Cannot read history: HISTORY_RETAIN_SEC is 0 here",
    );
  }
  checkKey(object.pk, object.sk, "body");
  const pk = object.pk as string;
  const before = object.before_version ?? null;
  if (
    before !== null && (typeof before !== "number" || !Number.isSafeInteger(before) || before < 0)
  ) {
    throw badRequest("invalid_as_of", 'Cannot use "before_version": must be an offset ≥ 0');
  }
  return {
    pk,
    sk: object.sk as string,
    partition: partitionOf(pk, config.cluster.partitions),
    limit: parseLimit(object, config),
    beforeVersion: before as number | null,
    ...parseAfter(object, config),
  };
}

const LIST_BODY = new Set([
  "pk",
  "sk_prefix",
  "start_after",
  "end_before",
  "limit",
  "reverse",
  "if",
  "if_stop",
  "after",
  "wait_ms",
  "as_of",
  "as_of_ms",
]);

const DEFAULT_LIST_LIMIT = 100;

function optionalSk(object: Json, field: string): string | null {
  const value = object[field];
  if (value === undefined || value === null) return null;
  const problem = keyProblem("x", value);
  if (problem !== null) {
    throw badRequest("invalid_key", `Cannot use "${field}": ${problem.replace(/^sk/, field)}`);
  }
  return value as string;
}

function optionalBoolean(object: Json, field: string): boolean {
  const value = object[field];
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") {
    throw badRequest("invalid_request", `Cannot use "${field}": must be a boolean`);
  }
  return value;
}

/** A page size: `limit`, 100 when absent, at most `LIST_LIMIT_MAX`. */
function parseLimit(object: Json, config: Config): number {
  const l = object.limit;
  if (l === undefined || l === null) {
    return Math.min(DEFAULT_LIST_LIMIT, config.limits.listLimitMax);
  }
  if (
    typeof l !== "number" || !Number.isSafeInteger(l) || l < 1 || l > config.limits.listLimitMax
  ) {
    throw badRequest(
      "invalid_limit",
      `Cannot use "limit": must be an integer in [1, ${config.limits.listLimitMax}] (LIST_LIMIT_MAX)`,
      { limit: config.limits.listLimitMax },
    );
  }
  return l;
}

/** `/records/list`. */
export function parseList(body: unknown, config: Config, conditions: ConditionCache): ListRequest {
  const object = requireObject(body, "body");
  rejectUnknown(object, LIST_BODY, "body");
  checkKey(object.pk, "", "body");
  const pk = object.pk as string;
  const limit = parseLimit(object, config);
  const filter = checkCondition(object.if, "body", config, conditions) ?? null;
  const asOf = parseAsOf(object, config);
  const stopOnFilter = optionalBoolean(object, "if_stop");
  return {
    pk,
    partition: partitionOf(pk, config.cluster.partitions),
    skPrefix: optionalSk(object, "sk_prefix") ?? "",
    startAfter: optionalSk(object, "start_after"),
    endBefore: optionalSk(object, "end_before"),
    limit,
    reverse: optionalBoolean(object, "reverse"),
    filter,
    stopOnFilter,
    ...parseAfter(object, config),
    ...(asOf === undefined ? {} : { asOf }),
  };
}

/** A validated watch: which partitions, which keys, and where to resume in each. */
export interface WatchRequest {
  /** Watched partitions, ascending. */
  readonly partitions: readonly number[];
  /** Only changes of this pk (then `partitions` is its partition alone). */
  readonly pk: string | null;
  /** Only changes whose sk starts with this. */
  readonly skPrefix: string;
  /** Where to resume, for the partitions the client gave (the others start now). */
  readonly cursors: Cursors;
}

const WATCH_BODY = new Set(["pk", "sk_prefix", "partitions", "after"]);
const WATCH_QUERY = new Set(["pk", "sk_prefix", "partitions", "after"]);

function watchPartitions(value: unknown, config: Config): number[] {
  const count = config.cluster.partitions;
  const list = typeof value === "string"
    ? value.split(",").map((p) => /^\d{1,10}$/.test(p.trim()) ? Number(p) : NaN)
    : value;
  if (
    !Array.isArray(list) || list.length === 0 || list.length > count ||
    !list.every((p) => Number.isSafeInteger(p) && p >= 0 && p < count)
  ) {
    throw badRequest(
      "invalid_request",
      `Cannot use "partitions": must be 1 to ${count} partitions in [0, ${count - 1}]`,
    );
  }
  return [...new Set(list as number[])].sort((a, b) => a - b);
}

function watchCursors(value: unknown, config: Config): Cursors {
  if (value === undefined || value === null) return new Map();
  if (typeof value !== "string") {
    const cursors: Cursors = new Map();
    for (const [p, offset] of parseAfterMap(value, config)) cursors.set(p, { offset, index: null });
    return cursors;
  }
  try {
    return parseId(value, config.cluster.partitions);
  } catch (error) {
    throw badRequest("invalid_after", `Cannot resume from "${value}": ${(error as Error).message}`);
  }
}

/**
 * `/records/watch`: `GET` with query parameters or `POST` with a JSON body, the same fields
 * (`pk`, `sk_prefix`, `partitions`, `after`); a `Last-Event-ID` header (an `EventSource`
 * reconnecting) takes the place of `after`. Neither `pk` nor `partitions`: every partition.
 */
export function parseWatch(
  fields: unknown,
  lastEventId: string | null,
  config: Config,
): WatchRequest {
  const object = requireObject(fields, "body");
  rejectUnknown(object, WATCH_BODY, "body");
  const skPrefix = optionalSk(object, "sk_prefix") ?? "";
  let pk: string | null = null;
  let partitions: number[];
  if (object.pk !== undefined && object.pk !== null) {
    if (object.partitions !== undefined && object.partitions !== null) {
      throw badRequest("invalid_request", 'Cannot watch: give "pk" or "partitions", not both');
    }
    checkKey(object.pk, "", "body");
    pk = object.pk as string;
    partitions = [partitionOf(pk, config.cluster.partitions)];
  } else if (object.partitions !== undefined && object.partitions !== null) {
    partitions = watchPartitions(object.partitions, config);
  } else {
    partitions = Array.from({ length: config.cluster.partitions }, (_, i) => i);
  }
  const cursors = watchCursors(lastEventId ?? object.after, config);
  for (const p of cursors.keys()) {
    if (!partitions.includes(p)) {
      throw badRequest("invalid_after", `Cannot resume: partition ${p} is not watched here`);
    }
  }
  return { partitions, pk, skPrefix, cursors };
}

/** The fields of a `GET /records/watch` query string, for {@linkcode parseWatch}. */
export function watchQuery(url: URL): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (!WATCH_QUERY.has(name)) {
      throw badRequest("unknown_field", `Cannot use the query: unknown parameter "${name}"`, {
        field: name,
      });
    }
    if (name in fields) {
      throw badRequest("invalid_request", `Cannot use the query: "${name}" appears twice`);
    }
    fields[name] = value;
  }
  return fields;
}
