/**
 * The one apply function both log implementations feed: a batch of log records of one partition
 * becomes one store transaction that also advances the applied offset and the hash chain.
 */
import { createHash } from "node:crypto";
import type { Metrics } from "../metrics/mod.ts";
import type { AppliedPosition, PartitionStore, StoredRecord, StoreTx } from "../store/mod.ts";
import { assert } from "../util/assert.ts";
import { writeU64 } from "../util/u64.ts";
import { log } from "../util/log.ts";
import type { ConditionCache } from "./conditions.ts";
import { decodeMutation, type Mutation, type Op } from "./message.ts";

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
function live(record: StoredRecord | null, ts: number): StoredRecord | null {
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
    // decodeMutation kept each number as JSON.rawJSON(token) where a double would change it:
    // this writes the tokens as the client sent them (DESIGN §3).
    dataJson: JSON.stringify(op.data),
    version: offset,
    createdAt: current === null ? ts : current.createdAt,
    updatedAt: ts,
    // Fixed from the message's timestamp: the same instant on every replica.
    expiresAt: op.ttl_ms !== undefined ? ts + op.ttl_ms : op.expires_at ?? null,
  };
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
export async function applyBatch(
  partitionStore: PartitionStore,
  batch: readonly LogRecord[],
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
    for (const record of batch) {
      if (record.offset <= offset) {
        // Only re-delivery of already applied offsets may go backwards, never a gap in a batch.
        assert(record.offset <= start, `p${partition} batch offsets must increase`);
        continue;
      }
      chain = nextChain(chain, record.offset, record.value);
      offset = record.offset;
      applied++;
      lag.observe(Math.max(0, now - record.timestamp) / 1000);
      const decoded = decodeMutation(record.value);
      tx.message(record.offset, record.timestamp, decoded.ok ? decoded.mutation.ops.length : 0);
      if (!decoded.ok) {
        poisoned++;
        log("warn", "poison_message", { partition, offset, reason: decoded.reason });
        continue;
      }
      applyMutation(tx, decoded.mutation, record.offset, record.timestamp, ctx, counts);
    }
    return offset === start ? null : { offset, chain };
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
