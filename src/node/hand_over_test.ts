import { equal, ok } from "node:assert/strict";
import { ControlSocket, controlSocketPath, requestTakeover } from "./hand_over.ts";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("ControlSocket.close() resolves only once its socket file is gone, so a successor's socket at the same path survives", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_hand_over_test_" });
  try {
    const path = controlSocketPath(dir)!;
    const holder = ControlSocket.listen(dir, () => Promise.resolve(), () => {}, 1000)!;
    ok(exists(path));
    await holder.close();
    equal(exists(path), false);
    // The successor listens at the same path; nothing of the holder's may remove it later.
    const successor = ControlSocket.listen(dir, () => Promise.resolve(), () => {}, 1000)!;
    await new Promise((resolve) => setTimeout(resolve, 50));
    ok(exists(path), "the successor's socket is still there");
    await successor.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("requestTakeover() hands over: released, then the holder hears the successor serves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_hand_over_test_" });
  try {
    const steps: string[] = [];
    let served: () => void = () => {};
    const done = new Promise<void>((resolve) => served = resolve);
    const holder = ControlSocket.listen(dir, () => {
      steps.push("hand over");
      return Promise.resolve();
    }, () => {
      steps.push("served");
      served();
    }, 5000)!;
    const takeover = await requestTakeover(dir, 5000);
    equal(takeover.pid, Deno.pid);
    steps.push("released");
    await takeover.serving();
    await done;
    equal(steps.join(", "), "hand over, released, served");
    await holder.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
