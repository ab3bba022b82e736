/**
 * Property test: random mutation logs applied through `applyBatch` to a real LMDB
 * `PartitionStore` end in the same state as a plain in-memory model of DESIGN §3/§5 written here
 * from the contract alone (conditions, atomic batches, versions, timestamps, idempotent re-delivery,
 * poison messages, the hash chain).
 *
 * Reproduce a failure with the seed it prints: `FUZZ_SEED=<seed> FUZZ_SEQUENCES=1 deno test -A
 * tests/fuzz/store_model_test.ts`.
 */
import { deepEqual, equal } from "node:assert/strict";
import {
  applyBatch,
  type ApplyContext,
  ConditionCache,
  type LogRecord,
} from "../../src/apply/mod.ts";
import { createMetrics } from "../../src/metrics/mod.ts";
import { CHAIN_ZERO, PartitionStore, storePath } from "../../src/store/mod.ts";
import { seededRandom } from "../_helpers.ts";

const SEQUENCES = Number(Deno.env.get("FUZZ_SEQUENCES") ?? 300);
const BASE_SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x5eed_f1e5);
const MESSAGES_MAX = 60;
const MAP_BYTES = 16 * 1024 * 1024;

// A small key space, so that conditions, overwrites and deletes keep colliding. The sort keys
// have NUL, non-ASCII and emoji so list order (UTF-8) differs from JavaScript's string order.
const PKS = ["a", "é😀"];
const SKS = ["", "s", "s\u0000", "\uffff", "😀"];

const encoder = new TextEncoder();

// --- The generated log ----------------------------------------------------------------------

/** A condition as the generator knows it; `text` is what goes into the message. */
type Condition =
  | { kind: "absent"; text: string }
  | { kind: "present"; text: string }
  | { kind: "version"; n: number; text: string }
  | { kind: "n_greater"; k: number; text: string }
  | { kind: "created_before"; t: number; text: string }
  | { kind: "error"; text: string };

interface GenOp {
  op: "put" | "delete";
  pk: string;
  sk: string;
  data?: unknown;
  cond?: Condition;
}

type GenMessage =
  | { kind: "mutation"; atomic: boolean; ops: GenOp[] }
  | { kind: "poison" };

interface GenRecord extends LogRecord {
  readonly message: GenMessage;
}

function generateLog(random: () => number): GenRecord[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const int = (n: number) => Math.floor(random() * n);
  const log: GenRecord[] = [];
  let offset = int(3);
  let timestamp = 1_700_000_000_000;
  const length = 1 + int(MESSAGES_MAX);
  for (let i = 0; i < length; i++) {
    // Producer timestamps mostly grow, sometimes repeat or step back (clock skew between writers).
    timestamp += int(5) === 0 ? -int(50) : int(1000);
    let message: GenMessage;
    let value: Uint8Array;
    if (random() < 0.06) {
      message = { kind: "poison" };
      value = pick<() => Uint8Array>([
        () => Uint8Array.from({ length: 1 + int(20) }, () => int(256)),
        () => encoder.encode("not json at all"),
        () => encoder.encode(JSON.stringify({ v: 1, atomic: false, ops: [] })),
        () =>
          encoder.encode(
            JSON.stringify({ v: 2, atomic: false, ops: [{ op: "delete", pk: "a", sk: "" }] }),
          ),
        () =>
          encoder.encode(
            JSON.stringify({ v: 1, atomic: true, ops: [{ op: "put", pk: "a", sk: "s" }] }),
          ),
        () =>
          encoder.encode(
            JSON.stringify({ v: 1, atomic: false, ops: [{ op: "delete", pk: "", sk: "s" }] }),
          ),
      ])();
    } else {
      const ops: GenOp[] = [];
      const count = 1 + int(random() < 0.7 ? 2 : 5);
      for (let j = 0; j < count; j++) {
        const op: GenOp = { op: random() < 0.7 ? "put" : "delete", pk: pick(PKS), sk: pick(SKS) };
        if (op.op === "put") {
          op.data = pick<() => unknown>([
            () => ({ n: int(10) }),
            () => ({ n: int(10) }),
            () => ({ n: int(10), tag: "é😀\u0000" }),
            () => null,
            () => "text",
            () => [int(3), 4],
            () => ({ nested: { n: int(10) } }),
          ])();
        }
        if (random() < 0.6) {
          const recent = log.slice(-6).map((r) => r.offset);
          op.cond = pick<() => Condition>([
            () => ({ kind: "absent", text: "pk == null" }),
            () => ({ kind: "present", text: "pk != null" }),
            () => {
              const n = recent.length > 0 && random() < 0.8 ? pick(recent) : offset;
              return { kind: "version", n, text: `_version == ${n}` };
            },
            () => {
              const k = int(10);
              return { kind: "n_greater", k, text: `data.n > ${k}` };
            },
            () => ({
              kind: "created_before",
              t: timestamp - 1500,
              text: `_created_at < ${timestamp - 1500}`,
            }),
            () => ({
              kind: "error",
              text: pick(["data.list[0] == 1", "data.n", "((", "now() > 1"]),
            }),
          ])();
        }
        ops.push(op);
      }
      message = { kind: "mutation", atomic: random() < 0.4, ops };
      value = encoder.encode(JSON.stringify({
        v: 1,
        atomic: message.atomic,
        ops: ops.map((o) => ({
          op: o.op,
          pk: o.pk,
          sk: o.sk,
          ...(o.op === "put" ? { data: o.data } : {}),
          ...(o.cond === undefined ? {} : { if: o.cond.text }),
        })),
      }));
    }
    log.push({ offset, timestamp, value, message });
    // Offsets increase, with occasional gaps as Kafka leaves them.
    offset += random() < 0.15 ? 2 + int(5) : 1;
  }
  return log;
}

// --- The model ----------------------------------------------------------------------------

interface ModelRecord {
  readonly data: unknown;
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

type Verdict = "true" | "false" | "error";

function keyOf(pk: string, sk: string): string {
  return JSON.stringify([pk, sk]);
}

/** DESIGN §3/§5 in a Map: what every replica must end up with. */
class Model {
  readonly records = new Map<string, ModelRecord>();
  offset = -1;
  chain = CHAIN_ZERO;
  conditionErrors = 0;
  poison = 0;

  private judge(cond: Condition | undefined, current: ModelRecord | null): Verdict {
    if (cond === undefined) return "true";
    switch (cond.kind) {
      case "absent":
        return current === null ? "true" : "false";
      case "present":
        return current !== null ? "true" : "false";
      case "version":
        return current !== null && current.version === cond.n ? "true" : "false";
      case "created_before":
        // An absent record's `_created_at` is null, and jexl compares like JavaScript: null < t
        // is 0 < t, true for every timestamp here.
        return (current === null ? 0 : current.createdAt) < cond.t ? "true" : "false";
      case "n_greater": {
        // `data.n`: a missing record or a data value without a numeric n compares as false.
        let data = current?.data;
        if (Array.isArray(data)) data = data[0]; // jexl reads a property of an array's first item
        const n = typeof data === "object" && data !== null
          ? (data as Record<string, unknown>).n
          : undefined;
        return typeof n === "number" && n > cond.k ? "true" : "false";
      }
      case "error":
        return "error";
    }
  }

  private holds(cond: Condition | undefined, current: ModelRecord | null): boolean {
    const verdict = this.judge(cond, current);
    if (verdict === "error") this.conditionErrors++;
    return verdict === "true";
  }

  private written(op: GenOp, current: ModelRecord | null, record: GenRecord): ModelRecord | null {
    if (op.op === "delete") return null;
    return {
      data: op.data,
      version: record.offset,
      createdAt: current?.createdAt ?? record.timestamp,
      updatedAt: record.timestamp,
    };
  }

  private set(op: GenOp, value: ModelRecord | null): void {
    if (value === null) this.records.delete(keyOf(op.pk, op.sk));
    else this.records.set(keyOf(op.pk, op.sk), value);
  }

  async apply(batch: readonly GenRecord[]): Promise<void> {
    for (const record of batch) {
      if (record.offset <= this.offset) continue; // re-delivery
      this.offset = record.offset;
      this.chain = await chainStep(this.chain, record.offset, record.value);
      const message = record.message;
      if (message.kind === "poison") {
        this.poison++;
        continue;
      }
      if (!message.atomic) {
        for (const op of message.ops) {
          const current = this.records.get(keyOf(op.pk, op.sk)) ?? null;
          if (this.holds(op.cond, current)) this.set(op, this.written(op, current, record));
        }
        continue;
      }
      const staged = new Map<string, ModelRecord | null>();
      let all = true;
      for (const op of message.ops) {
        const key = keyOf(op.pk, op.sk);
        const current = staged.has(key) ? staged.get(key)! : this.records.get(key) ?? null;
        if (!this.holds(op.cond, current)) {
          all = false;
          break;
        }
        staged.set(key, this.written(op, current, record));
      }
      if (all) { for (const op of message.ops) this.set(op, staged.get(keyOf(op.pk, op.sk))!); }
    }
  }

  /** Every record in list order: by pk as given, then UTF-8 bytes of sk. */
  contents(): unknown[] {
    const out: unknown[] = [];
    for (const pk of PKS) {
      const sks = SKS.filter((sk) => this.records.has(keyOf(pk, sk))).sort(byUtf8);
      for (const sk of sks) {
        const r = this.records.get(keyOf(pk, sk))!;
        out.push({
          pk,
          sk,
          data: r.data,
          version: r.version,
          createdAt: r.createdAt,
          updatedAt: r.updatedAt,
        });
      }
    }
    return out;
  }
}

function byUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** sha256(previous ‖ u64be(offset) ‖ value) with WebCrypto. */
async function chainStep(previous: string, offset: number, value: Uint8Array): Promise<string> {
  const input = new Uint8Array(40 + value.length);
  input.set(Uint8Array.from(previous.match(/../g)!, (h) => parseInt(h, 16)), 0);
  new DataView(input.buffer).setBigUint64(32, BigInt(offset), false);
  input.set(value, 40);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function storeContents(store: PartitionStore): unknown[] {
  return PKS.flatMap((pk) =>
    store.list({
      pk,
      skPrefix: "",
      startAfter: null,
      endBefore: null,
      limit: 1000,
      reverse: false,
      filter: null,
      stopOnFilter: false,
      scanMax: 1000,
    }).records.map((r) => ({
      pk: r.pk,
      sk: r.sk,
      data: JSON.parse(r.dataJson),
      version: r.version,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    }))
  );
}

// --- The property -------------------------------------------------------------------------

async function runSequence(seed: number, dir: string): Promise<void> {
  const random = seededRandom(seed);
  const log = generateLog(random);
  const partition = seed % 1000;
  const options = { dir, namespace: "fuzz", partition, mapBytes: MAP_BYTES };
  const metrics = createMetrics();
  const ctx: ApplyContext = { conditions: new ConditionCache(64), metrics, now: () => 0 };
  const model = new Model();
  let store = PartitionStore.open(options);
  try {
    let next = 0; // index of the first record not yet delivered
    let batchNo = 0;
    while (next < log.length) {
      // Batches of random size; sometimes they start with already applied records again.
      const redeliver = random() < 0.25 ? Math.floor(random() * 4) : 0;
      const from = Math.max(0, next - redeliver);
      const to = Math.min(log.length, next + 1 + Math.floor(random() * 8));
      const batch = log.slice(from, to);
      next = to;
      batchNo++;
      const position = await applyBatch(store, batch, ctx);
      await model.apply(batch);
      const where = `after batch ${batchNo} (log[${from}..${to}) of ${log.length})`;
      deepEqual(storeContents(store), model.contents(), `contents ${where}`);
      equal(store.count(), model.records.size, `count ${where}`);
      deepEqual(position, { offset: model.offset, chain: model.chain }, `position ${where}`);
      deepEqual(store.applied, position, `applied ${where}`);
      // Now and then, restart the replica: everything must come back from the file.
      if (random() < 0.05) {
        await store.close();
        store = PartitionStore.open(options);
        deepEqual(store.applied, position, `applied after reopen ${where}`);
      }
    }
    equal(metrics.conditionErrors.labels().value, model.conditionErrors, "condition errors");
    equal(metrics.poisonMessages.labels().value, model.poison, "poison messages");
    // Re-delivering the whole log changes nothing.
    const before = storeContents(store);
    deepEqual(await applyBatch(store, log, ctx), { offset: model.offset, chain: model.chain });
    deepEqual(storeContents(store), before, "contents after full re-delivery");
  } finally {
    await store.close();
    await Deno.remove(storePath(dir, partition)).catch(() => {});
    await Deno.remove(storePath(dir, partition) + "-lock").catch(() => {});
  }
}

Deno.test("applyBatch() on LMDB matches an in-memory model of the contract on random logs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_fuzz_" });
  try {
    for (let i = 0; i < SEQUENCES; i++) {
      const seed = (BASE_SEED + i) >>> 0;
      try {
        await runSequence(seed, dir);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(
          `Property failed for FUZZ_SEED=${seed} (run it alone with FUZZ_SEQUENCES=1): ${message}`,
          { cause: error },
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
