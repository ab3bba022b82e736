import { deepEqual, equal } from "node:assert/strict";
import { CliError, EXIT } from "./exit.ts";
import {
  findDivergences,
  nodeNames,
  type NodeReport,
  parseLag,
  type PartitionWire,
  replicaRows,
} from "./status.ts";

function partition(offset: number, chain: string, digest = "d"): PartitionWire {
  return { state: "serving", offset, chain, digest, records: 1 };
}

function report(
  url: string,
  id: string,
  partitions: Record<string, PartitionWire>,
  lag: [string, number][] = [],
): NodeReport {
  return {
    url,
    status: { node: { id, ready: true }, partitions },
    error: null,
    lag: new Map(lag),
  };
}

Deno.test("findDivergences() is empty when replicas at equal offsets agree", () => {
  const rows = replicaRows([
    report("http://a", "a", { "0": partition(5, "c5"), "1": partition(2, "x2") }),
    report("http://b", "b", { "0": partition(5, "c5"), "1": partition(9, "x9") }),
  ]);
  deepEqual(findDivergences(rows), []);
});

Deno.test("findDivergences() flags replicas at one offset whose chain or digest differ", () => {
  const rows = replicaRows([
    report("http://a", "a", { "0": partition(5, "c5"), "1": partition(3, "x3", "d1") }),
    report("http://b", "b", { "0": partition(5, "other"), "1": partition(3, "x3", "d2") }),
    report("http://c", "c", { "0": partition(4, "c4") }),
  ]);
  deepEqual(findDivergences(rows), [
    {
      partition: 0,
      offset: 5,
      differs: "chain",
      nodes: [
        { node: "a", url: "http://a", chain: "c5", digest: "d" },
        { node: "b", url: "http://b", chain: "other", digest: "d" },
      ],
    },
    {
      partition: 1,
      offset: 3,
      differs: "digest",
      nodes: [
        { node: "a", url: "http://a", chain: "x3", digest: "d1" },
        { node: "b", url: "http://b", chain: "x3", digest: "d2" },
      ],
    },
  ]);
});

Deno.test("replicaRows() says how far each replica is behind the furthest, with its lag", () => {
  const rows = replicaRows([
    report("http://a", "a", { "0": partition(7, "c") }, [["0", 2]]),
    report("http://b", "b", { "0": partition(4, "c") }),
  ]);
  deepEqual(rows.map((r) => [r.node, r.offset, r.behind, r.lag]), [["a", 7, 0, 2], [
    "b",
    4,
    3,
    null,
  ]]);
});

Deno.test("nodeNames() adds the URL to a node read twice and to one that was not read", () => {
  const unreadable: NodeReport = {
    url: "http://down",
    status: null,
    error: new CliError(EXIT.unreachable, "cannot_connect", "no"),
    lag: new Map(),
  };
  deepEqual(
    nodeNames([report("http://a", "n1", {}), report("http://b", "n1", {}), unreadable]),
    ["n1@http://a", "n1@http://b", "?@http://down"],
  );
});

Deno.test("parseLag() reads the consumer lag gauge by partition and nothing else", () => {
  const lag = parseLag([
    "# TYPE firescroll_apply_consumer_lag_messages gauge",
    'firescroll_apply_consumer_lag_messages{partition="3"} 0',
    'firescroll_apply_consumer_lag_messages{partition="12"} 41',
    'firescroll_apply_lag_seconds_bucket{le="0.001"} 5',
  ].join("\n"));
  deepEqual([...lag], [["3", 0], ["12", 41]]);
  equal(parseLag("").size, 0);
});
