/**
 * Opens COUNT keep-alive connections to a node's public port (each sends one GET /healthz and
 * reads the answer, then stays idle), samples the node's /proc/PID/status before and after, and
 * closes them all. Loopback only; bounded in count and time. Prints one JSON line.
 *
 *   deno run --allow-all bench/idle_conns.ts PORT PID COUNT
 */
const [port, pid, count] = Deno.args.map(Number);
if (!port || !pid || !count || count > 20_000) {
  throw new Error("usage: idle_conns.ts PORT PID COUNT (COUNT <= 20000)");
}
const deadline = Date.now() + 120_000;

function memory(): { rss_kib: number; anon_kib: number; fds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  let fds = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) fds++;
  return { rss_kib: kb("VmRSS"), anon_kib: kb("RssAnon"), fds };
}

const request = new TextEncoder().encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
const buffer = new Uint8Array(4096);
const before = memory();
const conns: Deno.Conn[] = [];
let answered = 0;
let failed = 0;
while (conns.length + failed < count && Date.now() < deadline) {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(conn);
    await conn.write(request);
    const n = await conn.read(buffer);
    if (n !== null && new TextDecoder().decode(buffer.subarray(0, 12)).startsWith("HTTP/1.1 200")) {
      answered++;
    }
  } catch {
    failed++;
  }
}
await new Promise((r) => setTimeout(r, 2000));
const after = memory();
for (const conn of conns) {
  try {
    conn.close();
  } catch {
    // Closed by the server already.
  }
}
// deno-lint-ignore no-console
console.log(JSON.stringify({
  count,
  opened: conns.length,
  answered_200: answered,
  failed,
  before,
  after,
  per_connection_kib: Math.round(((after.rss_kib - before.rss_kib) / Math.max(1, answered)) * 10) /
    10,
  fds_per_connection: Math.round(((after.fds - before.fds) / Math.max(1, answered)) * 100) / 100,
}));
