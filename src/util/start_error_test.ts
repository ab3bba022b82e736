import assert from "node:assert/strict";
import { bindOrThrow, StartError } from "./start_error.ts";

Deno.test("bindOrThrow() turns a port in use into listen_failed naming the listener, address and OS error", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    bindOrThrow("internal", "127.0.0.1", port, () => Deno.listen({ hostname: "127.0.0.1", port }));
    assert.fail("expected listen_failed");
  } catch (error) {
    assert.ok(error instanceof StartError);
    assert.equal(error.event, "listen_failed");
    assert.deepEqual(error.fields, {
      listener: "internal",
      address: `127.0.0.1:${port}`,
      port,
      os_error: "AddrInUse",
    });
  } finally {
    taken.close();
  }
});

Deno.test("bindOrThrow() brackets an IPv6 address", () => {
  try {
    bindOrThrow("gossip", "::1", 8192, () => {
      throw new Deno.errors.PermissionDenied("nope");
    });
    assert.fail("expected listen_failed");
  } catch (error) {
    assert.ok(error instanceof StartError);
    assert.equal(error.fields.address, "[::1]:8192");
    assert.equal(error.fields.os_error, "PermissionDenied");
  }
});
