import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { loadConfig } from "../config/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { statusOf } from "../api/problem.ts";
import { OperationalError } from "../util/errors.ts";
import { Membership } from "./membership.ts";
import { encodeBitmap, type NodeState } from "./message.ts";
import { INTERNAL_GET_PATH, INTERNAL_LIST_PATH, type RoutedKey, Router } from "./router.ts";

const SECRET = "router-test-secret-0123";
const NOW_MS = 1_700_000_000_000;

interface Seen {
  readonly path: string;
  readonly headers: Headers;
  readonly body: string;
}

/** An HTTP stand-in for a peer's internal port on 127.0.0.1, recording what it is asked. */
interface Peer {
  readonly addr: string;
  readonly requests: Seen[];
  close(): Promise<void>;
}

type Answer = (seen: Seen) => Response | Promise<Response>;

function startPeer(answer: Answer): Peer {
  const requests: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const seen = { path: new URL(req.url).pathname, headers: req.headers, body: await req.text() };
    requests.push(seen);
    return await answer(seen);
  });
  return {
    addr: `127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

/** A `host:port` nothing listens on: connecting to it is refused. */
function refusingAddr(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return `127.0.0.1:${port}`;
}

/** Records a peer holds, by `pk/sk`. */
type Records = Record<string, string>;

function record(pk: string, sk: string): string {
  return JSON.stringify({ pk, sk, data: { from: pk }, version: 1, created_at: 1, updated_at: 1 });
}

/** Answers `/internal/records/get` like a node: one line per key, `null` when absent. */
function getAnswer(records: Records): Answer {
  return ({ body }) => {
    const request = JSON.parse(body) as { records: { pk: string; sk: string }[] };
    const lines = request.records.map(({ pk, sk }) => records[`${pk}/${sk}`] ?? "null");
    return new Response(lines.join("\n"), { headers: { "content-type": "application/x-ndjson" } });
  };
}

function problem(status: number, code: string): Answer {
  return () =>
    new Response(
      JSON.stringify({
        type: `https://firescroll.dev/problems/${code}`,
        status,
        code,
        detail: code,
      }),
      { status, headers: { "content-type": "application/problem+json" } },
    );
}

/** Has `membership` observe peer `i` at `addr`, serving `serving` (a peer it has not seen yet). */
function join(
  membership: Membership,
  i: number,
  { addr, serving, state }: { addr: string; serving: number[]; state?: "alive" | "leaving" },
): void {
  const nodeState: NodeState = {
    v: 1,
    id: `peer-${i}`,
    namespace: "default",
    region: "ams",
    group: "g1",
    addr,
    inc: 1,
    seq: 1,
    ts: NOW_MS,
    state: state ?? "alive",
    partitions: 16,
    serving: encodeBitmap(serving, 16),
  };
  equal(membership.observe(nodeState, new Set(serving), `gossip-${i}:8192`), "new");
}

/** A membership whose members are the given peers (observed in this order) and the router. */
function cluster(
  members: { addr: string; serving: number[]; state?: "alive" | "leaving" }[],
  timeoutMs = 2000,
): { router: Router; metrics: Metrics; membership: Membership } {
  const membership = new Membership({
    instanceId: "self",
    namespace: "default",
    region: "ams",
    partitions: 16,
    broadcastMs: 500,
    maxClockSkewMs: 30_000,
    now: () => NOW_MS,
  });
  members.forEach((member, i) => join(membership, i, member));
  const metrics = createMetrics();
  // random() close to 1 keeps the owners in the order observed: the first is tried first.
  const config = loadConfig({ CLUSTER_SECRET: SECRET, PROXY_TIMEOUT_MS: String(timeoutMs) });
  const router = new Router(membership, {
    cluster: config.cluster,
    gossip: config.gossip,
    metrics,
    random: () => 0.999,
  });
  return { router, metrics, membership };
}

function proxied(metrics: Metrics, result: string): number {
  return metrics.proxyRequests.labels(result).value;
}

function key(pk: string, sk: string, partition: number): RoutedKey {
  return { pk, sk, partition };
}

async function closeAll(peers: Peer[]): Promise<void> {
  await Promise.all(peers.map((p) => p.close()));
}

function isUnavailable(partition: number) {
  return (error: unknown) => {
    ok(error instanceof OperationalError, String(error));
    equal(error.code, "partition_unavailable");
    equal(statusOf(error.code), 503);
    deepEqual(error.details, { partition });
    return true;
  };
}

Deno.test("get() asks each peer once for all its partitions and answers in key order", async () => {
  const a = startPeer(getAnswer({ "a0/x": record("a0", "x"), "a1/y": record("a1", "y") }));
  const b = startPeer(getAnswer({ "b2/z": record("b2", "z") }));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [0, 1] },
      { addr: b.addr, serving: [2] },
    ]);
    const keys = [
      key("a0", "x", 0),
      key("b2", "z", 2),
      key("a1", "y", 1),
      key("gone", "x", 0),
      key("gone", "z", 2),
      key("a1", "nope", 1),
    ];
    const after = new Map([[0, 5], [2, 7], [9, 1]]);
    const results = await router.get(keys, after, 250);
    deepEqual(results, [
      record("a0", "x"),
      record("b2", "z"),
      record("a1", "y"),
      null,
      null,
      null,
    ]);
    equal(a.requests.length, 1);
    equal(b.requests.length, 1);
    const askedA = JSON.parse(a.requests[0]!.body);
    deepEqual(
      askedA.records.map((r: { pk: string; sk: string }) => `${r.pk}/${r.sk}`).sort(),
      ["a0/x", "a1/nope", "a1/y", "gone/x"],
    );
    deepEqual(askedA.after, { "0": 5 }, "only the offsets of the peer's own partitions");
    equal(askedA.wait_ms, 250);
    deepEqual(JSON.parse(b.requests[0]!.body), {
      records: [{ pk: "b2", sk: "z" }, { pk: "gone", sk: "z" }],
      after: { "2": 7 },
      wait_ms: 250,
    });
    equal(proxied(metrics, "ok"), 2);
    equal(proxied(metrics, "retried"), 0);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("get() and list() send the cluster secret", async () => {
  const a = startPeer((seen) =>
    seen.path === INTERNAL_GET_PATH ? getAnswer({})(seen) : new Response('{"records":[]}')
  );
  try {
    const { router } = cluster([{ addr: a.addr, serving: [3] }]);
    await router.get([key("p", "s", 3)], new Map(), 0);
    await router.list(3, '{"pk":"p"}', 0);
    deepEqual(a.requests.map((r) => r.path), [INTERNAL_GET_PATH, INTERNAL_LIST_PATH]);
    for (const { headers } of a.requests) {
      equal(headers.get("authorization"), `Bearer ${SECRET}`);
      equal(headers.get("content-type"), "application/json");
    }
  } finally {
    await a.close();
  }
});

Deno.test("get() retries a partition on another peer when the first refuses the connection", async () => {
  const b = startPeer(getAnswer({ "k/s": record("k", "s") }));
  try {
    const { router, metrics } = cluster([
      { addr: refusingAddr(), serving: [0] },
      { addr: b.addr, serving: [0] },
    ]);
    deepEqual(await router.get([key("k", "s", 0), key("k", "t", 0)], new Map(), 0), [
      record("k", "s"),
      null,
    ]);
    equal(b.requests.length, 1);
    equal(proxied(metrics, "retried"), 1);
    equal(proxied(metrics, "ok"), 1);
    equal(proxied(metrics, "failed"), 0);
  } finally {
    await b.close();
  }
});

Deno.test("get() retries on another peer when the first answers 503 partition_unavailable", async () => {
  const a = startPeer(problem(503, "partition_unavailable"));
  const b = startPeer(getAnswer({ "k/s": record("k", "s") }));
  const c = startPeer(getAnswer({ "m/s": record("m", "s") }));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [0, 1] },
      { addr: c.addr, serving: [1] },
      { addr: b.addr, serving: [0] },
    ]);
    deepEqual(await router.get([key("k", "s", 0), key("m", "s", 1)], new Map(), 0), [
      record("k", "s"),
      record("m", "s"),
    ]);
    equal(a.requests.length, 1, "one request for both partitions");
    equal(b.requests.length, 1);
    equal(c.requests.length, 1);
    equal(proxied(metrics, "retried"), 2, "one per partition retried");
    equal(proxied(metrics, "ok"), 2);
  } finally {
    await closeAll([a, b, c]);
  }
});

Deno.test("get() and list() retry on another peer when the first answers a code outside the list", async () => {
  // A peer of another version may answer a code this node cannot pass on to its client.
  const a = startPeer(problem(400, "rate_limited"));
  const b = startPeer(getAnswer({ "k/s": record("k", "s") }));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [0] },
      { addr: b.addr, serving: [0] },
    ]);
    deepEqual(await router.get([key("k", "s", 0)], new Map(), 0), [record("k", "s")]);
    equal(a.requests.length, 1);
    equal(proxied(metrics, "retried"), 1);

    const alone = cluster([{ addr: a.addr, serving: [2] }]);
    await rejects(alone.router.list(2, "{}", 0), isUnavailable(2));
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("get() retries on another peer when the first answers a wrong number of lines", async () => {
  const a = startPeer(() => new Response("null\nnull\nnull"));
  const b = startPeer(getAnswer({}));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [0] },
      { addr: b.addr, serving: [0] },
    ]);
    deepEqual(await router.get([key("k", "s", 0)], new Map(), 0), [null]);
    equal(b.requests.length, 1);
    equal(proxied(metrics, "retried"), 1);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("get() fails with 503 partition_unavailable when the retry fails too", async () => {
  const a = startPeer(problem(503, "partition_unavailable"));
  const c = startPeer(problem(500, "internal_error"));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [4] },
      { addr: refusingAddr(), serving: [4] },
      { addr: c.addr, serving: [4] },
    ]);
    await rejects(router.get([key("k", "s", 4)], new Map(), 0), isUnavailable(4));
    equal(a.requests.length, 1);
    equal(c.requests.length, 0, "one retry, not two");
    equal(proxied(metrics, "retried"), 1);
    equal(proxied(metrics, "failed"), 1);
  } finally {
    await closeAll([a, c]);
  }
});

Deno.test("get() fails with 503 rather than reporting keys missing when the only owner fails", async () => {
  const a = startPeer(problem(503, "partition_unavailable"));
  const b = startPeer(getAnswer({ "k/s": record("k", "s") }));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [4] },
      { addr: b.addr, serving: [5] },
    ]);
    await rejects(router.get([key("k", "s", 5), key("k", "s", 4)], new Map(), 0), isUnavailable(4));
    equal(proxied(metrics, "failed"), 1);
    equal(proxied(metrics, "retried"), 0, "there was no other peer to retry on");
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("get() passes a peer's 504 not_caught_up to the client without retrying", async () => {
  const a = startPeer(problem(504, "not_caught_up"));
  const b = startPeer(getAnswer({}));
  try {
    const { router, metrics } = cluster([
      { addr: a.addr, serving: [0] },
      { addr: b.addr, serving: [0] },
    ]);
    await rejects(router.get([key("k", "s", 0)], new Map([[0, 99]]), 100), (error: unknown) => {
      ok(error instanceof OperationalError);
      equal(statusOf(error.code), 504);
      equal(error.code, "not_caught_up");
      return true;
    });
    equal(b.requests.length, 0);
    equal(proxied(metrics, "retried"), 0);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("get() and list() fail with 503 at once when no alive peer serves the partition", async () => {
  const a = startPeer(getAnswer({}));
  try {
    const { router, metrics } = cluster([{ addr: a.addr, serving: [1] }]);
    await rejects(router.get([key("k", "s", 1), key("k", "s", 2)], new Map(), 0), isUnavailable(2));
    await rejects(router.list(2, "{}", 0), isUnavailable(2));
    equal(a.requests.length, 0, "nothing is sent when one partition has no owner");
    equal(proxied(metrics, "unavailable"), 2);
  } finally {
    await a.close();
  }
});

Deno.test("get() still routes to a leaving peer when no alive one serves the partition", async () => {
  const a = startPeer(getAnswer({ "k/s": record("k", "s") }));
  try {
    const { router } = cluster([{ addr: a.addr, serving: [1], state: "leaving" }]);
    deepEqual(await router.get([key("k", "s", 1)], new Map(), 0), [record("k", "s")]);
  } finally {
    await a.close();
  }
});

Deno.test("list() sends the client's body verbatim and returns the peer's answer verbatim", async () => {
  const answer = '{"records":[{"pk":"p","sk":"a","data":{"n":1.50}}],"next":"a"}';
  const a = startPeer(() =>
    new Response(answer, { headers: { "content-type": "application/json" } })
  );
  try {
    const { router, metrics } = cluster([{ addr: a.addr, serving: [7] }]);
    const body = '{"pk":"p",  "limit":1,"after":{"7":3},"wait_ms":10}';
    equal(await router.list(7, body, 10), answer);
    equal(a.requests.length, 1);
    equal(a.requests[0]!.path, INTERNAL_LIST_PATH);
    equal(a.requests[0]!.body, body);
    equal(proxied(metrics, "ok"), 1);
  } finally {
    await a.close();
  }
});

Deno.test("list() retries once on another peer, then fails with 503", async () => {
  const a = startPeer(problem(503, "partition_unavailable"));
  const b = startPeer(() => new Response('{"records":[],"next":null}'));
  try {
    const retried = cluster([{ addr: a.addr, serving: [2] }, { addr: b.addr, serving: [2] }]);
    equal(await retried.router.list(2, "{}", 0), '{"records":[],"next":null}');
    equal(proxied(retried.metrics, "retried"), 1);

    const failing = cluster([
      { addr: a.addr, serving: [2] },
      { addr: refusingAddr(), serving: [2] },
      { addr: b.addr, serving: [2] },
    ]);
    await rejects(failing.router.list(2, "{}", 0), isUnavailable(2));
    equal(proxied(failing.metrics, "retried"), 1);
    equal(proxied(failing.metrics, "failed"), 1);
    equal(b.requests.length, 1, "the third owner is never tried");

    const alone = cluster([{ addr: a.addr, serving: [2] }]);
    await rejects(alone.router.list(2, "{}", 0), isUnavailable(2));
    equal(proxied(alone.metrics, "retried"), 0, "there was no other peer to retry on");
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("list() passes a peer's 504 not_caught_up and 400 to the client", async () => {
  const late = startPeer(problem(504, "not_caught_up"));
  const picky = startPeer(problem(400, "invalid_request"));
  try {
    for (
      const [peer, status, code] of [[late, 504, "not_caught_up"], [
        picky,
        400,
        "invalid_request",
      ]] as const
    ) {
      const { router } = cluster([{ addr: peer.addr, serving: [2] }, {
        addr: refusingAddr(),
        serving: [2],
      }]);
      await rejects(router.list(2, "{}", 0), (error: unknown) => {
        ok(error instanceof OperationalError);
        equal(statusOf(error.code), status);
        equal(error.code, code);
        return true;
      });
    }
  } finally {
    await closeAll([late, picky]);
  }
});

Deno.test("get() and list() give up on a peer that never answers after timeoutMs", async () => {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const silent = startPeer(async () => {
    await released;
    return new Response("too late");
  });
  const b = startPeer(getAnswer({ "k/s": record("k", "s") }));
  try {
    const alone = cluster([{ addr: silent.addr, serving: [0] }], 100);
    let started = performance.now();
    await rejects(alone.router.get([key("k", "s", 0)], new Map(), 0), isUnavailable(0));
    let tookMs = performance.now() - started;
    ok(tookMs >= 90 && tookMs < 1000, `gave up after ${tookMs} ms`);

    started = performance.now();
    await rejects(alone.router.list(0, "{}", 0), isUnavailable(0));
    tookMs = performance.now() - started;
    ok(tookMs >= 90 && tookMs < 1000, `gave up after ${tookMs} ms`);

    const withBackup = cluster([{ addr: silent.addr, serving: [0] }, {
      addr: b.addr,
      serving: [0],
    }], 100);
    started = performance.now();
    deepEqual(await withBackup.router.get([key("k", "s", 0)], new Map(), 0), [record("k", "s")]);
    tookMs = performance.now() - started;
    ok(tookMs < 1000, `answered after ${tookMs} ms`);
    equal(proxied(withBackup.metrics, "retried"), 1);
  } finally {
    release();
    await closeAll([silent, b]);
  }
});

Deno.test("the proxy timeout stretches by the read's wait_ms", async () => {
  const slow = startPeer(async (seen) => {
    await new Promise((resolve) => setTimeout(resolve, 150));
    return getAnswer({ "k/s": record("k", "s") })(seen);
  });
  try {
    const { router } = cluster([{ addr: slow.addr, serving: [0] }], 50);
    deepEqual(await router.get([key("k", "s", 0)], new Map(), 400), [record("k", "s")]);
  } finally {
    await slow.close();
  }
});

Deno.test("servedByAlivePeer() counts alive peers only, not leaving ones", () => {
  const { router } = cluster([
    { addr: "127.0.0.1:1", serving: [1] },
    { addr: "127.0.0.1:2", serving: [2], state: "leaving" },
  ]);
  equal(router.servedByAlivePeer(1), true);
  equal(router.servedByAlivePeer(2), false);
  equal(router.servedByAlivePeer(3), false);
});

Deno.test("concurrent proxied reads to one peer share internal requests and each gets its answer", async () => {
  const records: Records = {};
  for (let i = 0; i < 40; i++) records[`k${i}/s`] = record(`k${i}`, "s");
  const peer = startPeer(async (seen) => {
    // A slow peer: reads pile up behind the requests in flight and then share the next one.
    await new Promise((resolve) => setTimeout(resolve, 20));
    return getAnswer(records)(seen);
  });
  try {
    const { router } = cluster([{ addr: peer.addr, serving: [0] }]);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => router.get([key(`k${i}`, "s", 0)], new Map(), 0)),
    );
    answers.forEach((answer, i) => deepEqual(answer, [record(`k${i}`, "s")]));
    ok(peer.requests.length < 40, `${peer.requests.length} internal requests for 40 reads`);
    ok(peer.requests.length >= 2, "the first reads go out at once, without waiting");
  } finally {
    await peer.close();
  }
});

Deno.test("a read without wait_ms follows a partition a leaving peer hands over until gossip names the new owner", async () => {
  const leaving = startPeer(problem(503, "partition_unavailable"));
  const taker = startPeer((seen) =>
    seen.path === INTERNAL_GET_PATH
      ? getAnswer({ "k/s": record("k", "s") })(seen)
      : new Response('{"records":[],"next":null}')
  );
  try {
    // The leaving owner closed partition 4 after a peer took it over; the news is on its way.
    const { router, membership } = cluster([
      { addr: leaving.addr, serving: [4], state: "leaving" },
    ]);
    const started = Date.now();
    setTimeout(() => join(membership, 9, { addr: taker.addr, serving: [4] }), 200);
    deepEqual(await router.get([key("k", "s", 4)], new Map(), 0), [record("k", "s")]);
    ok(Date.now() - started < 1500, "followed for at most three gossip rounds");
    ok(leaving.requests.length >= 1, "the leaving owner was asked first");
    equal(await router.list(4, "{}", 0), '{"records":[],"next":null}');

    // The leaving peer already says it serves nothing: no owner is known, and it is followed too.
    const gone = cluster([{ addr: leaving.addr, serving: [], state: "leaving" }]);
    setTimeout(() => join(gone.membership, 9, { addr: taker.addr, serving: [4] }), 200);
    deepEqual(await gone.router.get([key("k", "s", 4)], new Map(), 0), [record("k", "s")]);
  } finally {
    await closeAll([leaving, taker]);
  }
});

Deno.test("a partition no peer serves is 503 at once without wait_ms, and after three gossip rounds when a peer is leaving", async () => {
  const quiet = cluster([{ addr: refusingAddr(), serving: [1] }]);
  let started = Date.now();
  await rejects(quiet.router.get([key("k", "s", 4)], new Map(), 0), isUnavailable(4));
  ok(Date.now() - started < 200, "no peer is leaving: nothing to follow");

  const leaving = cluster([{ addr: refusingAddr(), serving: [1], state: "leaving" }]);
  started = Date.now();
  await rejects(leaving.router.get([key("k", "s", 4)], new Map(), 0), isUnavailable(4));
  const waited = Date.now() - started;
  ok(waited >= 1400 && waited < 3000, `followed ${waited} ms: three gossip rounds of 500 ms`);
});
