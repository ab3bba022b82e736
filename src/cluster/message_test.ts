import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  DATAGRAM_BYTES_MAX,
  decodeBitmap,
  decodeState,
  encodeBitmap,
  encodeState,
  type NodeState,
} from "./message.ts";

const SECRET = "0123456789abcdef-cluster";
const encoder = new TextEncoder();

function nodeState(overrides: Partial<NodeState> = {}): NodeState {
  return {
    v: 1,
    id: "node-a",
    namespace: "default",
    region: "ams",
    group: "g1",
    addr: "[fdaa:0:1:a7b:2:3:4:5]:8191",
    inc: 1_700_000_000_000,
    seq: 42,
    ts: 1_700_000_001_000,
    state: "alive",
    partitions: 16,
    serving: encodeBitmap([0, 3, 15], 16),
    ...overrides,
  };
}

/** MAC ‖ payload, signed the way a node with `secret` would sign it. */
function signed(payload: string | Uint8Array, secret = SECRET): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const mac = createHmac("sha256", secret).update(bytes).digest();
  const out = new Uint8Array(mac.length + bytes.length);
  out.set(mac, 0);
  out.set(bytes, mac.length);
  return out;
}

/** A small deterministic PRNG (mulberry32), so "random" sets are the same on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("decodeState() returns the state encodeState() signed", () => {
  for (const state of [nodeState(), nodeState({ state: "leaving", id: "日本-😀", seq: 0 })]) {
    const datagram = encodeState(state, SECRET);
    deepEqual(decodeState(datagram, SECRET), { ok: true, state });
  }
});

Deno.test("decodeState() drops a datagram signed with another secret as bad_signature", () => {
  const datagram = encodeState(nodeState(), "another-secret-of-16+");
  deepEqual(decodeState(datagram, SECRET), { ok: false, reason: "bad_signature" });
});

Deno.test("decodeState() drops raw unsigned JSON as unsigned", () => {
  const raw = encoder.encode(JSON.stringify(nodeState()));
  deepEqual(decodeState(raw, SECRET), { ok: false, reason: "unsigned" });
  deepEqual(decodeState(encoder.encode("{}"), SECRET), { ok: false, reason: "unsigned" });
  deepEqual(decodeState(new Uint8Array(0), SECRET), { ok: false, reason: "unsigned" });
  // Exactly a MAC and nothing after it: no payload to verify.
  deepEqual(decodeState(new Uint8Array(32), SECRET), { ok: false, reason: "unsigned" });
});

Deno.test("decodeState() drops a datagram with one byte flipped as bad_signature", () => {
  const datagram = encodeState(nodeState(), SECRET);
  // Every byte after the payload's leading "{", and a few of the MAC's.
  for (const i of [0, 17, 31, 33, 40, datagram.length - 2, datagram.length - 1]) {
    const tampered = datagram.slice();
    tampered[i]! ^= 0x01;
    deepEqual(decodeState(tampered, SECRET), { ok: false, reason: "bad_signature" }, `byte ${i}`);
  }
});

Deno.test("decodeState() drops a datagram over 1200 bytes as oversized, even if well signed", () => {
  equal(DATAGRAM_BYTES_MAX, 1200);
  const big = signed(JSON.stringify(nodeState({ id: "x".repeat(1200) })));
  ok(big.length > DATAGRAM_BYTES_MAX);
  deepEqual(decodeState(big, SECRET), { ok: false, reason: "oversized" });
  deepEqual(decodeState(new Uint8Array(DATAGRAM_BYTES_MAX + 1), SECRET), {
    ok: false,
    reason: "oversized",
  });
});

Deno.test("encodeState() refuses a state that does not fit one datagram", () => {
  throws(
    () => encodeState(nodeState({ addr: "h".repeat(1200) }), SECRET),
    /^Error: Cannot gossip: the state datagram is \d+ bytes, more than 1200$/,
  );
});

Deno.test("decodeState() drops well-signed bytes that are not JSON as malformed", () => {
  for (const payload of ['{"v":1,', "{not json}", '{"v":1}trailing']) {
    deepEqual(decodeState(signed(payload), SECRET), { ok: false, reason: "malformed" }, payload);
  }
  // Invalid UTF-8 after the "{".
  const invalidUtf8 = signed(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
  deepEqual(decodeState(invalidUtf8, SECRET), { ok: false, reason: "malformed" });
});

Deno.test("decodeState() drops well-signed JSON with missing or mistyped fields as malformed", () => {
  const valid = nodeState() as unknown as Record<string, unknown>;
  const cases: Record<string, unknown>[] = [
    {},
    { ...valid, v: 2 },
    { ...valid, v: "1" },
    { ...valid, id: 7 },
    { ...valid, id: null },
    { ...valid, namespace: undefined },
    { ...valid, region: ["ams"] },
    { ...valid, group: {} },
    { ...valid, addr: false },
    { ...valid, serving: 0 },
    { ...valid, inc: "1700000000000" },
    { ...valid, seq: 1.5 },
    { ...valid, seq: 2 ** 53 },
    { ...valid, ts: null },
    { ...valid, partitions: "16" },
    { ...valid, state: "dead" },
    { ...valid, state: undefined },
  ];
  for (const body of cases) {
    const json = JSON.stringify(body);
    deepEqual(decodeState(signed(json), SECRET), { ok: false, reason: "malformed" }, json);
  }
});

Deno.test("encodeBitmap() and decodeBitmap() round-trip random sets of every size", () => {
  const random = prng(20240601);
  for (const count of [1, 7, 8, 9, 16, 4096]) {
    const sets: Set<number>[] = [new Set(), new Set(Array.from({ length: count }, (_, p) => p))];
    for (let n = 0; n < 20; n++) {
      const density = random();
      const set = new Set<number>();
      for (let p = 0; p < count; p++) if (random() < density) set.add(p);
      sets.push(set);
    }
    for (const set of sets) {
      const bitmap = encodeBitmap(set, count);
      equal(atob(bitmap).length, Math.ceil(count / 8), `count ${count}`);
      deepEqual(decodeBitmap(bitmap, count), set, `count ${count}: ${[...set]}`);
    }
  }
});

Deno.test("encodeBitmap() puts partition p in bit p & 7 of byte p >> 3", () => {
  equal(encodeBitmap([0], 8), btoa("\x01"));
  equal(encodeBitmap([7], 8), btoa("\x80"));
  equal(encodeBitmap([8, 10], 16), btoa("\x00\x05"));
});

Deno.test("decodeBitmap() rejects a wrong length or bad base64", () => {
  const bitmap = encodeBitmap([1, 2], 16);
  equal(decodeBitmap(bitmap, 8), null);
  equal(decodeBitmap(bitmap, 17), null);
  equal(decodeBitmap(bitmap, 4096), null);
  equal(decodeBitmap("", 8), null);
  equal(decodeBitmap("!!!!", 16), null);
  equal(decodeBitmap("AAA=A", 16), null);
  equal(decodeBitmap("Zm9v\u00e9", 16), null);
});

Deno.test("decodeBitmap() ignores padding bits at or above the partition count", () => {
  deepEqual(decodeBitmap(btoa("\x01\xff"), 9), new Set([0, 8]));
});

Deno.test("a full state with PARTITIONS=4096 and the longest names fits one datagram", () => {
  // The longest values the config allows: names are [A-Za-z0-9_-]{1,64}; the address is the
  // longest IPv6 literal with a 5-digit port; every partition served; a huge sequence number.
  const longest = "n".repeat(64);
  const state = nodeState({
    id: longest,
    namespace: longest,
    region: longest,
    group: longest,
    addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
    inc: 9_999_999_999_999,
    seq: Number.MAX_SAFE_INTEGER,
    ts: 9_999_999_999_999,
    state: "leaving",
    partitions: 4096,
    serving: encodeBitmap(Array.from({ length: 4096 }, (_, p) => p), 4096),
  });
  const datagram = encodeState(state, SECRET);
  ok(datagram.length <= DATAGRAM_BYTES_MAX, `${datagram.length} bytes`);
  deepEqual(decodeState(datagram, SECRET), { ok: true, state });
  const serving = decodeBitmap(state.serving, 4096);
  equal(serving?.size, 4096);
});
