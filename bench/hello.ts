// deno-lint-ignore-file no-console
/**
 * The baseline of the read benchmark: the cheapest possible `Deno.serve` server. It answers
 * "hello" to any request and reads nothing (no body, no headers, no URL parsing), so the gap
 * between it and a FireScroll node on the same machine, client and connections is what the node's
 * own work costs.
 *
 * Usage: `deno run --allow-net=127.0.0.1 --allow-env --allow-read=bench/hello.ts bench/hello.ts [port]`
 * (port: first argument, else `HELLO_PORT`, else 28080; the read permission lets the workers
 * load this module). Binds 127.0.0.1 only. Prints one JSON
 * line `{"event":"hello_listening","port":…}` once it listens; stops on SIGINT/SIGTERM.
 *
 * `HELLO_THREADS=N` (default 1): with 1 the main thread serves alone, as a node with
 * `SERVE_THREADS=1` does. With N ≥ 2, N `Worker` threads (this same module) each run their own
 * `Deno.serve` with `reusePort` on the port, as a node's serving threads do, and the main thread
 * only keeps them; the `hello_listening` line (with `"threads":N`) comes once every one listens.
 *
 * @module
 */

/** A worker's name: this prefix, then the port it serves. */
const WORKER_PREFIX = "hello-worker:";
/** How long a stop waits for the workers' servers to shut down before exiting anyway. */
const STOP_DEADLINE_MS = 5_000;

/** Messages between the main thread and a worker. */
type WorkerMessage = "listening" | "stop" | "stopped";

interface WorkerScope {
  postMessage(message: WorkerMessage): void;
  onmessage: ((event: MessageEvent<WorkerMessage>) => void) | null;
}

function intSetting(raw: string, what: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`Cannot start: ${what} must be an integer in [${min}, ${max}], got "${raw}"`);
    Deno.exit(2);
  }
  return n;
}

function portFromArgs(): number {
  return intSetting(Deno.args[0] ?? Deno.env.get("HELLO_PORT") ?? "28080", "port", 0, 65535);
}

function hello(): Response {
  return new Response("hello");
}

/** One serving worker: listens with `reusePort`, says so, shuts down when asked. */
function runWorker(port: number): void {
  const scope = globalThis as unknown as WorkerScope;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    reusePort: true,
    onListen: () => scope.postMessage("listening"),
  }, hello);
  scope.onmessage = (event) => {
    if (event.data === "stop") void server.shutdown().then(() => scope.postMessage("stopped"));
  };
}

/** The main thread alone, exactly as before `HELLO_THREADS` existed. */
function serveHere(port: number): void {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ hostname, port }) =>
      console.log(JSON.stringify({ event: "hello_listening", hostname, port })),
  }, hello);
  const stop = () => void server.shutdown().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

/** N workers on one port; the line once all listen; a stop shuts every one down, then exits. */
function serveInWorkers(port: number, threads: number): void {
  let listening = 0;
  let stopped = 0;
  const workers = Array.from({ length: threads }, () => {
    const worker = new Worker(import.meta.url, { type: "module", name: `${WORKER_PREFIX}${port}` });
    worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      if (event.data === "listening" && ++listening === threads) {
        console.log(
          JSON.stringify({ event: "hello_listening", hostname: "127.0.0.1", port, threads }),
        );
      } else if (event.data === "stopped" && ++stopped === threads) {
        Deno.exit(0);
      }
    };
    worker.onerror = (event) => {
      console.error(`Cannot serve: a hello worker failed: ${event.message}`);
      Deno.exit(1);
    };
    return worker;
  });
  const stop = () => {
    for (const worker of workers) worker.postMessage("stop");
    setTimeout(() => Deno.exit(0), STOP_DEADLINE_MS);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

const self = (globalThis as { name?: string }).name;
if (self?.startsWith(WORKER_PREFIX)) {
  runWorker(Number(self.slice(WORKER_PREFIX.length)));
} else {
  const port = portFromArgs();
  const threads = intSetting(Deno.env.get("HELLO_THREADS") ?? "1", "HELLO_THREADS", 1, 1024);
  if (threads === 1) serveHere(port);
  else if (port === 0) {
    console.error("Cannot start: HELLO_THREADS above 1 needs a fixed port (every worker binds it)");
    Deno.exit(2);
  } else serveInWorkers(port, threads);
}
