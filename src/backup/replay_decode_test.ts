import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { encodeMutation, type LogRecord, nextChain } from "../apply/mod.ts";
import { CHAIN_ZERO } from "../store/mod.ts";
import { MemoryObjectStore } from "./_test_util.ts";
import {
  decodedBatches,
  type DecodedSegment,
  decodeForReplay,
  ReplayDecoder,
} from "./replay_decode.ts";
import { compress, encodeSegmentBody, SegmentCorruptError, segmentKey } from "./segment.ts";

const NS = "decode";
const P = 3;
const T0 = 1_796_000_000_000;
const live = () => new AbortController().signal;

/** 30 messages at offsets 10, 12, …: puts, a conditional one, and poison. */
function theLog(): LogRecord[] {
  return Array.from({ length: 30 }, (_, i) => ({
    offset: 10 + 2 * i,
    timestamp: T0 + i * 1000,
    value: i === 7 ? new TextEncoder().encode("poison") : encodeMutation({
      v: 1,
      atomic: false,
      ops: [{
        op: "put",
        pk: `k${i % 4}`,
        sk: "s",
        data: { i },
        ...(i === 9 ? { if: "true" } : {}),
      }],
    }),
  }));
}

async function bucket(): Promise<{ objects: MemoryObjectStore; key: string; log: LogRecord[] }> {
  const objects = new MemoryObjectStore();
  const log = theLog();
  const { body } = encodeSegmentBody(P, 10, CHAIN_ZERO, log);
  const key = segmentKey(NS, P, 10, log.at(-1)!.offset);
  await objects.createBytes(key, await compress(body), live());
  return { objects, key, log };
}

/** A decoded segment's messages and chains, without where its buffers lie. */
function content(d: DecodedSegment) {
  const batches = [...decodedBatches(d)];
  return {
    chainAtNext: d.chainAtNext,
    chainAfter: d.chainAfter,
    stopped: d.stopped,
    records: batches.flatMap((b) => b.records.map((r) => ({ ...r, value: [...r.value] }))),
    chains: batches.map((b) => b.chain),
    sizes: batches.map((b) => b.records.length),
  };
}

Deno.test("a worker decodes a segment as the replaying thread does, and to plain ops besides", async () => {
  const { objects, key, log } = await bucket();
  const request = { next: 20, point: { kind: "latest" } as const, batch: 7 };
  const inline = new ReplayDecoder("inline", objects, live());
  const worker = new ReplayDecoder("thread", objects, live());
  try {
    const here = (await inline.segment(key, request))!;
    const there = (await worker.segment(key, request))!;
    deepEqual(content(there), content(here));
    equal([inline.segmentsInWorker, worker.segmentsInWorker].join(), "0,1");
    // The messages from offset 20 on; the chain runs through the ones before it.
    const wanted = log.filter((r) => r.offset >= 20);
    deepEqual([...here.offsets], wanted.map((r) => r.offset));
    let chain = CHAIN_ZERO;
    for (const r of log.filter((r) => r.offset < 20)) chain = nextChain(chain, r.offset, r.value);
    equal(here.chainAtNext, chain);
    const batches = [...decodedBatches(there)];
    deepEqual(batches.map((b) => b.records.length), [7, 7, 7, 4]);
    for (const b of batches) {
      for (const r of b.records) chain = nextChain(chain, r.offset, r.value);
      equal(b.chain, chain);
    }
    equal(chain, here.chainAfter);
    // Plain ops only from the worker, and not for the poison or the conditional message.
    const plain = batches.flatMap((b) => b.plain);
    const offsets = batches.flatMap((b) => b.records.map((r) => r.offset));
    deepEqual(offsets.filter((_, i) => plain[i] === null), [10 + 2 * 7, 10 + 2 * 9]);
    ok([...decodedBatches(here)].every((b) => b.plain.every((p) => p === null)));
    // A segment that is gone is null.
    equal(await worker.segment(segmentKey(NS, P, 100, 200), request), null);
  } finally {
    inline.close();
    worker.close();
  }
});

Deno.test("decodeForReplay stops at the point: the messages up to an offset, or up to a time", async () => {
  const { objects, key } = await bucket();
  const gz = (await objects.getBytes(key, live()))!;
  const byOffset = await decodeForReplay(gz, {
    next: 0,
    point: { kind: "offset", offset: 15 },
    batch: 100,
    plain: false,
  });
  deepEqual([...byOffset.offsets], [10, 12, 14]);
  ok(byOffset.stopped);
  const byTime = await decodeForReplay(gz, {
    next: 12,
    point: { kind: "time", time: T0 + 3500 },
    batch: 100,
    plain: true,
  });
  deepEqual([...byTime.offsets], [12, 14, 16]);
  ok(byTime.stopped);
  const whole = await decodeForReplay(gz, {
    next: 0,
    point: { kind: "latest" },
    batch: 100,
    plain: false,
  });
  equal(whole.offsets.length, 30);
  ok(!whole.stopped);
});

Deno.test("a damaged segment fails in the worker as it does here: SegmentCorruptError", async () => {
  const { objects, key } = await bucket();
  const bytes = objects.objects.get(key)!;
  bytes[bytes.length - 30] = bytes[bytes.length - 30]! ^ 0xff;
  const request = { next: 0, point: { kind: "latest" } as const, batch: 10 };
  for (const mode of ["inline", "thread"] as const) {
    const decoder = new ReplayDecoder(mode, objects, live());
    try {
      await rejects(decoder.segment(key, request), SegmentCorruptError);
    } finally {
      decoder.close();
    }
  }
});
