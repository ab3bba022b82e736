/**
 * Restore, in the partition lifecycle (DESIGN §7): before a partition is consumed, take the
 * furthest of the local file and the latest S3 snapshot (`S3_RESTORE=1`); when neither reaches
 * the log's first offset (Kafka's retention dropped what the file still needs), rebuild the
 * partition from S3 with the log archive (snapshot + segments, replay.ts), and when that cannot
 * reach it either, fetch a snapshot from a region peer (after Quicksilver). Every snapshot is
 * verified (size, sha256, its own meta against the manifest) before it is used; a rejected one
 * falls back to the next older one.
 */
import type { ConfigBackup, ConfigCluster, ConfigStore } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { FetchedSnapshot, SnapshotSource } from "../node/mod.ts";
import { errorMessage, log, progress } from "../util/log.ts";
import { storePath } from "../store/mod.ts";
import type { ObjectStore } from "./object_store.ts";
import { type RestoreDecode, restoreToPoint } from "./replay.ts";
import {
  type Manifest,
  manifestOffsets,
  parseManifest,
  partitionPrefix,
  removeQuietly,
  SnapshotRejected,
  snapshotStem,
  verifySnapshot,
} from "./snapshot.ts";

/** Downloads a peer's snapshot of `partition` to `path`; resolves to its manifest or null. */
export type PeerSnapshotFetcher = (
  partition: number,
  path: string,
  signal: AbortSignal,
) => Promise<Manifest | null>;

/**
 * What the restorer is built from: its config sections whole — `cluster.namespace`,
 * `backup.timeoutMs` (bound on one restore) and `backup.keep` (snapshots kept, so at most
 * `max(2, keep)` are tried, newest first, when one is rejected) — and what is injected.
 */
export interface RestoreOptions {
  readonly cluster: ConfigCluster;
  readonly backup: ConfigBackup;
  /** `store.lmdbMapBytes`: the map size of a file rebuilt from the archive. */
  readonly store: Pick<ConfigStore, "lmdbMapBytes">;
  /** The change log's retention (ms of log time) in a file rebuilt from the archive. */
  readonly changesRetainMs: number;
  /** `S3_RESTORE_DECODE` (`ReplayOptions.decode`); default `auto`. */
  readonly decode?: RestoreDecode;
  readonly metrics: Metrics;
  /** The node's clock (names of temporary files). */
  readonly now: () => number;
}

/** The {@linkcode SnapshotSource} of a node: S3 (when enabled) and region peers (when enabled). */
export class Restorer implements SnapshotSource {
  constructor(
    private readonly objects: ObjectStore | null,
    private readonly peer: PeerSnapshotFetcher | null,
    private readonly options: RestoreOptions,
  ) {}

  async fetch(
    partition: number,
    localOffset: number,
    logStart: number,
    logEnd: number,
    dir: string,
  ): Promise<FetchedSnapshot | null> {
    const signal = AbortSignal.timeout(this.options.backup.timeoutMs);
    const fromS3 = this.objects === null
      ? null
      : await this.fromS3(this.objects, partition, localOffset, logEnd, dir, signal);
    const reached = fromS3?.offset ?? localOffset;
    if (this.objects !== null && reached + 1 < logStart) {
      // The log cannot go on from there: the archive can carry a snapshot further.
      const fromArchive = await this.fromArchive(
        this.objects,
        partition,
        reached,
        logEnd,
        dir,
        fromS3,
      );
      if (fromArchive !== null) {
        if (fromArchive.offset + 1 >= logStart) return fromArchive;
        // Short of the log still: a peer may do better; else the furthest copy is kept.
        const fromPeer = this.peer === null
          ? null
          : await this.fromPeer(this.peer, partition, fromArchive.offset, logEnd, dir, signal);
        if (fromPeer === null) return fromArchive;
        await removeQuietly(fromArchive.path);
        return fromPeer;
      }
    }
    if (fromS3 !== null) return fromS3;
    // Only when the log cannot rebuild the partition from where the file stands.
    if (this.peer === null || localOffset + 1 >= logStart) return null;
    return await this.fromPeer(this.peer, partition, localOffset, logEnd, dir, signal);
  }

  private count(source: string, result: string): void {
    this.options.metrics.restores.labels(source, result).inc();
  }

  private async fromS3(
    objects: ObjectStore,
    partition: number,
    localOffset: number,
    logEnd: number,
    dir: string,
    signal: AbortSignal,
  ): Promise<FetchedSnapshot | null> {
    const ns = this.options.cluster.namespace;
    let offsets: number[];
    try {
      offsets = manifestOffsets(await objects.list(partitionPrefix(ns, partition), signal));
    } catch (error) {
      this.count("s3", "failed");
      log("warn", "restore_unavailable", { partition, source: "s3", error: errorMessage(error) });
      return null;
    }
    // A snapshot the log has not reached would skip offsets the log assigns later.
    const usable = offsets.filter((o) => o > localOffset && o < logEnd);
    for (const offset of usable.slice(0, Math.max(2, this.options.backup.keep))) {
      const path = `${dir}/.restore-p${partition}-${offset}-${this.options.now()}.mdb`;
      const stem = snapshotStem(ns, partition, offset);
      try {
        const manifest = parseManifest(await objects.getJson(`${stem}.json`, signal));
        if (manifest === null) {
          throw new SnapshotRejected("manifest", `${stem}.json is not a manifest`);
        }
        // verifySnapshot() holds the file to its manifest; this holds the manifest to its key.
        const foreign = foreignManifest(manifest, ns, partition);
        if (foreign !== null || manifest.offset !== offset) {
          throw new SnapshotRejected(
            "manifest",
            `${stem}.json describes ${foreign ?? `offset ${manifest.offset}`}`,
          );
        }
        const downloading = reportDownload(partition, offset, path, manifest.bytes);
        try {
          if (!(await objects.getFile(`${stem}.mdb`, path, signal))) {
            throw new SnapshotRejected("missing", `${stem}.mdb does not exist`);
          }
        } finally {
          downloading.stop();
        }
        await verifySnapshot(path, manifest);
        this.count("s3", "ok");
        return { path, offset: manifest.offset, source: "s3" };
      } catch (error) {
        await removeQuietly(path);
        const rejected = error instanceof SnapshotRejected;
        this.count("s3", rejected ? "rejected" : "failed");
        log(rejected ? "error" : "warn", rejected ? "snapshot_rejected" : "restore_failed", {
          partition,
          offset,
          source: "s3",
          error: errorMessage(error),
        });
        if (!rejected) return null; // S3 itself failed: older snapshots would fail alike.
      }
    }
    return null;
  }

  /**
   * The partition rebuilt from S3 snapshots and the log archive, up to where the archive ends
   * (never past `logEnd`), or null when that is not past `reached` or it fails. `base`, the
   * snapshot S3 already gave, is carried on (its file becomes the result's); without it the
   * newest snapshot the archive can carry is downloaded. On null, `base` is where it was.
   */
  private async fromArchive(
    objects: ObjectStore,
    partition: number,
    reached: number,
    logEnd: number,
    dir: string,
    base: FetchedSnapshot | null,
  ): Promise<FetchedSnapshot | null> {
    const work = `${dir}/.restore-p${partition}-archive-${this.options.now()}`;
    const path = `${work}.mdb`;
    const inWork = storePath(work, partition);
    const putBack = async () => {
      if (base !== null) await Deno.rename(inWork, base.path).catch(() => {});
    };
    try {
      await Deno.mkdir(work, { recursive: true });
      if (base !== null) await Deno.rename(base.path, inWork);
      const restored = await restoreToPoint(
        objects,
        { kind: "offset", offset: logEnd - 1 },
        work,
        {
          namespace: this.options.cluster.namespace,
          partition,
          mapBytes: this.options.store.lmdbMapBytes,
          changesRetainMs: this.options.changesRetainMs,
          metrics: this.options.metrics,
          now: this.options.now,
          snapshotsTried: Math.max(2, this.options.backup.keep),
          decode: this.options.decode ?? "auto",
        },
        AbortSignal.timeout(this.options.backup.timeoutMs),
        base === null ? { partial: true } : { partial: true, base: base.offset },
      );
      if (restored.offset <= reached) {
        await putBack();
        this.count("archive", "unavailable");
        return null;
      }
      await Deno.rename(restored.path, path);
      this.count("archive", "ok");
      log("info", "restore_from_archive", {
        partition,
        snapshot: restored.snapshot,
        offset: restored.offset,
        replayed: restored.replayed,
      });
      return { path, offset: restored.offset, source: "archive" };
    } catch (error) {
      await removeQuietly(path);
      await putBack();
      this.count("archive", "failed");
      log("error", "restore_from_archive_failed", { partition, error: errorMessage(error) });
      return null;
    } finally {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  }

  private async fromPeer(
    peer: PeerSnapshotFetcher,
    partition: number,
    localOffset: number,
    logEnd: number,
    dir: string,
    signal: AbortSignal,
  ): Promise<FetchedSnapshot | null> {
    const path = `${dir}/.restore-p${partition}-peer-${this.options.now()}.mdb`;
    try {
      const manifest = await peer(partition, path, signal);
      if (manifest === null) {
        // The fetcher may have written (part of) a file before giving up.
        await removeQuietly(path);
        this.count("peer", "unavailable");
        return null;
      }
      const foreign = foreignManifest(manifest, this.options.cluster.namespace, partition);
      if (foreign !== null) {
        throw new SnapshotRejected("manifest", `Peer snapshot describes ${foreign}`);
      }
      if (manifest.offset <= localOffset || manifest.offset >= logEnd) {
        throw new SnapshotRejected(
          "offset",
          `Peer snapshot at ${manifest.offset} is not between ${localOffset} and the log end ${logEnd}`,
        );
      }
      await verifySnapshot(path, manifest);
      this.count("peer", "ok");
      return { path, offset: manifest.offset, source: "peer" };
    } catch (error) {
      await removeQuietly(path);
      this.count("peer", error instanceof SnapshotRejected ? "rejected" : "failed");
      log("error", "peer_snapshot_failed", { partition, error: errorMessage(error) });
      return null;
    }
  }
}

/** Least time between two progress lines of one snapshot download (as replay.ts's). */
const DOWNLOAD_PROGRESS_MS = 5000;

/**
 * Logs `restore_progress` (the shape of replay.ts's, in bytes) every `everyMs` while a snapshot
 * of `bytes` downloads to `path`, by the size the file has reached; nothing for a download that
 * ends sooner. Until `stop()`.
 */
export function reportDownload(
  partition: number,
  offset: number,
  path: string,
  bytes: number,
  everyMs: number = DOWNLOAD_PROGRESS_MS,
): { stop(): void } {
  const started = performance.now();
  const timer = setInterval(() => {
    let done: number;
    try {
      done = Deno.statSync(path).size;
    } catch {
      return; // Not created yet.
    }
    log("info", "restore_progress", {
      partition,
      source: "s3",
      offset,
      unit: "bytes",
      ...progress(done, bytes, performance.now() - started),
    });
  }, everyMs);
  return { stop: () => clearInterval(timer) };
}

/** What other partition or namespace `manifest` describes, or null when it is this one's. */
function foreignManifest(manifest: Manifest, namespace: string, partition: number): string | null {
  return manifest.partition === partition && manifest.namespace === namespace
    ? null
    : `partition ${manifest.partition} of namespace ${manifest.namespace}`;
}
