import { deepEqual, equal, match, throws } from "node:assert/strict";
import { CliError, EXIT } from "./exit.ts";
import { parseInput } from "./output.ts";
import { batchBody, mergeOffsets, splitBatch } from "./records.ts";

function usage(fn: () => unknown, pattern: RegExp): void {
  throws(fn, (error: unknown) => {
    equal((error as CliError).exitCode, EXIT.usage);
    match((error as CliError).message, pattern);
    return error instanceof CliError;
  });
}

Deno.test("batchBody() takes {ops: […]} as the body and wraps a bare array of ops", () => {
  const ops = [{ op: "put", pk: "a", sk: "1", data: 1 }];
  deepEqual(batchBody({ ops }), { body: { ops }, ops });
  deepEqual(batchBody(ops), { body: { ops }, ops });
  usage(() => batchBody({ records: ops }), /expected \{"ops": \[\.\.\.\]\} or \[\.\.\.\]/);
  usage(() => batchBody(7), /Cannot read the batch/);
});

Deno.test("splitBatch() sends runs of puts and deletes in input order, chunked", () => {
  const ops = [
    { op: "put", pk: "a", sk: "1", data: 1, if: "pk == null" },
    { op: "put", pk: "b", sk: "1", data: 2, ttl_ms: 5 },
    { op: "put", pk: "c", sk: "1", data: 3 },
    { op: "delete", pk: "a", sk: "1" },
    { op: "put", pk: "a", sk: "1", data: 4 },
  ];
  deepEqual(splitBatch(ops, 2), [
    {
      path: "/records/put",
      first: 0,
      records: [
        { pk: "a", sk: "1", data: 1, if: "pk == null" },
        { pk: "b", sk: "1", data: 2, ttl_ms: 5 },
      ],
    },
    { path: "/records/put", first: 2, records: [{ pk: "c", sk: "1", data: 3 }] },
    { path: "/records/delete", first: 3, records: [{ pk: "a", sk: "1" }] },
    { path: "/records/put", first: 4, records: [{ pk: "a", sk: "1", data: 4 }] },
  ]);
  usage(() => splitBatch([{ op: "upsert", pk: "a", sk: "1" }], 10), /ops\[0\] is not/);
});

Deno.test("a split batch keeps every number of its data as written", () => {
  const { ops } = batchBody(
    parseInput(
      '[{"op":"put","pk":"a","sk":"1","data":{"n":1e400,"m":9007199254740993,"x":1.50}}]',
      "b",
    ),
  );
  const [request] = splitBatch(ops, 10);
  equal(
    JSON.stringify({ records: request!.records }),
    '{"records":[{"pk":"a","sk":"1","data":{"n":1e400,"m":9007199254740993,"x":1.50}}]}',
  );
});

Deno.test("parseInput() refuses what the server would refuse: not JSON, a member twice", () => {
  usage(() => parseInput("{", "the data"), /Cannot read the data:/);
  usage(() => parseInput('{"a":1,"a":2}', "the data"), /names the member "a" twice/);
  usage(() => parseInput("[".repeat(600) + "]".repeat(600), "the data"), /levels deep/);
});

Deno.test("mergeOffsets() keeps the highest offset of each partition", () => {
  const into: Record<string, number> = {};
  mergeOffsets(into, { "0": 3, "2": 1 });
  mergeOffsets(into, { "0": 5, "1": 0 });
  mergeOffsets(into, { "0": 4 });
  deepEqual(into, { "0": 5, "2": 1, "1": 0 });
});
