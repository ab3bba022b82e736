/**
 * HTTP fuzz test: one real embedded node, attacked as a hostile client would. Random requests to
 * every public route (put, delete, batch, get, list, healthz, readyz, unknown routes, wrong
 * methods) are built from valid templates and then mutated: wrong types, missing and extra
 * fields, huge/empty/unicode/lone-surrogate keys, random `if` expressions, number edge cases in
 * `data`, bad JSON, truncated bodies, bodies near the size limits, odd content types, HTTP/1.1
 * keep-alive (fetch's pool, and raw sockets carrying several requests).
 *
 * It asserts that no request is answered 5xx (the failing request is shrunk to a minimal one and
 * printed with the seed), that every answer to a well-formed HTTP request is JSON (problem+json
 * with a `code` for 4xx), and that a put answered 200 whose `data` holds numbers stores exactly
 * the minified data with every number token as sent (read back with `after` + `wait_ms`).
 *
 * Environment:
 * - `FUZZ_SEED`: a number, or `random` (printed); a fixed seed by default.
 * - `FUZZ_REQUESTS` (2000) and `FUZZ_SECONDS` (20): the budget; the run stops at the first.
 * - `FUZZ_LONG=1` (`deno task fuzz`): defaults become a random seed, 120 s and progress lines.
 * - `FUZZ_PROGRESS=1`: a progress line every 5 s.
 * - `FUZZ_MEMORY_EVERY_S=N`: sample the node's RssAnon/RssFile every N s and print a table.
 * - `FUZZ_NODE_<NAME>=value`: sets `<NAME>` for the node (e.g. `FUZZ_NODE_CONDITION_CACHE_MAX`).
 * - `FUZZ_NUMBERS_CHECK=0`: skip the byte-exact numbers read-back (development only).
 *
 * Reproduce a failure: `FUZZ_SEED=<seed> deno test --allow-all tests/fuzz/http_fuzz_test.ts`
 * (the same seed and budget send the same requests; with 4 workers the interleaving may differ).
 */
import { readResult, startNode, type TestNode } from "../integration/_node.ts";
import { type Random, seededRandom } from "../_helpers.ts";
import { randomCondition as grammarCondition } from "./_conditions.ts";

// deno-lint-ignore no-console
const print = (line: string) => console.log(line);

/** `deno task fuzz` sets FUZZ_LONG=1: a random seed, a longer budget and progress lines. */
const LONG = Deno.env.get("FUZZ_LONG") === "1";
const DEFAULT_SEED = 0x0f22_0009;
const SEED = (() => {
  const raw = Deno.env.get("FUZZ_SEED") ?? (LONG ? "random" : "");
  if (raw === "") return DEFAULT_SEED;
  if (raw === "random") return crypto.getRandomValues(new Uint32Array(1))[0]!;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`FUZZ_SEED must be an integer or "random"`);
  return n >>> 0;
})();
const REQUESTS_MAX = Number(Deno.env.get("FUZZ_REQUESTS") ?? (LONG ? 10_000_000 : 2000));
const SECONDS_MAX = Number(Deno.env.get("FUZZ_SECONDS") ?? (LONG ? 120 : 20));
const PROGRESS = (Deno.env.get("FUZZ_PROGRESS") ?? (LONG ? "1" : "0")) === "1";
const MEMORY_EVERY_S = Number(Deno.env.get("FUZZ_MEMORY_EVERY_S") ?? 0);
const NUMBERS_CHECK = Deno.env.get("FUZZ_NUMBERS_CHECK") !== "0";
const WORKERS = 4;
/** Bound on requests sent while shrinking a failing request. */
const SHRINK_TRIES_MAX = 400;

// Limits of the node under test: small, so bodies near them are cheap to build and send.
const LIMITS = {
  BODY_BYTES_MAX: 65_536,
  DATA_BYTES_MAX: 16_384,
  MESSAGE_BYTES_MAX: 40_000,
  RECORDS_PER_REQUEST_MAX: 50,
  CONDITION_BYTES_MAX: 1024,
  PARTITIONS: 4,
};

// --- Randomness ------------------------------------------------------------------------------

/** A seeded PRNG (mulberry32) with the helpers the generators need. */
class Rng {
  /** The underlying generator, for the shared condition grammar. */
  readonly random: Random;
  constructor(seed: number) {
    this.random = seededRandom(seed);
  }
  next(): number {
    return this.random();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

// --- JSON with verbatim number tokens --------------------------------------------------------

/** A JSON token written verbatim (number edge cases that JSON.stringify would change). */
class Raw {
  constructor(readonly text: string) {}
}
type J = null | boolean | number | string | Raw | J[] | { [key: string]: J };

function isObj(v: J | undefined): v is { [key: string]: J } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Raw);
}

/** JSON text of `v`; `pretty` adds whitespace that the server must not keep. */
function emit(v: J, pretty = false): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) {
    const sep = pretty ? ", " : ",";
    return "[" + v.map((x) => emit(x, pretty)).join(sep) + "]";
  }
  if (isObj(v)) {
    const parts = Object.entries(v).map(([k, x]) =>
      JSON.stringify(k) + (pretty ? " : " : ":") + emit(x, pretty)
    );
    return pretty ? "{\n  " + parts.join(",\n  ") + "\n}" : "{" + parts.join(",") + "}";
  }
  return JSON.stringify(v);
}

function hasNumber(v: J | undefined): boolean {
  if (typeof v === "number" || v instanceof Raw) return true;
  if (Array.isArray(v)) return v.some(hasNumber);
  if (isObj(v)) return Object.values(v).some(hasNumber);
  return false;
}

/** Number tokens that a double cannot hold exactly, or that JSON.stringify would rewrite. */
const EDGE_NUMBERS = [
  "1e400",
  "-1e400",
  "1e-400",
  "9007199254740993",
  "-9007199254740993",
  "-0",
  "1E5",
  "1E+2",
  "0.1e-7",
  "1.0",
  "-12.340",
  "5e-324",
  "1.7976931348623157e308",
  "123456789012345678901234567890.123456789",
  "1" + "0".repeat(399),
  "-" + "9".repeat(400),
  "0",
  "42",
  "3.14",
];

/** The raw span of the value at `path` in JSON `text` (the server splices `data` verbatim). */
function rawSpan(text: string, path: readonly (string | number)[]): string | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const skipString = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
  };
  // Returns the span of the value at `depth` of `path`, or skips it when `depth` is past it.
  const value = (depth: number): string | null => {
    ws();
    const start = i;
    const c = text[i];
    const want = path[depth];
    if (c === "{") {
      i++;
      let found: string | null = null;
      while (true) {
        ws();
        if (text[i] === "}") break;
        const keyStart = i;
        skipString();
        const key = JSON.parse(text.slice(keyStart, i));
        ws();
        i++; // colon
        const inner = value(key === want && depth < path.length ? depth + 1 : path.length + 1);
        if (key === want && depth < path.length) found = inner;
        ws();
        if (text[i] === ",") i++;
      }
      i++;
      return depth === path.length ? text.slice(start, i) : found;
    }
    if (c === "[") {
      i++;
      let found: string | null = null;
      let index = 0;
      while (true) {
        ws();
        if (text[i] === "]") break;
        const hit = index === want && depth < path.length;
        const inner = value(hit ? depth + 1 : path.length + 1);
        if (hit) found = inner;
        index++;
        ws();
        if (text[i] === ",") i++;
      }
      i++;
      return depth === path.length ? text.slice(start, i) : found;
    }
    if (c === '"') skipString();
    else while (i < text.length && !",}] \t\n\r".includes(text[i]!)) i++;
    return depth === path.length ? text.slice(start, i) : null;
  };
  return value(0);
}

// --- Generators ------------------------------------------------------------------------------

/**
 * A random `if` expression: the condition-grammar generator shared with the unit fuzz test
 * (well-formed trees, cut and spliced ones, token soup, deep nesting), plus what only matters on
 * the wire: sizes at CONDITION_BYTES_MAX, NUL and lone surrogates, and the known reproductions.
 */
function randomCondition(rng: Rng): string {
  if (rng.chance(0.85)) return grammarCondition(rng.random, LIMITS.CONDITION_BYTES_MAX + 8);
  return rng.pick([
    "",
    " ",
    "\u0000",
    "\ud800",
    "pk == '\ud800'",
    "'" + "x".repeat(LIMITS.CONDITION_BYTES_MAX - 2) + "'",
    "pk == '" + "é".repeat(LIMITS.CONDITION_BYTES_MAX / 2) + "'",
    "pk == '" + "x".repeat(LIMITS.CONDITION_BYTES_MAX) + "'",
    "true ? :",
    "'a' ? :",
    "pk ? : true",
    "foo.bar == 1",
    "data.n < 1" + "0".repeat(400),
    "pk|upper == 'A'",
    "max(1, 2) == 2",
    "data[pk] == 1",
    "1 ? 2 : 3",
  ]);
}

const PKS = ["a", "b", "é😀", "k\u0000"];
const SKS = ["", "s", "s\u0000", "\uffff", "😀", "t"];

function weirdKey(rng: Rng): J {
  return rng.pick<() => J>([
    () => "",
    () => "x".repeat(511 + rng.int(3)),
    () => "é".repeat(255 + rng.int(3)),
    () => "y".repeat(1023 + rng.int(3)),
    () => "😀".repeat(1 + rng.int(300)),
    () => "\ud800",
    () => "a\udfffb",
    () => "\u0000",
    () => "\u202e\ufeff",
    () => 1,
    () => null,
    () => true,
    () => [],
    () => ({}),
    () => new Raw("1e400"),
  ])();
}

function randomData(rng: Rng, depth = 2): J {
  const roll = depth <= 0 ? rng.int(5) : rng.int(7);
  switch (roll) {
    case 0:
    case 1:
      return new Raw(rng.pick(EDGE_NUMBERS));
    case 2:
      return rng.pick(["x", "", "hello world", "a\\b", 'q"t']);
    case 3:
      return rng.pick([true, false, null]);
    case 4:
      return rng.int(1000);
    case 5: {
      const out: J[] = [];
      for (let i = rng.int(4); i > 0; i--) out.push(randomData(rng, depth - 1));
      return out;
    }
    default: {
      // Keys are never integer-like: JavaScript objects reorder those, which would blur the check.
      const out: { [key: string]: J } = {};
      for (let i = rng.int(4); i > 0; i--) {
        out[rng.pick(["a", "b", "n", "x_1", "é"])] = randomData(rng, depth - 1);
      }
      return out;
    }
  }
}

function wrongType(rng: Rng): J {
  return rng.pick<J>([
    null,
    true,
    0,
    -1,
    1.5,
    "",
    "x",
    [],
    [1],
    {},
    { a: 1 },
    new Raw("1e400"),
    new Raw("-0"),
    new Raw("9007199254740993"),
  ]);
}

interface Req {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  /** A JSON body as a value (shrinkable), or… */
  readonly value?: J;
  readonly pretty?: boolean;
  /** …a body as text or bytes. */
  readonly raw?: string | Uint8Array<ArrayBuffer>;
  /** Send the body as a stream (chunked, no Content-Length). */
  readonly stream?: boolean;
  /** Puts whose stored data must be read back byte-exact: index into `records`. */
  readonly numbersCheck?: readonly number[];
}

function bodyBytes(req: Req): Uint8Array<ArrayBuffer> | null {
  if (req.value !== undefined) return new TextEncoder().encode(emit(req.value, req.pretty));
  if (req.raw === undefined) return null;
  return typeof req.raw === "string" ? new TextEncoder().encode(req.raw) : req.raw;
}

/** A shared, growing picture of the node's offsets, so `after` is sometimes satisfiable. */
const knownOffsets: Record<string, number> = {};

function randomAfter(rng: Rng): J {
  return rng.pick<() => J>([
    () => ({ ...knownOffsets }),
    () => ({ [String(rng.int(LIMITS.PARTITIONS))]: 1_000_000_000 }),
    () => ({ "99": 1 }),
    () => ({ "0": -5 }),
    () => ({ "0": 1.5 }),
    () => ({ "x": 1 }),
    () => ({ "0": "1" }),
    () => ({ "-0": 0 }),
    () => ({ "00": 0 }),
    () => ({ "0": new Raw("1e400") }),
    () => [],
    () => "0",
    () => null,
  ])();
}

function randomWait(rng: Rng): J {
  return rng.pick<J>([0, 1, 20, 50, -1, 1.5, "10", 10_001, 1e9, new Raw("1e400"), null, true]);
}

let numberSeq = 0;

function templatePut(rng: Rng, kind: "put" | "delete" | "batch"): Req {
  const n = rng.chance(0.8) ? 1 + rng.int(3) : 1 + rng.int(LIMITS.RECORDS_PER_REQUEST_MAX + 3);
  const records: J[] = [];
  const numbersCheck: number[] = [];
  const batchPk = rng.pick(PKS);
  for (let i = 0; i < n; i++) {
    // Records with a unique "num-" key carry numbers to read back; no other request writes them.
    const numbered = kind !== "delete" && rng.chance(0.3);
    const pk = numbered && kind === "put"
      ? `num-${SEED}-${numberSeq++}`
      : kind === "batch"
      ? batchPk
      : rng.pick(PKS);
    const sk = numbered && kind === "batch" ? `num-${SEED}-${numberSeq++}` : rng.pick(SKS);
    const record: { [key: string]: J } = { pk, sk };
    if (kind === "batch") record.op = rng.chance(0.8) ? "put" : "delete";
    if (kind === "put" || record.op === "put") {
      record.data = numbered ? randomData(rng, 3) : randomData(rng, 1);
      if (numbered && hasNumber(record.data)) numbersCheck.push(i);
      else if (rng.chance(0.3)) record.if = randomCondition(rng);
    } else if (rng.chance(0.3)) {
      record.if = randomCondition(rng);
    }
    records.push(record);
  }
  // One false `if` aborts a whole batch: then nothing is stored to read back.
  if (kind === "batch" && records.some((r) => isObj(r) && r.if !== undefined)) {
    numbersCheck.length = 0;
  }
  const path = `/records/${kind}`;
  const value = kind === "batch" ? { ops: records } : { records };
  return { method: "POST", path, headers: {}, value, pretty: rng.chance(0.3), numbersCheck };
}

function templateGet(rng: Rng): Req {
  const records: J[] = [];
  for (let i = 1 + rng.int(4); i > 0; i--) records.push({ pk: rng.pick(PKS), sk: rng.pick(SKS) });
  const value: { [key: string]: J } = { records };
  if (rng.chance(0.3)) value.after = randomAfter(rng);
  if (rng.chance(0.3)) value.wait_ms = randomWait(rng);
  return { method: "POST", path: "/records/get", headers: {}, value };
}

function templateList(rng: Rng): Req {
  const value: { [key: string]: J } = { pk: rng.pick(PKS) };
  if (rng.chance(0.3)) value.sk_prefix = rng.pick(SKS);
  if (rng.chance(0.2)) value.start_after = rng.pick(SKS);
  if (rng.chance(0.2)) value.end_before = rng.pick(SKS);
  if (rng.chance(0.3)) value.limit = rng.pick<J>([1, 2, 100, 1000, 1001, 0, -1, 1.5, "5", null]);
  if (rng.chance(0.2)) value.reverse = rng.pick<J>([true, false, 1, "true"]);
  if (rng.chance(0.4)) value.if = randomCondition(rng);
  if (rng.chance(0.2)) value.if_stop = rng.pick<J>([true, false, 0]);
  if (rng.chance(0.2)) value.after = randomAfter(rng);
  if (rng.chance(0.2)) value.wait_ms = randomWait(rng);
  return { method: "POST", path: "/records/list", headers: {}, value };
}

const ROUTES = [
  "/records/put",
  "/records/delete",
  "/records/batch",
  "/records/get",
  "/records/list",
  "/healthz",
  "/readyz",
];

function templateOther(rng: Rng): Req {
  const method = rng.pick(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
  const path = rng.pick([
    ...ROUTES,
    "/",
    "/records",
    "/records/",
    "/records/put/",
    "/RECORDS/PUT",
    "/records/put?x=1",
    "/healthz?",
    "//records/get",
    "/records/%00",
    "/records/%ZZ",
    "/%F0%9F%98%80",
    "/internal/status",
    "/metrics",
    "/" + "a".repeat(4000),
  ]);
  const hasBody = method !== "GET" && method !== "HEAD";
  return { method, path, headers: {}, ...(hasBody ? { raw: rng.pick(["", "{}", "null"]) } : {}) };
}

/** Structural mutations of a JSON body. */
function mutateValue(rng: Rng, v: J): J {
  const copy: J = structuredCloneJ(v);
  const containers: { [key: string]: J }[] = [];
  const walk = (x: J) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (isObj(x)) {
      containers.push(x);
      Object.values(x).forEach(walk);
    }
  };
  walk(copy);
  if (containers.length === 0) return copy;
  const target = rng.pick(containers);
  const keys = Object.keys(target);
  const key = keys.length > 0 ? rng.pick(keys) : "pk";
  switch (rng.int(9)) {
    case 0:
      delete target[key];
      break;
    case 1:
      // defineProperty: a "__proto__" key must be an own field, as JSON.parse makes it.
      Object.defineProperty(
        target,
        rng.pick(["extra", "Records", "records", "op", "data", "if", "__proto__", "é"]),
        {
          value: wrongType(rng),
          enumerable: true,
          writable: true,
          configurable: true,
        },
      );
      break;
    case 2:
      target[key] = wrongType(rng);
      break;
    case 3:
      target[rng.pick(["pk", "sk"])] = weirdKey(rng);
      break;
    case 4:
      target.if = rng.chance(0.9) ? randomCondition(rng) : wrongType(rng);
      break;
    case 5:
      target.data = rng.chance(0.5) ? randomData(rng, 3) : new Raw(rng.pick(EDGE_NUMBERS));
      break;
    case 6:
      target.op = rng.pick<J>(["put", "delete", "PUT", "get", "", 1, null]);
      break;
    case 7: {
      const list = target.records ?? target.ops;
      if (Array.isArray(list)) list.length = 0;
      else target[key] = [];
      break;
    }
    default:
      return rng.pick<J>([null, [], "", 0, "x", [copy], new Raw("1e400")]);
  }
  return copy;
}

function structuredCloneJ(v: J): J {
  if (v instanceof Raw) return v;
  if (Array.isArray(v)) return v.map(structuredCloneJ);
  if (isObj(v)) {
    const out: { [key: string]: J } = {};
    for (const [k, x] of Object.entries(v)) {
      Object.defineProperty(out, k, {
        value: structuredCloneJ(x),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}

const CONTENT_TYPES = [
  "application/json",
  "application/problem+json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json; charset=latin1",
  "application/octet-stream",
  "",
  "é",
];

/** A body that fills `total` bytes: a put whose one data string is padded. */
function nearLimitBody(total: number): string {
  const head = '{"records":[{"pk":"a","sk":"big","data":"';
  const tail = '"}]}';
  return head + "x".repeat(Math.max(0, total - head.length - tail.length)) + tail;
}

function randomRequest(rng: Rng): Req {
  const roll = rng.int(100);
  let req: Req;
  if (roll < 22) req = templatePut(rng, "put");
  else if (roll < 30) req = templatePut(rng, "delete");
  else if (roll < 42) req = templatePut(rng, "batch");
  else if (roll < 57) req = templateGet(rng);
  else if (roll < 72) req = templateList(rng);
  else if (roll < 80) req = templateOther(rng);
  else if (roll < 83) {
    // Near the body limit, with or without a Content-Length.
    const total = LIMITS.BODY_BYTES_MAX + rng.pick([-3, -1, 0, 1, 2, 100]);
    req = {
      method: "POST",
      path: rng.pick(ROUTES.slice(0, 5)),
      headers: {},
      raw: nearLimitBody(total),
    };
    if (rng.chance(0.5)) req = { ...req, stream: true };
  } else if (roll < 93) {
    // Bad JSON: truncated, spliced, empty, not UTF-8, or a wrong top-level type.
    const base = randomRequest(rng);
    const text = base.value !== undefined ? emit(base.value) : String(base.raw ?? "");
    const raw: string | Uint8Array<ArrayBuffer> = rng.pick<() => string | Uint8Array<ArrayBuffer>>([
      () => text.slice(0, rng.int(text.length + 1)),
      () => {
        const at = rng.int(text.length + 1);
        return text.slice(0, at) +
          rng.pick(["{", "}", '"', "\\", ",", "\u0000", "\ud800", "1e400"]) +
          text.slice(at);
      },
      () => "",
      () => "   ",
      () => "null",
      () => "[]",
      () => "1e400",
      () => '"\\ud800"',
      () => '{"records":[' + "[".repeat(5000) + "]".repeat(5000) + "]}",
      () => "{".repeat(100_000),
      () => '{"records":[{"pk":"a","sk":"b","data":1}],"records":[]}',
      () => new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      () => new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)]),
      () => new Uint8Array([0xc3]),
    ])();
    req = {
      method: "POST",
      path: base.path.startsWith("/records/") ? base.path : "/records/put",
      headers: {},
      raw,
    };
  } else {
    // A valid template, structurally mutated one to three times.
    let base = randomRequest(rng);
    while (base.value === undefined) base = randomRequest(rng);
    let value = base.value;
    for (let i = 1 + rng.int(3); i > 0; i--) value = mutateValue(rng, value);
    const { numbersCheck: _, ...rest } = base;
    req = { ...rest, value };
  }
  if (rng.chance(0.3)) {
    const type = rng.pick(CONTENT_TYPES);
    req = { ...req, headers: { ...req.headers, "content-type": type } };
  }
  if (req.method === "POST" && !req.stream && rng.chance(0.05)) req = { ...req, stream: true };
  return req;
}

const WRITE_ROUTES = new Set(["/records/put", "/records/delete", "/records/batch"]);

// --- Sending ---------------------------------------------------------------------------------

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
}

async function send(node: TestNode, req: Req): Promise<Answer> {
  const bytes = bodyBytes(req);
  let body: BodyInit | null = bytes;
  if (bytes !== null && req.stream) {
    // Several chunks, so the server reads a body of unknown length piece by piece.
    body = new ReadableStream<Uint8Array>({
      start(controller) {
        const step = Math.max(1, Math.ceil(bytes.length / 3));
        for (let at = 0; at < bytes.length; at += step) {
          controller.enqueue(bytes.slice(at, at + step));
        }
        controller.close();
      },
    });
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    try {
      headers.set(k, v);
    } catch {
      // A header value fetch refuses to send is skipped.
    }
  }
  const response = await fetch(`${node.apiUrl}${req.path}`, {
    method: req.method,
    headers,
    body: req.method === "GET" || req.method === "HEAD" ? null : body,
    signal: AbortSignal.timeout(15_000),
  });
  const result = await readResult(response);
  return {
    status: result.status,
    contentType: result.headers.get("content-type"),
    text: result.text,
  };
}

/** Whether the body the server parsed had a top-level `after`. */
function sentAfter(req: Req): boolean {
  try {
    const bytes = bodyBytes(req);
    const body = bytes === null ? null : JSON.parse(new TextDecoder().decode(bytes));
    return typeof body === "object" && body !== null && body.after !== undefined;
  } catch {
    return false;
  }
}

/** Problems of an answer to a well-formed HTTP request, or null. */
function judge(req: Req, answer: Answer): string | null {
  const { status, contentType, text } = answer;
  if (status >= 500) {
    // 504 not_caught_up is the documented answer to an `after` that is ahead of the node.
    const after = sentAfter(req);
    if (!(status === 504 && after && text.includes('"not_caught_up"'))) {
      return `answered ${status}: ${text.slice(0, 500)}`;
    }
  }
  if (req.method === "HEAD") return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return `answered ${status} with a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`;
  }
  if (status >= 400) {
    if (contentType !== "application/problem+json") {
      return `answered ${status} with content-type ${contentType}, not application/problem+json`;
    }
    const p = parsed as Record<string, unknown>;
    if (typeof p.code !== "string" || p.status !== status) {
      return `answered ${status} with a problem without a code or with another status: ${text}`;
    }
  } else if (contentType !== "application/json") {
    return `answered ${status} with content-type ${contentType}, not application/json`;
  }
  return null;
}

/** Reads back each numbered put of a 200 write and compares the stored data text. */
async function checkNumbers(node: TestNode, req: Req, answer: Answer): Promise<string | null> {
  if (!NUMBERS_CHECK || req.numbersCheck === undefined || req.numbersCheck.length === 0) {
    return null;
  }
  const offsets = JSON.parse(answer.text).offsets;
  const list = isObj(req.value) ? (req.value.records ?? req.value.ops) : undefined;
  if (!Array.isArray(list)) return null;
  for (const index of req.numbersCheck) {
    const record = list[index];
    if (!isObj(record) || record.data === undefined) continue;
    const got = await node.post("/records/get", {
      records: [{ pk: record.pk, sk: record.sk }],
      after: offsets,
      wait_ms: 5000,
    });
    if (got.status !== 200) {
      return `read-back of records[${index}] answered ${got.status}: ${got.text}`;
    }
    const stored = rawSpan(got.text, ["records", 0, "data"]);
    const expected = emit(record.data);
    if (stored !== expected) {
      return `stored data of records[${index}] differs from what was sent (numbers must be kept byte-exact)\n` +
        `  sent:   ${expected.slice(0, 600)}\n  stored: ${String(stored).slice(0, 600)}`;
    }
  }
  return null;
}

/** A raw HTTP/1.1 exchange: several requests on one keep-alive connection, or a truncated body. */
async function sendRaw(node: TestNode, rng: Rng): Promise<number[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: node.apiPort });
  const encoder = new TextEncoder();
  const statuses: number[] = [];
  try {
    const requests: Uint8Array[] = [];
    const n = 1 + rng.int(3);
    for (let i = 0; i < n; i++) {
      const req = randomRequest(rng);
      const body = bodyBytes(req) ?? new Uint8Array();
      const last = i === n - 1;
      const truncated = last && rng.chance(0.3);
      const declared = truncated ? body.length + 1 + rng.int(100) : body.length;
      const head =
        `${req.method === "HEAD" ? "HEAD" : "POST"} ${req.path} HTTP/1.1\r\nhost: x\r\n` +
        `content-length: ${declared}\r\n${last ? "connection: close\r\n" : ""}\r\n`;
      requests.push(encoder.encode(head), body);
    }
    for (const part of requests) await conn.write(part);
    await conn.closeWrite();
    const chunks: string[] = [];
    const buffer = new Uint8Array(65_536);
    const decoder = new TextDecoder();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const read = await Promise.race([
        conn.read(buffer),
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), deadline - Date.now())),
      ]).catch(() => null);
      if (read === null || read === "timeout") break;
      chunks.push(decoder.decode(buffer.subarray(0, read), { stream: true }));
    }
    // One entry per response; a 504 counts only as not_caught_up (an `after` ahead of the node).
    for (const part of chunks.join("").split(/(?=HTTP\/1\.1 \d{3} )/)) {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(part)?.[1] ?? 0);
      if (status === 0) continue;
      statuses.push(status === 504 && part.includes('"not_caught_up"') ? 0 : status);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed by the server.
    }
  }
  return statuses;
}

// --- Shrinking -------------------------------------------------------------------------------

/** Smaller variants of a request: fields dropped, arrays shortened, strings cut. */
function* smaller(req: Req): Generator<Req> {
  if (req.value !== undefined) {
    for (const value of smallerValues(req.value)) yield { ...req, value, pretty: false };
    if (req.stream) yield { ...req, stream: false };
    if (Object.keys(req.headers).length > 0) yield { ...req, headers: {} };
    return;
  }
  if (typeof req.raw === "string" && req.raw.length > 0) {
    for (let size = Math.ceil(req.raw.length / 2); size >= 1; size = Math.floor(size / 2)) {
      for (let at = 0; at < req.raw.length; at += size) {
        yield { ...req, raw: req.raw.slice(0, at) + req.raw.slice(at + size) };
      }
      if (size === 1) break;
    }
  }
}

function* smallerValues(v: J): Generator<J> {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) yield [...v.slice(0, i), ...v.slice(i + 1)];
    for (let i = 0; i < v.length; i++) {
      for (const x of smallerValues(v[i]!)) yield [...v.slice(0, i), x, ...v.slice(i + 1)];
    }
  } else if (isObj(v)) {
    for (const key of Object.keys(v)) {
      const { [key]: _, ...rest } = v;
      yield rest;
    }
    for (const [key, x] of Object.entries(v)) {
      for (const y of smallerValues(x)) yield { ...v, [key]: y };
    }
  } else if (typeof v === "string" && v.length > 1) {
    yield v.slice(0, Math.floor(v.length / 2));
    yield v.slice(Math.ceil(v.length / 2));
    // Conditions: drop one space-separated token at a time.
    const tokens = v.split(" ");
    if (tokens.length > 1) {
      for (let i = 0; i < tokens.length; i++) {
        yield [...tokens.slice(0, i), ...tokens.slice(i + 1)].join(" ");
      }
    }
  }
}

async function shrink(node: TestNode, req: Req): Promise<Req> {
  let best = req;
  let tries = 0;
  let progress = true;
  while (progress && tries < SHRINK_TRIES_MAX) {
    progress = false;
    for (const candidate of smaller(best)) {
      if (++tries > SHRINK_TRIES_MAX) break;
      const answer = await send(node, candidate).catch(() => null);
      if (answer !== null && answer.status >= 500 && judge(candidate, answer) !== null) {
        best = candidate;
        progress = true;
        break;
      }
    }
  }
  return best;
}

function describe(req: Req): string {
  const bytes = bodyBytes(req);
  let body = "(none)";
  if (bytes !== null) {
    body = req.value !== undefined ? emit(req.value, req.pretty) : new TextDecoder().decode(bytes);
    if (body.length > 1500) body = body.slice(0, 1500) + `… (${bytes.length} bytes)`;
  }
  const headers = Object.keys(req.headers).length > 0
    ? ` headers ${JSON.stringify(req.headers)}`
    : "";
  return `${req.method} ${req.path}${headers}${req.stream ? " (streamed)" : ""}\n  body: ${body}`;
}

// --- Memory sampling -------------------------------------------------------------------------

function memoryOf(pid: number): { anonMiB: number; fileMiB: number; rssMiB: number } | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return {
      anonMiB: kb("RssAnon") / 1024,
      fileMiB: kb("RssFile") / 1024,
      rssMiB: kb("VmRSS") / 1024,
    };
  } catch {
    return null;
  }
}

// --- The test --------------------------------------------------------------------------------

Deno.test({
  name:
    "a hostile client's random requests never get a 5xx, always get JSON, and numbers round-trip",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const where = `FUZZ_SEED=${SEED}`;
  print(`http fuzz: ${where} FUZZ_REQUESTS=${REQUESTS_MAX} FUZZ_SECONDS=${SECONDS_MAX}`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(LIMITS)) env[k] = String(v);
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (k.startsWith("FUZZ_NODE_")) env[k.slice("FUZZ_NODE_".length)] = v;
  }
  const node = await startNode({ env });
  const started = Date.now();
  const deadline = started + SECONDS_MAX * 1000;
  let sent = 0;
  let failure: string | null = null;
  const statuses = new Map<number, number>();
  let clientErrors = 0;
  const memory: string[] = [];
  const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
  const histogram = () =>
    [...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(" ");
  const sample = () => {
    const m = memoryOf(node.pid);
    if (m === null) return;
    const row = `${String(Math.round((Date.now() - started) / 1000)).padStart(6)} | ` +
      `${String(sent).padStart(8)} | ${m.rssMiB.toFixed(1).padStart(8)} | ` +
      `${m.anonMiB.toFixed(1).padStart(8)} | ${m.fileMiB.toFixed(1).padStart(8)}`;
    memory.push(row);
    print(row);
  };
  const timers: ReturnType<typeof setInterval>[] = [];
  if (MEMORY_EVERY_S > 0) {
    print("     s | requests |  RSS MiB | anon MiB | file MiB");
    sample();
    timers.push(setInterval(sample, MEMORY_EVERY_S * 1000));
  }
  if (PROGRESS) {
    timers.push(setInterval(() => {
      print(
        `[fuzz ${where}] ${sent} requests in ${
          Math.round((Date.now() - started) / 1000)
        } s; ${histogram()}; client errors ${clientErrors}`,
      );
    }, 5000));
  }
  const worker = async (id: number) => {
    const rng = new Rng((SEED ^ Math.imul(id + 1, 0x9e3779b1)) >>> 0);
    while (failure === null && sent < REQUESTS_MAX && Date.now() < deadline) {
      const index = sent++;
      if (rng.chance(0.05)) {
        // Raw sockets: keep-alive pipelines and truncated bodies; the HTTP layer may answer a
        // malformed request with a non-JSON 400, so only the status is judged.
        const got = await sendRaw(node, rng).catch(() => []);
        for (const status of got) {
          count(status === 0 ? 504 : status);
          if (status >= 500) {
            failure ??= `${where}: a raw HTTP/1.1 exchange (request #${index}) got ${status}`;
          }
        }
        continue;
      }
      const req = randomRequest(rng);
      let answer: Answer;
      try {
        answer = await send(node, req);
      } catch (error) {
        // The server may close a connection on a body it refuses; it must still be alive.
        clientErrors++;
        const health = await node.request("/healthz").catch(() => null);
        if (health?.status !== 200) {
          failure ??= `${where}: the node stopped answering after request #${index} (${
            (error as Error).message
          })\n  ${describe(req)}`;
        }
        continue;
      }
      count(answer.status);
      const problem = judge(req, answer);
      if (problem !== null) {
        if (failure !== null) return;
        failure = "pending";
        const minimal = answer.status >= 500 ? await shrink(node, req) : req;
        failure =
          `${where}: request #${index} ${problem}\n  minimal request: ${describe(minimal)}` +
          (minimal === req ? "" : `\n  original request: ${describe(req)}`);
        return;
      }
      if (answer.status === 200 && req.method === "POST" && WRITE_ROUTES.has(req.path)) {
        const offsets = JSON.parse(answer.text).offsets as Record<string, number> | undefined;
        for (const [p, o] of Object.entries(offsets ?? {})) {
          knownOffsets[p] = Math.max(knownOffsets[p] ?? -1, o);
        }
        const numbers = await checkNumbers(node, req, answer);
        if (numbers !== null) {
          failure ??= `${where}: request #${index}: ${numbers}\n  request: ${describe(req)}`;
          return;
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)));
    if (MEMORY_EVERY_S > 0) sample();
    const internalErrors = node.logs.all.filter((l) => l.includes('"event":"internal_error"'));
    if (failure === null && internalErrors.length > 0) {
      failure = `${where}: the node logged ${internalErrors.length} internal_error(s):\n${
        internalErrors.slice(0, 3).join("\n")
      }`;
    }
    print(
      `http fuzz: ${where}: ${sent} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `statuses ${histogram()}; client-side errors ${clientErrors}`,
    );
    if (memory.length > 0) {
      print(
        "memory of the node (/proc/PID/status):\n     s | requests |  RSS MiB | anon MiB | file MiB",
      );
      for (const row of memory) print(row);
    }
    if (failure !== null) throw new Error(`${failure}\n--- node output ---\n${node.logs.tail(20)}`);
  } finally {
    for (const t of timers) clearInterval(t);
    await node.cleanup();
  }
});
