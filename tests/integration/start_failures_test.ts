/**
 * A node that cannot start says why in one JSON line and exits non-zero (issue 9, defect 8): a
 * port in use (API, internal, gossip), an unreadable TLS file, a data folder that is a file. Never
 * an uncaught Deno stack trace.
 */
import assert from "node:assert/strict";
import { type SpawnedNode, spawnNode } from "./_node.ts";

/** Bound on a failing node's exit: it must not wait for anything. */
const EXIT_TIMEOUT_MS = 20_000;

const SECRET = "start-failures-secret-0123456789";

/** Waits (bounded) for `node` to exit; kills it and throws if it does not. */
async function exitCode(node: SpawnedNode): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      node.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`node still running after ${EXIT_TIMEOUT_MS} ms`)),
          EXIT_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    await node.cleanup();
    throw new Error(`${(error as Error).message}\n--- node output ---\n${node.logs.tail()}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts a node with `env`, expects a non-zero exit whose output is JSON lines only (no stack
 * trace, nothing on stderr) with exactly one error line, `event`; returns that line.
 */
async function failedStart(
  env: Record<string, string | undefined>,
  event: string,
  dbPath?: string,
): Promise<Record<string, unknown>> {
  const node = await spawnNode(dbPath === undefined ? { env } : { env, dbPath });
  try {
    const code = await exitCode(node);
    const why = `exit ${code}, output:\n${node.logs.tail()}`;
    assert.notEqual(code, 0, why);
    const lines = node.logs.all.filter((line) => line.trim() !== "");
    for (const line of lines) {
      assert.ok(!line.startsWith("stderr:"), `unexpected stderr output, ${why}`);
      assert.ok(!/^\s+at /.test(line), `stack trace, ${why}`);
    }
    const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const errors = events.filter((e) => e.level === "error");
    assert.equal(errors.length, 1, `expected exactly one error line, ${why}`);
    assert.equal(errors[0]!.event, event, why);
    assert.equal(typeof errors[0]!.error, "string", why);
    return errors[0]!;
  } finally {
    await node.cleanup();
  }
}

Deno.test("a node whose API port is in use exits non-zero with one listen_failed line naming the api address", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const line = await failedStart({ API_PORT: String(port) }, "listen_failed");
    assert.equal(line.listener, "api");
    assert.equal(line.address, `127.0.0.1:${port}`);
    assert.equal(line.os_error, "AddrInUse");
  } finally {
    taken.close();
  }
});

Deno.test("a node whose internal port is in use exits non-zero with one listen_failed line naming the internal address", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const line = await failedStart({ INTERNAL_PORT: String(port) }, "listen_failed");
    assert.equal(line.listener, "internal");
    assert.equal(line.address, `127.0.0.1:${port}`);
    assert.equal(line.os_error, "AddrInUse");
  } finally {
    taken.close();
  }
});

Deno.test("a node whose gossip port is in use exits non-zero with one listen_failed line naming the gossip address", async () => {
  const taken = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const line = await failedStart({
      GOSSIP_PORT: String(port),
      GOSSIP_PEERS: `127.0.0.1:${port}`,
      CLUSTER_SECRET: SECRET,
    }, "listen_failed");
    assert.equal(line.listener, "gossip");
    assert.equal(line.address, `127.0.0.1:${port}`);
    assert.equal(line.os_error, "AddrInUse");
  } finally {
    taken.close();
  }
});

Deno.test("a node whose TLS certificate file does not exist exits non-zero with one tls_file_unreadable line naming it", async () => {
  const missing = "/nonexistent/firescroll-cert.pem";
  const line = await failedStart(
    { TLS_CERT_FILE: missing, TLS_KEY_FILE: missing },
    "tls_file_unreadable",
  );
  assert.equal(line.variable, "TLS_CERT_FILE");
  assert.equal(line.path, missing);
});

Deno.test("a node whose TLS files are not PEM exits non-zero with one listen_failed line for the api", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_it_tls_" });
  try {
    await Deno.writeTextFile(`${dir}/cert.pem`, "not a certificate\n");
    await Deno.writeTextFile(`${dir}/key.pem`, "not a key\n");
    const line = await failedStart(
      { TLS_CERT_FILE: `${dir}/cert.pem`, TLS_KEY_FILE: `${dir}/key.pem` },
      "listen_failed",
    );
    assert.equal(line.listener, "api");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node whose DB_PATH is a file exits non-zero with one data_dir_unusable line naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_it_dbfile_" });
  try {
    const file = `${dir}/not-a-folder`;
    await Deno.writeTextFile(file, "x");
    const line = await failedStart({}, "data_dir_unusable", file);
    assert.equal(line.path, file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every listener whose port is taken ends the start with exit code 1 and one listen_failed line naming the port", async () => {
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const tcpPort = (tcp.addr as Deno.NetAddr).port;
  const udpPort = (udp.addr as Deno.NetAddr).port;
  const cases: { listener: string; port: number; env: Record<string, string> }[] = [
    { listener: "api", port: tcpPort, env: { API_PORT: String(tcpPort) } },
    { listener: "internal", port: tcpPort, env: { INTERNAL_PORT: String(tcpPort) } },
    {
      listener: "gossip",
      port: udpPort,
      env: {
        GOSSIP_PORT: String(udpPort),
        GOSSIP_PEERS: `127.0.0.1:${udpPort}`,
        CLUSTER_SECRET: SECRET,
      },
    },
  ];
  try {
    for (const { listener, port, env } of cases) {
      const node = await spawnNode({ env });
      try {
        const code = await exitCode(node);
        const why = `${listener}: exit ${code}, output:\n${node.logs.tail()}`;
        assert.equal(code, 1, why);
        assert.ok(!node.logs.all.some((l) => l.startsWith("stderr:") || /^\s+at /.test(l)), why);
        const failed = node.logs.events().filter((e) => e.event === "listen_failed");
        assert.equal(failed.length, 1, why);
        assert.equal(failed[0]!.listener, listener, why);
        assert.equal(failed[0]!.port, port, why);
        assert.equal(failed[0]!.address, `127.0.0.1:${port}`, why);
        assert.equal(failed[0]!.stack, undefined, why);
      } finally {
        await node.cleanup();
      }
    }
  } finally {
    tcp.close();
    udp.close();
  }
});
