/**
 * Authenticated Kafka (SASL/PLAIN on the test broker's second listener): what hosted Kafka
 * services require. A node with the right credentials works end to end; wrong ones stop it at
 * start with a message that says so.
 */
import assert from "node:assert/strict";
import { freshNamespace } from "./_kafka.ts";
import { spawnNode, startNode } from "./_node.ts";

const SASL = Deno.env.get("FIRESCROLL_TEST_KAFKA_SASL") ?? null;

function saslEnv(namespace: string, password: string): Record<string, string> {
  return {
    KAFKA_SEEDS: SASL!,
    KAFKA_SASL_MECHANISM: "plain",
    KAFKA_SASL_USERNAME: "firescroll",
    KAFKA_SASL_PASSWORD: password,
    NAMESPACE: namespace,
    PARTITIONS: "4",
  };
}

Deno.test({
  name: "a node with SASL/PLAIN credentials writes and reads through an authenticated broker",
  ignore: SASL === null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const node = await startNode({
      env: saslEnv(freshNamespace("sasl"), "firescroll-secret"),
      readyTimeoutMs: 60_000,
    });
    try {
      const put = await node.post("/records/put", { records: [{ pk: "a", sk: "b", data: 1 }] });
      assert.equal(put.status, 200, put.text);
      const get = await node.post("/records/get", {
        records: [{ pk: "a", sk: "b" }],
        after: put.json.offsets,
        wait_ms: 10_000,
      });
      assert.equal(get.status, 200, get.text);
      assert.equal(get.json.records[0]?.data, 1);
    } finally {
      await node.cleanup();
    }
  },
});

Deno.test({
  name: "wrong SASL credentials stop the node at start, naming the problem",
  ignore: SASL === null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const node = await spawnNode({ env: saslEnv(freshNamespace("saslbad"), "wrong-password") });
    try {
      const started = Date.now();
      const code = await node.exited;
      assert.notEqual(code, 0);
      assert.ok(Date.now() - started < 30_000, "the node kept retrying bad credentials");
      assert.match(node.logs.all.join("\n"), /Kafka refused the SASL credentials/);
      assert.ok(!node.logs.all.some((l) => l.includes('"event":"api_listening"')));
    } finally {
      await node.cleanup();
    }
  },
});
