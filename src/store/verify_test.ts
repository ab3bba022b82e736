import { deepEqual, equal, match, ok } from "node:assert/strict";
import { open } from "lmdb";
import { PartitionStore } from "./partition_store.ts";
import { boundedAll, verifyInChild } from "./verify.ts";

const MAP_BYTES = 32 * 1024 * 1024;
/** Generous: these tests judge damage, never speed. */
const TIMEOUT_MS = 120_000;
const PAGE = 4096;

function chainOf(n: number): string {
  return n.toString(16).padStart(64, "0");
}

/** A closed partition file with `batches` transactions of 100 records each; resolves to its path. */
async function partitionFile(dir: string, batches = 20): Promise<string> {
  const store = PartitionStore.open({ dir, namespace: "t", partition: 0, mapBytes: MAP_BYTES });
  for (let o = 0; o < batches; o++) {
    await store.write((tx) => {
      for (let i = 0; i < 100; i++) {
        const data = JSON.stringify({ marker: `m-${o}-${i}-end`, pad: "x".repeat(40) });
        tx.put(`pk${i % 7}`, `sk-${o}-${i}`, data, o, 1, 2);
      }
      return { offset: o, chain: chainOf(o) };
    });
  }
  await store.close();
  return `${dir}/p0.mdb`;
}

async function withFile(body: (path: string, bytes: Uint8Array) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_verify_test_" });
  try {
    const path = await partitionFile(dir);
    await body(path, await Deno.readFile(path));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function indexesOf(haystack: Uint8Array, needle: string): number[] {
  const n = new TextEncoder().encode(needle);
  const out: number[] = [];
  outer: for (let i = 0; i + n.length <= haystack.length; i++) {
    for (let j = 0; j < n.length; j++) if (haystack[i + j] !== n[j]) continue outer;
    out.push(i);
  }
  return out;
}

Deno.test("the verifier accepts a good partition file", async () => {
  await withFile(async (path) => {
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    deepEqual([result.ok, result.reason], [true, null]);
  });
});

Deno.test("the verifier rejects a partition file whose header (first meta page) is damaged", async () => {
  await withFile(async (path, bytes) => {
    bytes[24]! ^= 0xff; // the LMDB magic
    await Deno.writeFile(path, bytes);
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    equal(result.ok, false);
    match(result.reason!, /not an LMDB file/);
  });
});

Deno.test("the verifier rejects a partition file with a flipped byte inside a record on a leaf page", async () => {
  await withFile(async (path, bytes) => {
    // Every copy of one record's value (older copies of its page may linger in free pages): the
    // live one is among them, and nothing about the page structure changes.
    const at = indexesOf(bytes, "m-7-42-end");
    ok(at.length > 0);
    for (const i of at) bytes[i + 2]! ^= 0x01; // "7" becomes "6": still valid JSON and UTF-8
    await Deno.writeFile(path, bytes);
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    equal(result.ok, false);
    match(result.reason!, /content digest/);
  });
});

Deno.test("the verifier rejects a partition file damaged in the middle", async () => {
  await withFile(async (path, bytes) => {
    // The last byte of every page in the middle half of the file. LMDB packs a page's nodes at
    // its end, so each live page there gets a record byte changed (free pages, which hold stale
    // copies and are never read, can take any damage).
    const pages = bytes.length / PAGE;
    for (let page = Math.floor(pages / 4); page < Math.ceil((3 * pages) / 4); page++) {
      bytes[page * PAGE + PAGE - 1]! ^= 0xff;
    }
    await Deno.writeFile(path, bytes);
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    equal(result.ok, false);
  });
});

Deno.test("the verifier rejects a truncated partition file, even though reading it crashes the child", async () => {
  await withFile(async (path, bytes) => {
    await Deno.writeFile(path, bytes.subarray(0, 3 * PAGE + 100));
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    equal(result.ok, false);
  });
});

Deno.test("the verifier rejects a partition file whose meta values no longer match their checksum", async () => {
  await withFile(async (path) => {
    const raw = open({ path, maxDbs: 4, mapSize: MAP_BYTES });
    await raw.openDB<unknown, string>({ name: "meta", encoding: "json" }).put("offset", 3);
    await raw.close();
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    equal(result.ok, false);
    match(result.reason!, /checksum/);
  });
});

Deno.test("the verifier rejects a file that is not LMDB at all", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_verify_test_" });
  try {
    const path = `${dir}/p0.mdb`;
    await Deno.writeFile(path, new Uint8Array(3 * PAGE).fill(0x5a));
    const result = await verifyInChild("partition", path, TIMEOUT_MS);
    equal(result.ok, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a verifier that outlives its time bound counts as a damaged file", async () => {
  await withFile(async (path) => {
    // No Deno process starts, loads lmdb-js and walks a file within 1 ms.
    const result = await verifyInChild("partition", path, 1);
    equal(result.ok, false);
    match(result.reason!, /longer than 1 ms/);
  });
});

Deno.test("the verifier accepts a good embedded log and rejects one with a damaged header", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_verify_test_" });
  try {
    const path = `${dir}/log.mdb`;
    const env = open({ path, maxDbs: 2, mapSize: MAP_BYTES });
    const entries = env.openDB<Uint8Array, Uint8Array>({
      name: "entries",
      keyEncoding: "binary",
      encoding: "binary",
    });
    await env.childTransaction(() => {
      for (let p = 0; p < 2; p++) {
        for (let offset = 0; offset < 50; offset++) {
          const key = new Uint8Array(12);
          new DataView(key.buffer).setUint32(0, p, false);
          new DataView(key.buffer).setBigUint64(4, BigInt(offset), false);
          entries.putSync(key, new Uint8Array(20).fill(offset));
        }
      }
    });
    await env.close();
    deepEqual(await verifyInChild("log", path, TIMEOUT_MS).then((r) => r.reason), null);
    const bytes = await Deno.readFile(path);
    bytes[24]! ^= 0xff;
    await Deno.writeFile(path, bytes);
    equal((await verifyInChild("log", path, TIMEOUT_MS)).ok, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boundedAll() runs every item with at most the given number in flight", async () => {
  let inFlight = 0;
  let most = 0;
  const out = await boundedAll([1, 2, 3, 4, 5, 6, 7], 2, async (n) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, 1));
    inFlight--;
    return n * 10;
  });
  deepEqual(out, [10, 20, 30, 40, 50, 60, 70]);
  equal(most, 2);
});
