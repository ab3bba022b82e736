// deno-lint-ignore-file no-console
/**
 * The baseline of the read benchmark: the cheapest possible `Deno.serve` server. It answers
 * "hello" to any request and reads nothing (no body, no headers, no URL parsing), so the gap
 * between it and a FireScroll node on the same machine, client and connections is what the node's
 * own work costs.
 *
 * Usage: `deno run --allow-net=127.0.0.1 --allow-env bench/hello.ts [port]`
 * (port: first argument, else `HELLO_PORT`, else 28080). Binds 127.0.0.1 only. Prints one JSON
 * line `{"event":"hello_listening","port":…}` once it listens; stops on SIGINT/SIGTERM.
 *
 * @module
 */

function portFromArgs(): number {
  const raw = Deno.args[0] ?? Deno.env.get("HELLO_PORT") ?? "28080";
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Cannot start: port must be an integer in [0, 65535], got "${raw}"`);
    Deno.exit(2);
  }
  return port;
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: portFromArgs(),
  onListen: ({ hostname, port }) =>
    console.log(JSON.stringify({ event: "hello_listening", hostname, port })),
}, () => new Response("hello"));

const stop = () => void server.shutdown().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
