/**
 * Probe for issue 13 (serving threads): does a worker thread that opened the same LMDB file
 * read-only see what the main thread just committed? The main thread commits `counter = n`
 * (`transactionSync`) 1000 times, yielding to the event loop every 100 commits, and after each
 * commit posts `n` to the worker; the worker renews its read transaction (`resetReadTxn()`, with
 * `--no-reset`: not) and reads `counter`. A read older than `n` is stale. Prints one JSON line:
 * fresh and stale reads, and a sample of `[n, value read]`.
 *
 * `--put-sync` commits with `putSync` (what `PartitionStore` does) instead of `put`.
 *
 *   deno run -A bench/lmdb_visibility_probe.ts [--no-reset] [--no-sync] [--put-sync]
 *
 * @module
 */
import { open } from "lmdb";

const path = `${Deno.env.get("TMPDIR") ?? "/tmp"}/firescroll-lmdb-visibility.mdb`;
const me = (globalThis as { name?: string }).name ?? "";
if (me.startsWith("reader")) {
  const reset = !me.includes("no-reset");
  const db = open({ path, readOnly: true });
  let fresh = 0;
  let stale = 0;
  const sample: unknown[] = [];
  // A worker's global scope; the file is type-checked as a window script.
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<number>) => void) | null;
    postMessage(message: unknown): void;
  };
  scope.onmessage = (e: MessageEvent<number>) => {
    const n = e.data;
    if (reset) (db as unknown as { resetReadTxn(): void }).resetReadTxn();
    const v = db.get("counter") as number | undefined;
    if (v !== undefined && v >= n) fresh++;
    else stale++;
    if (n % 100 === 0) sample.push([n, v ?? null]);
    if (n === 999) scope.postMessage({ fresh, stale, sample });
  };
} else {
  const noSync = Deno.args.includes("--no-sync");
  const putSync = Deno.args.includes("--put-sync");
  await Deno.remove(path).catch(() => {});
  await Deno.remove(`${path}-lock`).catch(() => {});
  const db = open({ path, ...(noSync ? { noSync: true } : {}) });
  const name = `reader${Deno.args.includes("--no-reset") ? "-no-reset" : ""}`;
  const worker = new Worker(import.meta.url, { type: "module", name });
  const result = new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
  await new Promise((r) => setTimeout(r, 300));
  for (let n = 0; n < 1000; n++) {
    db.transactionSync(() => putSync ? db.putSync("counter", n) : db.put("counter", n));
    worker.postMessage(n);
    if (n % 100 === 99) await new Promise((r) => setTimeout(r, 1));
  }
  const out = await result;
  worker.terminate();
  await db.close();
  await Deno.stdout.write(
    new TextEncoder().encode(
      JSON.stringify({ reset: !name.includes("no-reset"), noSync, putSync, ...out as object }) +
        "\n",
    ),
  );
}
