/**
 * The verifier child: `deno run --allow-read --allow-ffi --allow-env verify_main.ts <kind> <file>`.
 * Prints a start marker, then one JSON verdict line `{"ok":…,"reason":…}`; exits 0 when the file
 * is usable, 1 when it is damaged. A crash (SIGSEGV inside lmdb-js) is also a verdict: damaged.
 *
 * @module
 */
import { VERIFIER_STARTED, verifyHere, type VerifyKind } from "./verify.ts";

const encoder = new TextEncoder();

function print(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

if (import.meta.main) {
  const [kind, path] = Deno.args;
  if ((kind !== "partition" && kind !== "log") || path === undefined) {
    print(JSON.stringify({ ok: false, reason: "usage: verify_main.ts partition|log <file>" }));
    Deno.exit(2);
  }
  print(VERIFIER_STARTED);
  const reason = verifyHere(kind as VerifyKind, path);
  print(JSON.stringify({ ok: reason === null, reason }));
  Deno.exit(reason === null ? 0 : 1);
}
