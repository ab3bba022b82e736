/**
 * The one apply function both log implementations feed: a batch of log records of one partition
 * becomes one store transaction that also advances the applied offset and the hash chain.
 */
import { createHash } from "node:crypto";
import type { Metrics } from "../metrics/mod.ts";
import type {
  AppliedPosition,
  PartitionStore,
  RecordHead,
  StoredRecord,
  StoreTx,
} from "../store/mod.ts";
import { assert } from "../util/assert.ts";
import { writeU64 } from "../util/u64.ts";
import { log } from "../util/log.ts";
import type { ConditionCache } from "./conditions.ts";
import { decodeMutation, type Mutation, type Op } from "./message.ts";
import {
  dataJsonOf,
  EXPIRY_NONE,
  EXPIRY_TTL,
  expiryKind,
  expiryValue,
  PLAIN_PUT,
  type PlainOp,
  plainOpCount,
  PlainWriter,
  readPlainOp,
} from "./plain.ts";

/** One message as read from the log. */
export interface LogRecord {
  /** Offset within its partition; increasing, not necessarily contiguous. */
  readonly offset: number;
  /** Log timestamp, unix ms: becomes `created_at` / `updated_at`. */
  readonly timestamp: number;
  /** The message bytes (see `message.ts`). */
  readonly value: Uint8Array;
}

/** What apply needs besides the store. */
export interface ApplyContext {
  readonly conditions: ConditionCache;
  readonly metrics: Metrics;
  /** Wall clock, injectable for tests: only used for the lag metric, never for data. */
  readonly now: () => number;
}

const HEX_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX_VALUES["0123456789abcdef".charCodeAt(i)] = i;

/** Scratch for `chain ‖ offset ‖ value` when the value is small (the common case). */
const CHAIN_SCRATCH = new Uint8Array(40 + 4096);

/**
 * `sha256(chain ‖ u64be(offset) ‖ value)`, hex. Hashed in one update of one buffer: each
 * `update()` and each allocation is a measurable share of applying a small message.
 */
export function nextChain(chainHex: string, offset: number, value: Uint8Array): string {
  const length = 40 + value.length;
  const buffer = length <= CHAIN_SCRATCH.length ? CHAIN_SCRATCH : new Uint8Array(length);
  for (let i = 0; i < 32; i++) {
    buffer[i] = (HEX_VALUES[chainHex.charCodeAt(2 * i)]! << 4) |
      HEX_VALUES[chainHex.charCodeAt(2 * i + 1)]!;
  }
  writeU64(buffer, 32, offset);
  buffer.set(value, 40);
  return createHash("sha256").update(buffer.subarray(0, length)).digest("hex");
}

function overlayKey(pk: string, sk: string): string {
  return `${pk.length}:${pk}${sk}`;
}

interface Counts {
  conditionFalse: number;
  conditionErrors: number;
}

function conditionHolds(
  op: Op,
  current: StoredRecord | null,
  ctx: ApplyContext,
  counts: Counts,
): boolean {
  if (op.if === undefined) return true;
  const verdict = ctx.conditions.evaluate(op.if, current);
  if (verdict === "true") return true;
  if (verdict === "error") counts.conditionErrors++;
  counts.conditionFalse++;
  return false;
}

/**
 * `record` as a message with log timestamp `ts` sees it: null when absent or expired by then.
 * Conditions and `created_at` go by this, so every replica judges an expiry alike.
 */
function live<T extends RecordHead>(record: T | null, ts: number): T | null {
  return record !== null && record.expiresAt !== null && record.expiresAt <= ts ? null : record;
}

function written(
  op: Op,
  current: StoredRecord | null,
  offset: number,
  ts: number,
): StoredRecord | null {
  if (op.op === "delete") return null;
  return {
    pk: op.pk,
    sk: op.sk,
    dataJson: dataJsonOf(op),
    version: offset,
    createdAt: createdAt(current, ts),
    updatedAt: ts,
    expiresAt: expiresAt(expiryKind(op), expiryValue(op), ts),
  };
}

/** The `created_at` of a record written at `ts` over `current` (live, or null: absent). */
function createdAt(current: RecordHead | null, ts: number): number {
  return current === null ? ts : current.createdAt;
}

/**
 * The expiry instant of a put (`kind`: a plain op's expiry kind) of a message stamped `ts`: fixed
 * from the message's timestamp, the same instant on every replica.
 */
function expiresAt(kind: number, value: number, ts: number): number | null {
  if (kind === EXPIRY_NONE) return null;
  return kind === EXPIRY_TTL ? ts + value : value;
}

/** The plain ops of the message being applied, when its bytes were scanned. */
const SCAN_WRITER = new PlainWriter(4096);

/** Scratch for the ops of a plain message, read one at a time. */
const PLAIN_OP: PlainOp = {
  kind: 0,
  expiry: 0,
  expiryValue: 0,
  key: new Uint8Array(0),
  data: new Uint8Array(0),
};

/**
 * Applies a plain message's ops (`plain.ts`): what {@linkcode applyMutation} does for ops without
 * conditions, on encoded keys and `data`.
 */
function applyPlain(tx: StoreTx, plain: Uint8Array, offset: number, ts: number): void {
  const view = new DataView(plain.buffer, plain.byteOffset, plain.length);
  const count = view.getUint32(0);
  const op = PLAIN_OP;
  let at = 4;
  for (let i = 0; i < count; i++) {
    at = readPlainOp(plain, view, at, op);
    const current = live(tx.head(op.key), ts);
    if (op.kind === PLAIN_PUT) {
      const expiry = expiresAt(op.expiry, op.expiryValue, ts);
      tx.putEncoded(op.key, op.data, offset, createdAt(current, ts), ts, expiry);
    } else if (current !== null) {
      // As `store`: an expired record not yet purged is absent.
      tx.deleteKey(op.key);
    }
  }
}

/** Writes `record` (null: deletes), unless it deletes a record that is already absent. */
function store(tx: StoreTx, op: Op, current: StoredRecord | null, record: StoredRecord | null) {
  if (record !== null) {
    tx.put(
      op.pk,
      op.sk,
      record.dataJson,
      record.version,
      record.createdAt,
      record.updatedAt,
      record.expiresAt,
    );
  } else if (current !== null) {
    // A record expired but not yet purged is absent: its purge, not this delete, removes it.
    tx.delete(op.pk, op.sk);
  }
}

/**
 * Applies one decoded mutation. Each op's condition sees the effects of the earlier ops of the
 * same message; an atomic message first judges every condition on a staged view and writes
 * nothing unless all hold.
 */
function applyMutation(
  tx: StoreTx,
  mutation: Mutation,
  offset: number,
  ts: number,
  ctx: ApplyContext,
  counts: Counts,
): void {
  if (!mutation.atomic) {
    for (const op of mutation.ops) {
      const current = live(tx.get(op.pk, op.sk), ts);
      if (conditionHolds(op, current, ctx, counts)) {
        store(tx, op, current, written(op, current, offset, ts));
      }
    }
    return;
  }
  const staged = new Map<string, StoredRecord | null>();
  const before: (StoredRecord | null)[] = [];
  const results: (StoredRecord | null)[] = [];
  for (const op of mutation.ops) {
    const key = overlayKey(op.pk, op.sk);
    const current = staged.has(key) ? staged.get(key)! : live(tx.get(op.pk, op.sk), ts);
    if (!conditionHolds(op, current, ctx, counts)) return;
    const record = written(op, current, offset, ts);
    staged.set(key, record);
    before.push(current);
    results.push(record);
  }
  for (let i = 0; i < mutation.ops.length; i++) {
    store(tx, mutation.ops[i]!, before[i]!, results[i]!);
  }
}

/**
 * Applies `batch` (records of `store`'s partition, offsets increasing) in one transaction.
 * Records at or below the store's applied offset are skipped, so re-delivery is harmless.
 * Undecodable records are poison: skipped, counted and logged, but still chained, so every
 * replica's chain covers the same bytes.
 */
export function applyBatch(
  partitionStore: PartitionStore,
  batch: readonly LogRecord[],
  ctx: ApplyContext,
): Promise<AppliedPosition> {
  return applyRecords(partitionStore, batch, null, ctx);
}

/** A batch decoded and chained on another thread (a restore's decoding worker). */
export interface DecodedBatch {
  /** The messages, offsets increasing, all after the store's applied offset. */
  readonly records: readonly LogRecord[];
  /** Per message, its ops as `encodePlain` wrote them, or null: decoded as it applies. */
  readonly plain: readonly (Uint8Array | null)[];
  /** The hash chain after the last message (hex). */
  readonly chain: string;
}

/**
 * {@linkcode applyBatch} of a batch whose messages were decoded and chained elsewhere: the same
 * transaction, which takes the plain ops as they are and the chain as given.
 */
export function applyDecodedBatch(
  partitionStore: PartitionStore,
  batch: DecodedBatch,
  ctx: ApplyContext,
): Promise<AppliedPosition> {
  assert(batch.plain.length === batch.records.length, "a decoded batch has plain ops per message");
  return applyRecords(partitionStore, batch.records, batch, ctx);
}

async function applyRecords(
  partitionStore: PartitionStore,
  batch: readonly LogRecord[],
  decoded: DecodedBatch | null,
  ctx: ApplyContext,
): Promise<AppliedPosition> {
  const partition = partitionStore.partition;
  const counts: Counts = { conditionFalse: 0, conditionErrors: 0 };
  let applied = 0;
  let poisoned = 0;
  const now = ctx.now();
  const lag = ctx.metrics.applyLag.labels();
  const position = await partitionStore.write((tx) => {
    let { offset, chain } = partitionStore.applied;
    const start = offset;
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i]!;
      if (record.offset <= offset) {
        // Only re-delivery of already applied offsets may go backwards, never a gap in a batch.
        assert(record.offset <= start, `p${partition} batch offsets must increase`);
        // A decoded batch's chain covers every message of it.
        assert(decoded === null, `p${partition} decoded batch repeats applied offsets`);
        continue;
      }
      if (decoded === null) chain = nextChain(chain, record.offset, record.value);
      offset = record.offset;
      applied++;
      lag.observe(Math.max(0, now - record.timestamp) / 1000);
      let plain = decoded === null ? null : decoded.plain[i]!;
      // A message as the API writes it is read from its bytes (plain_scan.ts), not decoded.
      if (plain === null) {
        SCAN_WRITER.reset();
        if (SCAN_WRITER.addValue(record.value)) plain = SCAN_WRITER.bytes();
      }
      if (plain !== null) {
        tx.message(record.offset, record.timestamp, plainOpCount(plain));
        applyPlain(tx, plain, record.offset, record.timestamp);
        continue;
      }
      const message = decodeMutation(record.value);
      tx.message(record.offset, record.timestamp, message.ok ? message.mutation.ops.length : 0);
      if (!message.ok) {
        poisoned++;
        log("warn", "poison_message", { partition, offset, reason: message.reason });
        continue;
      }
      applyMutation(tx, message.mutation, record.offset, record.timestamp, ctx, counts);
    }
    if (offset === start) return null;
    return { offset, chain: decoded === null ? chain : decoded.chain };
  });
  const m = ctx.metrics;
  if (applied > 0) {
    m.appliedMessages.labels().inc(applied);
    m.applyTransactions.labels().inc();
    m.appliedOffset.labels(String(partition)).set(position.offset);
  }
  if (poisoned > 0) m.poisonMessages.labels().inc(poisoned);
  if (counts.conditionFalse > 0) m.conditionFalse.labels().inc(counts.conditionFalse);
  if (counts.conditionErrors > 0) m.conditionErrors.labels().inc(counts.conditionErrors);
  return position;
}
