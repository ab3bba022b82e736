/**
 * Cost of keeping numbers exact (src/util/json.ts) on the write path: plain `JSON.parse` against
 * `parseJsonExact` on its fast path (every number token canonical: one scan of the text) and on
 * its slow path (a token a double would change: a second parse with a reviver). Not run by the
 * test suite and nothing is asserted; figures go to RESULTS.md.
 *
 * Usage: `deno bench bench/json_bench.ts`
 *
 * @module
 */
import { decodeMutation } from "../src/apply/mod.ts";
import { parseJsonExact } from "../src/util/mod.ts";

/** A one-record put body with a typical config document (≈ 250 bytes). */
const SMALL = JSON.stringify({
  records: [{
    pk: "tenant:42",
    sk: "config:feature-flags",
    data: {
      enabled: true,
      ttl: 300,
      regions: ["eu", "us"],
      ratio: 0.25,
      owner: "team-a",
      url: "https://example.com:8443/x",
      limits: { rps: 1000, burst: 50 },
    },
  }],
});
/** The same body with one number a double can not hold. */
const SMALL_INEXACT = SMALL.replace('"ttl":300', '"ttl":1e400');
/** A 100-record put body (≈ 25 KB). */
const LARGE = JSON.stringify({
  records: Array.from({ length: 100 }, (_, i) => ({
    ...JSON.parse(SMALL).records[0],
    sk: `config:${i}`,
  })),
});
const MESSAGE = new TextEncoder().encode(
  `{"v":1,"atomic":false,"ops":[${
    JSON.stringify({ op: "put", ...JSON.parse(SMALL).records[0] })
  }]}`,
);

function keepSource(_key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === "number"
    ? (JSON as unknown as { rawJSON(s: string): unknown }).rawJSON(context!.source!)
    : value;
}

Deno.bench("small body: JSON.parse", { group: "small", baseline: true }, () => {
  JSON.parse(SMALL);
});
Deno.bench("small body: parseJsonExact (fast path, duplicates refused)", { group: "small" }, () => {
  parseJsonExact(SMALL, { refuseDuplicates: true });
});
Deno.bench("small body: JSON.parse with a reviver on every number", { group: "small" }, () => {
  JSON.parse(SMALL, keepSource);
});
Deno.bench("small body with 1e400: parseJsonExact (slow path)", { group: "small" }, () => {
  parseJsonExact(SMALL_INEXACT, { refuseDuplicates: true });
});
Deno.bench("100-record body: JSON.parse", { group: "large", baseline: true }, () => {
  JSON.parse(LARGE);
});
Deno.bench("100-record body: parseJsonExact (fast path)", { group: "large" }, () => {
  parseJsonExact(LARGE, { refuseDuplicates: true });
});
Deno.bench("log message: decodeMutation", { group: "decode" }, () => {
  decodeMutation(MESSAGE);
});
