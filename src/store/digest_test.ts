import { deepEqual, equal, notEqual, ok, rejects, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { open } from "lmdb";
import { encodeRecordKey } from "../keys/mod.ts";
import {
  DIGEST_ZERO,
  PartitionStore,
  recordHash,
  StoreCorruptError,
  toHex,
  xorInto,
} from "./partition_store.ts";
import { encodeRecordValue } from "./record_codec.ts";
import { xorRecordHash } from "./record_hash.ts";
import { withTempDir } from "../../tests/_helpers.ts";

const MAP_BYTES = 32 * 1024 * 1024;

function chainOf(n: number): string {
  return n.toString(16).padStart(64, "0");
}

function openIn(dir: string): PartitionStore {
  return PartitionStore.open({ dir, namespace: "test", partition: 0, mapBytes: MAP_BYTES });
}

/** The digest recomputed from what a list of every pk returns, independently of the store's. */
function recomputed(store: PartitionStore, pks: readonly string[]): string {
  const digest = new Uint8Array(16);
  for (const pk of pks) {
    const page = store.list({
      pk,
      skPrefix: "",
      startAfter: null,
      endBefore: null,
      limit: 10_000,
      reverse: false,
      filter: null,
      stopOnFilter: false,
      scanMax: 10_000,
    });
    for (const r of page.records) {
      const value = encodeRecordValue(r.dataJson, r.version, r.createdAt, r.updatedAt);
      xorInto(digest, recordHash(encodeRecordKey(r.pk, r.sk), value));
    }
  }
  return toHex(digest);
}

type Op = ["put", string, string, unknown] | ["delete", string, string];

function apply(store: PartitionStore, offset: number, ops: readonly Op[]) {
  return store.write((tx) => {
    for (const op of ops) {
      if (op[0] === "put") tx.put(op[1], op[2], JSON.stringify(op[3]), offset, 10, 20 + offset);
      else tx.delete(op[1], op[2]);
    }
    return { offset, chain: chainOf(offset) };
  });
}

const PKS = ["a", "b", "c"];

Deno.test("a new store's digest is the digest of no records", async () => {
  await withTempDir(async (dir) => {
    const store = openIn(dir);
    equal(store.digest, DIGEST_ZERO);
    equal(recomputed(store, PKS), DIGEST_ZERO);
    await store.close();
  });
});

Deno.test("the digest equals a recomputation after puts, overwrites, deletes and a repeated write", async () => {
  await withTempDir(async (dir) => {
    const store = openIn(dir);
    await apply(store, 0, [["put", "a", "1", { n: 1 }], ["put", "b", "1", { n: 2 }]]);
    equal(store.digest, recomputed(store, PKS));
    const afterPuts = store.digest;
    await apply(store, 1, [["put", "a", "1", { n: 3 }]]); // overwrite
    equal(store.digest, recomputed(store, PKS));
    notEqual(store.digest, afterPuts);
    await apply(store, 2, [["delete", "b", "1"], ["delete", "c", "absent"]]);
    equal(store.digest, recomputed(store, PKS));
    // The same record written again, byte for byte, changes nothing.
    const before = store.digest;
    await store.write((tx) => {
      const r = tx.get("a", "1")!;
      tx.put("a", "1", r.dataJson, r.version, r.createdAt, r.updatedAt);
      return { offset: 4, chain: chainOf(4) };
    });
    equal(store.digest, before);
    // Several writes of one key in one transaction count once.
    await apply(store, 5, [["put", "c", "x", 1], ["put", "c", "x", 2], ["delete", "c", "x"]]);
    equal(store.digest, recomputed(store, PKS));
    await apply(store, 6, [["delete", "a", "1"]]);
    equal(store.digest, DIGEST_ZERO);
    await store.close();
  });
});

Deno.test("two stores reaching the same records by different writes have the same digest", async () => {
  await withTempDir(async (dir) => {
    const one = openIn(`${dir}/one`);
    const two = openIn(`${dir}/two`);
    await apply(one, 0, [["put", "a", "1", 1], ["put", "b", "2", 2]]);
    await apply(one, 1, [["put", "c", "3", 3]]);
    await apply(two, 0, [["put", "c", "3", 3], ["put", "b", "2", 2], ["put", "a", "9", 0]]);
    await apply(two, 1, [["delete", "a", "9"], ["put", "a", "1", 1]]);
    // Same data, version and timestamps are part of the value: write them alike.
    equal(one.digest, recomputed(one, PKS));
    equal(two.digest, recomputed(two, PKS));
    const versionsDiffer = one.get("c", "3")!.version !== two.get("c", "3")!.version;
    ok(versionsDiffer, "the version (log offset) is part of what the digest covers");
    await one.close();
    await two.close();
    // Records equal byte for byte (same versions and timestamps), reached by other histories.
    const three = openIn(`${dir}/three`);
    const four = openIn(`${dir}/four`);
    const put = (s: PartitionStore, offset: number, pk: string, data: number) =>
      s.write((tx) => {
        tx.put(pk, "1", String(data), 7, 1, 2);
        return { offset, chain: chainOf(offset) };
      });
    await put(three, 0, "a", 1);
    await put(three, 1, "b", 2);
    await put(four, 0, "b", 5);
    await put(four, 1, "a", 1);
    await put(four, 2, "b", 2);
    equal(three.digest, four.digest);
    notEqual(three.digest, DIGEST_ZERO);
    await three.close();
    await four.close();
  });
});

Deno.test("a transaction that throws leaves the digest as it was", async () => {
  await withTempDir(async (dir) => {
    const store = openIn(dir);
    await apply(store, 0, [["put", "a", "1", 1]]);
    const before = store.digest;
    await rejects(store.write((tx) => {
      tx.put("a", "2", "2", 1, 1, 1);
      throw new Error("boom");
    }));
    equal(store.digest, before);
    equal(store.digest, recomputed(store, PKS));
    await store.close();
  });
});

Deno.test("the digest survives a reopen, and a file written without one gets it at open", async () => {
  await withTempDir(async (dir) => {
    const store = openIn(dir);
    await apply(store, 0, [["put", "a", "1", 1], ["put", "b", "1", 2]]);
    const digest = store.digest;
    await store.close();
    const again = openIn(dir);
    equal(again.digest, digest);
    await again.close();
    // As a file from before digests existed: no digest and no checksum in its meta.
    const raw = open({ path: `${dir}/p0.mdb`, maxDbs: 4, mapSize: MAP_BYTES });
    const meta = raw.openDB<unknown, string>({ name: "meta", encoding: "json" });
    meta.removeSync("digest");
    meta.removeSync("check");
    await raw.close();
    const old = openIn(dir);
    equal(old.digest, digest);
    deepEqual(old.applied, { offset: 0, chain: chainOf(0) });
    await old.close();
    const stored = openIn(dir); // and it was stored, with its checksum
    equal(stored.digest, digest);
    await stored.close();
  });
});

Deno.test("a store whose meta values do not match their checksum refuses to open", async () => {
  await withTempDir(async (dir) => {
    const store = openIn(dir);
    await apply(store, 5, [["put", "a", "1", 1]]);
    await store.close();
    const raw = open({ path: `${dir}/p0.mdb`, maxDbs: 4, mapSize: MAP_BYTES });
    const meta = raw.openDB<unknown, string>({ name: "meta", encoding: "json" });
    meta.putSync("offset", 50); // a flipped digit that still parses
    await raw.close();
    throws(() => openIn(dir), StoreCorruptError);
  });
});

Deno.test("the record hash changes when any single bit of the key or value changes", () => {
  const key = new TextEncoder().encode("\u0000\u0003pk1sort-key");
  const value = new Uint8Array(300).map((_, i) => (i * 7) & 0xff);
  const base = toHex(recordHash(key, value));
  equal(toHex(recordHash(key, value)), base, "deterministic");
  const seen = new Set([base]);
  for (let i = 0; i < key.length + value.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const k = key.slice();
      const v = value.slice();
      if (i < k.length) k[i]! ^= 1 << bit;
      else v[i - k.length]! ^= 1 << bit;
      seen.add(toHex(recordHash(k, v)));
    }
  }
  equal(seen.size, 1 + 8 * (key.length + value.length), "every flip gives another hash");
});

Deno.test("the record hash keeps the key/value split apart and reads only `length` bytes", () => {
  const te = new TextEncoder();
  notEqual(
    toHex(recordHash(te.encode("ab"), te.encode("c"))),
    toHex(recordHash(te.encode("a"), te.encode("bc"))),
  );
  const big = new Uint8Array(100_000).fill(9);
  const part = big.subarray(10, 20);
  equal(toHex(recordHash(part, part)), toHex(recordHash(part.slice(), part.slice())));
  // Larger than the scratch buffer: still hashed whole.
  const huge = new Uint8Array(200_000).fill(1);
  const other = huge.slice();
  other[199_999] = 2;
  notEqual(toHex(recordHash(te.encode("k"), huge)), toHex(recordHash(te.encode("k"), other)));
});

Deno.test("xorRecordHash XORs into a digest exactly what xorInto(recordHash) does", () => {
  const a = new Uint8Array(16).map((_, i) => i * 17);
  const b = a.slice();
  for (let n = 0; n < 50; n++) {
    const key = new TextEncoder().encode(`\u0000\u0002k${n}s`);
    const value = new Uint8Array(n * 3).map((_, i) => (i * 31 + n) & 0xff);
    xorInto(a, recordHash(key, value));
    xorRecordHash(b, key, value);
    equal(toHex(b), toHex(a), `after ${n + 1} records`);
  }
});

Deno.test("the record hash gives the values it always gave: digests in files and peers stay comparable", () => {
  // Computed by the byte-at-a-time implementation before the hash read words; a change here is
  // a change of the file format (every stored digest) and of what replicas compare.
  const all = createHash("sha256");
  for (let k = 0; k < 20; k++) {
    for (let v = 0; v < 70; v++) {
      const key = Uint8Array.from({ length: k }, (_, i) => (i * 13 + k) & 0xff);
      const value = Uint8Array.from({ length: v * 3 }, (_, i) => (i * 31 + v + 7) & 0xff);
      all.update(recordHash(key, value));
    }
  }
  equal(all.digest("hex"), "e055c8fae412a1f64cc9321734e5f3580f88f0e8bf2186ddd4ee7d94ddb97746");
  const te = new TextEncoder();
  equal(
    toHex(recordHash(te.encode("\u0000\u0003pk1sk"), te.encode('{"a":1}'))),
    "19a36d73dc09176dd6fe1d8d1874b11a",
  );
  equal(
    toHex(recordHash(new Uint8Array(0), new Uint8Array(0))),
    "bb72a8044b77cded4b77cded4b77cded",
  );
});

Deno.test("the record hash reads a value only as far as a `length` narrowed the way lmdb-js narrows its read buffer", () => {
  const key = new TextEncoder().encode("\u0000\u0001ks");
  const backing = new Uint8Array(512).map((_, i) => (i * 7 + 1) & 0xff);
  const narrowed = backing.subarray(0);
  Object.defineProperty(narrowed, "length", { value: 37, writable: true, configurable: true });
  equal(toHex(recordHash(key, narrowed)), toHex(recordHash(key, backing.slice(0, 37))));
  const a = new Uint8Array(16);
  const b = new Uint8Array(16);
  xorRecordHash(a, key, narrowed);
  xorInto(b, recordHash(key, backing.slice(0, 37)));
  equal(toHex(a), toHex(b));
});
