import { deepEqual, equal, match, rejects } from "node:assert/strict";
import { answerError, Client, type Fetch } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";

Deno.test("answerError() turns a problem into its code and detail, exit 1", () => {
  const error = answerError(
    404,
    "application/problem+json",
    '{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"Cannot route /x"}',
  );
  equal(error.exitCode, EXIT.problem);
  equal(error.line, "error: not_found: Cannot route /x");
});

Deno.test("answerError() quotes an answer that is not a problem as http_<status>", () => {
  equal(
    answerError(503, "application/json", '{"status":"not_ready"}').line,
    'error: http_503: {"status":"not_ready"}',
  );
  equal(
    answerError(502, "text/html", "<h1>Bad\n gateway</h1>").line,
    "error: http_502: <h1>Bad gateway</h1>",
  );
  equal(answerError(500, null, "").line, "error: http_500: HTTP 500");
});

Deno.test("Client sends the bearer token and JSON, and returns a 2xx body", async () => {
  const seen: { url: string; init: RequestInit }[] = [];
  const fake: Fetch = (url, init) => {
    seen.push({ url, init });
    return Promise.resolve(new Response('{"offsets":{"0":1}}'));
  };
  const client = new Client("http://n:1", "tok", 1000, fake);
  equal(await client.post("/records/put", "{}"), '{"offsets":{"0":1}}');
  const headers = new Headers(seen[0]!.init.headers);
  deepEqual(
    [seen[0]!.url, seen[0]!.init.method, headers.get("authorization"), headers.get("content-type")],
    ["http://n:1/records/put", "POST", "Bearer tok", "application/json"],
  );
  const open = new Client("http://n:1", null, 1000, fake);
  await open.call("GET", "/readyz", null);
  equal(new Headers(seen[1]!.init.headers).get("authorization"), null);
});

Deno.test("Client turns a refused connection into exit 4 and a slow node into a timeout", async () => {
  const refused = new Client(
    "http://n:1",
    null,
    1000,
    () => Promise.reject(new TypeError("refused")),
  );
  await rejects(refused.call("GET", "/readyz", null), (error: unknown) => {
    equal((error as CliError).exitCode, EXIT.unreachable);
    equal((error as CliError).code, "cannot_connect");
    match((error as CliError).message, /Cannot reach http:\/\/n:1\/readyz: refused/);
    return true;
  });
  const never: Fetch = (_, init) =>
    new Promise((_, reject) =>
      init.signal!.addEventListener("abort", () => reject(init.signal!.reason))
    );
  const slow = new Client("http://n:1", null, 20, never);
  await rejects(slow.call("GET", "/readyz", null), (error: unknown) => {
    equal((error as CliError).exitCode, EXIT.unreachable);
    equal((error as CliError).code, "timeout");
    match((error as CliError).message, /no answer within 20 ms/);
    return error instanceof CliError;
  });
});
