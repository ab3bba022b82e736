/**
 * What a correct {@linkcode ObjectStore} does, as backups and restores rely on it: one suite of
 * `Deno.test`s run against the in-memory stand-in (`object_store_conformance_test.ts`) and against
 * a real S3-compatible server (`tests/integration/s3_store_conformance_test.ts`, which is also how
 * a Tigris, MinIO or R2 user checks their bucket: docs/operations.md).
 *
 * Each test works under a prefix of its own and removes what it wrote. Not asserted: the order
 * of `list()` (backup and restore sort what they need), and how far past `max` a listing may go
 * (S3 stops after the page that reaches it: up to 999 keys more).
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { ObjectStore } from "./object_store.ts";

/** A store to test and the key prefix the test may use (no other test writes under it). */
export interface StoreUnderTest {
  readonly store: ObjectStore;
  /** Ends with "/". */
  readonly prefix: string;
}

/** Options of the registered tests (e.g. `ignore` when the server is absent). */
export type StoreTestOptions = Pick<
  Deno.TestDefinition,
  "ignore" | "sanitizeOps" | "sanitizeResources"
>;

const MiB = 1024 * 1024;
/**
 * A snapshot-sized file: over two of S3's smallest parts (5 MiB), and not a whole number of
 * them, so an implementation that uploads in parts sends three, the last a short one.
 */
const LARGE_FILE_BYTES = 12 * MiB + 12_345;
/** More keys than one S3 listing page (1000) holds. */
const MANY_KEYS = 1_100;
/** Requests in flight at once while writing or deleting many keys. */
const CONCURRENCY = 16;

/**
 * Registers the conformance tests of an {@linkcode ObjectStore} implementation called `name`.
 * `newStore` gives each test the store and a fresh prefix; a store that uploads in parts should
 * use parts of at most 5 MiB so the large-file test spans several.
 */
export function objectStoreConformance(
  name: string,
  newStore: () => Promise<StoreUnderTest>,
  testOptions: StoreTestOptions = {},
): void {
  const test = (title: string, body: (t: StoreUnderTest, dir: string) => Promise<void>) =>
    Deno.test({
      name: `${name}: ${title}`,
      ...testOptions,
      fn: async () => {
        const under = await newStore();
        const dir = await Deno.makeTempDir({ prefix: "firescroll_store_conformance_" });
        try {
          await body(under, dir);
        } finally {
          await Deno.remove(dir, { recursive: true });
          await removeAll(under);
        }
      },
    });

  test(
    "putFile() then getFile() round-trips the exact bytes of a small file and of a multi-part one",
    async ({ store, prefix }, dir) => {
      for (
        const [label, bytes] of [["small", pattern(70_000, 3)], [
          "large",
          pattern(LARGE_FILE_BYTES, 7),
        ]] as const
      ) {
        const source = `${dir}/${label}.in`;
        await Deno.writeFile(source, bytes);
        const key = `${prefix}ns/p3/${label}.mdb`;
        await store.putFile(key, source, live());
        const target = `${dir}/${label}.out`;
        equal(await store.getFile(key, target, live()), true);
        const back = await Deno.readFile(target);
        equal(back.length, bytes.length, `${label}: length`);
        equal(await sha256(back), await sha256(bytes), `${label}: content`);
      }
    },
  );

  test("putJson() then getJson() round-trips a manifest-shaped value", async ({ store, prefix }) => {
    const value = {
      v: 1,
      namespace: "ns_A-z",
      partition: 12,
      offset: 9_007_199_254_740_991,
      chain: "ab".repeat(32),
      nested: { list: [1, -2.5, "é ✓ 𝄞", null, true], empty: {} },
    };
    const key = `${prefix}ns/p12/00000000000000000042.json`;
    await store.putJson(key, value, live());
    deepEqual(await store.getJson(key, live()), value);
  });

  test(
    "a missing key reads as null from getJson() and false from getFile(), which writes no file",
    async ({ store, prefix }, dir) => {
      equal(await store.getJson(`${prefix}ns/p0/latest.json`, live()), null);
      const target = `${dir}/missing.mdb`;
      equal(await store.getFile(`${prefix}ns/p0/00000000000000000001.mdb`, target, live()), false);
      equal(await exists(target), false, "getFile() of a missing key created its target");
      deepEqual(await store.list(`${prefix}ns/`, live()), []);
    },
  );

  test(
    "a second put of a key replaces the first, for JSON and for files",
    async ({ store, prefix }, dir) => {
      const json = `${prefix}ns/p1/latest.json`;
      await store.putJson(json, { offset: 1 }, live());
      await store.putJson(json, { offset: 2 }, live());
      deepEqual(await store.getJson(json, live()), { offset: 2 });

      const file = `${prefix}ns/p1/00000000000000000002.mdb`;
      const source = `${dir}/in`;
      await Deno.writeFile(source, pattern(50_000, 5));
      await store.putFile(file, source, live());
      // Shorter than the first: nothing of the first may remain at the end.
      const second = pattern(20_000, 11);
      await Deno.writeFile(source, second);
      await store.putFile(file, source, live());
      equal(await store.getFile(file, `${dir}/out`, live()), true);
      deepEqual(await Deno.readFile(`${dir}/out`), second);
      deepEqual(await store.list(`${prefix}ns/p1/`, live()).then(sorted), [file, json].sort());
    },
  );

  test(
    "createBytes() creates a key once: a second create of it leaves the first bytes; getBytes() reads them",
    async ({ store, prefix }) => {
      const key = `${prefix}ns/p3/log/00000000000000000000-00000000000000000009`;
      equal(await store.getBytes(key, live()), null);
      const first = pattern(70_000, 3);
      equal(await store.createBytes(key, first, live()), true);
      equal(await store.createBytes(key, pattern(1_000, 9), live()), false);
      deepEqual(await store.getBytes(key, live()), first);
      deepEqual(await store.listSized(`${prefix}ns/p3/`, live()), [{ key, bytes: first.length }]);
      // Two creates of one new key at once: exactly one wins, and its bytes are there whole.
      const race = `${prefix}ns/p3/log/00000000000000000010-00000000000000000019`;
      const [a, b] = [pattern(40_000, 5), pattern(40_000, 7)];
      const won = await Promise.all([
        store.createBytes(race, a, live()),
        store.createBytes(race, b, live()),
      ]);
      equal(won.filter((w) => w).length, 1, `both or neither won: ${won}`);
      deepEqual(await store.getBytes(race, live()), won[0] ? a : b);
      await store.delete([key, race], live());
    },
  );

  test("list() returns exactly the keys under a prefix: p1/ is not p10/", async ({ store, prefix }) => {
    const keys = [
      `${prefix}ns/p1/00000000000000000007.mdb`,
      `${prefix}ns/p1/00000000000000000007.json`,
      `${prefix}ns/p1/latest.json`,
      `${prefix}ns/p10/latest.json`,
      `${prefix}ns/p2/latest.json`,
      `${prefix}ns_other/p1/latest.json`,
    ];
    for (const key of keys) await store.putJson(key, { key }, live());
    deepEqual(await store.list(`${prefix}ns/p1/`, live()).then(sorted), keys.slice(0, 3).sort());
    deepEqual(await store.list(`${prefix}ns/p10/`, live()), [keys[3]]);
    deepEqual(await store.list(`${prefix}ns/`, live()).then(sorted), keys.slice(0, 5).sort());
    deepEqual(await store.list(`${prefix}ns/p3/`, live()), []);
    // Keys of the backup layout (namespace alphabet [A-Za-z0-9_-], '/', '.') are kept as given.
    for (const key of keys) deepEqual(await store.getJson(key, live()), { key });
  });

  test(`list() pages past one listing page (${MANY_KEYS} keys), each key once`, async ({ store, prefix }) => {
    const base = `${prefix}ns/p5/`;
    const keys = Array.from(
      { length: MANY_KEYS },
      (_, i) => `${base}${String(i).padStart(20, "0")}.json`,
    );
    await inParallel(keys, (key) => store.putJson(key, 1, live()));
    const listed = await store.list(base, live());
    equal(listed.length, MANY_KEYS);
    deepEqual(sorted(listed), keys);
    // `max` bounds a listing (at least `max` keys when there are that many, never all here).
    const bounded = await store.list(base, live(), 10);
    ok(bounded.length >= 10 && bounded.length < MANY_KEYS, `max 10 listed ${bounded.length}`);
    equal(new Set(bounded).size, bounded.length, "no key twice");
    ok(bounded.every((k) => k.startsWith(base)));
  });

  test(
    "delete() removes the keys given, and absent keys (or a second delete) are fine",
    async ({ store, prefix }, dir) => {
      const file = `${prefix}ns/p4/00000000000000000009.mdb`;
      const manifest = `${prefix}ns/p4/00000000000000000009.json`;
      const kept = `${prefix}ns/p4/latest.json`;
      await Deno.writeFile(`${dir}/in`, pattern(1_000, 1));
      await store.putFile(file, `${dir}/in`, live());
      await store.putJson(manifest, { offset: 9 }, live());
      await store.putJson(kept, { offset: 9 }, live());
      await store.delete([file, manifest, `${prefix}ns/p4/never-written.json`], live());
      await store.delete([file, manifest], live());
      await store.delete([], live());
      deepEqual(await store.list(`${prefix}ns/p4/`, live()), [kept]);
      equal(await store.getJson(manifest, live()), null);
      equal(await store.getFile(file, `${dir}/out`, live()), false);
      deepEqual(await store.getJson(kept, live()), { offset: 9 });
    },
  );

  test(
    "an operation whose signal has already aborted fails and changes nothing",
    async ({ store, prefix }, dir) => {
      const aborted = AbortSignal.abort();
      const key = `${prefix}ns/p6/latest.json`;
      const file = `${prefix}ns/p6/00000000000000000001.mdb`;
      await Deno.writeFile(`${dir}/in`, pattern(1_000, 2));
      await store.putJson(key, { offset: 1 }, live());
      const outcomes = await Promise.all([
        store.putJson(key, { offset: 2 }, aborted),
        store.putFile(file, `${dir}/in`, aborted),
        store.getJson(key, aborted),
        store.getFile(key, `${dir}/out`, aborted),
        store.list(`${prefix}ns/`, aborted),
        store.delete([key], aborted),
      ].map((p) => p.then(() => "done", () => "failed")));
      deepEqual(outcomes, ["failed", "failed", "failed", "failed", "failed", "failed"]);
      deepEqual(await store.list(`${prefix}ns/p6/`, live()), [key]);
      deepEqual(await store.getJson(key, live()), { offset: 1 });
    },
  );
}

/** A signal that never aborts. */
function live(): AbortSignal {
  return new AbortController().signal;
}

function sorted(keys: string[]): string[] {
  return [...keys].sort();
}

/** `length` bytes of every value, varying with `seed`. */
function pattern(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * seed + (i >>> 10)) & 0xff;
  return bytes;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Runs `work` on every item, at most {@linkcode CONCURRENCY} at once. */
async function inParallel<T>(items: readonly T[], work: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Deletes everything the test left under its prefix. */
async function removeAll({ store, prefix }: StoreUnderTest): Promise<void> {
  const keys = await store.list(prefix, live());
  const chunks: string[][] = [];
  for (let i = 0; i < keys.length; i += 100) chunks.push(keys.slice(i, i + 100));
  await inParallel(chunks, (chunk) => store.delete(chunk, live()));
}
