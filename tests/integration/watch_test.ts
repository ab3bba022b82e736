/**
 * Watch (`/records/watch`) on real node processes: with serving threads, every change of a
 * writer burst from several clients reaches every watcher exactly once and in order per
 * partition, on each thread; a watcher resumes across a node restart from its last id with no gap
 * and no duplicate; with Kafka, two replica groups stream the same events (same ids, same data)
 * and end with the same stores.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { freshNamespace, KAFKA, needsKafka, startKafkaNode, waitFor } from "./_kafka.ts";
import { fixedPort, partitionStatus, startNode, type TestNode } from "./_node.ts";
import { positionOf, type SeenEvent, WatchClient } from "./_watch.ts";

const PARTITIONS = 4;
const EVENT_WAIT_MS = 20_000;

/** A change a test expects: `kind pk/sk@offset`. */
type Change = string;

function describe(event: SeenEvent): Change {
  const { pk, sk, version } = event.data as { pk: string; sk: string; version: number };
  return `${event.event} ${pk}/${sk}@${version}`;
}

/**
 * `writers` clients each send `rounds` writes to `node`: puts of one record, puts of two records
 * of one pk (one message with two changes), and deletes of a record written before. Returns the
 * changes the acknowledgements promise, in no particular order.
 */
async function burst(
  node: TestNode,
  label: string,
  writers: number,
  rounds: number,
): Promise<Change[]> {
  const changes: Change[] = [];
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; i < rounds; i++) {
      // Rounds 3j, 3j+1 and 3j+2 share a pk: the delete removes the record of the round before.
      const pk = `${label}-w${w}-${Math.floor(i / 3) % 5}`;
      const kind = i % 3;
      if (kind === 2) {
        const sk = `k${i - 1}`;
        const result = await node.post("/records/delete", { records: [{ pk, sk }] });
        assert.equal(result.status, 200, result.text);
        const offset = result.json.offsets[String(partitionOf(pk, PARTITIONS))];
        changes.push(`delete ${pk}/${sk}@${offset}`);
        continue;
      }
      const records = kind === 0
        ? [{ pk, sk: `k${i}`, data: { w, i } }]
        : [{ pk, sk: `k${i}`, data: { w, i } }, { pk, sk: `k${i}b`, data: { w, i, b: true } }];
      const result = await node.post("/records/put", { records });
      assert.equal(result.status, 200, result.text);
      const offset = result.json.offsets[String(partitionOf(pk, PARTITIONS))];
      for (const r of records) changes.push(`put ${pk}/${r.sk}@${offset}`);
    }
  }));
  return changes;
}

/** Checks that `events` are exactly `expected` (as a multiset) and ordered per partition. */
function assertExactlyOnceInOrder(events: SeenEvent[], expected: Change[], who: string): void {
  assert.deepEqual(events.map(describe).sort(), [...expected].sort(), `${who}: the changes`);
  const last = new Map<number, [number, number]>();
  for (const event of events) {
    const partition = partitionOf((event.data as { pk: string }).pk, PARTITIONS);
    const position = positionOf(event.id, partition);
    const before = last.get(partition);
    assert.ok(
      before === undefined || position[0] > before[0] ||
        (position[0] === before[0] && position[1] > before[1]),
      `${who}: ${event.id} after ${before} in partition ${partition}`,
    );
    last.set(partition, position);
  }
}

/** Opens watchers until there is one on each of `threads` serving threads (and `extra` more). */
async function watchersOnEveryThread(
  url: string,
  query: string,
  threads: number,
): Promise<WatchClient[]> {
  const kept: WatchClient[] = [];
  const seen = new Set<number>();
  for (let attempt = 0; attempt < 60 && seen.size < threads; attempt++) {
    const watcher = await WatchClient.open(url, query);
    await waitFor(
      "the stream's first comment",
      5000,
      () => Promise.resolve(watcher.thread !== null ? true : null),
    );
    if (seen.has(watcher.thread!)) {
      await watcher.close();
      continue;
    }
    seen.add(watcher.thread!);
    kept.push(watcher);
  }
  assert.equal(seen.size, threads, `watch streams landed on threads ${[...seen]} only`);
  return kept;
}

Deno.test(
  "watch on every serving thread: a burst from several writers reaches each watcher exactly once, in order, and resumes across a restart",
  {
    sanitizeOps: false,
    sanitizeResources: false,
  },
  async () => {
    const port = fixedPort(18_700);
    const env = {
      PARTITIONS: String(PARTITIONS),
      SERVE_THREADS: "2",
      API_PORT: String(port),
      WATCH_HEARTBEAT_MS: "200",
    };
    let node = await startNode({ env });
    const dbPath = node.dbPath;
    const watchers: WatchClient[] = [];
    try {
      // Every change on each thread, and one pk's changes on one of them.
      watchers.push(...await watchersOnEveryThread(node.apiUrl, "", 2));
      const pkWatcher = await WatchClient.open(node.apiUrl, "pk=before-w0-1");
      const expected = await burst(node, "before", 3, 30);
      for (const [i, watcher] of watchers.entries()) {
        await watcher.until(
          "every change of the burst",
          EVENT_WAIT_MS,
          (e) => e.length >= expected.length,
        );
        assertExactlyOnceInOrder(
          watcher.events,
          expected,
          `watcher ${i} (thread ${watcher.thread})`,
        );
      }
      const ofPk = expected.filter((c) => c.includes(" before-w0-1/"));
      await pkWatcher.until("the pk's changes", EVENT_WAIT_MS, (e) => e.length >= ofPk.length);
      assertExactlyOnceInOrder(pkWatcher.events, ofPk, "pk watcher");
      await pkWatcher.close();

      // A restart ends the streams; each resumes from its last id on the new process.
      const stopped = Promise.all(watchers.map((w) => w.ended));
      await node.stop("SIGTERM");
      await stopped;
      const lastIds = watchers.map((w) => w.lastId!);
      node = await startNode({ env, dbPath });
      const more = await burst(node, "after", 2, 20);
      const resumed = await Promise.all(lastIds.map((id) => WatchClient.open(node.apiUrl, "", id)));
      const later = await burst(node, "later", 2, 10);
      for (const [i, watcher] of resumed.entries()) {
        const wanted = [...more, ...later];
        await watcher.until(
          "every change after the restart",
          EVENT_WAIT_MS,
          (e) => e.length >= wanted.length,
        );
        assertExactlyOnceInOrder(watcher.events, wanted, `resumed watcher ${i}`);
        await watcher.close();
      }
    } finally {
      for (const watcher of watchers) {
        await watcher.close();
      }
      await node.cleanup();
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
);

Deno.test({
  name:
    "watch with Kafka: two replica groups stream the same events with the same ids and end with the same stores",
  ...needsKafka,
  async fn() {
    assert.ok(KAFKA !== null);
    const namespace = freshNamespace("watch");
    // A short history: pruned during the test, the same way on both groups.
    const env = { PARTITIONS: String(PARTITIONS), WATCH_RETAIN_SEC: "3", HISTORY_RETAIN_SEC: "3" };
    const a = await startKafkaNode(namespace, "ga", env);
    const b = await startKafkaNode(namespace, "gb", env);
    try {
      const start = Array.from({ length: PARTITIONS }, (_, p) => `${p}:-1`).join(",");
      const onA = await WatchClient.open(a.apiUrl, "", start);
      const onB = await WatchClient.open(b.apiUrl, "", start);
      // Writes through both nodes: one log, so one order per partition. Some records expire:
      // their purges (driven by both groups' ticks) must be the same events on both.
      const expected = (await Promise.all([burst(a, "ka", 2, 15), burst(b, "kb", 2, 15)])).flat();
      for (let i = 0; i < 4; i++) {
        const pk = `ttl${i}`;
        const result = await (i % 2 === 0 ? a : b).post("/records/put", {
          records: [{ pk, sk: "x", data: i, ttl_ms: 300 }],
        });
        assert.equal(result.status, 200, result.text);
        expected.push(`put ${pk}/x@${result.json.offsets[String(partitionOf(pk, PARTITIONS))]}`);
      }
      const expiring = 4;
      for (const [name, watcher] of [["a", onA], ["b", onB]] as const) {
        const total = expected.length + expiring;
        await watcher.until("every change and expiry", EVENT_WAIT_MS, (e) => e.length >= total);
        const changes = watcher.events.filter((e) => e.event !== "expire");
        assertExactlyOnceInOrder(changes, expected, `group ${name}`);
        const expired = watcher.events.filter((e) => e.event === "expire");
        assert.deepEqual(expired.map((e) => e.data.pk).sort(), ["ttl0", "ttl1", "ttl2", "ttl3"]);
      }
      // Same ids, same events, same data — per partition, in the same order.
      const byPartition = (events: SeenEvent[]) => {
        const out = new Map<number, string[]>();
        for (const e of events) {
          const p = partitionOf((e.data as { pk: string }).pk, PARTITIONS);
          const list = out.get(p) ?? [];
          list.push(`${positionOf(e.id, p).join(":")} ${e.event} ${JSON.stringify(e.data)}`);
          out.set(p, list);
        }
        return out;
      };
      assert.deepEqual(byPartition(onA.events), byPartition(onB.events));
      await onA.close();
      await onB.close();
      // Past the retention, one more write per partition prunes what is older on both.
      await new Promise((r) => setTimeout(r, 3500));
      const pks = ["ka-w0-0", "ka-w0-1", "kb-w1-2", "ttl0"];
      for (let p = 0; p < PARTITIONS; p++) {
        const pk = Array.from({ length: 100 }, (_, i) => `late${i}`)
          .find((k) => partitionOf(k, PARTITIONS) === p)!;
        pks.push(pk);
        assert.equal(
          (await a.post("/records/put", { records: [{ pk, sk: "k0", data: p }] })).status,
          200,
        );
      }
      // And the same stores: offsets, hash chains and content digests.
      const [sa, sb] = await waitFor("both groups at the same offsets", 20_000, async () => {
        const sa = await partitionStatus(a);
        const sb = await partitionStatus(b);
        const same = Object.keys(sa).every((p) => sa[p]!.offset === sb[p]?.offset);
        return same ? [sa, sb] : null;
      });
      assert.equal(Object.keys(sa).length, PARTITIONS);
      for (const p of Object.keys(sa)) {
        assert.equal(sa[p]!.chain, sb[p]!.chain, `chain of partition ${p}`);
        assert.match(sa[p]!.digest, /^[0-9a-f]{32}$/);
        assert.equal(sa[p]!.digest, sb[p]!.digest, `digest of partition ${p}`);
      }
      // The same histories, pruned to the same horizon, and the same reads of the past.
      for (const pk of pks) {
        const body = { pk, sk: "k0" };
        const [ha, hb] = [
          await a.post("/records/history", body),
          await b.post("/records/history", body),
        ];
        assert.equal(ha.status, 200, ha.text);
        assert.equal(ha.text, hb.text, `history of ${pk}`);
        const p = String(partitionOf(pk, PARTITIONS));
        const since = ha.json.since as number;
        const asOf = { records: [body], as_of: { [p]: since + 1 } };
        const [ga, gb] = [await a.post("/records/get", asOf), await b.post("/records/get", asOf)];
        assert.equal(ga.text, gb.text, `${pk} as of ${since + 1}`);
      }
      const pruned = await a.post("/records/history", { pk: pks.at(-1)!, sk: "k0" });
      assert.ok(pruned.json.since >= 0, "the history was pruned");
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  },
});
