import { deepEqual, equal, ok } from "node:assert/strict";
import { decodeMutation, encodeMutation, type Mutation } from "./message.ts";
import { PlainWriter } from "./plain.ts";
import { SCAN_DEPTH_MAX, scanPlain } from "./plain_scan.ts";
import { EXPIRES_AT_MAX, loadConfig, PK_BYTES_MAX, TTL_MS_MAX } from "../config/mod.ts";
import { parseBatch, parseWrite } from "../api/requests.ts";
import { ConditionCache } from "./conditions.ts";
import { parseJsonExact } from "../util/json.ts";

const encoder = new TextEncoder();
const fast = new PlainWriter(64);
const slow = new PlainWriter(64);

/** The plain ops the scan writes for `value`, or null when it declines. */
function scannedOps(value: Uint8Array): Uint8Array | null {
  fast.reset();
  return fast.addValue(value) ? fast.bytes().slice() : null;
}

/** The plain ops the long way gives for `value`, or null (poison, or not plain). */
function decodedOps(value: Uint8Array): Uint8Array | null {
  const decoded = decodeMutation(value);
  if (!decoded.ok) return null;
  slow.reset();
  return slow.add(decoded.mutation) ? slow.bytes().slice() : null;
}

/** Whatever the scan takes, the long way takes too, with the same plain ops; returns whether taken. */
function agree(value: Uint8Array | string): boolean {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  const scanned = scannedOps(bytes);
  if (scanned === null) return false;
  const decoded = decodedOps(bytes);
  const text = new TextDecoder().decode(bytes);
  ok(decoded !== null, `the scan took what the long way does not: ${text}`);
  deepEqual(scanned, decoded, `the scan and the long way disagree on ${text}`);
  return true;
}

const put = (data: unknown, extra: Record<string, unknown> = {}) =>
  encodeMutation({
    v: 1,
    atomic: false,
    ops: [{ op: "put", pk: "user-1", sk: "profile", data, ...extra }],
  } as Mutation);

// A small deterministic generator: the same cases on every run.
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const NUMBER_TOKENS = [
  "0",
  "-0",
  "7",
  "-12",
  "1.5",
  "1.50",
  "1e5",
  "1E+5",
  "2e-3",
  "-0.0",
  "123456789012345",
  "1234567890123456",
  "9007199254740993",
  "1e400",
  "1e-400",
  "0.1",
  "100",
];

function randomString(next: () => number): string {
  const length = Math.floor(next() * 12);
  let out = "";
  for (let i = 0; i < length; i++) {
    const r = next();
    if (r < 0.7) out += String.fromCharCode(0x20 + Math.floor(next() * 95));
    else if (r < 0.85) out += String.fromCharCode(Math.floor(next() * 0x20));
    else if (r < 0.9) out += "\u007f";
    else if (r < 0.95) {
      out += ["é", "€", "😀", "\u2028", "\ufeff", "\uffff"][Math.floor(next() * 6)];
    } else out += "\ud800";
  }
  return out;
}

function randomValue(next: () => number, depth: number): unknown {
  const r = next();
  if (depth > 3 || r < 0.3) {
    const p = next();
    if (p < 0.3) return randomString(next);
    if (p < 0.6) {
      // Numbers as tokens, exactly as a client may send them (the API keeps the tokens).
      const token = NUMBER_TOKENS[Math.floor(next() * NUMBER_TOKENS.length)]!;
      return (JSON as unknown as { rawJSON(t: string): unknown }).rawJSON(token);
    }
    return [true, false, null, 0, -3.25][Math.floor(next() * 5)];
  }
  if (r < 0.6) {
    return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
  }
  const object: Record<string, unknown> = {};
  const members = Math.floor(next() * 12);
  for (let i = 0; i < members; i++) {
    const p = next();
    const name = p < 0.1
      ? String(Math.floor(next() * 5))
      : p < 0.15
      ? "__proto__"
      : randomString(next);
    Object.defineProperty(object, name, {
      value: randomValue(next, depth + 1),
      enumerable: true,
      configurable: true,
      writable: true,
    });
  }
  return object;
}

Deno.test("scanPlain() takes a put as the API writes it, and its ops equal the long way's", () => {
  ok(agree(put({ name: "User 5", email: "user-5@example.com", plan: "free", n: 5 })));
  ok(agree(put(null)));
  ok(agree(put([1, "two", { three: 3.5 }, [], {}])));
  ok(agree(put('text " \\ \n \t \u0001 \u001f \u007f /')));
  ok(agree(put({ a: 1 }, { ttl_ms: 60_000 })));
  ok(agree(put({ a: 1 }, { expires_at: EXPIRES_AT_MAX })));
  ok(agree(put({ a: 1 }, { expires_at: 0 })));
  ok(agree(put({ a: 1 }, { ttl_ms: TTL_MS_MAX })));
  ok(agree(encodeMutation({
    v: 1,
    atomic: false,
    ops: [
      { op: "delete", pk: "a", sk: "" },
      { op: "put", pk: "a", sk: "b", data: { x: [1, 2] } },
    ],
  })));
  ok(agree(encodeMutation({ v: 1, atomic: true, ops: [{ op: "delete", pk: "a", sk: "s" }] })));
  ok(agree(put({ "-1": 1, "a1": 2, "_": 3, "": 4 })));
  ok(agree(put({ "é": "ü/§ \u2028 😀", "€": ["\ufeff"] })));
  ok(agree(encodeMutation({ v: 1, atomic: false, ops: [{ op: "delete", pk: "ü", sk: "😀" }] })));
  ok(agree(put({ big: JSON.parse('{"x":1}'), deep: [[[[[[[[1]]]]]]]] })));
  ok(agree(put({ n: Array.from({ length: 20 }, (_, i) => i) })));
  ok(agree(put(Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i])))));
});

Deno.test("scanPlain() declines what it cannot be sure of, and the long way decides it", () => {
  const declined = [
    // Not the API's layout: whitespace, another member order, extra members, a tick.
    '{"v":1, "atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1}]}',
    '{"atomic":false,"v":1,"ops":[{"op":"put","pk":"a","sk":"b","data":1}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1}],"x":1}',
    '{"v":1,"tick":true}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1}]} ',
    '{"v":1.0,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1}]}',
    // Conditions, and an atomic message of two ops.
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"if":"true"}]}',
    '{"v":1,"atomic":true,"ops":[{"op":"delete","pk":"a","sk":"b"},{"op":"delete","pk":"a","sk":"c"}]}',
    // Keys: empty pk, escapes, too long.
    '{"v":1,"atomic":false,"ops":[{"op":"delete","pk":"","sk":"b"}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"delete","pk":"a\\"b","sk":"b"}]}',
    `{"v":1,"atomic":false,"ops":[{"op":"delete","pk":"${
      "é".repeat(PK_BYTES_MAX / 2 + 1)
    }","sk":""}]}`,
    `{"v":1,"atomic":false,"ops":[{"op":"delete","pk":"${"p".repeat(PK_BYTES_MAX + 1)}","sk":""}]}`,
    // data not as JSON.stringify writes it.
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":{"x": 1}}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":"\\/"}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":"\\u0041"}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":"\\u000a"}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":"\\u001F"}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":"\\ud800"}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":{"a":1,"a":2}}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":{"b":1,"0":2}}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":{"__proto__":1}}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":01}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1.}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":-}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":tru}]}',
    `{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":${
      "[".repeat(SCAN_DEPTH_MAX)
    }${"]".repeat(SCAN_DEPTH_MAX)}}]}`,
    // Expiries the long way calls poison, or must judge itself.
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"ttl_ms":0}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"ttl_ms":1.0}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"ttl_ms":1e3}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"ttl_ms":01}]}',
    `{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"ttl_ms":${
      TTL_MS_MAX + 1
    }}]}`,
    `{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"expires_at":${
      EXPIRES_AT_MAX + 1
    }}]}`,
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"ttl_ms":5,"expires_at":5}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1,"expires_at":-0}]}',
    // Not JSON, or cut short.
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":"x}]}',
    '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":1}',
    '{"v":1,"atomic":false,"ops":[]}',
    "",
  ];
  for (const text of declined) {
    equal(scanPlain(encoder.encode(text)), false, `the scan took ${text}`);
  }
  // The data the scan leaves to the long way is still stored: JSON.stringify's form of it.
  equal(
    new TextDecoder().decode(
      decodedOps(encoder.encode(
        '{"v":1,"atomic":false,"ops":[{"op":"put","pk":"a","sk":"b","data":{"x": "\\u0041\\/"}}]}',
      ))!.subarray(-10),
    ),
    '{"x":"A/"}',
  );
});

Deno.test("scanPlain() and the long way agree on random data as clients may send it", () => {
  const next = random(42);
  let taken = 0;
  const cases = 3000;
  for (let i = 0; i < cases; i++) {
    const extra = next() < 0.2
      ? { ttl_ms: Math.floor(next() * 1e6) + 1 }
      : next() < 0.1
      ? { expires_at: Math.floor(next() * 1e12) }
      : {};
    if (agree(put(randomValue(next, 0), extra))) taken++;
  }
  // Most random data holds something the scan leaves alone (non-ASCII, a lone surrogate,
  // a digit name), but not all of it: the comparison above must have run on a good share.
  ok(taken > cases / 10, `the scan took ${taken} of ${cases}`);
});

Deno.test("scanPlain() and the long way agree on every one-byte change of messages", () => {
  const next = random(7);
  const seeds = [
    put({ name: "User 5", tags: ["a", "b"], n: -1.5e3, ok: true, none: null }, { ttl_ms: 500 }),
    // Names one byte apart: a change makes them the same.
    put({
      ab: 1,
      ac: 2,
      b: { x: 1, y: 2 },
      c: Object.fromEntries([..."abcdefghij"].map((k) => [k, 0])),
    }),
    encodeMutation({
      v: 1,
      atomic: false,
      ops: [
        { op: "put", pk: "p", sk: "s", data: { a: "x\ny", b: [0, {}] } },
        { op: "delete", pk: "p", sk: "t" },
      ],
    }),
  ];
  let taken = 0;
  let tried = 0;
  // Every byte of every seed replaced by each of a set of bytes that matter to JSON, and a few
  // random ones; plus each byte dropped.
  const replacements = encoder.encode(' "\\{}[],:0123456789-+.eEtfnu\u007f');
  for (const seed of seeds) {
    for (let i = 0; i < seed.length; i++) {
      const bytes = [...replacements, Math.floor(next() * 256)];
      for (const b of bytes) {
        const changed = seed.slice();
        changed[i] = b;
        tried++;
        if (agree(changed)) taken++;
      }
      const dropped = new Uint8Array(seed.length - 1);
      dropped.set(seed.subarray(0, i));
      dropped.set(seed.subarray(i + 1), i);
      tried++;
      if (agree(dropped)) taken++;
    }
  }
  ok(taken > 50 && taken < tried, `the scan took ${taken} of ${tried}`);
});

Deno.test("scanPlain() takes the messages the API writes for put, delete and batch, with expiries", () => {
  const config = loadConfig({ DB_PATH: "/nonexistent/plain_scan_test", PARTITIONS: "1" });
  const conditions = new ConditionCache(10);
  const body = (text: string) => parseJsonExact(text);
  const messages = [
    ...parseWrite(
      body(
        '{"records":[{"pk":"a","sk":"b","data":{"x":1.50,"y":[true,null]}},{"pk":"c","sk":"","data":"v","ttl_ms":1000},{"pk":"d","sk":"e","data":0,"expires_at":1796000000000}]}',
      ),
      "put",
      config,
      conditions,
    ).values(),
    ...parseWrite(body('{"records":[{"pk":"a","sk":"b"}]}'), "delete", config, conditions)
      .values(),
    ...parseBatch(
      body('{"ops":[{"op":"put","pk":"a","sk":"b","data":{"n":1e400}}]}'),
      config,
      conditions,
    ).values(),
  ];
  equal(messages.length, 3);
  for (const m of messages) ok(agree(encodeMutation(m)), JSON.stringify(m));
});

Deno.test("scanPlain() takes exactly the UTF-8 the long way's fatal decoder takes, in data and in keys", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true });
  const valid = (bytes: Uint8Array) => {
    try {
      fatal.decode(bytes);
      return true;
    } catch {
      return false;
    }
  };
  const edges = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0];
  const head = encoder.encode('{"v":1,"atomic":false,"ops":[{"op":"put","pk":"p');
  const middle = encoder.encode('","sk":"s","data":"x');
  const tail = encoder.encode('"}]}');
  let taken = 0;
  let cases = 0;
  // Every lead byte from 0x80, followed by up to three bytes at the edges of the ranges.
  for (let lead = 0x80; lead <= 0xff; lead++) {
    for (const b of edges) {
      for (const c of edges) {
        for (const d of [0x80, 0xbf, 0x41]) {
          const sequence = Uint8Array.of(lead, b, c, d);
          const expected = valid(sequence) && !sequence.some((x) => x < 0x20 || x === 0x22);
          for (const inKey of [false, true]) {
            const message = new Uint8Array(head.length + middle.length + tail.length + 8);
            message.set(head);
            message.set(inKey ? sequence : encoder.encode("pppp"), head.length);
            message.set(middle, head.length + 4);
            message.set(inKey ? encoder.encode("xxxx") : sequence, head.length + 4 + middle.length);
            message.set(tail, head.length + 4 + middle.length + 4);
            cases++;
            equal(
              agree(message),
              expected,
              `${inKey ? "pk" : "data"} ${[...sequence].map((x) => x.toString(16)).join(" ")}`,
            );
            if (expected) taken++;
          }
        }
      }
    }
  }
  ok(taken > 1000, `${taken} of ${cases} taken`);
});
