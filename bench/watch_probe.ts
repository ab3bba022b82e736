// deno-lint-ignore-file no-console
/**
 * Probe for issue 14 (watch), before any watch code exists: what Deno.serve gives for many
 * long-lived Server-Sent-Events streams. No FireScroll code. A server keeps N `text/event-stream`
 * responses open (a ReadableStream each) and, when told, writes one event to every one of them;
 * a client in another process opens the N streams with fetch and timestamps each event's arrival.
 *
 *   deno run -A --v8-flags=--expose-gc bench/watch_probe.ts server PORT
 *   deno run -A bench/watch_probe.ts client PORT N EVENTS
 *
 * The server also answers `POST /records/put` by sending the first record to every stream as a
 * `put` event, so `bench/watch.ts --broadcast-only` measures it as the baseline of a node.
 *
 * The client prints one JSON line: the server's resident memory before and after opening the
 * streams (from the server's /stats), so memory per idle stream; and for each of EVENTS events,
 * the time from the publish request to its arrival on every stream, as p50/p99/max over all
 * arrivals.
 *
 * @module
 */

const encoder = new TextEncoder();

function serve(port: number): void {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  let sequence = 0;
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/stats") {
      // With --v8-flags=--expose-gc, collect first: what stays is what the streams hold.
      (globalThis as { gc?: () => void }).gc?.();
      const { rss, heapUsed } = Deno.memoryUsage();
      return Response.json({ streams: streams.size, rss, heap_used: heapUsed });
    }
    if (path === "/records/put") {
      // bench/watch.ts's broadcast, answered as a node would: one event of the first record.
      return request.json().then((body) => {
        sequence++;
        const record = JSON.stringify(body.records[0]);
        const bytes = encoder.encode(`id: 0:${sequence}\nevent: put\ndata: ${record}\n\n`);
        for (const controller of streams) controller.enqueue(bytes);
        return Response.json({ offsets: { "0": sequence } });
      });
    }
    if (path === "/publish") {
      sequence++;
      const bytes = encoder.encode(`id: 0:${sequence}\nevent: put\ndata: ${Date.now()}\n\n`);
      for (const controller of streams) controller.enqueue(bytes);
      return Response.json({ delivered_to: streams.size, sequence });
    }
    let self: ReadableStreamDefaultController<Uint8Array> | null = null;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        streams.add(controller);
        controller.enqueue(encoder.encode(`: open\nid: 0:${sequence}\n\n`));
      },
      cancel() {
        if (self !== null) streams.delete(self);
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  });
}

async function client(port: number, n: number, events: number): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  const stats = async () =>
    (await (await fetch(`${base}/stats`)).json()) as { rss: number; heap_used: number };
  // Let the server settle and take its baseline.
  await new Promise((r) => setTimeout(r, 500));
  const before = await stats();
  const arrivals: number[][] = Array.from({ length: events }, () => []);
  const published: number[] = [];
  const decoder = new TextDecoder();
  const readers: Promise<void>[] = [];
  let opened = 0;
  const allOpen = Promise.withResolvers<void>();
  for (let i = 0; i < n; i++) {
    const response = await fetch(`${base}/watch`);
    const reader = response.body!.getReader();
    readers.push((async () => {
      let text = "";
      let seen = 0;
      while (seen < events) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
        if (text.includes(": open\n\n") && text.startsWith(": open")) {
          text = text.slice(text.indexOf("\n\n") + 2);
          if (++opened === n) allOpen.resolve();
        }
        let end: number;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const event = text.slice(0, end);
          text = text.slice(end + 2);
          const id = /^id: 0:(\d+)$/m.exec(event);
          if (id === null) continue;
          const k = Number(id[1]) - 1;
          arrivals[k]?.push(performance.now());
          seen++;
        }
      }
      await reader.cancel();
    })());
  }
  await allOpen.promise;
  await new Promise((r) => setTimeout(r, 1000));
  const after = await stats();
  for (let k = 0; k < events; k++) {
    published[k] = performance.now();
    await (await fetch(`${base}/publish`)).json();
    await new Promise((r) => setTimeout(r, 200));
  }
  await Promise.all(readers);
  const latencies = arrivals.flatMap((times, k) => times.map((t) => t - published[k]!));
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  console.log(JSON.stringify({
    streams: n,
    events,
    arrivals: latencies.length,
    rss_before: before.rss,
    rss_after_open: after.rss,
    bytes_per_stream: Math.round((after.rss - before.rss) / n),
    heap_before: before.heap_used,
    heap_after_open: after.heap_used,
    heap_bytes_per_stream: Math.round((after.heap_used - before.heap_used) / n),
    latency_ms: { p50: at(0.5), p99: at(0.99), max: latencies.at(-1) },
  }));
}

const [mode, port, n, events] = Deno.args;
if (mode === "server") serve(Number(port));
else if (mode === "client") await client(Number(port), Number(n), Number(events ?? "10"));
else throw new Error("usage: server PORT | client PORT N EVENTS");
