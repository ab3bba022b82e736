import { deepEqual, equal, ok } from "node:assert/strict";
import { PK_BYTES_MAX, SK_BYTES_MAX } from "../config/mod.ts";
import {
  decodeRecordKey,
  decodeSk,
  encodeRecordKey,
  keyProblem,
  keyWithSk,
  pkPrefix,
  utf8Length,
} from "./record_key.ts";
import { seededRandom } from "../../tests/_helpers.ts";

const encoder = new TextEncoder();

/** memcmp, as LMDB orders keys; written here so the test does not trust the store's copy. */
function memcmp(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  return key.length >= prefix.length && prefix.every((b, i) => key[i] === b);
}

/** Sort keys whose UTF-16 order differs from their UTF-8 order, NUL and emoji included. */
const TRICKY_SKS = [
  "",
  "\u0000",
  "\u0000\u0000",
  "a",
  "a\u0000",
  "a\u0000b",
  "ab",
  "B",
  "b",
  "é",
  "ÿ",
  "€",
  "日本",
  "\uffef",
  "\uffff",
  "😀",
  "😀\u0000",
  "𝄞",
  "z",
  "~",
];

function randomString(random: () => number, lengthMax: number): string {
  const pieces = ["a", "b", "\u0000", "é", "€", "\uffff", "😀", "𝄞", "~", "Z"];
  const length = Math.floor(random() * lengthMax);
  let s = "";
  for (let i = 0; i < length; i++) s += pieces[Math.floor(random() * pieces.length)];
  return s;
}

Deno.test("encodeRecordKey() orders the records of one pk by the UTF-8 bytes of sk", () => {
  const random = seededRandom(7);
  const sks = [...TRICKY_SKS, ...Array.from({ length: 300 }, () => randomString(random, 6))];
  for (const pk of ["p", "", "日本", "a\u0000b"]) {
    const byKey = [...sks].sort((a, b) => memcmp(encodeRecordKey(pk, a), encodeRecordKey(pk, b)));
    const byUtf8 = [...sks].sort((a, b) => memcmp(encoder.encode(a), encoder.encode(b)));
    deepEqual(byKey, byUtf8);
  }
  // The order a user sees is UTF-8's, not JavaScript's UTF-16 string order.
  ok("😀" < "\uffff");
  ok(memcmp(encodeRecordKey("p", "\uffff"), encodeRecordKey("p", "😀")) < 0);
});

Deno.test("encodeRecordKey() keeps each pk's records contiguous for prefix scans", () => {
  // Pks that are prefixes of each other, or differ only after a NUL, must not interleave.
  const pks = ["a", "ab", "a\u0000", "a\u0000b", "b", "é", "ée", "😀"];
  const sks = ["", "\u0000", "a", "b", "ab", "\uffff", "😀", "zzz"];
  const all: { pk: string; sk: string; key: Uint8Array }[] = [];
  for (const pk of pks) for (const sk of sks) all.push({ pk, sk, key: encodeRecordKey(pk, sk) });
  all.sort((x, y) => memcmp(x.key, y.key));
  for (const pk of pks) {
    const prefix = pkPrefix(pk);
    const positions = all.flatMap((entry, i) => entry.pk === pk ? [i] : []);
    equal(positions.length, sks.length);
    equal(positions.at(-1)! - positions[0]!, sks.length - 1, `records of ${pk} are contiguous`);
    for (const entry of all) {
      equal(startsWith(entry.key, prefix), entry.pk === pk, `${entry.pk}/${entry.sk} vs ${pk}`);
    }
  }
});

Deno.test("keyWithSk() builds the same bytes as encodeRecordKey()", () => {
  for (const sk of TRICKY_SKS) deepEqual(keyWithSk(pkPrefix("pk"), sk), encodeRecordKey("pk", sk));
});

Deno.test("decodeRecordKey() and decodeSk() round-trip every key", () => {
  const random = seededRandom(11);
  for (let i = 0; i < 500; i++) {
    const pk = "x" + randomString(random, 10);
    const sk = randomString(random, 10);
    const key = encodeRecordKey(pk, sk);
    deepEqual(decodeRecordKey(key), { pk, sk });
    equal(decodeSk(key), sk);
  }
  const longest = encodeRecordKey("p".repeat(PK_BYTES_MAX), "s".repeat(SK_BYTES_MAX));
  deepEqual(decodeRecordKey(longest), {
    pk: "p".repeat(PK_BYTES_MAX),
    sk: "s".repeat(SK_BYTES_MAX),
  });
});

Deno.test("keyProblem() accepts well-formed keys within the byte limits", () => {
  equal(keyProblem("p", ""), null);
  equal(keyProblem("p", "s"), null);
  equal(keyProblem("\u0000", "\u0000"), null);
  equal(keyProblem("a".repeat(512), "b".repeat(1024)), null);
  equal(keyProblem("é".repeat(256), "€".repeat(341) + "b"), null); // 512 and 1024 bytes
  equal(keyProblem("😀".repeat(128), "😀".repeat(256)), null); // 512 and 1024 bytes
});

Deno.test("keyProblem() rejects an empty pk and keys that are not strings", () => {
  equal(keyProblem("", "s"), "pk must not be empty");
  equal(keyProblem(undefined, "s"), "pk must be a string");
  equal(keyProblem(1, "s"), "pk must be a string");
  equal(keyProblem("p", null), "sk must be a string");
  equal(keyProblem("p", ["s"]), "sk must be a string");
});

Deno.test("keyProblem() counts UTF-8 bytes, not characters, against the limits", () => {
  equal(keyProblem("a".repeat(513), "s"), "pk must be at most 512 UTF-8 bytes");
  equal(keyProblem("é".repeat(256) + "a", "s"), "pk must be at most 512 UTF-8 bytes");
  equal(keyProblem("€".repeat(171), "s"), "pk must be at most 512 UTF-8 bytes"); // 171 chars
  equal(keyProblem("😀".repeat(128) + "a", "s"), "pk must be at most 512 UTF-8 bytes");
  equal(keyProblem("p", "b".repeat(1025)), "sk must be at most 1024 UTF-8 bytes");
  equal(keyProblem("p", "é".repeat(512) + "a"), "sk must be at most 1024 UTF-8 bytes");
  equal(keyProblem("p", "😀".repeat(256) + "a"), "sk must be at most 1024 UTF-8 bytes");
});

Deno.test("keyProblem() rejects lone surrogates, which have no UTF-8 form", () => {
  equal(keyProblem("\ud800", "s"), "pk must not contain lone surrogates");
  equal(keyProblem("a\udc00b", "s"), "pk must not contain lone surrogates");
  equal(keyProblem("p", "\ud83d"), "sk must not contain lone surrogates");
  equal(keyProblem("p", "x\ude00"), "sk must not contain lone surrogates");
  // Both would otherwise encode to the same bytes as U+FFFD.
  deepEqual(encoder.encode("\ud800"), encoder.encode("\ufffd"));
});

Deno.test("utf8Length() equals TextEncoder's length for random strings", () => {
  const random = seededRandom(1234);
  const ranges: [number, number][] = [
    [0x00, 0x7f],
    [0x80, 0x7ff],
    [0x800, 0xd7ff],
    [0xd800, 0xdbff], // high surrogates, paired or not
    [0xdc00, 0xdfff], // low surrogates, paired or not
    [0xe000, 0xffff],
  ];
  for (let i = 0; i < 3000; i++) {
    const units: number[] = [];
    const length = Math.floor(random() * 24);
    for (let j = 0; j < length; j++) {
      const [lo, hi] = ranges[Math.floor(random() * ranges.length)]!;
      units.push(lo + Math.floor(random() * (hi - lo + 1)));
    }
    const s = String.fromCharCode(...units);
    equal(utf8Length(s), encoder.encode(s).length, `units ${units.map((u) => u.toString(16))}`);
  }
  equal(utf8Length(""), 0);
  equal(utf8Length("😀"), 4);
  equal(utf8Length("\ud83d"), 3);
  equal(utf8Length("\ude00\ud83d"), 6);
});
