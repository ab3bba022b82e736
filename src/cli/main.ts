/**
 * The entry point of the command-line client: `deno task fs <command> …`, or the binary of
 * `deno compile --allow-net --allow-env --allow-read -o fs src/cli/main.ts` (docs/cli.md).
 *
 * @module
 */
import { denoIo, execute, parse } from "./mod.ts";

const invocation = parse(Deno.args, denoIo);
if (typeof invocation === "number") Deno.exit(invocation);
const stop = new AbortController();
if (invocation.command.kind === "watch") {
  // A watch runs until stopped: Ctrl-C (or SIGTERM) ends it cleanly, with exit 0.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => stop.abort());
    } catch {
      // Windows has no SIGTERM listener; Ctrl-C still works there.
    }
  }
}
Deno.exit(await execute(invocation, denoIo, stop.signal));
