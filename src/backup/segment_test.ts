import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { type LogRecord, nextChain } from "../apply/mod.ts";
import { CHAIN_ZERO } from "../store/mod.ts";
import {
  compress,
  decodeSegmentBody,
  decompress,
  encodeSegmentBody,
  parseSegmentKey,
  SegmentCorruptError,
  segmentKey,
  segmentLength,
} from "./segment.ts";

const encoder = new TextEncoder();

function records(from: number, n: number, step = 1): LogRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    offset: from + i * step,
    timestamp: 1_796_000_000_000 + i,
    value: encoder.encode(
      JSON.stringify({ v: 1, atomic: false, ops: [{ op: "put", pk: `k${i}`, sk: "", data: i }] }),
    ),
  }));
}

Deno.test("a segment round-trips its messages and carries the hash chain apply computes", async () => {
  const log = records(100, 50, 3);
  const { body, header } = encodeSegmentBody(7, 98, CHAIN_ZERO, log);
  let chain = CHAIN_ZERO;
  for (const r of log) chain = nextChain(chain, r.offset, r.value);
  deepEqual(
    [header.partition, header.first, header.last, header.count, header.chainAfter],
    [7, 98, 247, 50, chain],
  );
  const read = decodeSegmentBody(await decompress(await compress(body)));
  deepEqual(read.records, log);
  equal(read.chainAfter, chain);
  equal(read.chainBefore, CHAIN_ZERO);
});

Deno.test("the same messages give the same object bytes, whoever writes them", async () => {
  const a = await compress(encodeSegmentBody(1, 0, CHAIN_ZERO, records(0, 2000)).body);
  const b = await compress(encodeSegmentBody(1, 0, CHAIN_ZERO, records(0, 2000)).body);
  deepEqual(a, b);
  equal(new DataView(a.buffer).getUint32(4, true), 0, "no time in the gzip header");
});

Deno.test("a damaged segment is refused: a flipped byte, a cut, another chain, not gzip", async () => {
  const { body } = encodeSegmentBody(1, 0, CHAIN_ZERO, records(0, 20));
  for (const at of [10, Math.floor(body.length / 2), body.length - 5]) {
    const flipped = body.slice();
    flipped[at]! ^= 0x01;
    throws(() => decodeSegmentBody(flipped), SegmentCorruptError, `flip at ${at}`);
  }
  throws(() => decodeSegmentBody(body.subarray(0, body.length - 40)), SegmentCorruptError);
  // A header that claims another starting chain, with a sha256 that matches it: the chain
  // check is what refuses it.
  const text = new TextDecoder("latin1").decode(body);
  const forged = text.replace(
    `"chain_before":"${CHAIN_ZERO}"`,
    `"chain_before":"${"1".repeat(64)}"`,
  );
  const trailerLength = new DataView(body.buffer).getUint32(body.length - 4);
  const main = Uint8Array.from(
    forged.slice(0, forged.length - 4 - trailerLength),
    (c) => c.charCodeAt(0),
  );
  const chainAfter =
    JSON.parse(text.slice(text.length - 4 - trailerLength, text.length - 4)).chain_after;
  const sha256 = createHash("sha256").update(main).digest("hex");
  const trailer = encoder.encode(JSON.stringify({ chain_after: chainAfter, sha256 }));
  const rebuilt = new Uint8Array(main.length + trailer.length + 4);
  rebuilt.set(main, 0);
  rebuilt.set(trailer, main.length);
  new DataView(rebuilt.buffer).setUint32(main.length + trailer.length, trailer.length);
  throws(() => decodeSegmentBody(rebuilt), /hash chain does not end where it says/);
  await rejects(decompress(body), SegmentCorruptError);
});

Deno.test("segment keys sort by offset and name both ends", () => {
  const key = segmentKey("ns", 3, 42, 1_000_000);
  equal(key, "ns/p3/log/00000000000000000042-00000000000001000000");
  deepEqual(parseSegmentKey(key), { first: 42, last: 1_000_000 });
  equal(parseSegmentKey("ns/p3/00000000000000000042.mdb"), null);
  equal(parseSegmentKey("ns/p3/log/00000000000000000042-00000000000000000041"), null);
  throws(() => encodeSegmentBody(1, 0, CHAIN_ZERO, []));
});

Deno.test("segments end at a time bucket or a size, from the messages alone", () => {
  const at = (offset: number, timestamp: number, size = 10): LogRecord => ({
    offset,
    timestamp,
    value: new Uint8Array(size),
  });
  const bounds = { sec: 10, bytes: 35 };
  // Bucket 0 is [0, 10 000) ms: the message at 10 000 opens the next segment.
  equal(segmentLength([at(0, 0), at(1, 9_999), at(2, 10_000)], bounds), 2);
  // 10 + 10 + 10 bytes fit in 35; a fourth does not.
  equal(segmentLength([at(0, 0), at(1, 1), at(2, 2), at(3, 3)], bounds), 3);
  // Nothing shows the end yet: the segment stays open.
  equal(segmentLength([at(0, 0), at(1, 1)], bounds), null);
  equal(segmentLength([], bounds), null);
  // One message larger than the bound is a segment of its own.
  equal(segmentLength([at(0, 0, 100), at(1, 1)], bounds), 1);
  // A log timestamp that goes back (producers' clocks differ) still ends the segment, the same
  // way on every node.
  equal(segmentLength([at(0, 15_000), at(1, 9_000)], bounds), 1);
});
