import { deepEqual, equal, ok } from "node:assert/strict";
import { docSection } from "../../tests/_helpers.ts";
import { ERROR_CODES, isErrorCode } from "../util/error_codes.ts";
import { OperationalError } from "../util/errors.ts";
import { badRequest, problemResponse, PROBLEMS, statusOf } from "./problem.ts";

/** The rows of docs/api.md's "## Errors" table: code → status, in the order written. */
async function documentedCodes(): Promise<Map<string, number>> {
  const rows = new Map<string, number>();
  for (const line of await docSection("api.md", "## Errors")) {
    const row = /^\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|/.exec(line);
    if (row === null) continue;
    const [, status, code] = row as unknown as [string, string, string];
    ok(!rows.has(code), `docs/api.md lists ${code} twice`);
    rows.set(code, Number(status));
  }
  ok(rows.size > 0, "docs/api.md's error table has no rows");
  return rows;
}

Deno.test("every code of the table is in docs/api.md's error table with the same status", async () => {
  const documented = await documentedCodes();
  for (const code of ERROR_CODES) {
    equal(documented.get(code), PROBLEMS[code].status, `docs/api.md on ${code}`);
  }
});

Deno.test("docs/api.md's error table lists no code outside the closed list", async () => {
  for (const code of (await documentedCodes()).keys()) {
    ok(isErrorCode(code), `docs/api.md lists ${code}, which no error has`);
  }
});

Deno.test("the closed list has no duplicates and the table one row per code", () => {
  equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
  deepEqual(Object.keys(PROBLEMS).sort(), [...ERROR_CODES].sort());
});

Deno.test("codes with the same status share its title", () => {
  const titles = new Map<number, string>();
  for (const code of ERROR_CODES) {
    const { status, title } = PROBLEMS[code];
    const seen = titles.get(status);
    if (seen === undefined) titles.set(status, title);
    else equal(title, seen, `title of ${code}`);
  }
});

Deno.test("isErrorCode() refuses what is not in the list", () => {
  ok(isErrorCode("not_caught_up"));
  for (const value of ["Not_Found", "rate_limited", "", null, 404, undefined, {}]) {
    ok(!isErrorCode(value), String(value));
  }
});

Deno.test("problemResponse() answers an operational error with its code's status and title", async () => {
  const response = problemResponse(
    new OperationalError("not_caught_up", "Cannot read: partition 3 is behind", {
      partition: 3,
      offset: 40,
      applied: 38,
      status: 200, // A detail cannot overwrite a member of the problem.
    }),
  );
  equal(response.status, 504);
  equal(response.headers.get("content-type"), "application/problem+json");
  equal(
    await response.text(),
    '{"type":"https://firescroll.dev/problems/not_caught_up","title":"Gateway Timeout",' +
      '"status":504,"code":"not_caught_up","detail":"Cannot read: partition 3 is behind",' +
      '"partition":3,"offset":40,"applied":38}',
  );
});

Deno.test("problemResponse() keeps the headers its caller passes (405's Allow)", async () => {
  const response = problemResponse(
    new OperationalError("method_not_allowed", "Cannot PUT /metrics: use GET", { allow: "GET" }),
    { allow: "GET" },
  );
  equal(response.status, 405);
  equal(response.headers.get("allow"), "GET");
  deepEqual(await response.json(), {
    type: "https://firescroll.dev/problems/method_not_allowed",
    title: "Method Not Allowed",
    status: 405,
    code: "method_not_allowed",
    detail: "Cannot PUT /metrics: use GET",
    allow: "GET",
  });
});

Deno.test("problemResponse() answers any other thrown value with 500 internal_error", async () => {
  const response = problemResponse(new TypeError("a bug"));
  equal(response.status, 500);
  deepEqual(await response.json(), {
    type: "https://firescroll.dev/problems/internal_error",
    title: "Internal Server Error",
    status: 500,
    code: "internal_error",
    detail: "The server failed unexpectedly; the error is logged.",
  });
});

Deno.test("badRequest() raises its code with the details, which the table answers with 400", () => {
  const error = badRequest("invalid_limit", "Cannot use limit", { limit: 1000 });
  ok(error instanceof OperationalError);
  equal(error.code, "invalid_limit");
  deepEqual(error.details, { limit: 1000 });
  equal(statusOf(error.code), 400);
});

Deno.test("docs/architecture.md's status summary holds every code once, under its status", async () => {
  const seen = new Map<string, number>();
  for (const line of await docSection("architecture.md", "## Errors: one closed list")) {
    const row = /^\|\s*(\d{3})\s*\|(.*)\|\s*$/.exec(line);
    if (row === null) continue;
    for (const [, code] of row[2]!.matchAll(/`([a-z_]+)`/g)) {
      ok(!seen.has(code!), `${code} twice`);
      seen.set(code!, Number(row[1]));
    }
  }
  deepEqual([...seen.keys()].sort(), [...ERROR_CODES].sort());
  for (const [code, status] of seen) {
    equal(status, statusOf(code as (typeof ERROR_CODES)[number]), code);
  }
});
