/**
 * The decoding half of a replay (`replay.ts`): a downloaded segment gunzipped, verified, its
 * hash chain computed message by message, the messages a replay wants picked out and grouped in
 * transactions' batches — and, when a worker thread does it (`replay_decode_worker.ts`), each
 * message decoded to plain ops (`apply/plain.ts`), so that the applying thread is left with the
 * LMDB writes. Decoding and chaining are about 40 % of applying a message; on a machine with a
 * second CPU they run beside the writes.
 *
 * A decoded segment crosses between threads as a few flat arrays and buffers (transferred, not
 * copied), not as an object per message: cloning those would cost the applying thread what the
 * worker saved it.
 *
 * @module
 */
// Not through apply/mod.ts, which brings the condition evaluator (jexl): the worker loads only
// what it runs, and starts sooner.
import { type DecodedBatch, type LogRecord, nextChain } from "../apply/apply.ts";
import { decodeMutation } from "../apply/message.ts";
import { PlainWriter } from "../apply/plain.ts";
import type { ObjectStore, S3Options } from "./object_store.ts";
import type { RestorePoint } from "./replay.ts";
import { decodeSegmentBody, decompress, SegmentCorruptError } from "./segment.ts";

/** What the replay asks of one segment. */
export interface DecodeRequest {
  /** The first offset wanted: earlier messages are only chained. */
  readonly next: number;
  /** Where the replay stops. */
  readonly point: RestorePoint;
  /** Messages per batch (one transaction each). */
  readonly batch: number;
  /** Decode messages to plain ops (worth it only on another thread than apply). */
  readonly plain: boolean;
}

/** A segment decoded for replay, as flat arrays (see the module doc). */
export interface DecodedSegment {
  readonly partition: number;
  readonly first: number;
  readonly last: number;
  /** The chain the segment says it ends at (its trailer's). */
  readonly chainAfter: string;
  /** The chain after its messages before `next` (its `chain_before` when none is). */
  readonly chainAtNext: string;
  /** A message past the point was met: the replay ends with this segment. */
  readonly stopped: boolean;
  /** The segment's body; the wanted messages' values are ranges of it. */
  readonly body: Uint8Array;
  /** Per wanted message: offset, timestamp, and its value's [start, end) in `body`. */
  readonly offsets: Float64Array;
  readonly timestamps: Float64Array;
  readonly values: Uint32Array;
  /** Per wanted message, its plain ops' [start, end) in `plainBytes` ([0, 0]: none). */
  readonly plainBytes: Uint8Array;
  readonly plain: Uint32Array;
  /** The chain after each batch's last message. */
  readonly chains: readonly string[];
  /** Messages per batch. */
  readonly batch: number;
}

/** Decodes one gzip'd segment for a replay; throws {@linkcode SegmentCorruptError}. */
export async function decodeForReplay(
  gz: Uint8Array,
  request: DecodeRequest,
): Promise<DecodedSegment> {
  const { next, point, batch } = request;
  const body = await decompress(gz);
  // The chain is computed here, once, and compared with the trailer's by the replay.
  const segment = decodeSegmentBody(body, { chain: false });
  let chain = segment.chainBefore;
  let from = 0;
  while (from < segment.records.length && segment.records[from]!.offset < next) {
    const r = segment.records[from++]!;
    chain = nextChain(chain, r.offset, r.value);
  }
  const chainAtNext = chain;
  let to = from;
  let stopped = false;
  for (; to < segment.records.length; to++) {
    const r = segment.records[to]!;
    if (
      (point.kind === "offset" && r.offset > point.offset) ||
      (point.kind === "time" && r.timestamp > point.time)
    ) {
      stopped = true;
      break;
    }
  }
  const count = to - from;
  const offsets = new Float64Array(count);
  const timestamps = new Float64Array(count);
  const values = new Uint32Array(2 * count);
  const plain = new Uint32Array(2 * count);
  const plains = new PlainWriter(request.plain ? 64 * 1024 : 0);
  const chains: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = segment.records[from + i]!;
    chain = nextChain(chain, r.offset, r.value);
    if (i % batch === batch - 1 || i === count - 1) chains.push(chain);
    offsets[i] = r.offset;
    timestamps[i] = r.timestamp;
    values[2 * i] = r.value.byteOffset - body.byteOffset;
    values[2 * i + 1] = values[2 * i]! + r.value.length;
    if (!request.plain) continue;
    const start = plains.length;
    if (!plains.addValue(r.value)) {
      const message = decodeMutation(r.value);
      if (!message.ok || !plains.add(message.mutation)) continue;
    }
    plain[2 * i] = start;
    plain[2 * i + 1] = plains.length;
  }
  const plainBytes = plains.bytes();
  return {
    partition: segment.partition,
    first: segment.first,
    last: segment.last,
    chainAfter: segment.chainAfter,
    chainAtNext,
    stopped,
    body,
    offsets,
    timestamps,
    values,
    plainBytes,
    plain,
    chains,
    batch,
  };
}

/**
 * A decoded segment ready to post, and the buffers to transfer with it. A body that is a view of
 * a larger buffer (a pooled one) is copied, never detached: its ranges are relative to it.
 */
export function forTransfer(decoded: DecodedSegment): [DecodedSegment, ArrayBuffer[]] {
  const { body } = decoded;
  const whole = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength;
  const own = whole ? decoded : { ...decoded, body: body.slice() };
  const arrays = [own.body, own.offsets, own.timestamps, own.values, own.plainBytes, own.plain];
  return [own, arrays.map((a) => a.buffer as ArrayBuffer)];
}

/** The decoded segment's batches, ready for `applyDecodedBatch`. */
export function* decodedBatches(decoded: DecodedSegment): Generator<DecodedBatch> {
  const { body, offsets, timestamps, values, plainBytes, plain, batch } = decoded;
  for (let b = 0; b * batch < offsets.length; b++) {
    const start = b * batch;
    const end = Math.min(offsets.length, start + batch);
    const records: LogRecord[] = [];
    const ops: (Uint8Array | null)[] = [];
    for (let i = start; i < end; i++) {
      records.push({
        offset: offsets[i]!,
        timestamp: timestamps[i]!,
        value: body.subarray(values[2 * i]!, values[2 * i + 1]!),
      });
      ops.push(
        plain[2 * i + 1] === 0 ? null : plainBytes.subarray(plain[2 * i]!, plain[2 * i + 1]!),
      );
    }
    yield { records, plain: ops, chain: decoded.chains[b]! };
  }
}

/**
 * What the decoding worker is sent: first how to start (load the S3 SDK or not), then segments,
 * by key (the worker downloads them) or as bytes.
 */
export type WorkerRequest =
  | { readonly start: { readonly sdk: boolean } }
  | (
    & { readonly id: number }
    & ({ readonly s3: S3Options; readonly key: string } | { readonly gz: Uint8Array })
    & DecodeRequest
  );
/** The worker's word that it has started, or an answer (`decoded: null`: the segment is gone). */
export type WorkerReply =
  | { readonly ready: true }
  | { readonly id: number; readonly ok: true; readonly decoded: DecodedSegment | null }
  | { readonly id: number; readonly ok: false; readonly name: string; readonly message: string };

/**
 * Where a {@linkcode ReplayDecoder} decodes: `inline` in this thread; `thread` in a worker;
 * `beside` in a worker once it has started, in this thread until then.
 */
export type DecodeMode = "inline" | "thread" | "beside";

/**
 * Downloads and decodes segments for one replay, here or in a worker thread (see
 * {@linkcode DecodeMode}). A worker takes requests in order, and downloads them itself when the
 * store can be opened on another thread (S3): the applying thread then never waits for a
 * download between two transactions — its event loop turns only between segments. A worker
 * takes 0.1–0.4 s to load its modules: `beside` decodes here meanwhile, so its start costs the
 * replay no wait. `close()` ends the worker.
 */
export class ReplayDecoder {
  private readonly worker: Worker | null;
  private readonly pending = new Map<
    number,
    { resolve: (d: DecodedSegment | null) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  private failed: Error | null = null;
  /** Settles when the worker has started (or failed). */
  private readonly started: Promise<void>;
  private ready = false;
  private decodedInWorker = 0;

  constructor(
    private readonly mode: DecodeMode,
    private readonly objects: ObjectStore,
    private readonly signal: AbortSignal,
  ) {
    if (mode === "inline") {
      this.worker = null;
      this.started = Promise.resolve();
      return;
    }
    const worker = new Worker(new URL("./replay_decode_worker.ts", import.meta.url), {
      type: "module",
      name: "replay-decode",
    });
    this.worker = worker;
    let started: () => void = () => {};
    this.started = new Promise((resolve) => started = resolve);
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      if ("ready" in reply) {
        this.ready = true;
        started();
        return;
      }
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.decoded);
      else waiter.reject(remoteError(reply.name, reply.message));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      this.fail(new Error(`The replay's decoding worker failed: ${event.message}`));
      started();
    };
    worker.postMessage({ start: { sdk: objects.threadable !== undefined } });
  }

  /** Segments the worker decoded so far (those decoded to plain ops). */
  get segmentsInWorker(): number {
    return this.decodedInWorker;
  }

  /** The segment at `key`, downloaded and decoded, or null when it is gone. */
  async segment(
    key: string,
    request: Omit<DecodeRequest, "plain">,
  ): Promise<DecodedSegment | null> {
    if (this.mode === "thread") await this.started;
    const id = this.nextId++;
    const s3 = this.objects.threadable;
    const inWorker = this.worker !== null && this.ready;
    if (inWorker && s3 !== undefined) {
      return await this.post({ id, s3, key, ...request, plain: true });
    }
    const gz = await this.objects.getBytes(key, this.signal);
    if (gz === null) return null;
    if (!inWorker) return await decodeForReplay(gz, { ...request, plain: false });
    // Copied, not transferred: the store may hand out a buffer it keeps.
    return await this.post({ id, gz, ...request, plain: true });
  }

  private async post(message: WorkerRequest & { id: number }): Promise<DecodedSegment | null> {
    if (this.failed !== null) throw this.failed;
    const decoded = await new Promise<DecodedSegment | null>((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      this.worker!.postMessage(message);
    });
    this.decodedInWorker++;
    return decoded;
  }

  /** Ends the worker; pending requests fail. */
  close(): void {
    this.worker?.terminate();
    this.fail(new Error("The replay's decoding worker was closed"));
  }

  private fail(error: Error): void {
    this.failed ??= error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

/** The error a worker reported, as its class where the replay tells it apart. */
function remoteError(name: string, message: string): Error {
  if (name === "SegmentCorruptError") return new SegmentCorruptError(message);
  const error = new Error(message);
  error.name = name;
  return error;
}
