/**
 * A partition's expiry index: the `expiry` DB of its file, one row per record that expires
 * (`ttl_ms` / `expires_at`), kept by the same transactions that write the records. Key:
 * `u64be(expires_at) ‖ record key`, value empty — so the records due by an instant are the DB's
 * first rows, and apply purges them without scanning the partition.
 *
 * @module
 */
import type { Database, RootDatabase } from "lmdb";
import { readU64, writeU64 } from "../util/u64.ts";
import type { ReadTxn } from "./record_reads.ts";

/** A partition's `expiry` DB. */
export type ExpiryDb = Database<Uint8Array, Uint8Array>;

/** The value of every row. */
export const EXPIRY_ROW = new Uint8Array(0);

/** Opens (creating it when the environment may write) a partition file's `expiry` DB. */
export function openExpiryDb(env: RootDatabase): ExpiryDb {
  return env.openDB<Uint8Array, Uint8Array>({
    name: "expiry",
    keyEncoding: "binary",
    encoding: "binary",
  });
}

/** The index key of `recordKey` expiring at `expiresAt` (unix ms, a safe integer). */
export function expiryKey(expiresAt: number, recordKey: Uint8Array): Uint8Array {
  const key = new Uint8Array(8 + recordKey.length);
  writeU64(key, 0, expiresAt);
  key.set(recordKey.subarray(0, recordKey.length), 8);
  return key;
}

function instantOf(key: Uint8Array): number {
  return readU64(key, 0);
}

/** A record due to expire. */
export interface Due {
  /** Its row in the index. */
  readonly indexKey: Uint8Array;
  /** Its key in `records`. */
  readonly recordKey: Uint8Array;
  readonly expiresAt: number;
}

/** At most `budget` records expiring at or before `by`, earliest first (in the caller's txn). */
export function dueBy(expiry: ExpiryDb, by: number, budget: number): Due[] {
  const out: Due[] = [];
  for (const { key } of expiry.getRange({ limit: budget })) {
    const expiresAt = instantOf(key);
    if (expiresAt > by) break;
    // Copied: lmdb-js may reuse the key's buffer on the next read.
    const indexKey = key.slice(0, key.length);
    out.push({ indexKey, recordKey: indexKey.subarray(8), expiresAt });
  }
  return out;
}

/**
 * The earliest expiry instant in `txn`'s snapshot (none: the caller's write transaction), or
 * null when nothing expires.
 */
export function earliestExpiry(expiry: ExpiryDb, txn?: ReadTxn): number | null {
  const range = txn === undefined ? { limit: 1 } : { limit: 1, transaction: txn };
  for (const { key } of expiry.getRange(range)) return instantOf(key);
  return null;
}
