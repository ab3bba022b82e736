/**
 * The record commands: `put`, `get`, `delete`, `list` and `batch`, each one or more requests to the
 * public API (docs/api.md) and its answer printed. `data` travels and prints exactly: numbers keep
 * their spelling both ways.
 *
 * @module
 */
import type { WireRecord } from "../api/wire.ts";
import type { Command, Globals, Offsets, Source } from "./args.ts";
import type { Client } from "./client.ts";
import { CliError, EXIT, usageError } from "./exit.ts";
import { cell, type Io, parseExact, parseInput, render, tableLines } from "./output.ts";

/** What a command runs with. */
export interface Context {
  readonly globals: Globals;
  readonly io: Io;
  readonly client: Client;
}

/** The text a {@linkcode Source} names. */
export async function readSource(source: Source, io: Io): Promise<string> {
  switch (source.from) {
    case "arg":
      return source.text;
    case "stdin":
      return await io.readStdin();
    case "file":
      try {
        return await io.readFile(source.path);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw usageError(`Cannot read ${source.path}: ${why}`);
      }
  }
}

/** The time a read may take: `--timeout-ms`, and at least its `wait_ms` plus a margin. */
function readTimeout(ctx: Context, waitMs: number | null): number {
  return Math.max(ctx.client.timeoutMs, (waitMs ?? 0) + 5_000);
}

function readOptions(after: Offsets | null, waitMs: number | null): Record<string, unknown> {
  return {
    ...(after === null ? {} : { after }),
    ...(waitMs === null ? {} : { wait_ms: waitMs }),
  };
}

/** `put <pk> <sk> <data>`: prints the write's `{"offsets": …}`. */
export async function put(ctx: Context, command: Extract<Command, { kind: "put" }>): Promise<void> {
  const data = parseInput(await readSource(command.data, ctx.io), "the data");
  const record = {
    pk: command.pk,
    sk: command.sk,
    data,
    ...(command.condition === null ? {} : { if: command.condition }),
    ...(command.ttlMs === null ? {} : { ttl_ms: command.ttlMs }),
    ...(command.expiresAt === null ? {} : { expires_at: command.expiresAt }),
  };
  const answer = await ctx.client.post("/records/put", JSON.stringify({ records: [record] }));
  ctx.io.out(render(parseExact(answer), ctx.globals.json));
}

/**
 * `get <pk> <sk>`: prints the record. The API answers a missing key with 200 and the key in
 * `missing`; the client turns that into `error: not_found` and exit 1, so `if fs get …` works.
 */
export async function get(ctx: Context, command: Extract<Command, { kind: "get" }>): Promise<void> {
  const body = {
    records: [{ pk: command.pk, sk: command.sk }],
    ...readOptions(command.after, command.waitMs),
  };
  const answer = await ctx.client.post(
    "/records/get",
    JSON.stringify(body),
    readTimeout(ctx, command.waitMs),
  );
  const { records } = parseExact(answer) as { records: WireRecord[] };
  const record = records[0];
  if (record === undefined) {
    throw new CliError(
      EXIT.problem,
      "not_found",
      `Cannot get pk ${JSON.stringify(command.pk)} sk ${
        JSON.stringify(command.sk)
      }: no such record`,
    );
  }
  ctx.io.out(render(record, ctx.globals.json));
}

/** `delete <pk> <sk>`: prints the write's `{"offsets": …}` (a missing record is no error). */
export async function del(
  ctx: Context,
  command: Extract<Command, { kind: "delete" }>,
): Promise<void> {
  const record = {
    pk: command.pk,
    sk: command.sk,
    ...(command.condition === null ? {} : { if: command.condition }),
  };
  const answer = await ctx.client.post("/records/delete", JSON.stringify({ records: [record] }));
  ctx.io.out(render(parseExact(answer), ctx.globals.json));
}

const LIST_HEADER = ["SK", "VERSION", "UPDATED_AT", "DATA"] as const;

/** Most table rows `list` holds back to align them (memory stays bounded with `--all`). */
const TABLE_ROWS_HELD = 1000;

function listRow(record: WireRecord): string[] {
  return [
    cell(record.sk),
    String(record.version),
    new Date(record.updated_at).toISOString(),
    JSON.stringify(record.data),
  ];
}

/**
 * `list <pk>`: one page, or every page with `--all` (following `next` as `start_after`). Pretty:
 * a table and a line saying how to go on; `--json`: one record per line, and when more follow,
 * `next: <sk as JSON>` on stderr.
 */
export async function list(
  ctx: Context,
  command: Extract<Command, { kind: "list" }>,
): Promise<void> {
  const { io, globals } = ctx;
  const base = {
    pk: command.pk,
    ...(command.skPrefix === null ? {} : { sk_prefix: command.skPrefix }),
    ...(command.endBefore === null ? {} : { end_before: command.endBefore }),
    ...(command.limit === null ? {} : { limit: command.limit }),
    ...(command.reverse ? { reverse: true } : {}),
    ...(command.condition === null ? {} : { if: command.condition }),
    ...(command.ifStop ? { if_stop: true } : {}),
    ...readOptions(command.after, command.waitMs),
  };
  const widths: number[] = [];
  // Pretty rows wait for up to TABLE_ROWS_HELD of them, so pages of a listing line up.
  let held: string[][] = [LIST_HEADER.slice()];
  const flush = () => {
    io.out(tableLines(held, widths));
    held = [];
  };
  let startAfter = command.startAfter;
  let count = 0;
  while (true) {
    const body = { ...base, ...(startAfter === null ? {} : { start_after: startAfter }) };
    const answer = await ctx.client.post(
      "/records/list",
      JSON.stringify(body),
      readTimeout(ctx, command.waitMs),
    );
    const page = parseExact(answer) as { records: WireRecord[]; next: string | null };
    count += page.records.length;
    if (globals.json) {
      let lines = "";
      for (const record of page.records) lines += JSON.stringify(record) + "\n";
      io.out(lines);
    } else {
      for (const record of page.records) held.push(listRow(record));
      if (held.length >= TABLE_ROWS_HELD) flush();
    }
    if (page.next === null) break;
    if (!command.all) {
      if (globals.json) io.err(`next: ${JSON.stringify(page.next)}\n`);
      else {
        flush();
        io.out(
          `(${count} record${count === 1 ? "" : "s"}; more follow: --start-after ${
            cell(page.next)
          } or --all)\n`,
        );
      }
      return;
    }
    // The cursor must move, or the loop would ask for the same page for ever.
    if (page.next === startAfter) {
      throw new CliError(
        EXIT.problem,
        "list_stuck",
        `Cannot list: the node answered next = ${JSON.stringify(page.next)} twice`,
      );
    }
    startAfter = page.next;
  }
  if (!globals.json) {
    flush();
    io.out(`(${count} record${count === 1 ? "" : "s"})\n`);
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** One request of a split batch: a run of consecutive puts or deletes. */
export interface SplitRequest {
  readonly path: "/records/put" | "/records/delete";
  /** Index in the input of the first op of this request. */
  readonly first: number;
  readonly records: readonly Json[];
}

/**
 * The ops of a batch input: `{"ops": […]}` or a bare `[…]`. Returns the body to send to
 * `/records/batch` (the input object itself, or the array wrapped) and its ops.
 */
export function batchBody(input: unknown): { body: Json; ops: readonly unknown[] } {
  if (Array.isArray(input)) return { body: { ops: input }, ops: input };
  if (isObject(input) && Array.isArray(input.ops)) return { body: input, ops: input.ops };
  throw usageError('Cannot read the batch: expected {"ops": [...]} or [...] of ops');
}

/**
 * `batch --split`: consecutive ops of one kind become one `/records/put` or `/records/delete`
 * request of at most `chunk` records (the `op` member dropped), in input order, so the effects on
 * any one key keep their order. Not atomic, and may span partitions.
 */
export function splitBatch(ops: readonly unknown[], chunk: number): SplitRequest[] {
  const out: SplitRequest[] = [];
  let current: { path: SplitRequest["path"]; first: number; records: Json[] } | null = null;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (!isObject(op) || (op.op !== "put" && op.op !== "delete")) {
      throw usageError(`Cannot split the batch: ops[${i}] is not {"op": "put" | "delete", …}`);
    }
    const path = op.op === "put" ? "/records/put" : "/records/delete";
    const { op: _, ...record } = op;
    if (current === null || current.path !== path || current.records.length >= chunk) {
      current = { path, first: i, records: [] };
      out.push(current);
    }
    current.records.push(record);
  }
  return out;
}

/** The highest offset of each partition across several writes' answers. */
export function mergeOffsets(into: Record<string, number>, offsets: Offsets): void {
  for (const [partition, offset] of Object.entries(offsets)) {
    into[partition] = Math.max(into[partition] ?? -1, offset);
  }
}

/**
 * `batch [ops]`: the ops from the argument, `@file` or stdin, sent to `/records/batch` (one
 * partition, all or nothing) or, with `--split`, as runs of puts and deletes. Prints the offsets.
 */
export async function batch(
  ctx: Context,
  command: Extract<Command, { kind: "batch" }>,
): Promise<void> {
  const input = parseInput(await readSource(command.body, ctx.io), "the batch");
  const { body, ops } = batchBody(input);
  if (!command.split) {
    const answer = await ctx.client.post("/records/batch", JSON.stringify(body));
    ctx.io.out(render(parseExact(answer), ctx.globals.json));
    return;
  }
  if (Object.keys(body).some((key) => key !== "ops")) {
    throw usageError("Cannot split the batch: its object may hold only ops");
  }
  const offsets: Record<string, number> = {};
  for (const request of splitBatch(ops, command.chunk)) {
    let answer: string;
    try {
      answer = await ctx.client.post(request.path, JSON.stringify({ records: request.records }));
    } catch (error) {
      if (error instanceof CliError && request.first > 0) {
        // Say how far the batch got: the ops before this request were written.
        throw new CliError(
          error.exitCode,
          error.code,
          `${error.message} (ops[0..${request.first - 1}] were written, offsets ${
            JSON.stringify(offsets)
          }; ops[${request.first}..] were not acknowledged)`,
        );
      }
      throw error;
    }
    mergeOffsets(offsets, (JSON.parse(answer) as { offsets: Offsets }).offsets);
  }
  ctx.io.out(render({ offsets }, ctx.globals.json));
}
