import { deepEqual, equal, ok } from "node:assert/strict";
import { type Health, Membership } from "./membership.ts";
import { encodeBitmap, type NodeState } from "./message.ts";

const INTERVAL_MS = 100;
const SKEW_MS = 30_000;
const START_MS = 1_700_000_000_000;

/** A table whose clock only moves when the test moves it. */
function table() {
  const clock = { now: START_MS };
  const membership = new Membership({
    instanceId: "self",
    namespace: "default",
    region: "ams",
    partitions: 16,
    broadcastMs: INTERVAL_MS,
    maxClockSkewMs: SKEW_MS,
    now: () => clock.now,
  });
  return { clock, membership };
}

function nodeState(id: string, overrides: Partial<NodeState> = {}): NodeState {
  return {
    v: 1,
    id,
    namespace: "default",
    region: "ams",
    group: "g1",
    addr: `${id}.internal:8191`,
    inc: START_MS - 60_000,
    seq: 1,
    ts: START_MS,
    state: "alive",
    partitions: 16,
    serving: encodeBitmap([], 16),
    ...overrides,
  };
}

/** Observes `id` serving `serving` at the table's current time. */
function see(
  t: ReturnType<typeof table>,
  id: string,
  serving: number[],
  overrides: Partial<NodeState> = {},
) {
  return t.membership.observe(
    nodeState(id, { ts: t.clock.now, ...overrides }),
    new Set(serving),
    `${id}.gossip:8192`,
  );
}

function healthOf(membership: Membership, id: string): Health | undefined {
  return membership.list().find(({ member }) => member.id === id)?.health;
}

Deno.test("observe() takes a member it has never seen as new, with what it said", () => {
  const t = table();
  equal(see(t, "b", [1, 2], { group: "g2" }), "new");
  const [entry, ...rest] = t.membership.list();
  equal(rest.length, 0);
  equal(entry?.health, "alive");
  deepEqual(entry?.member, {
    id: "b",
    group: "g2",
    addr: "b.internal:8191",
    inc: START_MS - 60_000,
    seq: 1,
    state: "alive",
    serving: new Set([1, 2]),
    seenAt: START_MS,
    gossipAddr: "b.gossip:8192",
  });
});

Deno.test("observe() takes a later sequence or a later incarnation as updated", () => {
  const t = table();
  see(t, "b", [1], { seq: 5 });
  t.clock.now += 50;
  equal(see(t, "b", [1, 2], { seq: 6 }), "updated");
  deepEqual(t.membership.list()[0]?.member.serving, new Set([1, 2]));
  equal(t.membership.list()[0]?.member.seenAt, START_MS + 50);
  // A restart: new incarnation, sequence starts over.
  equal(see(t, "b", [3], { inc: START_MS, seq: 1 }), "updated");
  deepEqual(t.membership.list()[0]?.member.serving, new Set([3]));
});

Deno.test("observe() drops a repeated, older or earlier-incarnation state as stale", () => {
  const t = table();
  see(t, "b", [1], { seq: 5 });
  t.clock.now += 50;
  equal(see(t, "b", [2], { seq: 5 }), "stale");
  equal(see(t, "b", [2], { seq: 4 }), "stale");
  equal(see(t, "b", [2], { inc: START_MS - 120_000, seq: 99 }), "stale");
  const member = t.membership.list()[0]?.member;
  deepEqual(member?.serving, new Set([1]));
  equal(member?.seenAt, START_MS, "a stale datagram does not count as a sign of life");
});

Deno.test("observe() drops a state sent further than maxClockSkewMs from now as stale", () => {
  const t = table();
  equal(see(t, "b", [1], { ts: START_MS - SKEW_MS - 1 }), "stale");
  equal(see(t, "b", [1], { ts: START_MS + SKEW_MS + 1 }), "stale");
  equal(t.membership.list().length, 0);
  equal(see(t, "b", [1], { ts: START_MS - SKEW_MS }), "new");
  equal(see(t, "c", [1], { ts: START_MS + SKEW_MS }), "new");
});

Deno.test("observe() ignores another region, namespace or partition count as foreign", () => {
  const t = table();
  equal(see(t, "b", [1], { region: "fra" }), "foreign");
  equal(see(t, "b", [1], { namespace: "other" }), "foreign");
  equal(see(t, "b", [1], { partitions: 32 }), "foreign");
  equal(t.membership.list().length, 0);
});

Deno.test("observe() ignores this node's own state as self", () => {
  const t = table();
  equal(see(t, "self", [1]), "self");
  equal(t.membership.list().length, 0);
  equal(t.membership.servedElsewhere(1), false);
});

Deno.test("a silent member turns suspect after 3 intervals and is forgotten after 10", () => {
  const t = table();
  see(t, "b", [1]);
  see(t, "c", [1]);
  t.clock.now = START_MS + 3 * INTERVAL_MS;
  equal(healthOf(t.membership, "b"), "alive");
  t.clock.now += 1;
  equal(healthOf(t.membership, "b"), "suspect");
  t.clock.now = START_MS + 10 * INTERVAL_MS;
  see(t, "c", [1], { seq: 2 }); // c speaks again; b does not
  deepEqual(t.membership.prune(), []);
  equal(healthOf(t.membership, "b"), "suspect");
  t.clock.now += 1;
  equal(healthOf(t.membership, "b"), undefined, "list() hides a member due to be forgotten");
  deepEqual(t.membership.prune(), ["b"]);
  deepEqual(t.membership.prune(), []);
  deepEqual(t.membership.list().map(({ member, health }) => [member.id, health]), [["c", "alive"]]);
});

Deno.test("a suspect member that speaks again is alive", () => {
  const t = table();
  see(t, "b", [1]);
  t.clock.now += 5 * INTERVAL_MS;
  equal(healthOf(t.membership, "b"), "suspect");
  equal(see(t, "b", [1], { seq: 2 }), "updated");
  equal(healthOf(t.membership, "b"), "alive");
});

Deno.test("a member announcing leaving is leaving until it falls silent", () => {
  const t = table();
  see(t, "b", [1]);
  equal(see(t, "b", [1], { seq: 2, state: "leaving" }), "updated");
  equal(healthOf(t.membership, "b"), "leaving");
  t.clock.now += 3 * INTERVAL_MS + 1;
  equal(healthOf(t.membership, "b"), "suspect");
});

Deno.test("list() returns members sorted by id with their health", () => {
  const t = table();
  see(t, "d", [1], { state: "leaving" });
  see(t, "b", [1]);
  t.clock.now += 4 * INTERVAL_MS;
  see(t, "c", [1]);
  deepEqual(t.membership.list().map(({ member, health }) => [member.id, health]), [
    ["b", "suspect"],
    ["c", "alive"],
    ["d", "suspect"],
  ]);
});

/** b, c, e alive; d leaving; s suspect: all serve 1. o serves 2 only. */
function crowd() {
  const t = table();
  see(t, "s", [1]);
  t.clock.now += 4 * INTERVAL_MS;
  see(t, "b", [1, 2]);
  see(t, "d", [1], { state: "leaving" });
  see(t, "c", [1]);
  see(t, "o", [2]);
  see(t, "e", [1, 3]);
  equal(healthOf(t.membership, "s"), "suspect");
  return t;
}

const ids = (members: { id: string }[]) => members.map((m) => m.id);

Deno.test("ownersOf() returns alive servers first, leaving ones last, never suspect ones", () => {
  const t = crowd();
  // A random() close to 1 leaves the order as observed (Fisher-Yates swaps nothing).
  deepEqual(ids(t.membership.ownersOf(1, () => 0.999)), ["b", "c", "e", "d"]);
  deepEqual(ids(t.membership.ownersOf(2, () => 0.999)), ["b", "o"]);
  deepEqual(ids(t.membership.ownersOf(3, () => 0.999)), ["e"]);
  deepEqual(ids(t.membership.ownersOf(4, () => 0.999)), []);
});

Deno.test("handingOver() names partitions a leaving peer serves, and unserved ones while a peer leaves", () => {
  const t = crowd();
  ok(t.membership.handingOver(1), "d is leaving and still names 1");
  ok(!t.membership.handingOver(2), "alive peers serve 2 and no leaving peer names it");
  ok(t.membership.handingOver(4), "nobody serves 4 while d is leaving: it may be moving");
  const quiet = table();
  see(quiet, "b", [1]);
  ok(!quiet.membership.handingOver(4), "nobody is leaving: an unserved partition is not moving");
  see(quiet, "b", [], { state: "leaving", seq: 2 });
  ok(quiet.membership.handingOver(1), "b left 1 behind and is leaving");
  quiet.clock.now += 4 * INTERVAL_MS;
  ok(!quiet.membership.handingOver(1), "a suspect peer is not leaving");
});

Deno.test("ownersOf() shuffles the alive servers with the injected random()", () => {
  const t = crowd();
  // random() = 0 swaps each position with the first: [b,c,e] → [e,c,b] → [c,e,b].
  deepEqual(ids(t.membership.ownersOf(1, () => 0)), ["c", "e", "b", "d"]);
  const seen = new Set<string>();
  let seed = 7;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < 200; i++) {
    const owners = ids(t.membership.ownersOf(1, random));
    equal(owners[3], "d", "leaving stays last");
    seen.add(owners.slice(0, 3).join(","));
  }
  equal(seen.size, 6, "every order of three alive servers occurs");
});

Deno.test("servedElsewhere() counts only alive members, not leaving or suspect ones", () => {
  const t = table();
  see(t, "s", [1]);
  t.clock.now += 4 * INTERVAL_MS;
  see(t, "d", [1, 2], { state: "leaving" });
  see(t, "b", [3]);
  equal(t.membership.servedElsewhere(1), false, "suspect and leaving servers do not count");
  equal(t.membership.servedElsewhere(2), false, "a leaving server does not count");
  equal(t.membership.servedElsewhere(3), true);
  equal(t.membership.servedElsewhere(4), false);
  t.clock.now += 4 * INTERVAL_MS;
  equal(t.membership.servedElsewhere(3), false, "b fell silent");
  ok(t.membership.list().every(({ health }) => health === "suspect"));
});

Deno.test("a forgotten member does not come back through a replay of its last datagram", () => {
  const t = table();
  const last = nodeState("b", { seq: 5, ts: START_MS });
  equal(t.membership.observe(last, new Set([1]), "b.gossip:8192"), "new");
  t.clock.now += 10 * INTERVAL_MS + 1;
  deepEqual(t.membership.prune(), ["b"]);
  // Still well inside the clock skew window: only the sequence tells it is a replay.
  equal(t.membership.observe(last, new Set([1]), "b.gossip:8192"), "stale");
  equal(t.membership.servedElsewhere(1), false);
  equal(see(t, "b", [1], { seq: 6 }), "new", "b speaking again is taken in");
  t.clock.now += 10 * INTERVAL_MS + 1;
  deepEqual(t.membership.prune(), ["b"]);
  equal(see(t, "b", [1], { inc: START_MS, seq: 1 }), "new", "so is b restarted");
});

Deno.test("prune() keeps a forgotten member's sequence only while a replay could pass", () => {
  const t = table();
  see(t, "b", [1], { seq: 5 });
  t.clock.now += 10 * INTERVAL_MS + 1;
  deepEqual(t.membership.prune(), ["b"]);
  t.clock.now = START_MS + 2 * SKEW_MS + 1;
  deepEqual(t.membership.prune(), []);
  // Any datagram b sent before it was forgotten now fails the clock check, so its sequence is
  // no longer needed: a state with an old sequence and a fresh clock is taken in.
  equal(see(t, "b", [1], { seq: 5, ts: START_MS }), "stale");
  equal(see(t, "b", [1], { seq: 1 }), "new");
});
