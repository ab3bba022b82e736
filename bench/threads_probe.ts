/**
 * Probe for issue 13's first decision: serve reads of one LMDB file from several JS threads
 * (workers in one process) or from several processes, each a `Deno.serve` with `reusePort` on one
 * port answering a one-key `POST` get from the file. No FireScroll code: this measures what the
 * runtime and lmdb-js give, before the node is built on either.
 *
 *   deno run -A bench/threads_probe.ts seed DIR RECORDS          # writes DIR/probe.mdb
 *   deno run -A bench/threads_probe.ts workers DIR PORT N         # N serving workers, one process
 *   deno run -A bench/threads_probe.ts process DIR PORT           # one serving process (start N)
 *   deno run -A bench/threads_probe.ts process-metadata DIR PORT  # the same, reading what a
 *                                                                 # FireScroll request needs
 *   deno run -A bench/threads_probe.ts hello PORT N               # N hello-world workers
 *
 * A get body is the node's (`{"records":[{"pk":"user-<i>","sk":"profile"}]}`, what bench/get.lua
 * sends); the answer is the stored JSON. Runs until killed.
 *
 * @module
 */
import { open } from "lmdb";

function serveFile(dir: string, port: number): void {
  const db = open({ path: `${dir}/probe.mdb`, readOnly: true });
  Deno.serve({ hostname: "127.0.0.1", port, reusePort: true, onListen: () => {} }, async (req) => {
    // The node's get body, as bench/get.lua sends it: one key, its pk names the record here.
    const { records } = await req.json();
    const value = db.get(records[0].pk);
    return new Response(value === undefined ? "null" : JSON.stringify(value), {
      headers: { "content-type": "application/json" },
    });
  });
}

/**
 * `serveFile`'s get plus the request metadata FireScroll's contract makes a server read on every
 * request (bench/get_floor.sh): the method and path to route, `content-length` to refuse an
 * oversized body before reading it, and two clock reads for the latency histogram.
 */
function serveFileReadingMetadata(dir: string, port: number): void {
  const db = open({ path: `${dir}/probe.mdb`, readOnly: true });
  let observed = 0;
  Deno.serve({ hostname: "127.0.0.1", port, reusePort: true, onListen: () => {} }, async (req) => {
    const started = performance.now();
    const url = req.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    if (req.method !== "POST" || path !== "/records/get") {
      return new Response(null, { status: 404 });
    }
    if (Number(req.headers.get("content-length")) > 1 << 20) {
      return new Response(null, { status: 413 });
    }
    const { records } = await req.json();
    const value = db.get(records[0].pk);
    const response = new Response(value === undefined ? "null" : JSON.stringify(value), {
      headers: { "content-type": "application/json" },
    });
    observed += performance.now() - started;
    return response;
  });
}

function serveHello(port: number): void {
  Deno.serve(
    { hostname: "127.0.0.1", port, reusePort: true, onListen: () => {} },
    () => new Response("hello"),
  );
}

const [mode, ...args] = Deno.args;
const self = (globalThis as { name?: string }).name;
if (self?.startsWith("probe-worker:")) {
  const [, kind, dir, port] = self.split(":");
  if (kind === "file") serveFile(dir!, Number(port));
  else serveHello(Number(port));
} else if (mode === "seed") {
  const [dir, records] = args;
  const db = open({ path: `${dir}/probe.mdb` });
  await db.transaction(() => {
    for (let i = 0; i < Number(records); i++) {
      db.put(`user-${i}`, { name: `user ${i}`, plan: "pro", region: "fra", n: i });
    }
  });
  await db.close();
} else if (mode === "workers" || mode === "hello") {
  const [a, b, c] = args;
  const n = Number(mode === "workers" ? c : b);
  const name = mode === "workers" ? `probe-worker:file:${a}:${b}` : `probe-worker:hello::${a}`;
  for (let i = 0; i < n; i++) new Worker(import.meta.url, { type: "module", name });
  // The main thread only keeps the workers; a real node applies and gossips here.
  setInterval(() => {}, 1 << 30);
} else if (mode === "process") {
  serveFile(args[0]!, Number(args[1]));
} else if (mode === "process-metadata") {
  serveFileReadingMetadata(args[0]!, Number(args[1]));
} else {
  throw new Error(
    "usage: seed DIR RECORDS | workers DIR PORT N | process DIR PORT | process-metadata DIR PORT | hello PORT N",
  );
}
