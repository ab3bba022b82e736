/**
 * One port, three protocols: HTTP/1.1, HTTP/2 cleartext with prior knowledge, and HTTP/2 over
 * TLS negotiated with ALPN. Driven with curl, a client that is not Deno.
 */
import assert from "node:assert/strict";
import { run, stepper, type TestNode, withNode } from "./_node.ts";

/** Runs curl; returns the body and the `%{http_version} %{http_code}` trailer line. */
async function curl(args: string[]): Promise<{ body: string; version: string; status: number }> {
  const result = await run("curl", [
    "-sS",
    "--max-time",
    "10",
    "-w",
    "\n%{http_version} %{http_code}",
    ...args,
  ]);
  assert.equal(result.code, 0, `curl ${args.join(" ")}: ${result.stderr}`);
  const cut = result.stdout.lastIndexOf("\n");
  const [version, status] = result.stdout.slice(cut + 1).split(" ");
  return { body: result.stdout.slice(0, cut), version: version!, status: Number(status) };
}

function postArgs(node: TestNode, path: string, body: unknown): string[] {
  return [
    "-X",
    "POST",
    "-H",
    "content-type: application/json",
    "--data-binary",
    JSON.stringify(body),
    `${node.apiUrl}${path}`,
  ];
}

Deno.test("the API port answers HTTP/2 cleartext with prior knowledge and HTTP/1.1", async (t) => {
  await withNode({}, async (node) => {
    const step = stepper(t, node);
    const put = await node.post("/records/put", {
      records: [{ pk: "h2", sk: "k", data: { via: "h1" } }],
    });
    assert.equal(put.status, 200, put.text);

    await step("curl --http2-prior-knowledge gets HTTP/2 on a get, with the record", async () => {
      const get = { records: [{ pk: "h2", sk: "k" }], after: put.json.offsets, wait_ms: 2000 };
      const h2 = await curl(["--http2-prior-knowledge", ...postArgs(node, "/records/get", get)]);
      assert.equal(h2.version, "2");
      assert.equal(h2.status, 200);
      assert.deepEqual(JSON.parse(h2.body).records[0].data, { via: "h1" });
    });

    await step("writes and problems work over h2c too", async () => {
      const written = await curl([
        "--http2-prior-knowledge",
        ...postArgs(node, "/records/put", { records: [{ pk: "h2", sk: "k2", data: 2 }] }),
      ]);
      assert.equal(written.version, "2");
      assert.equal(written.status, 200);
      assert.ok(JSON.parse(written.body).offsets);
      const bad = await curl([
        "--http2-prior-knowledge",
        ...postArgs(node, "/records/put", { records: [] }),
      ]);
      assert.equal(bad.version, "2");
      assert.equal(bad.status, 400);
      assert.equal(JSON.parse(bad.body).code, "no_records");
    });

    await step("the exact command from the docs prints 2", async () => {
      const result = await run("curl", [
        "--http2-prior-knowledge",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        ...postArgs(node, "/records/get", { records: [{ pk: "h2", sk: "k" }] }),
      ]);
      assert.equal(result.stdout, "2");
    });

    await step("plain curl on the same port speaks HTTP/1.1", async () => {
      const h1 = await curl(["--http1.1", `${node.apiUrl}/healthz`]);
      assert.equal(h1.version, "1.1");
      assert.equal(h1.status, 200);
    });
  });
});

Deno.test("with TLS_CERT_FILE and TLS_KEY_FILE the API port negotiates HTTP/2 over TLS", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_tls_" });
  try {
    const cert = `${dir}/cert.pem`;
    const key = `${dir}/key.pem`;
    const openssl = await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ]);
    assert.equal(openssl.code, 0, openssl.stderr);

    await withNode({ env: { TLS_CERT_FILE: cert, TLS_KEY_FILE: key } }, async (node) => {
      const step = stepper(t, node);
      assert.match(node.apiUrl, /^https:\/\//);

      await step("curl --http2 over TLS negotiates HTTP/2 via ALPN", async () => {
        const h2 = await curl(["-k", "--http2", `${node.apiUrl}/healthz`]);
        assert.equal(h2.version, "2");
        assert.equal(h2.status, 200);
        // The certificate verifies against itself, so the TLS setup is the one configured.
        const verified = await curl(["--cacert", cert, "--http2", `${node.apiUrl}/healthz`]);
        assert.equal(verified.version, "2");
      });

      await step("records round-trip over TLS with HTTP/2 and HTTP/1.1", async () => {
        const put = await curl([
          "-k",
          "--http2",
          ...postArgs(node, "/records/put", { records: [{ pk: "tls", sk: "k", data: "secret" }] }),
        ]);
        assert.equal(put.status, 200, put.body);
        const offsets = JSON.parse(put.body).offsets;
        const get = await curl([
          "-k",
          "--http1.1",
          ...postArgs(node, "/records/get", {
            records: [{ pk: "tls", sk: "k" }],
            after: offsets,
            wait_ms: 2000,
          }),
        ]);
        assert.equal(get.version, "1.1");
        assert.equal(JSON.parse(get.body).records[0].data, "secret");
      });

      await step("cleartext HTTP on the TLS port gets no answer", async () => {
        const plain = await run("curl", [
          "-s",
          "--max-time",
          "5",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `http://127.0.0.1:${node.apiPort}/healthz`,
        ]);
        assert.notEqual(plain.stdout, "200");
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
