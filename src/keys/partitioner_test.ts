import { equal, ok } from "node:assert/strict";
import { murmur2, partitionOf } from "./partitioner.ts";
import { seededRandom } from "../../tests/_helpers.ts";

const encoder = new TextEncoder();

/** Kafka's `UtilsTest.testMurmur2` vectors: the hashes any Kafka producer computes. */
const KAFKA_VECTORS: readonly [string, number][] = [
  ["21", -973932308],
  ["foobar", -790332482],
  ["a-little-bit-long-string", -985981536],
  ["a-little-bit-longer-string", -1486304829],
  ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
  ["abc", 479470107],
  ["", 275646681],
];

/**
 * An independent murmur2 written straight from Kafka's Java source, in BigInt arithmetic masked to
 * 32 bits, so that it shares no tricks (Math.imul, `| 0`) with the implementation under test.
 */
function referenceMurmur2(data: Uint8Array): number {
  const MASK = 0xffffffffn;
  const m = 0x5bd1e995n;
  const mul = (a: bigint, b: bigint) => (a * b) & MASK;
  const length = BigInt(data.length);
  let h = (0x9747b28cn ^ length) & MASK;
  const length4 = Math.floor(data.length / 4);
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = BigInt(data[i4]!) + (BigInt(data[i4 + 1]!) << 8n) + (BigInt(data[i4 + 2]!) << 16n) +
      (BigInt(data[i4 + 3]!) << 24n);
    k = mul(k, m);
    k ^= k >> 24n;
    k = mul(k, m);
    h = mul(h, m);
    h ^= k;
  }
  const tail = length4 * 4;
  const rest = data.length % 4;
  if (rest === 3) h ^= BigInt(data[tail + 2]!) << 16n;
  if (rest >= 2) h ^= BigInt(data[tail + 1]!) << 8n;
  if (rest >= 1) {
    h ^= BigInt(data[tail]!);
    h = mul(h, m);
  }
  h ^= h >> 13n;
  h = mul(h, m);
  h ^= h >> 15n;
  return Number(BigInt.asIntN(32, h));
}

/** Kafka's `Utils.toPositive(hash) % n`, computed without bit operators on JS numbers. */
function referencePartition(pk: string, n: number): number {
  const h = BigInt(referenceMurmur2(encoder.encode(pk)));
  const positive = BigInt.asUintN(32, h) % 0x80000000n;
  return Number(positive % BigInt(n));
}

function randomKey(random: () => number): string {
  const alphabet = ["a", "b", "z", "0", "-", "é", "ß", "€", "日", "😀", "\u0000", " "];
  const length = Math.floor(random() * 40);
  let s = "";
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return s;
}

Deno.test("murmur2() matches Kafka's published test vectors", () => {
  for (const [input, expected] of KAFKA_VECTORS) {
    equal(murmur2(encoder.encode(input)), expected, `murmur2(${JSON.stringify(input)})`);
  }
});

Deno.test("murmur2() agrees with an independent BigInt implementation on random keys", () => {
  const random = seededRandom(0x5eed);
  for (let i = 0; i < 2000; i++) {
    const bytes = encoder.encode(randomKey(random));
    equal(murmur2(bytes), referenceMurmur2(bytes), `bytes ${bytes.join(",")}`);
  }
  // Every tail length, with high bytes that would go wrong if sign-extended.
  for (let length = 0; length < 12; length++) {
    const bytes = new Uint8Array(length).map((_, i) => 0xf0 + i);
    equal(murmur2(bytes), referenceMurmur2(bytes), `length ${length}`);
  }
});

Deno.test("partitionOf() places keys where Kafka's default partitioner does", () => {
  equal(partitionOf("foobar", 50), 16);
  equal(partitionOf("foobar", 10), 6);
});

Deno.test("partitionOf() masks a negative hash to a non-negative partition", () => {
  // "21" hashes to -973932308: a plain `%` would give a negative partition.
  ok(murmur2(encoder.encode("21")) < 0);
  for (const n of [1, 2, 3, 7, 12, 16, 100, 4096]) {
    const p = partitionOf("21", n);
    equal(p, ((-973932308 & 0x7fffffff) >>> 0) % n);
    equal(p, referencePartition("21", n));
    ok(p >= 0 && p < n);
  }
  // 1173551340 = 2^31 - 973932308: the masked hash, not the absolute value (973932308).
  equal(partitionOf("21", 1_000_000_000), 1173551340 % 1_000_000_000);
});

Deno.test("partitionOf() is in range, deterministic and Kafka-exact for non-power-of-two counts", () => {
  const random = seededRandom(42);
  const keys = Array.from({ length: 3000 }, () => randomKey(random));
  for (const n of [3, 7, 12, 100]) {
    const seen = new Set<number>();
    for (const pk of keys) {
      const p = partitionOf(pk, n);
      ok(Number.isInteger(p) && p >= 0 && p < n, `partitionOf(${JSON.stringify(pk)}, ${n}) = ${p}`);
      equal(partitionOf(pk, n), p, "same key, same partition");
      equal(p, referencePartition(pk, n), `partitionOf(${JSON.stringify(pk)}, ${n})`);
      seen.add(p);
    }
    equal(seen.size, n, `3000 keys reach all ${n} partitions`);
  }
});
