/**
 * Helpers for integration tests against the real Kafka broker that `scripts/test.sh` starts
 * (`FIRESCROLL_TEST_KAFKA`), or any broker given in `KAFKA_SEEDS`.
 *
 * @module
 */
import {
  type HttpResult,
  nodeStatus,
  type PartitionStatus,
  partitionStatus,
  REPO_ROOT,
  run,
  startNode,
  type TestNode,
} from "./_node.ts";

/** Bootstrap servers of the test broker, or null when the suite runs without one. */
export const KAFKA: string | null = Deno.env.get("FIRESCROLL_TEST_KAFKA") ?? null;

/** Whether the broker was started by `scripts/test.sh`, so tests may restart it. */
export const KAFKA_OWNED = Deno.env.get("FIRESCROLL_TEST_KAFKA_OWNED") === "1";

/** Options for tests that need the broker: ignored (and reported skipped) without one. */
export const needsKafka = { ignore: KAFKA === null, sanitizeOps: false, sanitizeResources: false };

/** A namespace no other test or run has used, so every test gets fresh topics. */
export function freshNamespace(label: string): string {
  const random = crypto.getRandomValues(new Uint8Array(4));
  return `it_${label}_${Date.now().toString(36)}_${
    Array.from(random, (b) => b.toString(16)).join("")
  }`;
}

/** Starts a Kafka-backed node of `namespace` in `group` (env may override anything). */
export function startKafkaNode(
  namespace: string,
  group: string,
  env: Record<string, string | undefined> = {},
  dbPath?: string,
): Promise<TestNode> {
  return startNode({
    env: {
      KAFKA_SEEDS: KAFKA!,
      NAMESPACE: namespace,
      REPLICA_GROUP: group,
      PARTITIONS: "8",
      KAFKA_SESSION_TIMEOUT_MS: "6000",
      LOG_WRITE_TIMEOUT_MS: "5000",
      ...env,
    },
    readyTimeoutMs: 60_000,
    ...(dbPath === undefined ? {} : { dbPath }),
  });
}

/** Polls `check` every 100 ms until it returns a non-null value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | null>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== null) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** The partitions a node serves, sorted. */
export async function servingPartitions(node: TestNode): Promise<number[]> {
  return servingOf(await partitionStatus(node));
}

/**
 * Waits until `nodes` together serve all `partitions`, each partition on exactly one node, and
 * every node that gossips sees every other one alive and serving what it serves: until then a
 * read without `after` may still be answered from a retiring copy of a moved partition.
 */
export function waitForSplit(nodes: TestNode[], partitions: number): Promise<number[][]> {
  return waitFor(`${nodes.length} nodes to split ${partitions} partitions`, 60_000, async () => {
    const statuses = await Promise.all(nodes.map((n) => nodeStatus(n)));
    const owned = statuses.map((s) => servingOf(s.partitions));
    const all = owned.flat().sort((a, b) => a - b);
    const expected = Array.from({ length: partitions }, (_, i) => i);
    if (owned.some((o) => o.length === 0)) return null;
    if (JSON.stringify(all) !== JSON.stringify(expected)) return null;
    for (const view of statuses) {
      if (view.members.length === 0) continue;
      for (const [i, other] of statuses.entries()) {
        if (other === view) continue;
        const seen = view.members.find((m) => m.id === other.node.id);
        if (seen?.state !== "alive") return null;
        if (JSON.stringify(seen.serving) !== JSON.stringify(owned[i])) return null;
      }
    }
    return owned;
  });
}

/** The serving partitions in a status's `partitions`, sorted. */
function servingOf(status: Record<string, PartitionStatus>): number[] {
  return Object.entries(status)
    .filter(([, s]) => s.state === "serving")
    .map(([p]) => Number(p))
    .sort((a, b) => a - b);
}

/** Merges write offsets into `into`, keeping the highest per partition. */
export function mergeOffsets(into: Record<string, number>, offsets: Record<string, number>): void {
  for (const [p, o] of Object.entries(offsets)) into[p] = Math.max(into[p] ?? -1, o);
}

/** Waits until `node` has applied at least `offsets` on every listed partition it owns. */
export function waitForOffsets(node: TestNode, offsets: Record<string, number>): Promise<true> {
  return waitFor("offsets to be applied", 60_000, async () => {
    const status = await partitionStatus(node);
    for (const [p, o] of Object.entries(offsets)) {
      const s = status[p];
      if (s !== undefined && s.offset < o) return null;
    }
    return true;
  });
}

/** Puts one record and returns the response. */
export function put(node: TestNode, pk: string, sk: string, data: unknown): Promise<HttpResult> {
  return node.post("/records/put", { records: [{ pk, sk, data }] });
}

/** Produces raw bytes to a partition of a topic with kcat (a client that is not FireScroll). */
export async function kcatProduce(topic: string, partition: number, value: string): Promise<void> {
  const child = new Deno.Command("kcat", {
    args: ["-b", KAFKA!, "-t", topic, "-p", String(partition), "-P", "-K", "\t"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(`poison-key\t${value}\n`));
  await writer.close();
  const output = await child.output();
  if (!output.success) {
    throw new Error(`kcat failed: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** Restarts the test broker (keeping its data) with scripts/kafka.sh. */
export async function restartBroker(): Promise<void> {
  const result = await run("bash", [`${REPO_ROOT}scripts/kafka.sh`, "restart"]);
  if (result.code !== 0) {
    throw new Error(`kafka.sh restart failed: ${result.stdout}${result.stderr}`);
  }
}

/** Creates a topic directly on the broker, with topic configs (e.g. short retention). */
export async function createTopic(
  topic: string,
  partitions: number,
  configs: Readonly<Record<string, string>> = {},
): Promise<void> {
  const result = await run("bash", [
    `${REPO_ROOT}scripts/kafka.sh`,
    "tool",
    "org.apache.kafka.tools.TopicCommand",
    "--bootstrap-server",
    KAFKA!,
    "--create",
    "--topic",
    topic,
    "--partitions",
    String(partitions),
    "--replication-factor",
    "1",
    ...Object.entries(configs).flatMap(([k, v]) => ["--config", `${k}=${v}`]),
  ]);
  if (result.code !== 0) {
    throw new Error(`Cannot create ${topic}: ${result.stdout}${result.stderr}`);
  }
}
