/**
 * Public connections: idle HTTP/1.1 connections are closed after IDLE_TIMEOUT_MS (issue 9
 * defect 4), a connection that never finishes its header too, and CONNECTIONS_MAX caps how many
 * are open. Timings are bounds, never speeds: "closed within 10 s" for a 500 ms timeout.
 */
import { equal, match, ok } from "node:assert/strict";
import { withNode } from "./_node.ts";

/** Generous bound on the server closing a connection whose idle timeout is 500 ms. */
const CLOSE_BOUND_MS = 10_000;

const SHORT_IDLE = {
  IDLE_TIMEOUT_MS: "500",
  // The idle timeout must be longer than any wait a request may do (config relation).
  WAIT_MS_MAX: "100",
  LOG_WRITE_TIMEOUT_MS: "100",
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads until the server closes the connection or `boundMs` passes; returns what it read. */
async function readUntilClosed(
  conn: Deno.Conn,
  boundMs: number,
): Promise<{ closed: boolean; text: string }> {
  const buffer = new Uint8Array(16_384);
  let text = "";
  const deadline = Date.now() + boundMs;
  while (Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = await Promise.race([
      conn.read(buffer).catch(() => null),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), deadline - Date.now())),
    ]);
    clearTimeout(timer);
    if (read === "timeout") break;
    if (read === null) return { closed: true, text };
    text += decoder.decode(buffer.subarray(0, read), { stream: true });
  }
  return { closed: false, text };
}

/** Reads one response whose body length is given by content-length. */
async function readResponse(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(16_384);
  let text = "";
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
    if (text.length >= end + 4 + length) return text;
  }
  return text;
}

Deno.test("an idle keep-alive HTTP/1.1 connection is closed by the server after IDLE_TIMEOUT_MS", async () => {
  await withNode({ env: SHORT_IDLE }, async (node) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: node.apiPort });
    try {
      await conn.write(encoder.encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
      const first = await readResponse(conn);
      match(first, /^HTTP\/1\.1 200/);
      // Keep-alive still works within the timeout: a second request on the same connection.
      await conn.write(encoder.encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
      match(await readResponse(conn), /^HTTP\/1\.1 200/);
      const { closed } = await readUntilClosed(conn, CLOSE_BOUND_MS);
      ok(closed, `the idle connection was still open after ${CLOSE_BOUND_MS} ms`);
    } finally {
      conn.close();
    }
  });
});

Deno.test("a connection that never finishes its request header is closed after IDLE_TIMEOUT_MS", async () => {
  await withNode({ env: SHORT_IDLE }, async (node) => {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: node.apiPort });
    const partial = await Deno.connect({ hostname: "127.0.0.1", port: node.apiPort });
    try {
      await partial.write(encoder.encode("POST /records/get HTTP/1.1\r\nhost: x\r\n"));
      const [a, b] = await Promise.all([
        readUntilClosed(silent, CLOSE_BOUND_MS),
        readUntilClosed(partial, CLOSE_BOUND_MS),
      ]);
      ok(a.closed, "a connection that sent nothing was still open");
      ok(b.closed, "a connection with half a header was still open");
    } finally {
      silent.close();
      partial.close();
    }
  });
});

Deno.test("a connection beyond CONNECTIONS_MAX gets 503 too_many_connections and is closed", async () => {
  await withNode({ env: { CONNECTIONS_MAX: "3" } }, async (node) => {
    // The test client's own pool may hold a connection too: open until one is refused.
    const held: Deno.Conn[] = [];
    let refused: string | null = null;
    try {
      for (let i = 0; i < 10 && refused === null; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: node.apiPort });
        held.push(conn);
        await conn.write(encoder.encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
        const text = await readResponse(conn);
        if (!text.startsWith("HTTP/1.1 200")) refused = text;
      }
      ok(held.length >= 2, "the first connection was refused");
      ok(refused !== null, "10 connections were accepted with CONNECTIONS_MAX=3");
      match(refused, /^HTTP\/1\.1 503/);
      const body = JSON.parse(refused.slice(refused.indexOf("\r\n\r\n") + 4));
      equal(body.code, "too_many_connections");
      equal(body.status, 503);
      const { closed } = await readUntilClosed(held.at(-1)!, CLOSE_BOUND_MS);
      ok(closed, "the refused connection was not closed");
    } finally {
      for (const conn of held) conn.close();
    }
    // Once they are closed, new connections are served again.
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = await node.request("/healthz").then((r) => r.status, () => 0);
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    equal(status, 200);
  });
});
