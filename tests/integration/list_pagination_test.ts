/**
 * Paging through `/records/list` to the end: exact UTF-8 byte order, no duplicates, no omissions,
 * forward and reverse, with every range option.
 */
import assert from "node:assert/strict";
import { stepper, type TestNode, withNode } from "./_node.ts";

const PK = "routes:eu";
const PAGE = 37;

const encoder = new TextEncoder();

/** Byte order of the UTF-8 encodings: the order `/records/list` promises. */
function compareUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

// "Ａ" (U+FF21) sorts after "😀" (U+1F600) in UTF-16 code units but before it in UTF-8 bytes, so a
// node that sorted JavaScript strings would fail here.
const SPECIAL = ["", "\u0000", "Z", "a", "é", "éa", "Ω", "日本", "Ａ", "😀", "😀x", "item-"];
const SKS = [
  ...Array.from({ length: 250 - SPECIAL.length }, (_, i) => `item-${String(i).padStart(3, "0")}`),
  ...SPECIAL,
];
const SORTED = [...SKS].sort(compareUtf8);

interface Query {
  sk_prefix?: string;
  start_after?: string;
  end_before?: string;
  reverse?: boolean;
}

/** Follows `next` from the first page until null; returns every sk and the page sizes. */
async function pageThrough(
  node: TestNode,
  query: Query,
): Promise<{ sks: string[]; pages: number[] }> {
  const sks: string[] = [];
  const pages: number[] = [];
  let cursor: string | undefined = query.start_after;
  for (let i = 0; i < 100; i++) {
    const body: Record<string, unknown> = { pk: PK, limit: PAGE, ...query };
    if (cursor !== undefined) body.start_after = cursor;
    const result = await node.post("/records/list", body);
    assert.equal(result.status, 200, result.text);
    const page: { pk: string; sk: string; data: { sk: string } }[] = result.json.records;
    for (const r of page) {
      assert.equal(r.pk, PK);
      assert.equal(r.data.sk, r.sk);
    }
    sks.push(...page.map((r) => r.sk));
    pages.push(page.length);
    if (result.json.next === null) return { sks, pages };
    assert.equal(result.json.next, page[page.length - 1]?.sk, "next is the last sk of the page");
    cursor = result.json.next;
  }
  throw new Error("list did not end within 100 pages");
}

function assertPages(pages: number[], total: number): void {
  const expected: number[] = [];
  for (let left = total; left > 0; left -= PAGE) expected.push(Math.min(PAGE, left));
  // A page that ends exactly at the last row may be followed by an empty one.
  if (pages.length === expected.length + 1) assert.equal(pages[pages.length - 1], 0);
  else assert.deepEqual(pages, expected.length === 0 ? [0] : expected);
  assert.deepEqual(pages.slice(0, expected.length), expected);
}

Deno.test("list pages through 250 records in UTF-8 byte order without gaps or repeats", async (t) => {
  await withNode({ env: { PARTITIONS: "3" } }, async (node) => {
    const step = stepper(t, node);
    // Insert in a shuffled order so the result's order cannot come from insertion order.
    const shuffled = [...SKS];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const put = await node.post("/records/put", {
      records: shuffled.map((sk) => ({ pk: PK, sk, data: { sk } })),
    });
    assert.equal(put.status, 200, put.text);
    await node.post("/records/put", {
      records: [{ pk: "routes:e", sk: "u", data: {} }, { pk: "routes:eu2", sk: "x", data: {} }],
    });
    const ready = await node.post("/records/list", {
      pk: PK,
      limit: 1,
      after: put.json.offsets,
      wait_ms: 3000,
    });
    assert.equal(ready.status, 200, ready.text);

    await step("forward pages follow next to the end in byte order", async () => {
      const { sks, pages } = await pageThrough(node, {});
      assert.deepEqual(sks, SORTED);
      assert.equal(new Set(sks).size, 250);
      assertPages(pages, 250);
    });

    await step("reverse pages follow next to the start in reverse byte order", async () => {
      const { sks, pages } = await pageThrough(node, { reverse: true });
      assert.deepEqual(sks, [...SORTED].reverse());
      assertPages(pages, 250);
    });

    await step("without a limit a page holds 100 records", async () => {
      const result = await node.post("/records/list", { pk: PK });
      assert.equal(result.json.records.length, 100);
      assert.equal(result.json.next, SORTED[99]);
    });

    await step("sk_prefix selects the prefix's records, an exact match included", async () => {
      const one = await pageThrough(node, { sk_prefix: "item-1" });
      assert.deepEqual(one.sks, SORTED.filter((sk) => sk.startsWith("item-1")));
      assert.equal(one.sks.length, 100);
      assertPages(one.pages, 100);
      const items = await pageThrough(node, { sk_prefix: "item-" });
      assert.equal(items.sks[0], "item-");
      assert.equal(items.sks.length, 239);
      const emoji = await pageThrough(node, { sk_prefix: "😀" });
      assert.deepEqual(emoji.sks, ["😀", "😀x"]);
      const reverse = await pageThrough(node, { sk_prefix: "item-1", reverse: true });
      assert.deepEqual(reverse.sks, one.sks.toReversed());
      const none = await pageThrough(node, { sk_prefix: "nothing" });
      assert.deepEqual(none.sks, []);
    });

    await step("start_after and end_before bound the range, exclusively, both ways", async () => {
      const expected = SORTED.filter((sk) =>
        compareUtf8(sk, "item-050") > 0 && compareUtf8(sk, "item-120") < 0
      );
      assert.equal(expected.length, 69);
      const forward = await pageThrough(node, { start_after: "item-050", end_before: "item-120" });
      assert.deepEqual(forward.sks, expected);
      assertPages(forward.pages, 69);
      // In reverse, start_after is the upper bound and end_before the lower one.
      const reverse = await pageThrough(node, {
        start_after: "item-120",
        end_before: "item-050",
        reverse: true,
      });
      assert.deepEqual(reverse.sks, expected.toReversed());
      // Cursors need not be stored sks.
      const between = await pageThrough(node, {
        start_after: "item-0505",
        end_before: "item-0525",
      });
      assert.deepEqual(between.sks, ["item-051", "item-052"]);
    });

    await step("ranges over non-ASCII sort keys follow byte order", async () => {
      const tail = await pageThrough(node, { start_after: "item-238" });
      assert.deepEqual(tail.sks, ["é", "éa", "Ω", "日本", "Ａ", "😀", "😀x"]);
      const head = await pageThrough(node, { start_after: "a", reverse: true });
      assert.deepEqual(head.sks, ["Z", "\u0000", ""]);
      const afterEmpty = await pageThrough(node, { start_after: "", end_before: "Z" });
      assert.deepEqual(afterEmpty.sks, ["\u0000"]);
    });

    await step("sk_prefix combines with start_after", async () => {
      const { sks } = await pageThrough(node, { sk_prefix: "item-1", start_after: "item-150" });
      assert.deepEqual(sks, SORTED.filter((sk) => sk > "item-150" && sk.startsWith("item-1")));
      assert.equal(sks.length, 49);
    });
  });
});
