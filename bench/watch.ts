// deno-lint-ignore-file no-console
/**
 * Watch benchmark against a running node (issue 14's targets): many watchers of one pk, each an
 * HTTP/1.1 stream of its own, held by several client processes.
 *
 * 1. Writes without watchers: `bench/write.ts` (closed-loop puts) for `--write-s` seconds.
 * 2. Opens `--watchers` streams of `pk=hot` from `--clients` child processes (`watch.ts client`),
 *    waits until each has its first id, lets the node settle, and reads the node's resident
 *    memory (/proc/PID/status VmRSS) before and after: memory per idle watcher.
 * 3. Broadcast: `--broadcasts` puts of pk `hot`, `--gap-ms` apart, each carrying its send time;
 *    every watcher timestamps each arrival: write-to-arrival latency, p50 / p99 / max over all
 *    watchers and broadcasts, and how many of the expected arrivals came.
 * 4. Writes again with the watchers open (the same `write.ts` load, on other pks).
 *
 * Prints one JSON object on stdout.
 *
 * Usage: deno run -A bench/watch.ts --url http://127.0.0.1:28390
 *   --metrics-url http://127.0.0.1:28391/metrics --pid NODE_PID [--watchers 1000] [--clients 4]
 *   [--broadcasts 20] [--gap-ms 250] [--write-s 8] [--write-concurrency 16] [--partitions 16]
 *   [--h2c]  (each client process's streams share one HTTP/2 connection, prior knowledge)
 *   [--broadcast-only]  (no write runs: the baseline, bench/watch_probe.ts's server)
 *   [--client-bin PATH]  (the watcher processes are this binary, bench/watch_client.go built,
 *   instead of `watch.ts client`: same protocol, a fraction of the CPU per event)
 *
 * @module
 */
import { readSse } from "../src/watch/mod.ts";
import { flag, intFlag, required } from "./_args.ts";

const now = () => performance.timeOrigin + performance.now();

/**
 * A child: `watch.ts client URL COUNT [h2c]` opens COUNT streams (each on a connection of its own,
 * or with `h2c` all on one HTTP/2 connection), says `ready`, records arrivals.
 */
async function client(url: string, count: number, h2c: boolean): Promise<void> {
  const http = h2c ? Deno.createHttpClient({ http1: false, http2: true }) : undefined;
  const latencies: number[] = [];
  let ready = 0;
  let ended = 0;
  const abort = new AbortController();
  const streams = Array.from({ length: count }, async () => {
    const response = await fetch(`${url}/records/watch?pk=hot`, {
      signal: abort.signal,
      ...(http === undefined ? {} : { client: http }),
    });
    if (response.status !== 200) throw new Error(`watch: ${response.status}`);
    let first = true;
    try {
      for await (const event of readSse(response.body!, { signal: abort.signal })) {
        if (first && event.id !== null) {
          first = false;
          ready++;
          if (ready === count) console.log(JSON.stringify({ ready: count }));
        }
        if (event.event !== "put") continue;
        const sent = JSON.parse(event.data).data.t as number;
        latencies.push(now() - sent);
      }
    } catch {
      // Aborted at the end.
    } finally {
      ended++;
    }
  });
  // The parent closes stdin when it is done: report and leave.
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  abort.abort();
  await Promise.allSettled(streams);
  console.log(JSON.stringify({ latencies, ended }));
}

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]);
  return kib * 1024;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function writeRun(
  url: string,
  metricsUrl: string,
  seconds: number,
  concurrency: number,
  partitions: number,
  pid: number,
): Promise<{ recordsPerS: number; p99: number; errors: number }> {
  const json = await Deno.makeTempFile({ suffix: ".json" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./write.ts", import.meta.url).pathname,
      "--url",
      url,
      "--metrics-url",
      metricsUrl,
      "--concurrency",
      String(concurrency),
      "--records-per-request",
      "1",
      "--duration-s",
      String(seconds),
      "--partitions",
      String(partitions),
      "--pid",
      String(pid),
      "--json",
      json,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const status = await child.status;
  if (!status.success) throw new Error("write.ts failed");
  const [result] = JSON.parse(await Deno.readTextFile(json));
  await Deno.remove(json);
  const errors = Object.values(result.errors as Record<string, number>).reduce((a, b) => a + b, 0);
  return { recordsPerS: result.records / result.seconds, p99: result.p99, errors };
}

async function main(): Promise<void> {
  const url = required("url", "run the watch benchmark");
  const metricsUrl = required("metrics-url", "run the watch benchmark");
  const pid = intFlag("pid", { fallback: 0, min: 1, max: 2 ** 31, what: "the node's pid" });
  const watchers = intFlag("watchers", { fallback: 1000, min: 1, max: 20_000, what: "watchers" });
  const clients = intFlag("clients", { fallback: 4, min: 1, max: 64, what: "client processes" });
  const broadcasts = intFlag("broadcasts", { fallback: 20, min: 1, max: 1000, what: "broadcasts" });
  const gapMs = intFlag("gap-ms", { fallback: 250, min: 10, max: 10_000, what: "the gap" });
  const writeS = intFlag("write-s", { fallback: 8, min: 1, max: 120, what: "write seconds" });
  const concurrency = intFlag("write-concurrency", {
    fallback: 16,
    min: 1,
    max: 256,
    what: "writers",
  });
  const partitions = intFlag("partitions", { fallback: 16, min: 1, max: 4096, what: "partitions" });
  const h2c = Deno.args.includes("--h2c");
  const clientBin = flag("client-bin");

  // The baseline (bench/watch_probe.ts's server) takes the broadcasts only.
  const broadcastOnly = Deno.args.includes("--broadcast-only");
  const writes = () => writeRun(url, metricsUrl, writeS, concurrency, partitions, pid);
  const without = broadcastOnly ? null : await writes();
  console.error(`[watch] writes without watchers: ${JSON.stringify(without)}`);
  await new Promise((r) => setTimeout(r, 2000));
  const rssBefore = rssBytes(pid);

  const children = Array.from({ length: clients }, (_, i) => {
    const count = Math.floor(watchers / clients) + (i < watchers % clients ? 1 : 0);
    const clientArgs = [url, String(count), ...(h2c ? ["h2c"] : [])];
    const child = new Deno.Command(clientBin ?? Deno.execPath(), {
      args: clientBin === undefined
        ? ["run", "-A", new URL(import.meta.url).pathname, "client", ...clientArgs]
        : clientArgs,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    const nextLine = async (): Promise<string> => {
      while (!buffer.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) throw new Error("a client ended early");
        buffer += value;
      }
      const i = buffer.indexOf("\n");
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      return line;
    };
    return { child, nextLine, count };
  });
  const openStarted = now();
  for (const c of children) await c.nextLine();
  const openMs = now() - openStarted;
  await new Promise((r) => setTimeout(r, 3000));
  const rssAfter = rssBytes(pid);
  console.error(`[watch] ${watchers} watchers open in ${Math.round(openMs)} ms`);

  for (let i = 0; i < broadcasts; i++) {
    const response = await fetch(`${url}/records/put`, {
      method: "POST",
      body: JSON.stringify({ records: [{ pk: "hot", sk: `b${i}`, data: { t: now() } }] }),
    });
    if (response.status !== 200) throw new Error(`broadcast put: ${response.status}`);
    await response.body?.cancel();
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await new Promise((r) => setTimeout(r, 1000));

  const withWatchers = broadcastOnly ? null : await writes();
  console.error(`[watch] writes with watchers: ${JSON.stringify(withWatchers)}`);

  const latencies: number[] = [];
  let streamsEnded = 0;
  for (const c of children) {
    await c.child.stdin.close();
    const result = JSON.parse(await c.nextLine());
    latencies.push(...result.latencies);
    streamsEnded += result.ended;
    await c.child.status;
  }
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({
    watchers,
    clients,
    h2c,
    client: clientBin === undefined ? "deno" : "go",
    openMs: Math.round(openMs),
    rssBefore,
    rssAfter,
    rssPerWatcherBytes: Math.round((rssAfter - rssBefore) / watchers),
    broadcasts,
    arrivals: latencies.length,
    expectedArrivals: watchers * broadcasts,
    latencyMs: {
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: latencies.at(-1) ?? NaN,
    },
    streamsEnded,
    writesWithout: without,
    writesWith: withWatchers,
    writeRatio: without === null || withWatchers === null
      ? null
      : withWatchers.recordsPerS / without.recordsPerS,
  }));
}

if (Deno.args[0] === "client") {
  await client(Deno.args[1]!, Number(Deno.args[2]), Deno.args[3] === "h2c");
} else {
  if (flag("url") === undefined) throw new Error("Usage: see the module doc");
  await main();
}
