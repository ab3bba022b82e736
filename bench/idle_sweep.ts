// deno-lint-ignore-file no-console
/**
 * Cost of one idle sweep (src/api/idle_sweeper.ts) against the number of open connections: a
 * Deno.serve on loopback in this process, COUNT keep-alive client connections to it (also in this
 * process, so the sweep sees 2 × COUNT sockets, half of them on the port), then ROUNDS timed sweeps.
 * Loopback only, bounded in count. Prints one Markdown row per count.
 *
 *   deno run --allow-all bench/idle_sweep.ts [COUNT...]   (default 100 1000 4000)
 */
import { IdleSweeper } from "../src/api/mod.ts";
import { loadConfig } from "../src/config/mod.ts";
import { createMetrics } from "../src/metrics/mod.ts";

const counts = Deno.args.length > 0 ? Deno.args.map(Number) : [100, 1000, 4000];
const ROUNDS = 20;
const request = new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
const buffer = new Uint8Array(1024);

console.log("| connections | sockets in process | sweep, median ms | per socket, µs |");
console.log("| ----------- | ------------------ | ---------------- | -------------- |");
for (const count of counts) {
  if (!(count > 0 && count <= 10_000)) throw new Error("COUNT must be in 1..10000");
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("ok"),
  );
  const { api } = loadConfig({ IDLE_TIMEOUT_MS: "3600000", CONNECTIONS_MAX: "1000000" });
  const sweeper = IdleSweeper.open({ api, port: server.addr.port, metrics: createMetrics() });
  if (sweeper === null) throw new Error("the idle sweep is not available here");
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(request);
    await conn.read(buffer);
    conns.push(conn);
  }
  const times: number[] = [];
  let open = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now();
    open = sweeper.sweep().open;
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(ROUNDS / 2)]!;
  let fds = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) fds++;
  console.log(
    `| ${open} | ${fds} | ${median.toFixed(2)} | ${(median * 1000 / fds).toFixed(2)} |`,
  );
  for (const conn of conns) conn.close();
  sweeper.close();
  await server.shutdown();
}
