/**
 * Log archive segments (issue 15): a run of one partition's log messages, in order, as one
 * gzip object in S3 at `{namespace}/p{partition}/log/{first:020}-{last:020}`.
 *
 * The bytes depend on the log alone, so every node archiving the same offsets uploads the same
 * object (and a conditional create makes the second upload a no-op):
 *
 * - body: `"FSLOG1\n"` ‖ a JSON header line `{"partition","first","last","count","chain_before"}`
 *   ‖ per message `u64be(offset) ‖ f64be(timestamp) ‖ u32be(length) ‖ bytes` ‖ a JSON trailer
 *   `{"chain_after","sha256"}` (sha256 of everything before it) ‖ `u32be(trailer length)`;
 * - gzip of the whole body in one call (node:zlib, level 3; see {@linkcode compress}), whose
 *   header carries no time.
 *
 * Reading one checks the sha256 and that the hash chain over its messages, from `chain_before`,
 * ends at `chain_after` — the same chain apply computes, so a restored partition's chain is
 * checked against the archive's.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { type LogRecord, nextChain } from "../apply/mod.ts";
import { assert } from "../util/assert.ts";
import { getU64, setU64 } from "../util/u64.ts";

const MAGIC = "FSLOG1\n";
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const RECORD_HEAD_BYTES = 8 + 8 + 4;

/** What a segment holds besides its messages. */
export interface SegmentHeader {
  readonly partition: number;
  /**
   * The first offset the segment covers: the offset after the previous segment's last. Its first
   * message is there or later (a Kafka log may skip offsets, e.g. for transaction markers), so
   * segments that follow each other cover the log without a hole.
   */
  readonly first: number;
  /** Offset of the last message. */
  readonly last: number;
  readonly count: number;
  /** The hash chain before `first` (hex). */
  readonly chainBefore: string;
  /** The hash chain after the last message (hex). */
  readonly chainAfter: string;
}

/** A segment read back and verified. */
export interface Segment extends SegmentHeader {
  readonly records: readonly LogRecord[];
}

/** Raised when a segment's bytes are not a segment, or fail their sha256 or chain check. */
export class SegmentCorruptError extends Error {
  /** Stable code. */
  readonly code = "segment_corrupt";
  constructor(message: string) {
    super(message);
    this.name = "SegmentCorruptError";
  }
}

/** The object key of a segment. */
export function segmentKey(namespace: string, partition: number, first: number, last: number) {
  return `${namespace}/p${partition}/log/${String(first).padStart(20, "0")}-${
    String(last).padStart(20, "0")
  }`;
}

/** The first and last offsets a segment key names, or null when it is not a segment key. */
export function parseSegmentKey(key: string): { first: number; last: number } | null {
  const match = /\/log\/(\d{20})-(\d{20})$/.exec(key);
  if (match === null) return null;
  const first = Number(match[1]);
  const last = Number(match[2]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || last < first) return null;
  return { first, last };
}

/**
 * A segment being built, one message at a time: the messages go straight into one growing
 * buffer and the hash chain moves on with each, so an open segment is one buffer, not a list of
 * small objects that live until it closes. Where a segment ends is decided by {@linkcode fits}:
 * the same rule {@linkcode segmentLength} states for a list.
 */
export class SegmentBuilder {
  private buffer = new Uint8Array(64 * 1024);
  private length = 0;
  private chain: string;
  private readonly cut: SegmentCut;
  /** Offset of the last message added (first − 1 before any). */
  lastOffset: number;

  constructor(
    readonly partition: number,
    /** The first offset the segment covers. */
    readonly first: number,
    readonly chainBefore: string,
    private readonly bounds: SegmentBounds,
  ) {
    this.chain = chainBefore;
    this.lastOffset = first - 1;
    this.cut = new SegmentCut(bounds);
  }

  /** Messages added. */
  get count(): number {
    return this.cut.count;
  }

  /** Bytes of the messages added (their values). */
  get bytes(): number {
    return this.cut.bytes;
  }

  /** Unix ms at which the first message's log-time bucket ends (see {@linkcode SegmentBounds}). */
  get bucketEndsAt(): number {
    return (this.cut.bucket + 1) * this.bounds.sec * 1000;
  }

  /** The hash chain after the last message added. */
  get chainAfter(): string {
    return this.chain;
  }

  /** Whether `record` belongs to this segment: false once a segment must end before it. */
  fits(record: LogRecord): boolean {
    return this.cut.fits(record);
  }

  /** Adds the next message (offsets increasing, at or after `first`). */
  add(record: LogRecord): void {
    assert(record.offset > this.lastOffset, "segment offsets must increase");
    this.cut.add(record);
    const need = this.length + RECORD_HEAD_BYTES + record.value.length;
    if (need > this.buffer.length) {
      const grown = new Uint8Array(Math.max(need, this.buffer.length * 2));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    const view = new DataView(this.buffer.buffer, this.length, RECORD_HEAD_BYTES);
    setU64(view, 0, record.offset);
    view.setFloat64(8, record.timestamp);
    view.setUint32(16, record.value.length);
    this.buffer.set(record.value, this.length + RECORD_HEAD_BYTES);
    this.length = need;
    this.chain = nextChain(this.chain, record.offset, record.value);
    this.lastOffset = record.offset;
  }

  /**
   * The segment's uncompressed body and header. `last` (default: the last message's offset) may
   * be later, for a segment that fills a hole up to the next one when the log skipped the
   * offsets at its end.
   */
  finish(last: number = this.lastOffset): { body: Uint8Array; header: SegmentHeader } {
    assert(this.count > 0, "a segment holds at least one message");
    assert(last >= this.lastOffset, "a segment's messages end by its last offset");
    const header: SegmentHeader = {
      partition: this.partition,
      first: this.first,
      last,
      count: this.count,
      chainBefore: this.chainBefore,
      chainAfter: this.chain,
    };
    const head = encoder.encode(
      MAGIC +
        JSON.stringify({
          partition: this.partition,
          first: this.first,
          last,
          count: this.count,
          chain_before: this.chainBefore,
        }) + "\n",
    );
    const records = this.buffer.subarray(0, this.length);
    const sha256 = createHash("sha256").update(head).update(records).digest("hex");
    const trailer = encoder.encode(JSON.stringify({ chain_after: this.chain, sha256 }));
    const body = new Uint8Array(head.length + records.length + trailer.length + 4);
    body.set(head, 0);
    body.set(records, head.length);
    body.set(trailer, head.length + records.length);
    new DataView(body.buffer).setUint32(body.length - 4, trailer.length);
    return { body, header };
  }
}

/**
 * Where a segment ends, message by message — the rule every node applies alike: before the first
 * message of a later log-time bucket, or before the message that would take it past
 * `bounds.bytes` (a larger message alone is a segment of its own).
 */
class SegmentCut {
  bucket = 0;
  count = 0;
  bytes = 0;

  constructor(private readonly bounds: SegmentBounds) {}

  fits(record: LogRecord): boolean {
    return this.count === 0 ||
      (bucketOf(record, this.bounds) === this.bucket &&
        this.bytes + record.value.length <= this.bounds.bytes);
  }

  add(record: LogRecord): void {
    if (this.count === 0) this.bucket = bucketOf(record, this.bounds);
    this.count++;
    this.bytes += record.value.length;
  }
}

function bucketOf(record: LogRecord, bounds: SegmentBounds): number {
  return Math.floor(record.timestamp / (bounds.sec * 1000));
}

/**
 * The uncompressed body of a segment of `records` (one partition's, offsets increasing from
 * `first` on) after `chainBefore`; returns it with its header (the chain after the last message
 * included). `last` as in {@linkcode SegmentBuilder.finish}.
 */
export function encodeSegmentBody(
  partition: number,
  first: number,
  chainBefore: string,
  records: readonly LogRecord[],
  last?: number,
): { body: Uint8Array; header: SegmentHeader } {
  assert(records.length > 0, "a segment holds at least one message");
  assert(records[0]!.offset >= first, "a segment's messages start at or after its first offset");
  const builder = new SegmentBuilder(partition, first, chainBefore, {
    sec: 1,
    bytes: Number.MAX_SAFE_INTEGER,
  });
  for (const r of records) builder.add(r);
  return builder.finish(last);
}

/**
 * gzip of `body` (node:zlib at level 3, in one call: the same bytes for the same body). Not
 * `CompressionStream`, which has no level: its default costs 1.3 µs per 200-byte message against
 * 0.26 µs here for 4 % more bytes (bench/RESULTS.md, issue 15) — the archive's share of a write's
 * CPU. Any gzip reader (`DecompressionStream`, `gunzip`) reads it.
 */
export function compress(body: Uint8Array): Promise<Uint8Array> {
  return Promise.resolve(new Uint8Array(gzipSync(body, { level: 3 })));
}

/**
 * Most bytes a segment body may inflate to: twice `ARCHIVE_SEGMENT_BYTES`' largest (a segment
 * closes before its messages pass it, so one message may carry it over). A bound on what a
 * damaged or hostile object can make a restore allocate.
 */
export const SEGMENT_BODY_BYTES_MAX = 512 * 1024 * 1024;

/**
 * The body of a gzip'd segment. `gunzipSync` in one call, not `DecompressionStream`: 2–3× faster
 * on a segment (issue 15's replay speed).
 */
export function decompress(object: Uint8Array): Promise<Uint8Array> {
  try {
    const body = gunzipSync(object, { maxOutputLength: SEGMENT_BODY_BYTES_MAX });
    return Promise.resolve(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  } catch (error) {
    return Promise.reject(
      new SegmentCorruptError(`Cannot read a segment: it is not gzip (${error})`),
    );
  }
}

/**
 * Reads and verifies a segment body: its layout, its sha256 and its hash chain. `chain: false`
 * skips the chain (a sha256 per message) for a caller that checks it another way — a replay
 * compares the chain apply computes with the segment's at its end. Messages are views of `body`.
 */
export function decodeSegmentBody(body: Uint8Array, { chain: verifyChain = true } = {}): Segment {
  const fail = (why: string): never => {
    throw new SegmentCorruptError(`Cannot read a segment: ${why}`);
  };
  const magic = encoder.encode(MAGIC);
  if (body.length < magic.length || !magic.every((b, i) => body[i] === b)) fail("no magic");
  const headEnd = body.indexOf(0x0a, magic.length);
  if (headEnd < 0) fail("no header line");
  let head: Record<string, unknown>;
  try {
    head = JSON.parse(decoder.decode(body.subarray(magic.length, headEnd)));
  } catch {
    return fail("its header is not JSON");
  }
  const { partition, first, last, count, chain_before: chainBefore } = head;
  if (
    !Number.isSafeInteger(partition) || !Number.isSafeInteger(first) ||
    !Number.isSafeInteger(last) || !Number.isSafeInteger(count) ||
    typeof chainBefore !== "string" || !/^[0-9a-f]{64}$/.test(chainBefore)
  ) {
    fail("its header is malformed");
  }
  const trailerLength = body.length >= 4
    ? new DataView(body.buffer, body.byteOffset + body.length - 4, 4).getUint32(0)
    : 0;
  const trailerStart = body.length - 4 - trailerLength;
  if (trailerLength === 0 || trailerStart <= headEnd) fail("no trailer");
  let trailer: Record<string, unknown>;
  try {
    trailer = JSON.parse(decoder.decode(body.subarray(trailerStart, body.length - 4)));
  } catch {
    return fail("its trailer is not JSON");
  }
  const sha256 = createHash("sha256").update(body.subarray(0, trailerStart)).digest("hex");
  if (trailer.sha256 !== sha256) fail("its sha256 does not match");
  const view = new DataView(body.buffer, body.byteOffset, trailerStart);
  const records: LogRecord[] = [];
  let chain = chainBefore as string;
  let at = headEnd + 1;
  while (at < trailerStart) {
    if (at + RECORD_HEAD_BYTES > trailerStart) fail("a message is cut short");
    const offset = getU64(view, at);
    const timestamp = view.getFloat64(at + 8);
    const length = view.getUint32(at + 16);
    const end = at + RECORD_HEAD_BYTES + length;
    if (end > trailerStart) fail("a message is cut short");
    const value = body.subarray(at + RECORD_HEAD_BYTES, end);
    if (records.length > 0 && offset <= records[records.length - 1]!.offset) {
      fail("its offsets do not increase");
    }
    if (verifyChain) chain = nextChain(chain, offset, value);
    records.push({ offset, timestamp, value });
    at = end;
  }
  if (
    records.length !== count || records.length === 0 || records[0]!.offset < (first as number) ||
    records[records.length - 1]!.offset > (last as number)
  ) {
    fail("its messages do not match its header");
  }
  if (typeof trailer.chain_after !== "string" || !/^[0-9a-f]{64}$/.test(trailer.chain_after)) {
    fail("its trailer is malformed");
  }
  if (!verifyChain) chain = trailer.chain_after as string;
  if (trailer.chain_after !== chain) fail("its hash chain does not end where it says");
  return {
    partition: partition as number,
    first: first as number,
    last: last as number,
    count: count as number,
    chainBefore: chainBefore as string,
    chainAfter: chain,
    records,
  };
}

/** When a segment closes: `sec` of log time (by bucket) or `bytes` of messages, whichever first. */
export interface SegmentBounds {
  /** `ARCHIVE_SEGMENT_SEC`: messages of one segment share `floor(timestamp / (sec × 1000))`. */
  readonly sec: number;
  /** `ARCHIVE_SEGMENT_BYTES`: a segment's message bytes stay at or under this (one larger
   * message is a segment of its own). */
  readonly bytes: number;
}

/**
 * How many of `records` (a partition's next messages, in offset order, the first opening a
 * segment) belong to that segment, or null when they do not show yet where it ends — a segment
 * ends before the first message of a later time bucket, or before the message that would take it
 * past `bounds.bytes`. A function of the messages alone: every node archiving the same log cuts
 * the same segments, so they upload the same objects. ({@linkcode SegmentBuilder.fits} applies
 * it one message at a time.)
 */
export function segmentLength(records: readonly LogRecord[], bounds: SegmentBounds): number | null {
  const cut = new SegmentCut(bounds);
  for (let i = 0; i < records.length; i++) {
    if (!cut.fits(records[i]!)) return i;
    cut.add(records[i]!);
  }
  return null;
}
