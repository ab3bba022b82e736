import { equal, match, rejects } from "node:assert/strict";
import { Client, type Fetch } from "./client.ts";
import { CliError, EXIT } from "./exit.ts";
import type { Io } from "./output.ts";
import { type Clock, waitReady } from "./ready.ts";

function memoryIo(): Io & { stdout: string } {
  const io = {
    stdout: "",
    out(text: string) {
      io.stdout += text;
    },
    err() {},
    readStdin: () => Promise.resolve(""),
    readFile: () => Promise.resolve(""),
    env: () => undefined,
  };
  return io;
}

/** A clock that moves only when slept on. */
function fakeClock(): Clock {
  let now = 0;
  return {
    now: () => now,
    sleep: (ms) => {
      now += ms;
      return Promise.resolve();
    },
  };
}

/** Answers each poll with the next of `answers` (a status, or "down" for a refused connection). */
function answering(answers: (number | "down")[]): Fetch {
  let i = 0;
  return () => {
    const answer = answers[Math.min(i++, answers.length - 1)]!;
    if (answer === "down") return Promise.reject(new TypeError("connection refused"));
    const body = answer === 200 ? '{"status":"ready"}' : '{"status":"not_ready"}';
    return Promise.resolve(
      new Response(body, { status: answer, headers: { "content-type": "application/json" } }),
    );
  };
}

Deno.test("waitReady() polls through a refused connection and 503s until /readyz is 200", async () => {
  const io = memoryIo();
  const client = new Client("http://n:1", null, 1000, answering(["down", 503, 503, 200]));
  await waitReady(io, true, client, 100, 10_000, fakeClock());
  equal(io.stdout, '{"status":"ready"}\n');
  const pretty = memoryIo();
  await waitReady(
    pretty,
    false,
    new Client("http://n:1", null, 1000, answering([503, 200])),
    100,
    10_000,
    fakeClock(),
  );
  equal(pretty.stdout, "ready after 100 ms\n");
});

Deno.test("waitReady() gives up with exit 4 after the timeout, naming the last answer", async () => {
  const client = new Client("http://n:1", null, 1000, answering([503]));
  await rejects(waitReady(memoryIo(), false, client, 100, 1_000, fakeClock()), (error: unknown) => {
    equal((error as CliError).exitCode, EXIT.unreachable);
    equal((error as CliError).code, "timeout");
    match(
      (error as CliError).message,
      /within 1000 ms \(last: http_503: \{"status":"not_ready"\}\)/,
    );
    return error instanceof CliError;
  });
});

Deno.test("waitReady() stops at once on an answer that will not change (a 404)", async () => {
  const notFound: Fetch = () =>
    Promise.resolve(
      new Response('{"code":"not_found","detail":"Cannot route /readyz: no such endpoint"}', {
        status: 404,
        headers: { "content-type": "application/problem+json" },
      }),
    );
  const client = new Client("http://n:1", null, 1000, notFound);
  await rejects(
    waitReady(memoryIo(), false, client, 100, 60_000, fakeClock()),
    (error: unknown) => {
      equal((error as CliError).exitCode, EXIT.problem);
      equal((error as CliError).code, "not_found");
      return true;
    },
  );
});
