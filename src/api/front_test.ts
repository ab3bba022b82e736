import { deepEqual, equal } from "node:assert/strict";
import { closeConnection, Front } from "./front.ts";

const ok = () => Promise.resolve(new Response("ok"));

Deno.test("Front holds requests until whenOpen resolves, and answers directly once open", async () => {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => open = resolve);
  const front = new Front(ok, () => opened);
  const order: string[] = [];
  const held = front.serve(new Request("http://x/")).then(() => order.push("held"));
  await new Promise((r) => setTimeout(r, 20));
  deepEqual(order, []);
  open();
  front.open();
  await held;
  equal(await (await front.serve(new Request("http://x/"))).text(), "ok");
  deepEqual(order, ["held"]);
});

Deno.test("closeConnection() closes HTTP/1.1 connections only (a request with a host header)", () => {
  const h1 = new Request("http://x/", { headers: { host: "x" } });
  equal(closeConnection(h1, new Response("a")).headers.get("connection"), "close");
  // HTTP/2 requests carry :authority, not host: the header would break the connection.
  const h2 = new Request("http://x/");
  equal(closeConnection(h2, new Response("a")).headers.get("connection"), null);
});
