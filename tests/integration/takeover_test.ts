/**
 * Hand-over restarts (`TAKEOVER=1`, src/node/hand_over.ts): a node under a steady load of readers
 * and writers is replaced by a successor on the same `DB_PATH` and ports, several times in a row,
 * without a failed request or a lost acknowledged write; the folder the last successor leaves is
 * exactly what a plain restart reads back. Also: `TAKEOVER=1` on a free folder just starts, and a
 * successor that finds the folder locked by a process without a control socket fails with one
 * `takeover_failed` line.
 *
 * Every client has its own `Deno.HttpClient` (one keep-alive connection, one request at a time)
 * and never retries: an error or a non-200 answer is counted, with its message, as a failure. The
 * output lists, per hand-over, its durations, the longest interval without any completed request
 * and the longest without an acknowledged write.
 *
 * A predecessor closes its keep-alive connections when it hands over; a request a client sends on
 * one in that instant is reset ("connection closed before message completed", "connection reset
 * by peer"). Such a reset is a failure here, never retried away.
 */
import assert from "node:assert/strict";
import { freshNamespace, KAFKA, needsKafka } from "./_kafka.ts";
import {
  type PartitionStatus,
  partitionStatus,
  type SpawnedNode,
  spawnNode,
  startNode,
} from "./_node.ts";

const HOST = "127.0.0.1";
/** Fixed ports (a successor must bind the very ports of its predecessor); checked free first. */
const EMBEDDED_PORTS = { api: 27410, internal: 27411 } as const;
const KAFKA_PORTS = { api: 27420, internal: 27421 } as const;

/** Keys written before the load, read by the readers and checked on every answer. */
const SEEDED_KEYS = 200;
const READERS = 4;
const WRITERS = 2;
/** Bounds on the load: requests per client, and its whole duration. */
const CLIENT_REQUESTS_MAX = 200_000;
const LOAD_DURATION_MAX_MS = 180_000;
/** Bound on one request; a request held across a hand-over takes far less. */
const REQUEST_TIMEOUT_MS = 15_000;
/**
 * Pause between one client's requests: a steady load that leaves the successor some CPU (a client
 * sending back to back is starved less, but meets the close of its connection more often).
 */
const CLIENT_PAUSE_MS = 1;
/** Load before the first hand-over, between hand-overs and after the last one. */
const SETTLE_MS = 1500;
/** Bounds on a successor serving and a predecessor exiting. */
const TAKEOVER_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 30_000;
/** A generous bound on the longest pause in acknowledged writes around a hand-over. */
const WRITE_PAUSE_MAX_MS = 10_000;
/** Records per verification read (RECORDS_PER_REQUEST_MAX is 1000). */
const VERIFY_CHUNK = 250;

type Env = Record<string, string>;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Fails unless nothing listens on `ports` (a plain bind of each succeeds). */
function assertPortsFree(ports: { api: number; internal: number }): void {
  for (const port of [ports.api, ports.internal]) {
    try {
      Deno.listen({ hostname: HOST, port }).close();
    } catch (error) {
      throw new Error(`Cannot run: port ${port} is in use (${(error as Error).message})`);
    }
  }
}

/** The first `event` line of `node`, waited for (bounded); throws with its output otherwise. */
async function eventOf(
  node: SpawnedNode,
  event: string,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | null;
  try {
    found = await withTimeout(
      node.waitForEvent(event),
      timeoutMs,
      `pid ${node.pid} to log ${event}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- node output ---\n${node.logs.tail()}`);
  }
  if (found === null) {
    throw new Error(
      `pid ${node.pid} exited (${await node
        .exited}) before logging ${event}\n--- node output ---\n${node.logs.tail()}`,
    );
  }
  return found;
}

/** The exit code of `node`, waited for (bounded). */
async function exitOf(node: SpawnedNode, timeoutMs = EXIT_TIMEOUT_MS): Promise<number> {
  try {
    return await withTimeout(node.exited, timeoutMs, `pid ${node.pid} to exit`);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- node output ---\n${node.logs.tail()}`);
  }
}

/** Waits until `/readyz` on `port` answers 200 (bounded). */
async function waitReady(node: SpawnedNode, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (node.hasExited) {
      throw new Error(`pid ${node.pid} exited before /readyz was 200\n${node.logs.tail()}`);
    }
    const status = await fetch(`http://${HOST}:${port}/readyz`, {
      signal: AbortSignal.timeout(2000),
    }).then(async (r) => (await r.body?.cancel(), r.status)).catch(() => 0);
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`/readyz on ${port} not 200 within ${timeoutMs} ms\n${node.logs.tail()}`);
}

/** `/internal/status` partitions read from the internal port. */
async function statusOn(port: number): Promise<Record<string, PartitionStatus>> {
  const response = await fetch(`http://${HOST}:${port}/internal/status`);
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.partitions;
}

function mergeOffsets(into: Record<string, number>, offsets: Record<string, number>): void {
  for (const [p, o] of Object.entries(offsets)) into[p] = Math.max(into[p] ?? -1, o);
}

/** One acknowledged put. */
interface Ack {
  readonly pk: string;
  readonly sk: string;
  readonly n: number;
  /** When the acknowledgement arrived (performance.now() of this process). */
  readonly at: number;
}

/** A failed request: what the client saw, when, and which client. */
interface Failure {
  readonly client: string;
  readonly at: number;
  readonly what: string;
}

/**
 * Readers (gets of seeded keys, each answer's data checked) and writers (one-record puts), each on
 * its own HttpClient, until stopped or bounded out. Records every completion time, every failure
 * and every acknowledged write.
 */
class Load {
  /** Completion times of every 200 answer, per client. */
  readonly completions: number[][] = [];
  readonly failures: Failure[] = [];
  readonly acks: Ack[] = [];
  readonly offsets: Record<string, number> = {};
  requests = 0;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly deadline = Date.now() + LOAD_DURATION_MAX_MS;

  constructor(private readonly url: string, label: string) {
    for (let r = 0; r < READERS; r++) this.loops.push(this.client(`reader-${r}`, r, null));
    for (let w = 0; w < WRITERS; w++) {
      this.loops.push(this.client(`writer-${w}`, READERS + w, `${label}-w${w}`));
    }
  }

  /** Stops every client after its request in flight and waits for them. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Completion times of all clients, sorted. */
  allCompletions(): number[] {
    return this.completions.flat().sort((a, b) => a - b);
  }

  private async client(name: string, index: number, writerPk: string | null): Promise<void> {
    const completions: number[] = [];
    this.completions[index] = completions;
    const client = Deno.createHttpClient({ http2: false });
    let n = 0;
    try {
      while (this.running && n < CLIENT_REQUESTS_MAX && Date.now() < this.deadline) {
        const i = n++;
        this.requests++;
        const key = (index * 7919 + i * 31) % SEEDED_KEYS;
        const body = writerPk === null
          ? { records: [{ pk: `seed-${key}`, sk: "s" }] }
          : { records: [{ pk: writerPk, sk: `n-${i}`, data: { n: i, writer: writerPk } }] };
        const path = writerPk === null ? "/records/get" : "/records/put";
        try {
          const response = await fetch(`${this.url}${path}`, {
            client,
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          });
          const text = await response.text();
          const at = performance.now();
          if (response.status !== 200) {
            this.failures.push({ client: name, at, what: `${response.status} ${text}` });
          } else if (writerPk === null) {
            const record = JSON.parse(text).records?.[0];
            if (record?.data?.n !== key) {
              this.failures.push({ client: name, at, what: `wrong data for seed-${key}: ${text}` });
            } else completions.push(at);
          } else {
            mergeOffsets(this.offsets, JSON.parse(text).offsets);
            this.acks.push({ pk: writerPk, sk: `n-${i}`, n: i, at });
            completions.push(at);
          }
        } catch (error) {
          this.failures.push({
            client: name,
            at: performance.now(),
            what: describeError(error),
          });
        }
        if (CLIENT_PAUSE_MS > 0) await new Promise((r) => setTimeout(r, CLIENT_PAUSE_MS));
      }
    } finally {
      client.close();
    }
  }
}

/** An error with its causes (fetch's "fetch failed" says why in `cause`). */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" ← ");
}

/** The longest interval between consecutive `times` (sorted) that overlaps [from, to]. */
function longestGap(times: readonly number[], from: number, to: number): number {
  let longest = 0;
  for (let i = 1; i < times.length; i++) {
    const a = times[i - 1]!;
    const b = times[i]!;
    if (b < from || a > to) continue;
    longest = Math.max(longest, b - a);
  }
  return longest;
}

/** What one hand-over took and how the clients fared during it. */
interface HandOverReport {
  readonly predecessor: number;
  readonly successor: number;
  /** Successor spawned → its takeover_serving line seen, ms. */
  readonly totalMs: number;
  /** The predecessor's handed_over `ms` and the successor's takeover_released `ms`. */
  readonly handedOverMs: unknown;
  readonly releasedMs: unknown;
  /** Longest interval without any completed request, and without an acknowledged write. */
  readonly gapMs: number;
  readonly writePauseMs: number;
  /** Failures of the load recorded while this hand-over ran. */
  readonly failures: number;
}

/** Writes the seeded keys the readers read. */
async function seed(url: string): Promise<void> {
  const records = Array.from({ length: SEEDED_KEYS }, (_, k) => ({
    pk: `seed-${k}`,
    sk: "s",
    data: { n: k },
  }));
  const response = await fetch(`${url}/records/put`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ records }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  // The readers must find every key from their first request.
  const all = await fetch(`${url}/records/get`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      records: records.map(({ pk, sk }) => ({ pk, sk })),
      after: body.offsets,
      wait_ms: 10_000,
    }),
  });
  const allBody = await all.json();
  assert.equal(all.status, 200, JSON.stringify(allBody));
  assert.deepEqual(allBody.missing, []);
}

/** Asserts every acknowledged write is readable on `url` with its data. */
async function assertAcked(url: string, load: Load): Promise<void> {
  for (let start = 0; start < load.acks.length; start += VERIFY_CHUNK) {
    const chunk = load.acks.slice(start, start + VERIFY_CHUNK);
    const response = await fetch(`${url}/records/get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        records: chunk.map(({ pk, sk }) => ({ pk, sk })),
        after: load.offsets,
        wait_ms: 10_000,
      }),
    });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(
      body.missing,
      [],
      `acknowledged writes missing: ${JSON.stringify(body.missing)}`,
    );
    const got = new Map<string, unknown>(
      body.records.map((
        r: { pk: string; sk: string; data: unknown },
      ) => [`${r.pk}/${r.sk}`, r.data]),
    );
    for (const ack of chunk) {
      assert.deepEqual(got.get(`${ack.pk}/${ack.sk}`), { n: ack.n, writer: ack.pk });
    }
  }
}

/** Counts of failures by kind, for messages and reports. */
function failureSummary(failures: readonly Failure[]): string {
  const counts = new Map<string, number>();
  for (const f of failures) {
    const kind = `${f.client.replace(/-\d+$/, "")}: ${f.what.slice(0, 160)}`;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts.entries()].map(([k, n]) => `${n} × ${k}`).join("\n");
}

/**
 * Starts a node on `ports`, seeds it, puts it under load and replaces it `handOvers` times with
 * `TAKEOVER=1` successors. Checks each hand-over (predecessor exit 0 with handed_over, successor
 * takeover_released and takeover_serving), stops the load, and returns what it saw; the last
 * successor still runs (the caller stops it).
 */
async function handOversUnderLoad(
  env: Env,
  ports: { api: number; internal: number },
  dbPath: string,
  handOvers: number,
  label: string,
  spawned: SpawnedNode[],
  readyTimeoutMs: number,
): Promise<{ load: Load; reports: HandOverReport[]; last: SpawnedNode; loadMs: number }> {
  const nodeEnv = { ...env, API_PORT: String(ports.api), INTERNAL_PORT: String(ports.internal) };
  const url = `http://${HOST}:${ports.api}`;
  let current = await spawnNode({ dbPath, env: nodeEnv });
  spawned.push(current);
  await waitReady(current, ports.api, readyTimeoutMs);
  await seed(url);
  const started = performance.now();
  const load = new Load(url, label);
  const reports: HandOverReport[] = [];
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    for (let h = 0; h < handOvers; h++) {
      const failuresBefore = load.failures.length;
      const from = performance.now();
      const successor = await spawnNode({ dbPath, env: { ...nodeEnv, TAKEOVER: "1" } });
      spawned.push(successor);
      const serving = await eventOf(successor, "takeover_serving", TAKEOVER_TIMEOUT_MS);
      const servedAt = performance.now();
      const code = await exitOf(current);
      const exitedAt = performance.now();
      const why = `predecessor ${current.pid}:\n${current.logs.tail(20)}`;
      assert.equal(code, 0, why);
      const events = current.logs.events();
      const named = (name: string) => events.find((e) => e.event === name);
      assert.ok(named("takeover_requested"), why);
      // The holder lets go of the folder first and answers plain reads until the successor says
      // it serves (`after` reads, and with the embedded log writes, go to the successor).
      assert.equal(named("handing_over")?.early_release, true, why);
      assert.equal(named("successor_serving")?.told, true, why);
      const handedOver = named("handed_over");
      assert.ok(handedOver !== undefined && typeof handedOver.ms === "number", why);
      const released = await eventOf(successor, "takeover_released", 1000);
      assert.equal(released.predecessor_pid, current.pid);
      assert.equal(serving.ready, true, successor.logs.tail(20));
      // The clients' view: settle, then measure the hand-over's window.
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const to = Math.max(servedAt, exitedAt) + 500;
      reports.push({
        predecessor: current.pid,
        successor: successor.pid,
        totalMs: Math.round(servedAt - from),
        handedOverMs: handedOver.ms,
        releasedMs: released.ms,
        gapMs: Math.round(longestGap(load.allCompletions(), from, to)),
        writePauseMs: Math.round(
          longestGap(load.acks.map((a) => a.at).sort((a, b) => a - b), from, to),
        ),
        failures: load.failures.length - failuresBefore,
      });
      current = successor;
    }
  } finally {
    await load.stop();
  }
  const loadMs = Math.round(performance.now() - started);
  return { load, reports, last: current, loadMs };
}

/** One line per hand-over and the totals, for the test output. */
function report(label: string, load: Load, reports: HandOverReport[], loadMs: number): string {
  const lines = reports.map((r, i) =>
    `${label} hand-over ${i + 1}: ${r.predecessor} → ${r.successor}, ${r.totalMs} ms to serving ` +
    `(handed_over ${r.handedOverMs} ms, takeover_released ${r.releasedMs} ms), ` +
    `longest gap without a response ${r.gapMs} ms, write pause ${r.writePauseMs} ms, ` +
    `failures ${r.failures}`
  );
  lines.push(
    `${label}: ${load.requests} requests in ${loadMs} ms, ${load.acks.length} writes ` +
      `acknowledged, ${load.failures.length} failed` +
      (load.failures.length > 0 ? `:\n${failureSummary(load.failures)}` : ""),
  );
  return lines.join("\n");
}

function print(text: string): void {
  // deno-lint-ignore no-console
  console.log(text);
}

/** Fails when any of `nodes` answered a 500. */
function assertNoInternalErrors(nodes: readonly SpawnedNode[]): void {
  for (const node of nodes) {
    const errors = node.logs.all.filter((l) => l.includes('"event":"internal_error"'));
    assert.equal(errors.length, 0, `pid ${node.pid} answered 500:\n${errors.join("\n")}`);
  }
}

Deno.test("a node under load is replaced by TAKEOVER=1 successors three times in a row without a failed request or a lost write, and the last one leaves the folder a restart reads back the same", async () => {
  assertPortsFree(EMBEDDED_PORTS);
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_takeover_" });
  const spawned: SpawnedNode[] = [];
  try {
    const env = { PARTITIONS: "4" };
    const { load, reports, last, loadMs } = await handOversUnderLoad(
      env,
      EMBEDDED_PORTS,
      dbPath,
      3,
      "embedded",
      spawned,
      20_000,
    );
    print(report("embedded", load, reports, loadMs));
    assert.equal(load.failures.length, 0, failureSummary(load.failures));
    assert.ok(load.acks.length > 0 && load.allCompletions().length > load.acks.length);
    const url = `http://${HOST}:${EMBEDDED_PORTS.api}`;
    await assertAcked(url, load);

    // What the last successor holds is what a plain restart of the same folder reads.
    const before = await statusOn(EMBEDDED_PORTS.internal);
    for (const [p, o] of Object.entries(load.offsets)) assert.ok(before[p]!.offset >= o);
    last.signal("SIGTERM");
    assert.equal(await exitOf(last), 0, last.logs.tail(20));
    assertNoInternalErrors(spawned);
    const restarted = await startNode({
      dbPath,
      env: { ...env, API_PORT: "0", INTERNAL_PORT: "0" },
    });
    try {
      assert.deepEqual(await partitionStatus(restarted), before);
      await assertAcked(restarted.apiUrl, load);
    } finally {
      await restarted.cleanup();
    }
  } finally {
    await Promise.all(spawned.map((n) => n.cleanup()));
    await Deno.remove(dbPath, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "in Kafka mode a node under load is replaced by TAKEOVER=1 successors twice without a failed request or a lost write, with a short write pause",
  ...needsKafka,
  async fn() {
    assertPortsFree(KAFKA_PORTS);
    const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_takeover_kafka_" });
    const spawned: SpawnedNode[] = [];
    try {
      const env = {
        KAFKA_SEEDS: KAFKA!,
        NAMESPACE: freshNamespace("takeover"),
        REPLICA_GROUP: "g",
        INSTANCE_ID: "takeover-node",
        PARTITIONS: "4",
        KAFKA_SESSION_TIMEOUT_MS: "6000",
        LOG_WRITE_TIMEOUT_MS: "5000",
      };
      const { load, reports, last, loadMs } = await handOversUnderLoad(
        env,
        KAFKA_PORTS,
        dbPath,
        2,
        "kafka",
        spawned,
        60_000,
      );
      print(report("kafka", load, reports, loadMs));
      assert.equal(load.failures.length, 0, failureSummary(load.failures));
      assert.ok(load.acks.length > 0);
      await assertAcked(`http://${HOST}:${KAFKA_PORTS.api}`, load);
      for (const r of reports) {
        assert.ok(r.writePauseMs < WRITE_PAUSE_MAX_MS, `write pause ${r.writePauseMs} ms`);
      }
      last.signal("SIGTERM");
      assert.equal(await exitOf(last), 0, last.logs.tail(20));
      assertNoInternalErrors(spawned);
    } finally {
      await Promise.all(spawned.map((n) => n.cleanup()));
      await Deno.remove(dbPath, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("TAKEOVER=1 on a folder nothing holds starts normally and serves", async () => {
  const node = await startNode({ env: { TAKEOVER: "1" } });
  try {
    const put = await node.post("/records/put", { records: [{ pk: "a", sk: "b", data: 1 }] });
    assert.equal(put.status, 200, put.text);
    const get = await node.post("/records/get", {
      records: [{ pk: "a", sk: "b" }],
      after: put.json.offsets,
      wait_ms: 5000,
    });
    assert.equal(get.status, 200, get.text);
    assert.equal(get.json.records[0].data, 1);
    const events = node.logs.events().map((e) => String(e.event));
    assert.deepEqual(events.filter((e) => e.startsWith("takeover")), [], node.logs.tail());
    // It can itself be taken over: it listens on its folder's control socket.
    assert.ok((await Deno.stat(`${node.dbPath}/.control.sock`)).isSocket);
    assert.equal(await node.stop("SIGTERM"), 0);
  } finally {
    await node.cleanup();
  }
});

Deno.test("a TAKEOVER=1 successor that finds the folder locked by a process without a control socket exits non-zero with one takeover_failed line", async () => {
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_takeover_" });
  const lock = Deno.openSync(`${dbPath}/.lock`, { read: true, write: true, create: true });
  try {
    lock.lockSync(true);
    const successor = await spawnNode({ dbPath, env: { TAKEOVER: "1" } });
    try {
      const code = await exitOf(successor);
      const why = `exit ${code}, output:\n${successor.logs.tail()}`;
      assert.notEqual(code, 0, why);
      const failed = successor.logs.events().filter((e) => e.event === "takeover_failed");
      assert.equal(failed.length, 1, why);
      assert.equal(failed[0]!.level, "error", why);
      assert.equal(failed[0]!.path, dbPath, why);
      assert.match(String(failed[0]!.error), /control\.sock/, why);
      // Nothing was opened: no partition files were made.
      const entries = [...Deno.readDirSync(dbPath)].map((e) => e.name).sort();
      assert.deepEqual(entries, [".lock"], why);
    } finally {
      await successor.cleanup();
    }
  } finally {
    lock.close();
    await Deno.remove(dbPath, { recursive: true }).catch(() => {});
  }
});
