import { deepEqual, equal, ok } from "node:assert/strict";
import { type LogRecord, nextChain } from "../apply/mod.ts";
import { type ConfigArchive, loadConfig } from "../config/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { CHAIN_ZERO } from "../store/mod.ts";
import { MemoryObjectStore } from "./_test_util.ts";
import { Archive, archiveHoles, archiveSegments, type ArchiveSource } from "./archive.ts";
import { decodeSegmentBody, decompress, type Segment, segmentKey } from "./segment.ts";

const encoder = new TextEncoder();
const NS = "arch";
const SEC = 10;
const T0 = 1_796_000_000_000;

/** A partition's log in memory (a stand-in for the log port's readRange), truncatable. */
class MemoryLog {
  readonly records = new Map<number, LogRecord[]>();
  low = 0;

  append(partition: number, timestamp: number, text: string): LogRecord {
    const list = this.records.get(partition) ?? [];
    const record = {
      offset: (list.at(-1)?.offset ?? -1) + 1,
      timestamp,
      value: encoder.encode(text),
    };
    list.push(record);
    this.records.set(partition, list);
    return record;
  }

  readRange(partition: number, from: number, maxBytes: number) {
    if (from < this.low) return Promise.resolve("truncated" as const);
    const out: LogRecord[] = [];
    let bytes = 0;
    for (const r of this.records.get(partition) ?? []) {
      if (r.offset < from) continue;
      if (out.length > 0 && bytes + r.value.length > maxBytes) break;
      out.push(r);
      bytes += r.value.length;
    }
    return Promise.resolve(out);
  }
}

/** A partition file that applied the log up to `offset`. */
function appliedThrough(log: MemoryLog, partition: number, offset: number) {
  let chain = CHAIN_ZERO;
  for (const r of log.records.get(partition) ?? []) {
    if (r.offset > offset) break;
    chain = nextChain(chain, r.offset, r.value);
  }
  return { applied: { offset, chain } };
}

function source(log: MemoryLog, through: Map<number, number>): ArchiveSource {
  return {
    ownedServingStores: () => [...through].map(([p, o]) => [p, appliedThrough(log, p, o)]),
  };
}

function archive(
  objects: MemoryObjectStore,
  log: MemoryLog,
  clock: { now: number },
  settings: Partial<ConfigArchive> = {},
  metrics: Metrics = createMetrics(),
): Archive {
  const config = loadConfig({ NAMESPACE: NS });
  return new Archive(objects, log, {
    cluster: config.cluster,
    archive: { ...config.archive, segmentSec: SEC, checkSec: 60, ...settings },
    metrics,
    now: () => clock.now,
  });
}

async function segmentsOf(objects: MemoryObjectStore, partition: number): Promise<Segment[]> {
  const refs = archiveSegments(objects.keys().filter((k) => k.startsWith(`${NS}/p${partition}/`)));
  const out: Segment[] = [];
  for (const ref of refs) {
    out.push(decodeSegmentBody(await decompress(objects.objects.get(ref.key)!)));
  }
  return out;
}

/** Asserts the segments cover the log from offset 0 to `last` in order, chained, once each. */
function assertCovers(segments: Segment[], log: MemoryLog, partition: number, last: number) {
  let chain = CHAIN_ZERO;
  let next = 0;
  for (const s of segments) {
    equal(s.first, next, `segment ${s.first}-${s.last} starts where the one before ended`);
    equal(s.chainBefore, chain, `segment ${s.first}-${s.last} continues the chain`);
    chain = s.chainAfter;
    next = s.last + 1;
  }
  equal(next, last + 1, "the archive reaches the applied offset");
  const expected = (log.records.get(partition) ?? []).filter((r) => r.offset <= last);
  deepEqual(segments.flatMap((s) => s.records), expected);
}

const live = () => new AbortController().signal;

Deno.test("the archive uploads a partition's applied messages as segments cut by log-time bucket, the last one once its bucket is over", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  // Three buckets of 10 s: 5 messages in the first, 3 in the second, 2 in the third.
  for (let i = 0; i < 5; i++) log.append(0, T0 + i * 1000, `a${i}`);
  for (let i = 0; i < 3; i++) log.append(0, T0 + 10_000 + i * 1000, `b${i}`);
  for (let i = 0; i < 2; i++) log.append(0, T0 + 20_000 + i * 1000, `c${i}`);
  log.append(1, T0, "other partition");
  const a = archive(objects, log, clock);
  clock.now = T0 + 21_500;
  await a.round(source(log, new Map([[0, 9]])), live());
  // The third bucket is still open at 21.5 s: two segments.
  deepEqual(objects.keys().filter((k) => k.includes("/log/")), [
    segmentKey(NS, 0, 0, 4),
    segmentKey(NS, 0, 5, 7),
  ]);
  clock.now = T0 + 31_000; // the third bucket ended at 30 s, plus a second's grace
  await a.round(source(log, new Map([[0, 9]])), live());
  const segments = await segmentsOf(objects, 0);
  equal(segments.length, 3);
  assertCovers(segments, log, 0, 9);
});

Deno.test("the archive only takes what the file applied, and a segment by size ends before ARCHIVE_SEGMENT_BYTES", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  for (let i = 0; i < 40; i++) log.append(0, T0 + i, `m${i}-${"x".repeat(1000)}`);
  const a = archive(objects, log, clock, { segmentBytes: 10_000 });
  await a.round(source(log, new Map([[0, 24]])), live());
  // 25 applied messages of about 1 KiB, 9 a segment: two full segments, the rest open.
  deepEqual((await segmentsOf(objects, 0)).map((s) => [s.first, s.last]), [[0, 8], [9, 17]]);
  clock.now = T0 + 20_000;
  await a.round(source(log, new Map([[0, 39]])), live());
  const segments = await segmentsOf(objects, 0);
  assertCovers(segments, log, 0, 39);
  ok(segments.every((s) => s.records.reduce((n, r) => n + r.value.length, 0) <= 10_000));
});

Deno.test("two nodes archiving one partition, in turn and at once, write one chain of segments with no overlap", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  const metrics = createMetrics();
  const a = archive(objects, log, clock, {}, metrics);
  const b = archive(objects, log, clock, {}, metrics);
  let offset = -1;
  const write = (n: number) => {
    for (let i = 0; i < n; i++) offset = log.append(3, clock.now, `w${offset + 1}`).offset;
  };
  // A archives, then B takes the partition over (A no longer owns it), then both run.
  for (let step = 0; step < 12; step++) {
    write(7);
    clock.now += 4_000;
    const owned = new Map([[3, offset]]);
    const none = new Map<number, number>();
    if (step < 4) await a.round(source(log, owned), live());
    else if (step < 8) {
      await a.round(source(log, none), live());
      await b.round(source(log, owned), live());
    } else {
      await Promise.all([a.round(source(log, owned), live()), b.round(source(log, owned), live())]);
    }
  }
  clock.now += 20_000;
  await a.round(source(log, new Map([[3, offset]])), live());
  await b.round(source(log, new Map([[3, offset]])), live());
  const segments = await segmentsOf(objects, 3);
  assertCovers(segments, log, 3, offset);
  const text = metricsText(metrics);
  ok(/firescroll_archive_segments_total\{result="exists"\} [1-9]/.test(text), text);
});

Deno.test("a deleted segment is found at the next check and put back from the log, byte for byte", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  const metrics = createMetrics();
  for (let i = 0; i < 30; i++) log.append(0, T0 + i * 1000, `m${i}`);
  const a = archive(objects, log, clock, {}, metrics);
  clock.now = T0 + 45_000;
  await a.round(source(log, new Map([[0, 29]])), live());
  const keys = objects.keys();
  equal(keys.length, 3);
  const removed = keys[1]!;
  const bytes = objects.objects.get(removed)!;
  await objects.delete([removed], live());
  deepEqual(archiveHoles(archiveSegments(objects.keys())).map((h) => [h.from, h.to]), [[10, 19]]);
  clock.now += 61_000; // past ARCHIVE_CHECK_SEC
  await a.round(source(log, new Map([[0, 29]])), live());
  deepEqual(objects.objects.get(removed), bytes);
  const text = metricsText(metrics);
  ok(text.includes("firescroll_archive_repairs_total 1"), text);
  ok(text.includes('firescroll_archive_gaps{partition="0"} 0'), text);
});

Deno.test("a hole the log no longer holds is counted in firescroll_archive_gaps and left alone", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  const metrics = createMetrics();
  for (let i = 0; i < 30; i++) log.append(0, T0 + i * 1000, `m${i}`);
  clock.now = T0 + 45_000;
  await archive(objects, log, clock).round(source(log, new Map([[0, 29]])), live());
  await objects.delete([objects.keys()[1]!], live());
  log.low = 25; // retention took the hole's messages
  await archive(objects, log, clock, {}, metrics).round(
    source(log, new Map([[0, 29]])),
    live(),
  );
  equal(objects.keys().length, 2);
  ok((metricsText(metrics)).includes('firescroll_archive_gaps{partition="0"} 1'));
});

Deno.test("an archive that does not start at offset 0 of a truncated log starts at the file's offset", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  for (let i = 0; i < 20; i++) log.append(0, T0 + i * 1000, `m${i}`);
  log.low = 10;
  clock.now = T0 + 40_000;
  const a = archive(objects, log, clock);
  await a.round(source(log, new Map([[0, 14]])), live());
  await a.round(source(log, new Map([[0, 19]])), live());
  const segments = await segmentsOf(objects, 0);
  deepEqual(segments.map((s) => [s.first, s.last]), [[15, 19]]);
  equal(segments[0]!.chainBefore, appliedThrough(log, 0, 14).applied.chain);
});

Deno.test("a file whose chain differs from the archive's stops the archive of that partition", async () => {
  const log = new MemoryLog();
  const objects = new MemoryObjectStore();
  const clock = { now: T0 };
  for (let i = 0; i < 5; i++) log.append(0, T0 + i * 1000, `m${i}`);
  clock.now = T0 + 20_000;
  const wrong: ArchiveSource = {
    ownedServingStores: () => [[0, { applied: { offset: 4, chain: "ab".repeat(32) } }]],
  };
  const metrics = createMetrics();
  await archive(objects, log, clock, {}, metrics).round(wrong, live());
  deepEqual(objects.keys(), [], "a segment that disagrees with the file was uploaded");
  ok(metricsText(metrics).includes('firescroll_archive_segments_total{result="failed"} 1'));
  for (let i = 5; i < 10; i++) log.append(0, T0 + 30_000 + i, `n${i}`);
  clock.now = T0 + 60_000;
  const wrongLater: ArchiveSource = {
    ownedServingStores: () => [[0, { applied: { offset: 9, chain: "ab".repeat(32) } }]],
  };
  await archive(objects, log, clock, {}, metrics).round(wrongLater, live());
  // The chains can be compared only where a segment ends at the file's offset: the segment the
  // next bucket closed went up, the one ending at the file's offset did not.
  deepEqual(objects.keys(), [segmentKey(NS, 0, 0, 4)]);
  ok(metricsText(metrics).includes('firescroll_archive_segments_total{result="failed"} 2'));
});

function metricsText(metrics: Metrics): string {
  return metrics.registry.render();
}
