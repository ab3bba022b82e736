/**
 * Kafka's default partitioner, so that writes, reads and proxying agree with any Kafka producer.
 */
import { writeUtf8 } from "./utf8.ts";

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/**
 * Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`) of `data`, as a signed 32-bit
 * integer.
 */
export function murmur2(data: Uint8Array, length: number = data.length): number {
  let h = (SEED ^ length) | 0;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i << 2;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const rest = length & 3;
  const tail = length & ~3;
  // Fall-through on purpose, exactly like the Java switch.
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

// A validated pk is at most PK_BYTES_MAX UTF-8 bytes; the scratch covers any string up to 4096 units.
const scratch = new Uint8Array(3 * 4096);

/** Kafka's `toPositive(murmur2(key)) % partitions` for the UTF-8 bytes of `pk`. */
export function partitionOf(pk: string, partitions: number): number {
  const bytes = pk.length * 3 <= scratch.length ? scratch : new Uint8Array(pk.length * 3);
  const length = writeUtf8(pk, bytes, 0);
  return (murmur2(bytes, length) & 0x7fffffff) % partitions;
}
