/**
 * A real DNS server for cluster tests: dnsmasq on 127.0.0.1 serving Fly-style
 * `<region>.<app>.internal` AAAA records. Each test node gets its own loopback address
 * (127.0.0.x, published as the IPv4-mapped `::ffff:127.0.0.x`), so nodes share ports like
 * machines of one Fly region do.
 *
 * @module
 */

/** Path of the dnsmasq binary (Debian's dnsmasq-base). */
export const DNSMASQ = "/usr/sbin/dnsmasq";

/** Whether dnsmasq is installed. */
export const HAS_DNSMASQ: boolean = (() => {
  try {
    return Deno.statSync(DNSMASQ).isFile;
  } catch {
    return false;
  }
})();

/** A running dnsmasq. */
export interface DnsServer {
  /** `127.0.0.1:<port>`, for `GOSSIP_DNS_SERVER`. */
  readonly address: string;
  /** Stops it and removes its files. */
  stop(): Promise<void>;
}

/** Starts dnsmasq answering `name` with the AAAA records of `ipv4s` (mapped into IPv6). */
export async function startDns(name: string, ipv4s: readonly string[]): Promise<DnsServer> {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_dns_" });
  const hosts = `${dir}/hosts`;
  await Deno.writeTextFile(hosts, ipv4s.map((ip) => `::ffff:${ip} ${name}\n`).join(""));
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = new Deno.Command(DNSMASQ, {
      args: [
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        `--addn-hosts=${hosts}`,
        `--port=${port}`,
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--pid-file=",
        "--log-facility=-",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // dnsmasq exits at once when the port is taken; otherwise it answers within a moment.
    const answered = await answers(name, port, child.status);
    if (answered) {
      return {
        address: `127.0.0.1:${port}`,
        async stop() {
          try {
            child.kill("SIGTERM");
          } catch { /* already gone */ }
          await child.stderr.cancel().catch(() => {});
          await child.status;
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        },
      };
    }
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.stderr.cancel().catch(() => {});
    await child.status;
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  throw new Error("Cannot start dnsmasq on a free port");
}

async function answers(
  name: string,
  port: number,
  exited: Promise<Deno.CommandStatus>,
): Promise<boolean> {
  let gone = false;
  exited.then(() => gone = true);
  for (let i = 0; i < 50 && !gone; i++) {
    try {
      const records = await Deno.resolveDns(name, "AAAA", {
        nameServer: { ipAddr: "127.0.0.1", port },
      });
      if (records.length > 0) return true;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
