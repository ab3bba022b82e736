import { deepEqual, equal } from "node:assert/strict";
import { assertProblem, type InProcessApi, withApi } from "../../tests/_helpers.ts";
import { partitionOf } from "../keys/mod.ts";

const PARTITIONS = 4;
const P = String(partitionOf("cfg", PARTITIONS));

async function write(api: InProcessApi, path: string, record: Record<string, unknown>) {
  const result = await api.request("POST", path, {
    records: [{ pk: "cfg", sk: "route", ...record }],
  });
  equal(result.status, 200, result.text);
  return result.json.offsets[P] as number;
}

async function getAsOf(api: InProcessApi, asOf: Record<string, unknown>) {
  const result = await api.request("POST", "/records/get", {
    records: [{ pk: "cfg", sk: "route" }],
    ...asOf,
  });
  equal(result.status, 200, result.text);
  return result.json.records[0]?.data ?? null;
}

Deno.test("history lists a key's versions newest first, deletes included, in pages", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    const v1 = await write(api, "/records/put", { data: { to: "a" } });
    const v2 = await write(api, "/records/put", { data: { to: "b" } });
    const gone = await write(api, "/records/delete", {});
    const v3 = await write(api, "/records/put", { data: { to: "c" } });
    // Another key of the same pk, with a longer sk: not in this key's history.
    await api.request("POST", "/records/put", { records: [{ pk: "cfg", sk: "route2", data: 0 }] });
    const all = await api.request("POST", "/records/history", { pk: "cfg", sk: "route" });
    equal(all.status, 200, all.text);
    deepEqual(
      all.json.versions.map((
        v: { change: string; version: number; record?: { data: unknown } },
      ) => [
        v.change,
        v.version,
        v.record?.data ?? null,
      ]),
      [["put", v3, { to: "c" }], ["delete", gone, null], ["put", v2, { to: "b" }], [
        "put",
        v1,
        { to: "a" },
      ]],
    );
    equal(all.json.next, null);
    const first = await api.request("POST", "/records/history", {
      pk: "cfg",
      sk: "route",
      limit: 2,
    });
    deepEqual(first.json.versions.map((v: { version: number }) => v.version), [v3, gone]);
    equal(first.json.next, gone);
    const rest = await api.request("POST", "/records/history", {
      pk: "cfg",
      sk: "route",
      limit: 2,
      before_version: first.json.next,
    });
    deepEqual(rest.json.versions.map((v: { version: number }) => v.version), [v2, v1]);
  });
});

Deno.test("as_of reads a key as it was after an offset or at an instant of log time", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    const v1 = await write(api, "/records/put", { data: 1 });
    await new Promise((r) => setTimeout(r, 5));
    const v2 = await write(api, "/records/put", { data: 2 });
    const gone = await write(api, "/records/delete", {});
    await write(api, "/records/put", { data: 3 });
    equal(await getAsOf(api, { as_of: { [P]: v1 - 1 } }), null, "before the first put");
    equal(await getAsOf(api, { as_of: { [P]: v1 } }), 1);
    equal(await getAsOf(api, { as_of: { [P]: v2 } }), 2);
    equal(await getAsOf(api, { as_of: { [P]: gone } }), null);
    equal(await getAsOf(api, { as_of: { [P]: gone + 1 } }), 3);
    equal(await getAsOf(api, {}), 3);
    // By log time: each version's updated_at is its message's timestamp.
    const history = await api.request("POST", "/records/history", { pk: "cfg", sk: "route" });
    const at = (version: number) =>
      history.json.versions.find((v: { version: number }) => v.version === version).at as number;
    equal(await getAsOf(api, { as_of_ms: at(v1) }), 1);
    equal(await getAsOf(api, { as_of_ms: at(v1) - 1 }), null);
    equal(await getAsOf(api, { as_of_ms: Date.now() + 60_000 }), 3);
  });
});

Deno.test("undo: put an old version back with a condition on the current version", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    await write(api, "/records/put", { data: { to: "good" } });
    const bad = await write(api, "/records/put", { data: { to: "broken" } });
    const history = await api.request("POST", "/records/history", { pk: "cfg", sk: "route" });
    const previous = history.json.versions[1].record.data;
    deepEqual(previous, { to: "good" });
    const undo = await write(api, "/records/put", { data: previous, if: `_version == ${bad}` });
    deepEqual(await getAsOf(api, { after: { [P]: undo }, wait_ms: 1000 }), previous);
    // The same undo again does nothing: the current version is no longer `bad`.
    await write(api, "/records/put", { data: { to: "other" }, if: `_version == ${bad}` });
    deepEqual(await getAsOf(api, {}), previous);
  });
});

Deno.test("a point older than the kept history is 410 history_expired; HISTORY_RETAIN_SEC=0 turns history off", async () => {
  await withApi(
    { PARTITIONS: String(PARTITIONS), HISTORY_RETAIN_SEC: "1", WATCH_RETAIN_SEC: "1" },
    async (api) => {
      const v1 = await write(api, "/records/put", { data: 1 });
      await new Promise((r) => setTimeout(r, 1100));
      // Applying this one prunes the first change (older than 1 s of log time).
      await write(api, "/records/put", { data: 2 });
      assertProblem(
        await api.request("POST", "/records/get", {
          records: [{ pk: "cfg", sk: "route" }],
          as_of: { [P]: v1 - 1 },
        }),
        410,
        "history_expired",
      );
      assertProblem(
        await api.request("POST", "/records/get", {
          records: [{ pk: "cfg", sk: "route" }],
          as_of_ms: 1,
        }),
        410,
        "history_expired",
      );
      for (
        const bad of [{ as_of: [1] }, { as_of_ms: -1 }, { as_of: { [P]: 1 }, as_of_ms: 1 }, {
          as_of: { "99": 1 },
        }]
      ) {
        assertProblem(
          await api.request("POST", "/records/get", { records: [{ pk: "cfg", sk: "r" }], ...bad }),
          400,
          "invalid_as_of",
        );
      }
    },
  );
  await withApi({ PARTITIONS: String(PARTITIONS), HISTORY_RETAIN_SEC: "0" }, async (api) => {
    assertProblem(
      await api.request("POST", "/records/history", { pk: "cfg", sk: "route" }),
      404,
      "history_disabled",
    );
    assertProblem(
      await api.request("POST", "/records/get", { records: [{ pk: "c", sk: "r" }], as_of_ms: 1 }),
      404,
      "history_disabled",
    );
  });
});

Deno.test("list as_of shows a pk's records as they were: changed, deleted and later keys as of then", async () => {
  await withApi({ PARTITIONS: String(PARTITIONS) }, async (api) => {
    const put = async (records: Record<string, unknown>[], path = "/records/put") => {
      const result = await api.request("POST", path, {
        records: records.map((r) => ({ pk: "cfg", ...r })),
      });
      equal(result.status, 200, result.text);
      return result.json.offsets[P] as number;
    };
    const then = await put([{ sk: "a", data: 1 }, { sk: "b", data: 1 }, { sk: "c", data: 1 }]);
    await new Promise((r) => setTimeout(r, 5));
    await put([{ sk: "b", data: 2 }, { sk: "d", data: 2 }]);
    await put([{ sk: "c" }], "/records/delete");
    await put([{ sk: "a", data: 3 }]);
    const list = async (extra: Record<string, unknown>) => {
      const result = await api.request("POST", "/records/list", { pk: "cfg", ...extra });
      equal(result.status, 200, result.text);
      return [
        result.json.records.map((r: { sk: string; data: unknown }) => `${r.sk}=${r.data}`),
        result.json.next,
      ];
    };
    deepEqual(await list({}), [["a=3", "b=2", "d=2"], null]);
    deepEqual(await list({ as_of: { [P]: then } }), [["a=1", "b=1", "c=1"], null]);
    deepEqual(await list({ as_of: { [P]: then }, reverse: true, limit: 2 }), [["c=1", "b=1"], "b"]);
    deepEqual(await list({ as_of: { [P]: then }, start_after: "a", limit: 1 }), [["b=1"], "b"]);
    deepEqual(await list({ as_of: { [P]: then }, if: "data == 1 && sk != 'b'" }), [
      ["a=1", "c=1"],
      null,
    ]);
    deepEqual(await list({ as_of: { [P]: then - 1 } }), [[], null]);
    const history = await api.request("POST", "/records/history", { pk: "cfg", sk: "a" });
    const firstAt = history.json.versions.at(-1).at as number;
    deepEqual(await list({ as_of_ms: firstAt }), [["a=1", "b=1", "c=1"], null]);
    assertProblem(
      await api.request("POST", "/records/list", { pk: "cfg", as_of: { [P]: then }, if: "(" }),
      400,
      "invalid_condition",
    );
  });
});
