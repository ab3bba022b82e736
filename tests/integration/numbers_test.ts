/**
 * `data` comes back exactly as accepted (DESIGN §3): numbers a double can not hold (`1e400`,
 * `1e-400`, `9007199254740993`, 400-digit integers) and spellings a double would rewrite (`-0`,
 * `1E5`, `1.50`) are stored and returned byte for byte — by get, list, proxied reads, after a
 * restart, and on every replica group. Only whitespace goes.
 */
import assert from "node:assert/strict";
import {
  freshNamespace,
  mergeOffsets,
  needsKafka,
  startKafkaNode,
  waitFor,
  waitForOffsets,
  waitForSplit,
} from "./_kafka.ts";
import { assertProblem, partitionStatus, startNode, type TestNode } from "./_node.ts";

/** sk → [data as the client sends it, data as it must come back]. */
const CASES: ReadonlyArray<readonly [string, string, string]> = [
  ["huge", "1e400", "1e400"],
  ["tiny", "1e-400", "1e-400"],
  ["unsafe", "9007199254740993", "9007199254740993"],
  ["negative-zero", "-0", "-0"],
  ["upper-e", "1E5", "1E5"],
  ["small", "0.1e-7", "0.1e-7"],
  ["trailing-zero", "1.50", "1.50"],
  ["digits", "1" + "7".repeat(399), "1" + "7".repeat(399)],
  ["negative-digits", "-" + "9".repeat(400), "-" + "9".repeat(400)],
  ["plain", "[1, 2.5, -3, 1e-7]", "[1,2.5,-3,1e-7]"],
  [
    "nested",
    ' { "a" : [ 1e400 , { "b" : -0 } , [ [ 1.50 ] ] ] ,\n\t"s" : "1e400 : -0" , "n" : null } ',
    '{"a":[1e400,{"b":-0},[[1.50]]],"s":"1e400 : -0","n":null}',
  ],
];

/** The pk of case `i`: several pks, so the records spread over partitions. */
function pkOf(i: number): string {
  return `numbers:${i}`;
}

/** The JSON text the node must answer for case `i` (pk, sk and data, byte for byte). */
function expectedPrefix(i: number): string {
  const [sk, , stored] = CASES[i]!;
  return `{"pk":${JSON.stringify(pkOf(i))},"sk":${JSON.stringify(sk)},"data":${stored},"version":`;
}

/** Writes every case as a raw body (never through JSON.stringify) and returns the offsets. */
async function writeCases(node: TestNode): Promise<Record<string, number>> {
  const offsets: Record<string, number> = {};
  // Half through put (all in one request), half through single-op batches: both parse bodies.
  const puts = CASES.map(([sk, sent], i) =>
    i % 2 === 0 ? `{"pk":${JSON.stringify(pkOf(i))},"sk":${JSON.stringify(sk)},"data":${sent}}` : ""
  ).filter((r) => r !== "");
  const put = await node.post("/records/put", `{"records":[${puts.join(",")}]}`);
  assert.equal(put.status, 200, put.text);
  mergeOffsets(offsets, put.json.offsets);
  for (let i = 1; i < CASES.length; i += 2) {
    const [sk, sent] = CASES[i]!;
    const batch = await node.post(
      "/records/batch",
      `{ "ops" : [ { "op" : "put" , "pk" : ${JSON.stringify(pkOf(i))} , "sk" : ${
        JSON.stringify(sk)
      } , "data" : ${sent} } ] }`,
    );
    assert.equal(batch.status, 200, batch.text);
    mergeOffsets(offsets, batch.json.offsets);
  }
  return offsets;
}

/** Reads every case with one get and with one list per pk; each must come back byte-exact. */
async function assertExact(node: TestNode, offsets: Record<string, number>, label: string) {
  const keys = CASES.map(([sk], i) => ({ pk: pkOf(i), sk }));
  const got = await node.post("/records/get", { records: keys, after: offsets, wait_ms: 10_000 });
  assert.equal(got.status, 200, got.text);
  for (let i = 0; i < CASES.length; i++) {
    assert.ok(got.text.includes(expectedPrefix(i)), `${label} get ${CASES[i]![0]}: ${got.text}`);
  }
  for (let i = 0; i < CASES.length; i++) {
    const list = await node.post("/records/list", { pk: pkOf(i), after: offsets, wait_ms: 10_000 });
    assert.equal(list.status, 200, list.text);
    assert.ok(
      list.text.startsWith(`{"records":[${expectedPrefix(i)}`),
      `${label} list ${CASES[i]![0]}: ${list.text}`,
    );
  }
}

Deno.test("a node returns every number in data exactly as sent, before and after a restart", async () => {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_numbers_" });
  const nodes: TestNode[] = [];
  try {
    const first = await startNode({ env: { PARTITIONS: "4" }, dbPath });
    nodes.push(first);
    const offsets = await writeCases(first);
    await assertExact(first, offsets, "first");
    assert.equal(await first.stop("SIGTERM"), 0);
    const second = await startNode({ env: { PARTITIONS: "4" }, dbPath });
    nodes.push(second);
    await assertExact(second, offsets, "after restart");
  } finally {
    await Promise.all(nodes.map((n) => n.cleanup()));
    await Deno.remove(dbPath, { recursive: true });
  }
});

Deno.test("a write whose data names a member twice is refused and stores nothing", async () => {
  const node = await startNode({});
  try {
    const put = await node.post(
      "/records/put",
      '{"records":[{"pk":"d","sk":"1","data":{"a":1,"b":"k:v","a":2}}]}',
    );
    assertProblem(put, 400, "invalid_json");
    assert.match(put.json.detail, /"a" twice/);
    const batch = await node.post(
      "/records/batch",
      '{"ops":[{"op":"put","pk":"d","sk":"2","data":[{"x":{"y":1,"\\u0079":2}}]}]}',
    );
    assertProblem(batch, 400, "invalid_json");
    const got = await node.post("/records/get", {
      records: [{ pk: "d", sk: "1" }, { pk: "d", sk: "2" }],
    });
    assert.equal(got.json.records.length, 0, got.text);
    // The same name in sibling objects and colons in strings are fine.
    const fine = '{"o":[{"a":1},{"a":2}],"u":"http://h:1/a:b"}';
    const ok = await node.post(
      "/records/put",
      `{"records":[{"pk":"d","sk":"3","data":${fine}}]}`,
    );
    assert.equal(ok.status, 200, ok.text);
    const back = await node.post("/records/get", {
      records: [{ pk: "d", sk: "3" }],
      after: ok.json.offsets,
      wait_ms: 5000,
    });
    assert.ok(back.text.includes(`"data":${fine},`), back.text);
  } finally {
    await node.cleanup();
  }
});

const SECRET = "numbers-test-secret-0123456789";
/** Fixed gossip ports (UDP, loopback, below the ephemeral range) of the two group-a nodes. */
const GOSSIP_PORTS = [18_492, 18_493] as const;

Deno.test({
  name: "every replica group stores the same exact numbers, and proxied reads return them as sent",
  ...needsKafka,
  fn: async () => {
    const ns = freshNamespace("numbers");
    const nodes: TestNode[] = [];
    try {
      // Group a splits the partitions over two nodes that proxy reads to each other (gossip on
      // two fixed loopback ports); group b holds a full copy on its own.
      const gossip = (own: number, peer: number) => ({
        CLUSTER_SECRET: SECRET,
        GOSSIP_PORT: String(own),
        GOSSIP_PEERS: `127.0.0.1:${peer}`,
        GOSSIP_BROADCAST_MS: "200",
      });
      nodes.push(await startKafkaNode(ns, "a", gossip(GOSSIP_PORTS[0], GOSSIP_PORTS[1])));
      nodes.push(await startKafkaNode(ns, "a", gossip(GOSSIP_PORTS[1], GOSSIP_PORTS[0])));
      nodes.push(await startKafkaNode(ns, "b"));
      await waitForSplit(nodes.slice(0, 2), 8);
      for (const node of nodes.slice(0, 2)) {
        await waitFor("the peer to be alive and serving", 20_000, async () => {
          const status = await node.internal("/internal/status", {
            authorization: `Bearer ${SECRET}`,
          });
          const members: { state: string; serving: number[] }[] = status.json.members;
          return members.some((m) => m.state === "alive" && m.serving.length > 0) ? true : null;
        });
      }
      const offsets = await writeCases(nodes[0]!);
      await Promise.all(nodes.map((n) => waitForOffsets(n, offsets)));
      for (const [i, node] of nodes.entries()) await assertExact(node, offsets, `node ${i}`);
      for (const node of nodes.slice(0, 2)) {
        const metrics = (await node.internal("/metrics")).text;
        const proxied = metrics.match(
          /^firescroll_cluster_proxy_requests_total\{result="ok"\} (\d+)$/m,
        );
        assert.ok(Number(proxied?.[1] ?? 0) > 0, "group a answered no read through its peer");
      }
      // The second group applied the same bytes: same chains at the same offsets.
      const [a0, a1, b] = await Promise.all(nodes.map((n) => partitionStatus(n)));
      for (const [p, offset] of Object.entries(offsets)) {
        const owner = a0![p]?.state === "serving" ? a0![p]! : a1![p]!;
        assert.equal(owner.offset, offset, `p${p}`);
        assert.equal(b![p]!.offset, offset, `p${p}`);
        assert.equal(b![p]!.chain, owner.chain, `p${p} chains differ`);
      }
    } finally {
      await Promise.all(nodes.map((n) => n.cleanup()));
    }
  },
});
