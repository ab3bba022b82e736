import { deepEqual, equal, ok } from "node:assert/strict";
import {
  assertProblem,
  type InProcessApi,
  inProcessApi,
  readResult,
} from "../../tests/_helpers.ts";
import { partitionOf } from "../keys/mod.ts";
import { readSse, type SseEvent } from "./mod.ts";

const PARTITIONS = 4;

/** An open watch stream read event by event. */
class Stream {
  private readonly events: AsyncGenerator<SseEvent>;
  private readonly abort = new AbortController();
  constructor(readonly response: Response) {
    this.events = readSse(response.body!, { signal: this.abort.signal });
  }

  /** The next `n` dispatches with data (id-only dispatches skipped), within `timeoutMs`. */
  async take(n: number, timeoutMs = 5000): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < n) {
      const next = await Promise.race([
        this.events.next(),
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), deadline - Date.now())),
      ]);
      if (next === "timeout") throw new Error(`only ${out.length} of ${n} events arrived`);
      if (next.done) throw new Error(`the stream ended after ${out.length} of ${n} events`);
      if (next.value.event !== "") out.push(next.value);
    }
    return out;
  }

  /** The next dispatch of any kind (heartbeats included), or "end". */
  async next(): Promise<SseEvent | "end"> {
    const next = await this.events.next();
    return next.done ? "end" : next.value;
  }

  /** Cancels the stream, as a client that goes away. */
  async close(): Promise<void> {
    this.abort.abort();
    // Never read: the generator has not started, and the body is cancelled here.
    if (!this.response.body!.locked) await this.response.body!.cancel();
    else await this.events.return(undefined);
  }
}

async function watch(api: InProcessApi, query: string, headers: HeadersInit = {}): Promise<Stream> {
  const response = await api.stream("GET", `/records/watch?${query}`, undefined, headers);
  equal(response.status, 200, await (response.status === 200 ? "" : response.text()));
  equal(response.headers.get("content-type"), "text/event-stream");
  return new Stream(response);
}

async function put(api: InProcessApi, records: [string, string, unknown][]): Promise<number> {
  const result = await api.request("POST", "/records/put", {
    records: records.map(([pk, sk, data]) => ({ pk, sk, data })),
  });
  equal(result.status, 200, result.text);
  return Object.values(result.json.offsets as Record<string, number>)[0]!;
}

async function withWatchApi(
  env: Record<string, string>,
  body: (api: InProcessApi) => Promise<void>,
): Promise<void> {
  const api = await inProcessApi({ PARTITIONS: String(PARTITIONS), ...env });
  try {
    await body(api);
    equal(api.serverErrors, 0);
  } finally {
    await api.close();
  }
}

/** pk/sk pairs of put and delete events. */
function keys(events: SseEvent[]): string[] {
  return events.map((e) => {
    const data = JSON.parse(e.data);
    return `${e.event} ${data.pk}/${data.sk}`;
  });
}

Deno.test("a watch of a pk sees each of its changes once, in order, and nothing of other pks", async () => {
  await withWatchApi({}, async (api) => {
    // Two pks in the same partition, so the other one's changes pass the same fan-out.
    const other = ["b", "c", "d", "e", "f", "g"].find((pk) =>
      partitionOf(pk, PARTITIONS) === partitionOf("a", PARTITIONS)
    )!;
    const stream = await watch(api, "pk=a");
    await put(api, [["a", "1", 1], [other, "1", 1]]);
    const events: Promise<SseEvent[]> = stream.take(21);
    for (let i = 0; i < 20; i++) await put(api, [["a", `k${i}`, { i }], [other, `k${i}`, i]]);
    const del = await api.request("POST", "/records/delete", { records: [{ pk: "a", sk: "1" }] });
    equal(del.status, 200);
    const got = await events;
    deepEqual(
      keys(got),
      [
        "put a/1",
        ...Array.from({ length: 19 }, (_, i) => `put a/k${i}`),
        "put a/k19",
      ].slice(0, 21),
    );
    const last = await stream.take(1);
    deepEqual(keys(last), ["delete a/1"]);
    const record = JSON.parse(got[1]!.data);
    deepEqual(record.data, { i: 0 });
    equal(typeof record.version, "number");
    // One put of two records of one partition is one message: the first has an index in its id.
    const partition = partitionOf("a", PARTITIONS);
    ok(got[0]!.id!.startsWith(`${partition}:`));
    equal(got[0]!.id!.split(":").length, 3, `id ${got[0]!.id} names the change inside its message`);
    await stream.close();
  });
});

Deno.test("a watch resumed from any id gets exactly the changes after it, inside a message too", async () => {
  await withWatchApi({}, async (api) => {
    const stream = await watch(api, "pk=a");
    await put(api, [["a", "1", 1], ["a", "2", 2], ["a", "3", 3]]);
    await put(api, [["a", "4", 4]]);
    const first = await stream.take(4);
    deepEqual(keys(first), ["put a/1", "put a/2", "put a/3", "put a/4"]);
    await stream.close();
    for (let i = 0; i < first.length; i++) {
      const resumed = await watch(api, "pk=a", { "last-event-id": first[i]!.id! });
      await put(api, [["a", `after${i}`, i]]);
      // The writes of the earlier rounds come after the first four.
      const later = Array.from({ length: i + 1 }, (_, j) => `put a/after${j}`);
      const rest = await resumed.take(first.length - 1 - i + later.length);
      deepEqual(keys(rest), [...keys(first.slice(i + 1)), ...later]);
      await resumed.close();
      // The same through `after` in a POST body, as the id text.
      const posted = await api.stream("POST", "/records/watch", { pk: "a", after: first[i]!.id });
      const fromBody = new Stream(posted);
      deepEqual(keys(await fromBody.take(first.length - 1 - i + later.length)), keys(rest));
      await fromBody.close();
    }
  });
});

Deno.test("a watch of several partitions carries every partition's cursor in its ids and resumes from them", async () => {
  await withWatchApi({}, async (api) => {
    const stream = await watch(api, "partitions=0,1,2,3");
    const pks = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for (const pk of pks) await put(api, [[pk, "x", pk]]);
    const events = await stream.take(pks.length);
    deepEqual(keys(events), pks.map((pk) => `put ${pk}/x`));
    const id = events[3]!.id!;
    equal(id.split(",").length, PARTITIONS);
    await stream.close();
    const resumed = await watch(api, "partitions=0,1,2,3", { "last-event-id": id });
    // Order holds within a partition; a backlog comes partition by partition.
    deepEqual(keys(await resumed.take(4)).sort(), pks.slice(4).map((pk) => `put ${pk}/x`));
    await resumed.close();
    // Every partition when none is named; sk_prefix filters.
    const all = await watch(api, "sk_prefix=y&after=" + encodeURIComponent(events[7]!.id!));
    await put(api, [["a", "x2", 1]]);
    await put(api, [["a", "y1", 1]]);
    deepEqual(keys(await all.take(1)), ["put a/y1"]);
    await all.close();
  });
});

Deno.test("a cursor older than the change log gets one reset event, then the live stream", async () => {
  await withWatchApi({ WATCH_RETAIN_SEC: "1", HISTORY_RETAIN_SEC: "0" }, async (api) => {
    await put(api, [["a", "1", 1]]);
    await new Promise((r) => setTimeout(r, 1100));
    // Applying this one prunes the first change (older than 1 s of log time).
    await put(api, [["a", "2", 2]]);
    const partition = partitionOf("a", PARTITIONS);
    const stream = await watch(api, "pk=a", { "last-event-id": `${partition}:-1` });
    const [reset] = await stream.take(1);
    equal(reset!.event, "reset");
    const data = JSON.parse(reset!.data);
    equal(data.partition, partition);
    equal(data.after, `${partition}:-1`);
    await put(api, [["a", "3", 3]]);
    deepEqual(keys(await stream.take(1)), ["put a/3"]);
    await stream.close();
    const metrics = await api.internal("GET", "/metrics");
    ok(/^firescroll_watch_resets_total 1$/m.test(metrics.text), metrics.text);
  });
});

Deno.test("a watcher that does not read gets event: overflow and its stream ends; the others go on", async () => {
  await withWatchApi({ WATCH_BUFFER_BYTES: "4096" }, async (api) => {
    const slow = await api.stream("GET", "/records/watch?pk=a");
    const fast = await watch(api, "pk=a");
    const reading = fast.take(40);
    for (let i = 0; i < 40; i++) await put(api, [["a", `k${i}`, "x".repeat(200)]]);
    equal((await reading).length, 40);
    const events: SseEvent[] = [];
    for await (const event of readSse(slow.body!)) if (event.event !== "") events.push(event);
    equal(events[events.length - 1]!.event, "overflow");
    ok(events.length < 40, `${events.length} events queued before the overflow`);
    // What it got before is the start of the sequence, in order.
    deepEqual(
      keys(events.slice(0, -1)),
      Array.from({ length: events.length - 1 }, (_, i) => `put a/k${i}`),
    );
    await fast.close();
  });
});

Deno.test("WATCHERS_MAX bounds the open streams; a closed one frees its slot", async () => {
  await withWatchApi({ WATCHERS_MAX: "2" }, async (api) => {
    const one = await watch(api, "pk=a");
    const two = await watch(api, "pk=b");
    assertProblem(
      await readResult(await api.stream("GET", "/records/watch?pk=c")),
      503,
      "too_many_watchers",
    );
    await one.close();
    const three = await watch(api, "pk=c");
    await two.close();
    await three.close();
  });
});

Deno.test("an idle stream gets heartbeats carrying its current id", async () => {
  await withWatchApi({ WATCH_HEARTBEAT_MS: "100" }, async (api) => {
    const stream = await watch(api, "pk=a");
    const first = await stream.next();
    ok(first !== "end" && first.event === "" && first.id !== null);
    const beat = await stream.next();
    ok(beat !== "end" && beat.event === "" && beat.id === first.id);
    await stream.close();
  });
});

Deno.test("bad watch requests get 4xx problems; WATCH_RETAIN_SEC=0 turns watch off", async () => {
  await withWatchApi({}, async (api) => {
    const cases: [string, string][] = [
      ["pk=a&partitions=1", "invalid_request"],
      ["partitions=9", "invalid_request"],
      ["partitions=", "invalid_request"],
      ["partitions=x", "invalid_request"],
      ["pk=", "invalid_key"],
      ["bogus=1", "unknown_field"],
      ["pk=a&pk=b", "invalid_request"],
      ["after=1:2:3:4", "invalid_after"],
      ["after=9:1", "invalid_after"],
      ["after=1:99999999999999999", "invalid_after"],
      ["after=0:1,0:2", "invalid_after"],
      ["partitions=1&after=2:5", "invalid_after"],
    ];
    for (const [query, code] of cases) {
      assertProblem(
        await readResult(await api.stream("GET", `/records/watch?${query}`)),
        400,
        code,
      );
    }
    assertProblem(await api.request("POST", "/records/watch", { pk: 1 }), 400, "invalid_key");
    assertProblem(
      await api.request("POST", "/records/watch", { after: [1] }),
      400,
      "invalid_after",
    );
    assertProblem(await api.request("POST", "/records/watch", "[]"), 400, "invalid_request");
    assertProblem(
      await api.request("GET", "/records/watch?pk=a", undefined, { "last-event-id": "x" }),
      400,
      "invalid_after",
    );
  });
  await withWatchApi({ WATCH_RETAIN_SEC: "0" }, async (api) => {
    assertProblem(await api.request("GET", "/records/watch?pk=a"), 404, "watch_disabled");
  });
});

Deno.test("a record with ttl_ms is read until its instant, then absent from get and list, and a watcher gets event: expire", async () => {
  await withWatchApi({}, async (api) => {
    const stream = await watch(api, "pk=t");
    const written = await api.request("POST", "/records/put", {
      records: [{ pk: "t", sk: "1", data: 1, ttl_ms: 400 }, { pk: "t", sk: "2", data: 2 }],
    });
    equal(written.status, 200, written.text);
    const got = await api.request("POST", "/records/get", { records: [{ pk: "t", sk: "1" }] });
    const record = got.json.records[0];
    equal(record.expires_at, record.created_at + 400);
    deepEqual(keys(await stream.take(2)), ["put t/1", "put t/2"]);
    // The node sends a tick once the instant has passed; the purge is the expire event.
    const [expired] = await stream.take(1, 5000);
    equal(expired!.event, "expire");
    deepEqual(JSON.parse(expired!.data).sk, "1");
    const after = await api.request("POST", "/records/get", { records: [{ pk: "t", sk: "1" }] });
    deepEqual(after.json.missing, [{ pk: "t", sk: "1" }]);
    const list = await api.request("POST", "/records/list", { pk: "t" });
    deepEqual(list.json.records.map((r: { sk: string }) => r.sk), ["2"]);
    await stream.close();
  });
});

Deno.test("an expired record is absent to reads from its instant on, before any purge", async () => {
  // Expired long before it was written: absent to every read, purged or not yet.
  await withWatchApi({}, async (api) => {
    const past = await api.request("POST", "/records/put", {
      records: [{ pk: "t", sk: "gone", data: 1, expires_at: 1 }, { pk: "t", sk: "kept", data: 2 }],
    });
    equal(past.status, 200, past.text);
    const got = await api.request("POST", "/records/get", {
      records: [{ pk: "t", sk: "gone" }, { pk: "t", sk: "kept" }],
      after: past.json.offsets,
      wait_ms: 1000,
    });
    deepEqual(got.json.missing, [{ pk: "t", sk: "gone" }]);
    const list = await api.request("POST", "/records/list", { pk: "t" });
    deepEqual(list.json.records.map((r: { sk: string }) => r.sk), ["kept"]);
    assertProblem(
      await api.request("POST", "/records/put", {
        records: [{ pk: "t", sk: "x", data: 1, ttl_ms: 1, expires_at: 5 }],
      }),
      400,
      "invalid_ttl",
    );
  });
});
