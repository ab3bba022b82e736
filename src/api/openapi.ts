/**
 * The OpenAPI 3.1 description of the public API, built here as data: the one source of
 * `GET /openapi.json` and of docs/openapi.yaml (written from it by `scripts/openapi_yaml.ts`,
 * and held equal to it by `openapi_test.ts`). Its schemas state the checks of `requests.ts` with
 * the node's own limits, its error codes come from the closed list and the problem table, and
 * tests/integration/openapi_test.ts holds real answers of a real node to it.
 *
 * @module
 */
import {
  type ConfigLimits,
  EXPIRES_AT_MAX,
  PK_BYTES_MAX,
  SETTINGS,
  SK_BYTES_MAX,
  TTL_MS_MAX,
} from "../config/mod.ts";
import { assert } from "../util/assert.ts";
import { ERROR_CODES, type ErrorCode } from "../util/error_codes.ts";
import { JSON_DEPTH_MAX } from "../util/json.ts";
import { VERSION } from "../version.ts";
import { PROBLEMS } from "./problem.ts";

/** Where the public port serves the document. */
export const OPENAPI_PATH = "/openapi.json";

/** The limits the document states (a node serves its own; docs/openapi.yaml has the defaults). */
export type OpenApiLimits = Pick<
  ConfigLimits,
  | "bodyBytesMax"
  | "recordsPerRequestMax"
  | "dataBytesMax"
  | "conditionBytesMax"
  | "listLimitMax"
  | "waitMsMax"
>;

const LIMIT_VARIABLES: Readonly<Record<keyof OpenApiLimits, string>> = {
  bodyBytesMax: "BODY_BYTES_MAX",
  recordsPerRequestMax: "RECORDS_PER_REQUEST_MAX",
  dataBytesMax: "DATA_BYTES_MAX",
  conditionBytesMax: "CONDITION_BYTES_MAX",
  listLimitMax: "LIST_LIMIT_MAX",
  waitMsMax: "WAIT_MS_MAX",
};

/** The limits of a node with no limit variable set: those of docs/openapi.yaml. */
export function defaultLimits(): OpenApiLimits {
  const out: Record<string, number> = {};
  for (const [field, variable] of Object.entries(LIMIT_VARIABLES)) {
    const row = SETTINGS.find((s) => s.env === variable);
    assert(row !== undefined && typeof row.default === "number", `${variable} has a default`);
    out[field] = row.default;
  }
  return out as unknown as OpenApiLimits;
}

/**
 * Codes the public port never answers with: a peer's snapshot download (internal port) and the
 * failures that stop a start or a restore (logged, never sent). Every other code is listed under
 * the operations that may answer it, or under `components.responses` (`not_found`,
 * `method_not_allowed`: requests outside every operation).
 */
export const UNANSWERED_CODES: readonly ErrorCode[] = [
  "snapshot_busy",
  "partition_count_mismatch",
  "kafka_auth_failed",
  "snapshot_rejected",
];

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

// Codes by what a route does (requests.ts, body.ts, auth.ts, the reader, the log).
const ANY: readonly ErrorCode[] = ["unauthorized", "internal_error"];
const BODY: readonly ErrorCode[] = [
  "invalid_json",
  "incomplete_body",
  "invalid_request",
  "unknown_field",
  "body_too_large",
];
const WRITE: readonly ErrorCode[] = [
  ...ANY,
  ...BODY,
  "forbidden",
  "no_records",
  "too_many_records",
  "invalid_key",
  "invalid_condition",
  "condition_too_long",
  "read_only",
  "message_too_large",
  "log_unavailable",
  "log_overloaded",
];
const WAIT: readonly ErrorCode[] = [
  "invalid_after",
  "invalid_wait",
  "partition_unavailable",
  "too_many_waiters",
  "not_caught_up",
];
const PAST: readonly ErrorCode[] = ["invalid_as_of", "history_disabled", "history_expired"];
const WATCH: readonly ErrorCode[] = [
  ...ANY,
  "invalid_request",
  "unknown_field",
  "invalid_key",
  "invalid_after",
  "watch_disabled",
  "partition_unavailable",
  "too_many_watchers",
];

/** The error responses of an operation that may answer `codes`: one per status, codes listed. */
function problemResponses(codes: readonly ErrorCode[]): Record<string, Json> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of ERROR_CODES) {
    if (!codes.includes(code)) continue;
    const status = PROBLEMS[code].status;
    byStatus.set(status, [...byStatus.get(status) ?? [], code]);
  }
  const out: Record<string, Json> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    out[String(status)] = problemResponse(status, byStatus.get(status)!);
  }
  return out;
}

function problemResponse(status: number, codes: readonly ErrorCode[]): Json {
  const title = PROBLEMS[codes[0]!].title;
  return {
    description: `${title}: ${codes.map((c) => `\`${c}\``).join(", ")}.`,
    content: {
      "application/problem+json": {
        schema: {
          allOf: [ref("Problem"), {
            properties: {
              status: { const: status },
              title: { const: title },
              code: { enum: codes },
            },
          }],
        },
      },
    },
  };
}

const jsonContent = (schema: Json): Json => ({ "application/json": { schema } });

function ok(description: string, schema: Json): Json {
  return { description, content: jsonContent(schema) };
}

function requestBody(schema: Json, limits: OpenApiLimits, write: boolean): Json {
  const exact = write
    ? ` Write bodies are read exactly: a member name given twice in one object, or nesting deeper than ${JSON_DEPTH_MAX} levels, is 400 \`invalid_json\`.`
    : "";
  return {
    required: true,
    description:
      `JSON, whatever the Content-Type; at most BODY_BYTES_MAX (${limits.bodyBytesMax}) bytes (413 \`body_too_large\`).${exact}`,
    content: jsonContent(schema),
  };
}

interface OperationSpec {
  readonly id: string;
  readonly summary: string;
  readonly description: string;
  readonly tag: string;
  /** Who may call it: a token that may `read` or `write`, or anyone. */
  readonly access: "read" | "write" | "open";
  readonly body?: Json;
  readonly parameters?: readonly Json[];
  readonly responses: Record<string, Json>;
}

function operation(spec: OperationSpec): Json {
  return {
    operationId: spec.id,
    summary: spec.summary,
    description: spec.description,
    tags: [spec.tag],
    security: spec.access === "open" ? [] : [{ bearerAuth: [spec.access] }],
    ...(spec.parameters === undefined ? {} : { parameters: spec.parameters }),
    ...(spec.body === undefined ? {} : { requestBody: spec.body }),
    responses: spec.responses,
  };
}

function schemas(limits: OpenApiLimits): Record<string, Json> {
  const records = (item: Json): Json => ({
    type: "array",
    items: item,
    minItems: 1,
    maxItems: limits.recordsPerRequestMax,
    description:
      `1 to RECORDS_PER_REQUEST_MAX (${limits.recordsPerRequestMax}) items (400 \`no_records\`, \`too_many_records\`).`,
  });
  /** Body members `records` and its other spelling `Records`; one of them is required. */
  const recordsBody = (item: Json, more: Record<string, Json>): Json => ({
    type: "object",
    properties: {
      records: records(item),
      Records: { ...records(item), description: "`records` as the seed spelled it." },
      ...more,
    },
    anyOf: [{ required: ["records"] }, { required: ["Records"] }],
    additionalProperties: false,
  });
  const reading = {
    after: ref("Offsets"),
    wait_ms: ref("WaitMs"),
    as_of: { ...ref("Offsets"), description: "Read as just after these offsets (history)." },
    as_of_ms: ref("AsOfMs"),
  };
  const put = {
    pk: ref("Pk"),
    sk: ref("Sk"),
    data: ref("Data"),
    if: ref("Condition"),
    ttl_ms: ref("TtlMs"),
    expires_at: ref("ExpiresAt"),
  };
  const offsetsOut = {
    type: "object",
    propertyNames: ref("PartitionName"),
    additionalProperties: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  };
  const limit = {
    type: ["integer", "null"],
    minimum: 1,
    maximum: limits.listLimitMax,
    default: Math.min(100, limits.listLimitMax),
    description:
      `Page size, at most LIST_LIMIT_MAX (${limits.listLimitMax}) (400 \`invalid_limit\`).`,
  };
  return {
    Pk: {
      type: "string",
      minLength: 1,
      maxLength: PK_BYTES_MAX,
      "x-max-utf8-bytes": PK_BYTES_MAX,
      description:
        `Partition key: not empty, at most ${PK_BYTES_MAX} UTF-8 bytes, no lone surrogates (400 \`invalid_key\`). It chooses the partition.`,
    },
    Sk: {
      type: "string",
      maxLength: SK_BYTES_MAX,
      "x-max-utf8-bytes": SK_BYTES_MAX,
      description:
        `Sort key: at most ${SK_BYTES_MAX} UTF-8 bytes, no lone surrogates (400 \`invalid_key\`). A list orders by its UTF-8 bytes.`,
    },
    SkOrNull: {
      type: ["string", "null"],
      maxLength: SK_BYTES_MAX,
      "x-max-utf8-bytes": SK_BYTES_MAX,
      description:
        `A sort key (at most ${SK_BYTES_MAX} UTF-8 bytes, 400 \`invalid_key\`), or null for none.`,
    },
    Data: {
      description:
        `Any JSON value, stored and returned exactly as sent (every number token as written). At most DATA_BYTES_MAX (${limits.dataBytesMax}) bytes of JSON (413 \`data_too_large\`).`,
    },
    Condition: {
      type: ["string", "null"],
      maxLength: limits.conditionBytesMax,
      "x-max-utf8-bytes": limits.conditionBytesMax,
      description:
        `A jexl condition over \`pk\`, \`sk\`, \`data\`, \`_version\`, \`_created_at\`, \`_updated_at\` (400 \`invalid_condition\`); at most CONDITION_BYTES_MAX (${limits.conditionBytesMax}) UTF-8 bytes (400 \`condition_too_long\`). See docs/api.md "Conditions".`,
    },
    TtlMs: {
      type: ["integer", "null"],
      minimum: 1,
      maximum: TTL_MS_MAX,
      description:
        "The record expires this long after its write's log timestamp; not with `expires_at` (400 `invalid_ttl`).",
    },
    ExpiresAt: {
      type: ["integer", "null"],
      minimum: 0,
      maximum: EXPIRES_AT_MAX,
      description: "The record expires at this unix ms; not with `ttl_ms` (400 `invalid_ttl`).",
    },
    PartitionName: {
      type: "string",
      pattern: "^\\d+$",
      description: "A partition number in [0, PARTITIONS - 1].",
    },
    Offsets: {
      type: ["object", "null"],
      propertyNames: ref("PartitionName"),
      additionalProperties: {
        type: "integer",
        minimum: -1,
        maximum: Number.MAX_SAFE_INTEGER,
      },
      description:
        'Log offsets by partition, `{"<partition>": <offset>}`: the `offsets` of a write (400 `invalid_after` / `invalid_as_of` otherwise).',
    },
    WaitMs: {
      type: ["integer", "null"],
      minimum: 0,
      maximum: limits.waitMsMax,
      description:
        `How long to wait for \`after\`, at most WAIT_MS_MAX (${limits.waitMsMax}) (400 \`invalid_wait\`; 504 \`not_caught_up\` when it runs out). Without it the check is immediate.`,
    },
    AsOfMs: {
      type: ["integer", "null"],
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: "Read as of this unix ms of log time; not with `as_of` (400 `invalid_as_of`).",
    },
    Key: {
      type: "object",
      properties: { pk: ref("Pk"), sk: ref("Sk") },
      required: ["pk", "sk"],
      additionalProperties: false,
    },
    PutRecord: {
      type: "object",
      properties: put,
      required: ["pk", "sk", "data"],
      additionalProperties: false,
    },
    DeleteRecord: {
      type: "object",
      properties: { pk: ref("Pk"), sk: ref("Sk"), if: ref("Condition") },
      required: ["pk", "sk"],
      additionalProperties: false,
    },
    BatchPut: {
      type: "object",
      properties: { op: { const: "put" }, ...put },
      required: ["op", "pk", "sk", "data"],
      additionalProperties: false,
    },
    BatchDelete: {
      type: "object",
      properties: {
        op: { const: "delete" },
        pk: ref("Pk"),
        sk: ref("Sk"),
        if: ref("Condition"),
        ttl_ms: { type: "null" },
        expires_at: { type: "null" },
      },
      required: ["op", "pk", "sk"],
      additionalProperties: false,
      description: "A delete takes no `data` (400 `unknown_field`), `ttl_ms` or `expires_at`.",
    },
    BatchOp: {
      oneOf: [ref("BatchPut"), ref("BatchDelete")],
      discriminator: {
        propertyName: "op",
        mapping: {
          put: "#/components/schemas/BatchPut",
          delete: "#/components/schemas/BatchDelete",
        },
      },
      description: 'An op other than "put" or "delete" is 400 `invalid_op`.',
    },
    PutRequest: recordsBody(ref("PutRecord"), {}),
    DeleteRequest: recordsBody(ref("DeleteRecord"), {}),
    BatchRequest: {
      type: "object",
      properties: { ops: records(ref("BatchOp")) },
      required: ["ops"],
      additionalProperties: false,
      description:
        "Every op's pk must fall in one partition (400 `batch_spans_partitions` names them).",
    },
    GetRequest: {
      ...recordsBody(ref("Key"), reading),
      description: "Not both `as_of` and `as_of_ms` (400 `invalid_as_of`).",
    },
    ListRequest: {
      type: "object",
      properties: {
        pk: ref("Pk"),
        sk_prefix: { ...ref("SkOrNull"), description: "Only sort keys starting with it." },
        start_after: { ...ref("SkOrNull"), description: "Exclusive; pass `next` here." },
        end_before: { ...ref("SkOrNull"), description: "Exclusive." },
        limit,
        reverse: { type: ["boolean", "null"], description: "Descending order." },
        if: { ...ref("Condition"), description: "Keeps only the rows for which it holds." },
        if_stop: {
          type: ["boolean", "null"],
          description: "The scan ends at the first row `if` rejects.",
        },
        ...reading,
      },
      required: ["pk"],
      additionalProperties: false,
      description: "Not both `as_of` and `as_of_ms` (400 `invalid_as_of`).",
    },
    HistoryRequest: {
      type: "object",
      properties: {
        pk: ref("Pk"),
        sk: ref("Sk"),
        limit,
        before_version: {
          type: ["integer", "null"],
          minimum: 0,
          maximum: Number.MAX_SAFE_INTEGER,
          description:
            "Only versions below it: the `next` of the page before (400 `invalid_as_of`).",
        },
        after: ref("Offsets"),
        wait_ms: ref("WaitMs"),
      },
      required: ["pk", "sk"],
      additionalProperties: false,
    },
    WatchRequest: {
      type: "object",
      properties: {
        pk: {
          type: ["string", "null"],
          minLength: 1,
          maxLength: PK_BYTES_MAX,
          "x-max-utf8-bytes": PK_BYTES_MAX,
          description: "Only this pk's changes (one partition); not with `partitions`.",
        },
        sk_prefix: { ...ref("SkOrNull"), description: "Only sort keys starting with it." },
        partitions: {
          anyOf: [
            { type: "array", items: { type: "integer", minimum: 0 }, minItems: 1 },
            ref("PartitionList"),
            { type: "null" },
          ],
          description:
            "Only these partitions, 1 to PARTITIONS of them (400 `invalid_request`); neither this nor `pk`: every partition.",
        },
        after: {
          anyOf: [ref("WatchCursor"), ref("Offsets")],
          description: "Resume after this event id (or offsets); `Last-Event-ID` wins over it.",
        },
      },
      additionalProperties: false,
    },
    PartitionList: {
      type: "string",
      pattern: "^\\s*\\d{1,10}\\s*(,\\s*\\d{1,10}\\s*)*$",
      description: "Comma-separated partition numbers.",
    },
    WatchCursor: {
      type: "string",
      pattern: `^\\s*${WATCH_ENTRY}\\s*(,\\s*${WATCH_ENTRY}\\s*)*$`,
      description:
        "A watch event id: `<partition>:<offset>` or `<partition>:<offset>:<index>`, comma-separated, one per watched partition (400 `invalid_after`).",
    },
    WatchId: {
      type: "string",
      pattern: `^${WATCH_ENTRY}(,${WATCH_ENTRY})*$`,
      description: "The stream's position in every partition it watches.",
    },
    Record: {
      type: "object",
      properties: {
        pk: { type: "string" },
        sk: { type: "string" },
        data: ref("Data"),
        version: {
          type: "integer",
          minimum: 0,
          description: "Log offset of the write that last wrote it.",
        },
        created_at: { type: "integer", description: "Unix ms of the creating write." },
        updated_at: { type: "integer", description: "Unix ms of the last write." },
        expires_at: { type: "integer", description: "Unix ms at which it expires, if it does." },
      },
      required: ["pk", "sk", "data", "version", "created_at", "updated_at"],
      additionalProperties: false,
    },
    WriteResponse: {
      type: "object",
      properties: {
        offsets: {
          ...offsetsOut,
          description:
            "The log offset of this write in every partition it wrote: the `after` of a read that must see it. A 200 says nothing about whether an `if` held.",
        },
      },
      required: ["offsets"],
      additionalProperties: false,
    },
    GetResponse: {
      type: "object",
      properties: {
        records: { type: "array", items: ref("Record"), description: "Found, in request order." },
        missing: {
          type: "array",
          items: ref("Key"),
          description: "Absent keys, in request order.",
        },
      },
      required: ["records", "missing"],
      additionalProperties: false,
    },
    ListResponse: {
      type: "object",
      properties: {
        records: { type: "array", items: ref("Record") },
        next: {
          type: ["string", "null"],
          description: "When more rows may follow: the `start_after` of the next page.",
        },
      },
      required: ["records", "next"],
      additionalProperties: false,
    },
    HistoryVersion: {
      oneOf: [
        {
          type: "object",
          properties: {
            change: { const: "put" },
            version: { type: "integer", minimum: 0 },
            at: { type: "integer", description: "Unix ms of the change's log message." },
            record: ref("Record"),
          },
          required: ["change", "version", "at", "record"],
          additionalProperties: false,
        },
        {
          type: "object",
          properties: {
            change: { enum: ["delete", "expire"] },
            version: { type: "integer", minimum: 0 },
            at: { type: "integer" },
          },
          required: ["change", "version", "at"],
          additionalProperties: false,
        },
      ],
    },
    HistoryResponse: {
      type: "object",
      properties: {
        versions: { type: "array", items: ref("HistoryVersion"), description: "Newest first." },
        next: {
          type: ["integer", "null"],
          description: "The `before_version` of the next page; null at the end.",
        },
        since: {
          type: "integer",
          minimum: -1,
          description: "The offset from which the partition's history is whole.",
        },
      },
      required: ["versions", "next", "since"],
      additionalProperties: false,
    },
    WatchEvent: {
      description:
        "One event of the stream (OpenAPI 3.2's itemSchema): a change (`put`, `delete`, `expire`), a `reset` (re-list that partition), an `overflow` (the stream ends; resume from its last id), or a position alone (the first frame and heartbeats).",
      oneOf: [
        watchEvent(["put"], "Record", true),
        watchEvent(["delete", "expire"], "WatchDeleted", true),
        watchEvent(["reset"], "WatchReset", true),
        watchEvent(["overflow"], "WatchOverflow", false),
        {
          type: "object",
          properties: { id: ref("WatchId"), retry: { type: "integer" } },
          required: ["id"],
          additionalProperties: false,
        },
      ],
    },
    WatchDeleted: {
      type: "object",
      properties: {
        pk: { type: "string" },
        sk: { type: "string" },
        version: { type: "integer", minimum: 0, description: "The offset of the change." },
      },
      required: ["pk", "sk", "version"],
      additionalProperties: false,
    },
    WatchReset: {
      type: "object",
      properties: {
        partition: { type: "integer", minimum: 0 },
        since: { type: "integer", minimum: -1 },
        after: { type: "string", description: "The cursor that was too old." },
      },
      required: ["partition", "since", "after"],
      additionalProperties: false,
    },
    WatchOverflow: {
      type: "object",
      properties: { buffer_bytes: { type: "integer", minimum: 0 } },
      required: ["buffer_bytes"],
      additionalProperties: false,
    },
    Health: {
      type: "object",
      properties: {
        status: { const: "ok" },
        thread: {
          type: "integer",
          minimum: 1,
          description: "With serving threads (SERVE_THREADS > 1): the thread that answered.",
        },
      },
      required: ["status"],
      additionalProperties: false,
    },
    Readiness: {
      type: "object",
      properties: { status: { enum: ["ready", "not_ready"] } },
      required: ["status"],
      additionalProperties: false,
    },
    ProblemCode: {
      type: "string",
      enum: [...ERROR_CODES],
      description:
        "The closed list of error codes (src/util/error_codes.ts). A code is never renamed or reused; `snapshot_busy` is answered on the internal port only, `partition_count_mismatch`, `kafka_auth_failed` and `snapshot_rejected` are never answered (they are logged).",
    },
    Problem: {
      type: "object",
      description: "An RFC 9457 problem. Match on `code`; `detail` is for people.",
      properties: {
        type: { type: "string", pattern: "^https://firescroll\\.dev/problems/[a-z_]+$" },
        title: { type: "string" },
        status: { type: "integer", minimum: 400, maximum: 599 },
        code: ref("ProblemCode"),
        detail: { type: "string" },
        limit: { type: "integer", description: "The limit that was passed." },
        bytes: { type: "integer", description: "The size that passed it." },
        field: { type: "string", description: "The unknown field." },
        partition: { type: "integer" },
        partitions: { type: "array", items: { type: "integer" } },
        offset: { type: "integer" },
        applied: { type: "integer", description: "The offset the partition has applied." },
        identifier: { type: "string", description: "The unknown name of a condition." },
        allowed: { type: "array", items: { type: "string" }, description: "The names it may use." },
      },
      required: ["type", "title", "status", "code", "detail"],
      additionalProperties: true,
    },
  };
}

/** One `<partition>:<offset>[:<index>]` entry of a watch id (src/watch/cursor.ts). */
const WATCH_ENTRY = "\\d{1,10}:(-1|\\d{1,16})(:\\d{1,10})?";

function watchEvent(names: readonly string[], data: string, id: boolean): Json {
  return {
    type: "object",
    properties: {
      event: names.length === 1 ? { const: names[0] } : { enum: names },
      id: ref("WatchId"),
      data: { type: "string", contentMediaType: "application/json", contentSchema: ref(data) },
    },
    required: id ? ["event", "data", "id"] : ["event", "data"],
    additionalProperties: false,
  };
}

function paths(limits: OpenApiLimits): Record<string, Json> {
  const written = ok(
    "Durable in the log (fsync'd embedded log; Kafka acks=-1).",
    ref("WriteResponse"),
  );
  const watchResponses = (codes: readonly ErrorCode[]): Record<string, Json> => ({
    "200": {
      description:
        "A stream of server-sent events, one per change, in log order within a partition; it ends when the node stops or hands over, a partition moves, or on overflow. Reconnect with the last id.",
      headers: {
        "Cache-Control": { required: true, schema: { const: "no-cache" } },
      },
      content: {
        "text/event-stream": { schema: { type: "string" }, "x-itemSchema": ref("WatchEvent") },
      },
    },
    ...problemResponses(codes),
  });
  const watchDescription =
    'Streams the changes apply makes as Server-Sent Events. Which: `pk` (one partition), else `partitions`, else every partition; `sk_prefix` filters sort keys. Resume with the last event id (`Last-Event-ID` or `after`): no change missed, none twice. A watch of partitions served elsewhere in the region is proxied. See docs/api.md "Watch".';
  return {
    "/records/put": {
      post: operation({
        id: "putRecords",
        summary: "Put records",
        tag: "records",
        access: "write",
        description:
          "Writes records. Those of one partition travel as one log message and apply in one transaction; each record's `if` is judged on its own when the message is applied, so a false condition is still a 200 (the record is left as it was).",
        body: requestBody(ref("PutRequest"), limits, true),
        responses: {
          "200": written,
          ...problemResponses([...WRITE, "missing_data", "data_too_large", "invalid_ttl"]),
        },
      }),
    },
    "/records/delete": {
      post: operation({
        id: "deleteRecords",
        summary: "Delete records",
        tag: "records",
        access: "write",
        description:
          "Deletes records, grouped by partition like a put; each record's `if` is judged on its own. Deleting an absent record is not an error.",
        body: requestBody(ref("DeleteRequest"), limits, true),
        responses: { "200": written, ...problemResponses(WRITE) },
      }),
    },
    "/records/batch": {
      post: operation({
        id: "batchRecords",
        summary: "Apply puts and deletes atomically",
        tag: "records",
        access: "write",
        description:
          "Puts and deletes of one partition, applied all or nothing: any false `if` aborts the whole batch (still a 200). Each op's condition sees the earlier ops.",
        body: requestBody(ref("BatchRequest"), limits, true),
        responses: {
          "200": written,
          ...problemResponses([
            ...WRITE,
            "missing_data",
            "data_too_large",
            "invalid_ttl",
            "invalid_op",
            "batch_spans_partitions",
          ]),
        },
      }),
    },
    "/records/get": {
      post: operation({
        id: "getRecords",
        summary: "Get records by key",
        tag: "records",
        access: "read",
        description:
          "Reads records by key: found ones in `records`, absent ones in `missing` (both in request order; an absent key is not an error). `after` with `wait_ms` waits for a write's offsets; `as_of` / `as_of_ms` read the past.",
        body: requestBody(ref("GetRequest"), limits, false),
        responses: {
          "200": ok("The records found and the keys missing.", ref("GetResponse")),
          ...problemResponses([
            ...ANY,
            ...BODY,
            "no_records",
            "too_many_records",
            "invalid_key",
            ...WAIT,
            ...PAST,
          ]),
        },
      }),
    },
    "/records/list": {
      post: operation({
        id: "listRecords",
        summary: "List the records of a partition key",
        tag: "records",
        access: "read",
        description:
          "The records of one `pk` in the UTF-8 byte order of `sk` (descending with `reverse`), a page at a time: pass `next` as `start_after`. `if` filters rows; a filtered scan examines at most LIST_SCAN_MAX rows and may return a short page with a `next`.",
        body: requestBody(ref("ListRequest"), limits, false),
        responses: {
          "200": ok("A page of records.", ref("ListResponse")),
          ...problemResponses([
            ...ANY,
            ...BODY,
            "invalid_key",
            "invalid_limit",
            "invalid_condition",
            "condition_too_long",
            ...WAIT,
            ...PAST,
          ]),
        },
      }),
    },
    "/records/history": {
      post: operation({
        id: "recordHistory",
        summary: "The versions of one record",
        tag: "records",
        access: "read",
        description:
          "The kept versions of one key, newest first, for HISTORY_RETAIN_SEC of log time (404 `history_disabled` when 0). Page with `before_version` = `next`.",
        body: requestBody(ref("HistoryRequest"), limits, false),
        responses: {
          "200": ok("A page of versions.", ref("HistoryResponse")),
          ...problemResponses([
            ...ANY,
            ...BODY,
            "invalid_key",
            "invalid_limit",
            "invalid_as_of",
            "history_disabled",
            ...WAIT,
          ]),
        },
      }),
    },
    "/records/watch": {
      get: operation({
        id: "watchRecords",
        summary: "Watch changes (query parameters)",
        tag: "watch",
        access: "read",
        description:
          `${watchDescription} An unknown query parameter is 400 \`unknown_field\`, a repeated one 400 \`invalid_request\`.`,
        parameters: [
          { name: "pk", in: "query", schema: ref("Pk"), description: "Only this pk's changes." },
          {
            name: "sk_prefix",
            in: "query",
            schema: ref("Sk"),
            description: "Only sort keys starting with it.",
          },
          {
            name: "partitions",
            in: "query",
            schema: ref("PartitionList"),
            description: "Only these partitions; not with `pk`.",
          },
          {
            name: "after",
            in: "query",
            schema: ref("WatchCursor"),
            description: "Resume after this event id.",
          },
          {
            name: "Last-Event-ID",
            in: "header",
            schema: ref("WatchCursor"),
            description:
              "Resume after this event id (an EventSource reconnecting); wins over `after`.",
          },
        ],
        responses: watchResponses(WATCH),
      }),
      post: operation({
        id: "watchRecordsPost",
        summary: "Watch changes (JSON body)",
        tag: "watch",
        access: "read",
        description: watchDescription,
        parameters: [{
          name: "Last-Event-ID",
          in: "header",
          schema: ref("WatchCursor"),
          description: "Resume after this event id; wins over `after`.",
        }],
        body: requestBody(ref("WatchRequest"), limits, false),
        responses: watchResponses([...WATCH, "invalid_json", "incomplete_body", "body_too_large"]),
      }),
    },
    "/healthz": {
      get: operation({
        id: "healthz",
        summary: "Liveness",
        tag: "node",
        access: "open",
        description: "200 while the process runs.",
        responses: { "200": ok("The process runs.", ref("Health")) },
      }),
    },
    "/readyz": {
      get: operation({
        id: "readyz",
        summary: "Readiness",
        tag: "node",
        access: "open",
        description:
          "200 once every partition the node owns serves; 503 before, and while the node drains to stop.",
        responses: {
          "200": ok("Ready.", readiness("ready")),
          "503": ok("Not ready.", readiness("not_ready")),
        },
      }),
    },
    [OPENAPI_PATH]: {
      get: operation({
        id: "openapi",
        summary: "This document",
        tag: "node",
        access: "open",
        description:
          "This OpenAPI document as JSON, with the limits of the node that answers (docs/openapi.yaml is the same document with the default limits).",
        responses: {
          "200": ok("The document.", {
            type: "object",
            properties: { openapi: { const: "3.1.0" } },
            required: ["openapi", "info", "paths", "components"],
          }),
        },
      }),
    },
  };
}

function readiness(status: string): Json {
  return {
    type: "object",
    properties: { status: { const: status } },
    required: ["status"],
    additionalProperties: false,
  };
}

/**
 * The OpenAPI 3.1 document of the public API, stating `limits`. A plain JSON value: what
 * `GET /openapi.json` serves and docs/openapi.yaml holds (with {@linkcode defaultLimits}).
 */
export function openApiDocument(limits: OpenApiLimits): Json {
  const methodNotAllowed = problemResponse(405, ["method_not_allowed"]);
  return {
    openapi: "3.1.0",
    info: {
      title: "FireScroll for Deno",
      version: VERSION,
      summary:
        "A configuration database: records by partition key and sort key, as JSON over HTTP.",
      description:
        "The public port (API_PORT, 8190): HTTP/1.1, HTTP/2 cleartext with prior knowledge, HTTP/2 over TLS. Record operations are POSTs of a JSON body (any Content-Type); every GET route also answers HEAD. An optional member may be null, which means absent. Errors are RFC 9457 `application/problem+json` with a stable `code`. Another method on a documented path is 405 `method_not_allowed` (`#/components/responses/MethodNotAllowed`), an unknown path 404 `not_found` (`#/components/responses/NotFound`). The limits stated are those of the node serving this document. The narrative reference is docs/api.md.",
    },
    tags: [
      { name: "records", description: "Writes and reads of records." },
      { name: "watch", description: "The changefeed, as Server-Sent Events." },
      { name: "node", description: "Health, readiness and this document (no token needed)." },
    ],
    paths: paths(limits),
    components: {
      schemas: schemas(limits),
      responses: {
        NotFound: problemResponse(404, ["not_found"]),
        MethodNotAllowed: {
          ...methodNotAllowed,
          headers: {
            Allow: {
              required: true,
              schema: { type: "string" },
              description: "The methods the path takes.",
            },
          },
        },
      },
      securitySchemes: {
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          description:
            "`Authorization: Bearer <token>`. A token of API_TOKENS_WRITE reads and writes, one of API_TOKENS_READ only reads (403 `forbidden` on a write); none or an unknown one is 401 `unauthorized`. A node with neither variable set is open to anyone (it warns at startup).",
        },
      },
    },
  };
}

const served = new WeakMap<OpenApiLimits, string>();

/** {@linkcode openApiDocument} as JSON text, built once per limits object (per node). */
export function openApiJson(limits: OpenApiLimits): string {
  let text = served.get(limits);
  if (text === undefined) served.set(limits, text = JSON.stringify(openApiDocument(limits)));
  return text;
}
