import { deepEqual, equal, match, ok } from "node:assert/strict";
import { MESSAGE_ENVELOPE_BYTES_MAX } from "../config/mod.ts";
import { decodeMutation, encodeMutation, MESSAGE_CONDITION_CHARS_MAX } from "./message.ts";
import type { Decoded, Mutation } from "./message.ts";
import { JSON_DEPTH_MAX } from "../util/json.ts";

const encoder = new TextEncoder();

function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function message(ops: unknown[], extra: Record<string, unknown> = {}): Uint8Array {
  return json({ v: 1, atomic: false, ops, ...extra });
}

function assertPoison(decoded: Decoded, reason: RegExp): void {
  ok(!decoded.ok, `expected poison, decoded ${JSON.stringify(decoded)}`);
  match(decoded.reason, reason);
}

Deno.test("decodeMutation() accepts what encodeMutation() writes", () => {
  const mutation: Mutation = {
    v: 1,
    atomic: true,
    ops: [
      { op: "put", pk: "p", sk: "s", data: { nested: [1, "two", null, { x: true }] } },
      { op: "put", pk: "p", sk: "", data: null, if: "pk == null" },
      { op: "delete", pk: "p", sk: "old", if: "_version == 3" },
      { op: "put", pk: "日本\u0000😀", sk: "é", data: 0 },
    ],
  };
  deepEqual(decodeMutation(encodeMutation(mutation)), { ok: true, mutation });
});

Deno.test("decodeMutation() accepts keys at the byte limits and falsy data", () => {
  const decoded = decodeMutation(message([
    { op: "put", pk: "é".repeat(256), sk: "😀".repeat(256), data: false },
    { op: "put", pk: "p", sk: "s", data: "" },
    { op: "put", pk: "p", sk: "t", data: 0 },
  ]));
  ok(decoded.ok);
  equal(decoded.mutation.ops.length, 3);
});

Deno.test("decodeMutation() rejects bytes that are not UTF-8 JSON as poison", () => {
  assertPoison(decodeMutation(encoder.encode("not json")), /not UTF-8 JSON/);
  assertPoison(decodeMutation(new Uint8Array()), /not UTF-8 JSON/);
  assertPoison(decodeMutation(encoder.encode('{"v":1,')), /not UTF-8 JSON/);
  // Valid JSON once the bad byte is replaced, which a lenient decoder would do.
  const invalidUtf8 = new Uint8Array([
    ...encoder.encode('{"v":1,"atomic":false,"ops":[{"op":"put","pk":"'),
    0xff,
    ...encoder.encode('","sk":"s","data":1}]}'),
  ]);
  assertPoison(decodeMutation(invalidUtf8), /not UTF-8 JSON/);
  assertPoison(decodeMutation(new Uint8Array([0xc3, 0x28])), /not UTF-8 JSON/);
});

Deno.test("decodeMutation() rejects JSON that is not a message object", () => {
  for (const value of [null, 1, "text", [1, 2], true]) {
    assertPoison(decodeMutation(json(value)), /not a JSON object/);
  }
});

Deno.test("decodeMutation() rejects an unknown or missing version", () => {
  const op = { op: "put", pk: "p", sk: "s", data: 1 };
  assertPoison(decodeMutation(message([op], { v: 2 })), /unknown version 2/);
  assertPoison(decodeMutation(message([op], { v: "1" })), /unknown version "1"/);
  assertPoison(decodeMutation(json({ atomic: false, ops: [op] })), /unknown version undefined/);
  assertPoison(decodeMutation(message([op], { atomic: "yes" })), /atomic must be a boolean/);
  assertPoison(decodeMutation(json({ v: 1, ops: [op] })), /atomic must be a boolean/);
});

Deno.test("decodeMutation() rejects missing, empty or malformed ops", () => {
  assertPoison(decodeMutation(json({ v: 1, atomic: false })), /ops must be an array/);
  assertPoison(decodeMutation(message([])), /ops must be an array of 1\.\./);
  assertPoison(decodeMutation(json({ v: 1, atomic: false, ops: {} })), /ops must be an array/);
  assertPoison(decodeMutation(message([null])), /ops\[0\] is not an object/);
  assertPoison(decodeMutation(message([[]])), /ops\[0\] is not an object/);
});

Deno.test("decodeMutation() rejects an op of unknown kind", () => {
  const good = { op: "put", pk: "p", sk: "s", data: 1 };
  assertPoison(
    decodeMutation(message([good, { op: "upsert", pk: "p", sk: "s", data: 1 }])),
    /ops\[1\]\.op is unknown/,
  );
  assertPoison(decodeMutation(message([{ pk: "p", sk: "s", data: 1 }])), /ops\[0\]\.op is unknown/);
  assertPoison(
    decodeMutation(message([{ op: "PUT", pk: "p", sk: "s", data: 1 }])),
    /op is unknown/,
  );
});

Deno.test("decodeMutation() rejects keys that keyProblem() rejects", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ sk: "s" }, /pk must be a string/],
    [{ pk: 1, sk: "s" }, /pk must be a string/],
    [{ pk: "p" }, /sk must be a string/],
    [{ pk: "", sk: "s" }, /pk must not be empty/],
    [{ pk: "a".repeat(513), sk: "s" }, /pk must be at most 512/],
    [{ pk: "p", sk: "€".repeat(342) }, /sk must be at most 1024/],
    [{ pk: "\ud800", sk: "s" }, /lone surrogates/],
  ];
  for (const [keys, reason] of cases) {
    assertPoison(decodeMutation(message([{ op: "delete", ...keys }])), reason);
  }
});

Deno.test("decodeMutation() rejects a put without data", () => {
  assertPoison(
    decodeMutation(message([{ op: "put", pk: "p", sk: "s" }])),
    /ops\[0\] put without data/,
  );
  // A delete needs none.
  ok(decodeMutation(message([{ op: "delete", pk: "p", sk: "s" }])).ok);
});

Deno.test("decodeMutation() rejects a condition that is not a string", () => {
  for (const cond of [true, 1, null, ["pk == null"], { expr: "pk == null" }]) {
    assertPoison(
      decodeMutation(message([{ op: "put", pk: "p", sk: "s", data: 1, if: cond }])),
      /ops\[0\]\.if must be a string/,
    );
  }
  const long = "a".repeat(MESSAGE_CONDITION_CHARS_MAX + 1);
  assertPoison(
    decodeMutation(message([{ op: "delete", pk: "p", sk: "s", if: long }])),
    /\.if must be a string of at most/,
  );
  // A string that is not a valid condition still decodes: it is judged (false) at apply time.
  ok(decodeMutation(message([{ op: "delete", pk: "p", sk: "s", if: "((" }])).ok);
});

Deno.test("decodeMutation() keeps every number token of data, so encodeMutation() writes it back", () => {
  const huge = "1" + "0".repeat(399);
  const dataText =
    `[1e400,1e-400,9007199254740993,-0,1E5,0.1e-7,1.50,${huge},{"x":-${huge}},"1e400"]`;
  const text = `{"v":1,"atomic":true,"ops":[{"op":"put","pk":"p","sk":"s","data":${dataText}},` +
    `{"op":"put","pk":"p","sk":"t","data":-0}]}`;
  const decoded = decodeMutation(encoder.encode(text));
  ok(decoded.ok);
  equal(new TextDecoder().decode(encodeMutation(decoded.mutation)), text);
  const op = decoded.mutation.ops[0]!;
  ok(op.op === "put");
  equal(JSON.stringify(op.data), dataText);
});

Deno.test("decodeMutation() reads data nested past JSON_DEPTH_MAX as plain JSON, like older code", () => {
  const deep = "[".repeat(JSON_DEPTH_MAX + 1) + "1.50" + "]".repeat(JSON_DEPTH_MAX + 1);
  const decoded = decodeMutation(
    encoder.encode(`{"v":1,"atomic":false,"ops":[{"op":"put","pk":"p","sk":"s","data":${deep}}]}`),
  );
  ok(decoded.ok);
  equal(
    JSON.stringify(decoded.mutation.ops[0]),
    `{"op":"put","pk":"p","sk":"s","data":${deep.replace("1.50", "1.5")}}`,
  );
});

Deno.test("a one-op message's framing stays within MESSAGE_ENVELOPE_BYTES_MAX", () => {
  // Everything but the pk, the sk, the data's JSON and the condition, with the longest literals.
  const empty = encodeMutation({
    v: 1,
    atomic: false,
    ops: [{ op: "put", pk: "", sk: "", data: null, if: "" }],
  });
  ok(empty.length - "null".length <= MESSAGE_ENVELOPE_BYTES_MAX, `${empty.length} bytes`);
  const deletion = encodeMutation({ v: 1, atomic: false, ops: [{ op: "delete", pk: "", sk: "" }] });
  ok(deletion.length <= MESSAGE_ENVELOPE_BYTES_MAX, `${deletion.length} bytes`);
});
