/**
 * Bad configuration stops a node at boot, quickly, naming the variable at fault.
 */
import assert from "node:assert/strict";
import { spawnNode } from "./_node.ts";

const EXIT_TIMEOUT_MS = 15_000;

interface BadConfig {
  readonly env: Record<string, string>;
  readonly variable: string;
  /** Part of the message that states the bound. */
  readonly says: RegExp;
}

const BAD: BadConfig[] = [
  { env: { PARTITIONS: "0" }, variable: "PARTITIONS", says: /\[1, 4096\]/ },
  { env: { PARTITIONS: "sixteen" }, variable: "PARTITIONS", says: /integer/ },
  { env: { WAIT_MS_MAX: "-5" }, variable: "WAIT_MS_MAX", says: /\[0, / },
  { env: { CLUSTER_SECRET: "short" }, variable: "CLUSTER_SECRET", says: /16 characters/ },
  { env: { TLS_CERT_FILE: "/nonexistent.pem" }, variable: "TLS_KEY_FILE", says: /TLS_CERT_FILE/ },
  {
    env: { BODY_BYTES_MAX: "4096", DATA_BYTES_MAX: "8192" },
    variable: "DATA_BYTES_MAX",
    says: /BODY_BYTES_MAX/,
  },
  { env: { NAMESPACE: "has space" }, variable: "NAMESPACE", says: /A-Za-z0-9/ },
];

/** Spawns a node with `env` and waits (bounded) for it to exit; returns code, time, logs. */
async function boot(env: Record<string, string>) {
  const node = await spawnNode({ env });
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const code = await Promise.race([
      node.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`node still running after ${EXIT_TIMEOUT_MS} ms`)),
          EXIT_TIMEOUT_MS,
        );
      }),
    ]);
    return { code, ms: performance.now() - started, logs: node.logs };
  } finally {
    clearTimeout(timer);
    await node.cleanup();
  }
}

Deno.test("a bad PARTITIONS value makes the node exit non-zero at once, naming PARTITIONS", async () => {
  const { code, ms, logs } = await boot({ PARTITIONS: "0" });
  assert.notEqual(code, 0);
  assert.ok(ms < EXIT_TIMEOUT_MS);
  const events = logs.events();
  const error = events.find((e) => e.event === "invalid_config");
  assert.ok(error !== undefined, logs.tail());
  assert.equal(error.level, "error");
  assert.equal(error.variable, "PARTITIONS");
  assert.match(String(error.error), /PARTITIONS/);
  assert.ok(!events.some((e) => e.event === "api_listening"), "it must not serve");
});

Deno.test("every bad config value stops the node, naming the variable and its bound", async () => {
  const results = await Promise.all(BAD.map((bad) => boot(bad.env)));
  for (let i = 0; i < BAD.length; i++) {
    const bad = BAD[i]!;
    const { code, logs } = results[i]!;
    const label = `${JSON.stringify(bad.env)}:\n${logs.tail(10)}`;
    assert.notEqual(code, 0, label);
    const error = logs.events().find((e) => e.event === "invalid_config");
    assert.ok(error !== undefined, label);
    assert.equal(error.variable, bad.variable, label);
    assert.match(String(error.error), new RegExp(bad.variable), label);
    assert.match(String(error.error), bad.says, label);
  }
});
