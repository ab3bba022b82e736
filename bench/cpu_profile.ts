// deno-lint-ignore-file no-console
/**
 * Samples the CPU profile of a running Deno process through its inspector (a process started with
 * `--inspect=HOST:PORT`) for a few seconds and prints where the time went: self time by function,
 * then total (inclusive) time for the heaviest functions. Used to find what a request costs beyond
 * a hello-world's (bench/RESULTS.md, issue 13).
 *
 *   deno run -A bench/cpu_profile.ts --inspect 127.0.0.1:29229 --seconds 8 [--top 40] [--out F]
 *
 * `--out` also writes the raw `.cpuprofile` (loadable in Chrome DevTools). Only the thread the
 * inspector's first target names is sampled (the main thread: run the node with SERVE_THREADS=1).
 *
 * @module
 */
import { flag } from "./_args.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = {
  inspect: flag("inspect") ?? "127.0.0.1:29229",
  seconds: flag("seconds") ?? "8",
  top: flag("top") ?? "40",
  out: flag("out") ?? "",
};
const targets = await (await fetch(`http://${args.inspect}/json/list`)).json() as {
  webSocketDebuggerUrl: string;
}[];
const target = targets[0];
if (target === undefined) throw new Error(`no inspector target at ${args.inspect}`);
const socket = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  socket.onopen = resolve;
  socket.onerror = reject;
});
let nextId = 1;
const pending = new Map<number, (result: unknown) => void>();
socket.onmessage = (event) => {
  const message = JSON.parse(event.data as string) as { id?: number; result?: unknown };
  if (message.id !== undefined) pending.get(message.id)?.(message.result);
};
function call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    socket.send(JSON.stringify({ id, method, params }));
  });
}

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 50 });
await call("Profiler.start");
await new Promise((resolve) => setTimeout(resolve, Number(args.seconds) * 1000));
const { profile } = await call("Profiler.stop") as { profile: Profile };
socket.close();
if (args.out !== "") await Deno.writeTextFile(args.out, JSON.stringify(profile));

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) {
  for (const child of node.children ?? []) parent.set(child, node.id);
}
const label = (node: ProfileNode): string => {
  const frame = node.callFrame;
  const file = frame.url.replace(/^.*\/(src|bench|ext|node_modules)\//, "$1/");
  return `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
};
const self = new Map<string, number>();
const total = new Map<string, number>();
let all = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  all += dt;
  const leaf = byId.get(profile.samples[i]!)!;
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
    const name = label(byId.get(id)!);
    if (seen.has(name)) continue;
    seen.add(name);
    total.set(name, (total.get(name) ?? 0) + dt);
  }
}
const top = Number(args.top);
const table = (title: string, map: Map<string, number>) => {
  console.log(`\n${title} (% of ${(all / 1e6).toFixed(2)} s sampled)`);
  for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(100 * us / all).toFixed(1).padStart(6)} %  ${name}`);
  }
};
table("self time", self);
table("total time", total);
