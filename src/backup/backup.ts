/**
 * Backups (`BACKUP=1`): every `BACKUP_INTERVAL_SEC`, each partition this node owns and serves is
 * copied with LMDB's compacting online copy, uploaded (multipart) with its manifest, pointed to
 * by `latest.json`, and older snapshots beyond `BACKUP_KEEP` are deleted. Failures are logged,
 * counted and retried at the next interval; they never stop the node.
 *
 * With the log archive on (`ARCHIVE=1`), backups are incremental: the archive carries every
 * change, and a full snapshot is taken only when the last one is `BACKUP_FULL_INTERVAL_SEC` old
 * or the segments archived since reach `BACKUP_FULL_PERCENT` of its size. Retention then also
 * deletes the segments the oldest kept snapshot already holds, and never one after it.
 */
import type { ConfigArchive, ConfigBackup, ConfigCluster, ConfigNode } from "../config/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { PartitionStore } from "../store/mod.ts";
import { errorMessage, log } from "../util/log.ts";
import { sleep } from "../util/sleep.ts";
import { archiveSegments, newestSegment } from "./archive.ts";
import type { ObjectStore } from "./object_store.ts";
import {
  createSnapshot,
  latestKey,
  type Manifest,
  manifestOffsets,
  parseManifest,
  partitionPrefix,
  removeQuietly,
  snapshotStem,
} from "./snapshot.ts";

/**
 * What the backup loop is built from: its config sections whole — `cluster.namespace` and
 * `node.instanceId` (written into every manifest), `backup` (`intervalSec`, `keep`, `timeoutMs`)
 * — and what is injected.
 */
export interface BackupOptions {
  readonly cluster: ConfigCluster;
  readonly node: ConfigNode;
  readonly backup: ConfigBackup;
  /** `archive.enabled`: backups are incremental (see the module doc). */
  readonly archive: Pick<ConfigArchive, "enabled">;
  /** Scratch folder for copies (same file system as the stores). */
  readonly scratchDir: string;
  readonly metrics: Metrics;
  /** The node's clock (manifests, the last-success gauge, scratch file names). */
  readonly now: () => number;
}

/** What the backup loop needs from the node. */
export interface BackupSource {
  /** Partitions this node owns and serves now, with their stores. */
  ownedServingStores(): [number, PartitionStore][];
}

/** The backup loop of one node. */
export class Backups {
  /** Offset of the last successful backup per partition (skip when nothing changed). */
  private readonly backedUp = new Map<number, number>();

  constructor(
    private readonly objects: ObjectStore,
    private readonly options: BackupOptions,
  ) {}

  /** Runs until `signal` aborts: one round now, then one every interval. */
  async run(source: BackupSource, signal: AbortSignal): Promise<void> {
    await Deno.mkdir(this.options.scratchDir, { recursive: true });
    while (!signal.aborted) {
      await this.round(source, signal);
      await sleep(this.options.backup.intervalSec * 1000, signal);
    }
  }

  /** Backs up every owned serving partition whose offset moved since its last backup. */
  async round(source: BackupSource, signal: AbortSignal): Promise<void> {
    for (const [partition, store] of source.ownedServingStores()) {
      if (signal.aborted) return;
      const offset = store.applied.offset;
      if (offset < 0 || this.backedUp.get(partition) === offset) continue;
      if (!await this.fullDue(partition, signal)) continue;
      await this.backupPartition(partition, store, signal);
    }
  }

  /**
   * Whether a partition needs a full snapshot now: always without the archive; with it, when
   * there is none, when the last is `fullIntervalSec` old, or when the segments archived since
   * reach `fullPercent` of its size. A failure to tell counts as due.
   */
  private async fullDue(partition: number, signal: AbortSignal): Promise<boolean> {
    if (!this.options.archive.enabled) return true;
    const { backup, cluster } = this.options;
    try {
      const latest = parseManifest(
        await this.objects.getJson(latestKey(cluster.namespace, partition), signal),
      );
      if (latest === null) return true;
      if (this.options.now() - latest.created_at >= backup.fullIntervalSec * 1000) return true;
      const log = await this.objects.listSized(
        `${partitionPrefix(cluster.namespace, partition)}log/`,
        signal,
      );
      const sizes = new Map(log.map((o) => [o.key, o.bytes]));
      let since = 0;
      for (const s of archiveSegments(log.map((o) => o.key))) {
        if (s.first > latest.offset) since += sizes.get(s.key) ?? 0;
      }
      return since * 100 >= backup.fullPercent * latest.bytes;
    } catch (error) {
      log("warn", "backup_check_failed", { partition, error: errorMessage(error) });
      return true;
    }
  }

  /** One partition's backup, bounded by `timeoutMs`. Resolves to the manifest, or null on failure. */
  async backupPartition(
    partition: number,
    store: PartitionStore,
    signal: AbortSignal,
  ): Promise<Manifest | null> {
    const m = this.options.metrics;
    const started = performance.now();
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.options.backup.timeoutMs)]);
    const path = `${this.options.scratchDir}/backup-p${partition}-${this.options.now()}.mdb`;
    try {
      const manifest = await createSnapshot(
        store,
        path,
        this.options.cluster.namespace,
        this.options.node.instanceId,
        this.options.now(),
      );
      const ns = this.options.cluster.namespace;
      const stem = snapshotStem(ns, partition, manifest.offset);
      // Another replica may have uploaded this very offset already: its snapshot is as good.
      const existing = parseManifest(await this.objects.getJson(`${stem}.json`, timeout));
      if (existing === null) {
        await this.objects.putFile(`${stem}.mdb`, path, timeout);
        await this.objects.putJson(`${stem}.json`, manifest, timeout);
        m.backupBytes.labels().inc(manifest.bytes);
      }
      // Also when the snapshot was there: an earlier attempt may have failed right before this.
      await this.advanceLatest(partition, existing ?? manifest, timeout);
      await this.prune(partition, timeout);
      this.backedUp.set(partition, manifest.offset);
      const seconds = (performance.now() - started) / 1000;
      m.backupDuration.labels().observe(seconds);
      m.backupLastSuccess.labels(String(partition)).set(this.options.now() / 1000);
      log("info", "backup_done", {
        partition,
        offset: manifest.offset,
        bytes: manifest.bytes,
        seconds,
        uploaded: existing === null,
      });
      return manifest;
    } catch (error) {
      m.backupFailures.labels().inc();
      log("warn", "backup_failed", { partition, error: errorMessage(error) });
      return null;
    } finally {
      await removeQuietly(path);
      await removeQuietly(`${path}-lock`);
    }
  }

  /**
   * Points `latest.json` at `manifest` unless it points at that offset or a newer one already: a
   * replica that lags (another region sharing the bucket) must not move the pointer back.
   */
  private async advanceLatest(
    partition: number,
    manifest: Manifest,
    signal: AbortSignal,
  ): Promise<void> {
    const key = latestKey(this.options.cluster.namespace, partition);
    const latest = parseManifest(await this.objects.getJson(key, signal));
    if (latest !== null && latest.offset >= manifest.offset) return;
    await this.objects.putJson(key, manifest, signal);
  }

  /**
   * Keeps the `keep` newest snapshots of a partition, deleting the rest — and any file older than
   * the oldest kept one that lost its manifest (an upload that failed between file and manifest),
   * which no manifest listing would ever find again — and the archive's segments that end at or
   * before the oldest kept snapshot (it holds their changes; a restore starts from it or later).
   */
  private async prune(partition: number, signal: AbortSignal): Promise<void> {
    const ns = this.options.cluster.namespace;
    const keys = await this.objects.list(partitionPrefix(ns, partition), signal);
    const kept = manifestOffsets(keys).slice(0, this.options.backup.keep);
    if (kept.length < this.options.backup.keep) return;
    const oldestKept = kept[kept.length - 1]!;
    const files: string[] = [];
    const manifests: string[] = [];
    for (const key of keys) {
      const match = SNAPSHOT_KEY.exec(key);
      if (match === null || Number(match[1]) >= oldestKept) continue;
      (match[2] === "mdb" ? files : manifests).push(key);
    }
    // The newest segment always stays: it is where the archive goes on from (archive.ts reads
    // its end and chain from S3). Without it an archive that retention emptied would start
    // again from the log's first offset and upload every segment anew.
    const all = archiveSegments(keys);
    const newest = newestSegment(all);
    const segments = all.filter((s) => s.last <= oldestKept && s !== newest).map((s) => s.key);
    if (segments.length > 0) await this.objects.delete(segments, signal);
    // The data file goes first: a manifest without its file is skipped by restore, never trusted.
    if (files.length > 0) await this.objects.delete(files, signal);
    if (manifests.length > 0) await this.objects.delete(manifests, signal);
  }
}

/** A snapshot's file or manifest key: `…/{offset:020}.mdb|.json`. */
const SNAPSHOT_KEY = /\/(\d{20})\.(mdb|json)$/;
