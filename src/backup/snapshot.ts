/**
 * Snapshot files and their manifests: layout of keys in the bucket, creation from a live store,
 * and the verification every snapshot passes before it replaces a partition file — whether it
 * came from S3 or from a peer.
 */
import { createHash } from "node:crypto";
import { PartitionStore, type StoreMeta } from "../store/mod.ts";
import { OperationalError } from "../util/errors.ts";

/** What is known about one snapshot (stored as `{offset:020}.json` beside the file). */
export interface Manifest {
  readonly partition: number;
  readonly namespace: string;
  /** Last applied log offset in the snapshot. */
  readonly offset: number;
  /** Hash chain at that offset. */
  readonly chain: string;
  /** sha256 of the file, hex. */
  readonly sha256: string;
  readonly bytes: number;
  /** Unix ms. */
  readonly created_at: number;
  /** Instance id of the node that made it. */
  readonly node: string;
  /**
   * Log timestamp (unix ms) of the last message applied before the copy, when the node knew it
   * (it applied a message since it opened the file): a restore to a time picks snapshots by it.
   */
  readonly log_ts?: number;
}

/** The bucket prefix of a partition's snapshots. */
export function partitionPrefix(namespace: string, partition: number): string {
  return `${namespace}/p${partition}/`;
}

/** `{ns}/p{partition}/{offset:020}` — the stem of a snapshot's `.mdb` and `.json` keys. */
export function snapshotStem(namespace: string, partition: number, offset: number): string {
  return `${partitionPrefix(namespace, partition)}${String(offset).padStart(20, "0")}`;
}

/** The `latest.json` pointer of a partition. */
export function latestKey(namespace: string, partition: number): string {
  return `${partitionPrefix(namespace, partition)}latest.json`;
}

/** Offsets of the manifests among `keys`, newest first. */
export function manifestOffsets(keys: readonly string[]): number[] {
  const out: number[] = [];
  for (const key of keys) {
    const match = /\/(\d{20})\.json$/.exec(key);
    if (match !== null) out.push(Number(match[1]));
  }
  return out.sort((a, b) => b - a);
}

/** Parses a manifest, or null when it is not one. */
export function parseManifest(value: unknown): Manifest | null {
  const m = value as Record<string, unknown> | null;
  if (
    typeof m !== "object" || m === null ||
    !isCount(m.partition) || typeof m.namespace !== "string" ||
    !Number.isSafeInteger(m.offset) || (m.offset as number) < -1 ||
    typeof m.chain !== "string" || !/^[0-9a-f]{64}$/.test(m.chain) ||
    typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256) ||
    !isCount(m.bytes) || typeof m.created_at !== "number" || typeof m.node !== "string" ||
    (m.log_ts !== undefined && typeof m.log_ts !== "number")
  ) {
    return null;
  }
  return m as unknown as Manifest;
}

function isCount(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** sha256 and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/** A snapshot rejected by verification: the caller tries an older one or another source. */
export class SnapshotRejected extends OperationalError {
  constructor(reason: string, message: string) {
    super("snapshot_rejected", message, { reason });
    this.name = "SnapshotRejected";
  }
}

/**
 * Checks a downloaded snapshot against what it claims to be: size and sha256 as in the manifest,
 * and its own meta (namespace, partition, offset, chain) equal to the manifest's.
 */
export async function verifySnapshot(path: string, manifest: Manifest): Promise<StoreMeta> {
  const { sha256, bytes } = await hashFile(path);
  if (bytes !== manifest.bytes) {
    throw new SnapshotRejected(
      "size",
      `Snapshot is ${bytes} bytes, its manifest says ${manifest.bytes}`,
    );
  }
  if (sha256 !== manifest.sha256) {
    throw new SnapshotRejected("checksum", `Snapshot sha256 ${sha256} does not match its manifest`);
  }
  let meta: StoreMeta;
  try {
    meta = PartitionStore.readMeta(path);
  } catch (error) {
    throw new SnapshotRejected(
      "meta",
      `Snapshot is not a partition file: ${(error as Error).message}`,
    );
  } finally {
    await removeQuietly(`${path}-lock`);
  }
  if (
    meta.namespace !== manifest.namespace || meta.partition !== manifest.partition ||
    meta.offset !== manifest.offset || meta.chain !== manifest.chain
  ) {
    throw new SnapshotRejected(
      "meta",
      `Snapshot meta (p${meta.partition}@${meta.offset}) does not match its manifest (p${manifest.partition}@${manifest.offset})`,
    );
  }
  return meta;
}

/**
 * Copies a live store to `path` and describes the copy, made at `createdAt` (unix ms). The
 * manifest's offset and chain are read back from the copy itself: the store may have applied more
 * while it was being copied.
 */
export async function createSnapshot(
  store: PartitionStore,
  path: string,
  namespace: string,
  node: string,
  createdAt: number,
): Promise<Manifest> {
  await store.snapshotTo(path);
  // Read after the copy: no message in it is stamped later (a restore to a time needs that).
  const logTs = store.lastMessageTimestamp;
  const meta = PartitionStore.readMeta(path);
  await removeQuietly(`${path}-lock`);
  const { sha256, bytes } = await hashFile(path);
  return {
    partition: meta.partition,
    namespace,
    offset: meta.offset,
    chain: meta.chain,
    sha256,
    bytes,
    created_at: createdAt,
    node,
    ...(logTs > 0 ? { log_ts: logTs } : {}),
  };
}

/** Deletes a file if it exists. */
export async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path).catch(() => {});
}
