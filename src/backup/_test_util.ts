/**
 * Test helpers for the backup component: an in-memory {@linkcode ObjectStore} stand-in (a Map
 * of key → bytes) with injectable failures. Unit tests only; integration tests use a real
 * S3-compatible server. Partition stores in temporary folders come from tests/_helpers.ts.
 *
 * @module
 */
import type { ListedObject, ObjectStore } from "./object_store.ts";

/** The operations of an {@linkcode ObjectStore}, as recorded by {@linkcode MemoryObjectStore}. */
export type ObjectOp =
  | "putFile"
  | "putJson"
  | "getJson"
  | "getFile"
  | "createBytes"
  | "getBytes"
  | "list"
  | "listSized"
  | "delete";

/** One call made to a {@linkcode MemoryObjectStore}. */
export interface ObjectCall {
  readonly op: ObjectOp;
  /** The key (the prefix for `list`, the keys joined by "," for `delete`). */
  readonly key: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An {@linkcode ObjectStore} held in memory; `failWith` makes chosen calls throw. */
export class MemoryObjectStore implements ObjectStore {
  /** Key → object bytes. */
  readonly objects = new Map<string, Uint8Array>();
  /** Every call, in order (failed ones included). */
  readonly calls: ObjectCall[] = [];
  /** Returns an error to throw for a call, or null to let it through. */
  failWith: (op: ObjectOp, key: string) => Error | null = () => null;

  /** Records the call; rejects (never throws: S3's methods fail asynchronously) when it fails. */
  private enter(op: ObjectOp, key: string, signal: AbortSignal): Promise<void> {
    this.calls.push({ op, key });
    if (signal.aborted) return Promise.reject(signal.reason);
    const error = this.failWith(op, key);
    return error === null ? Promise.resolve() : Promise.reject(error);
  }

  /** How many calls of `op` were made. */
  count(op: ObjectOp): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  /** Every key, sorted. */
  keys(): string[] {
    return [...this.objects.keys()].sort();
  }

  async putFile(key: string, path: string, signal: AbortSignal): Promise<void> {
    await this.enter("putFile", key, signal);
    this.objects.set(key, await Deno.readFile(path));
  }

  async putJson(key: string, value: unknown, signal: AbortSignal): Promise<void> {
    await this.enter("putJson", key, signal);
    this.objects.set(key, encoder.encode(JSON.stringify(value)));
  }

  async getJson(key: string, signal: AbortSignal): Promise<unknown | null> {
    await this.enter("getJson", key, signal);
    const bytes = this.objects.get(key);
    return bytes === undefined ? null : JSON.parse(decoder.decode(bytes));
  }

  async getFile(key: string, path: string, signal: AbortSignal): Promise<boolean> {
    await this.enter("getFile", key, signal);
    const bytes = this.objects.get(key);
    if (bytes === undefined) return false;
    await Deno.writeFile(path, bytes);
    return true;
  }

  async createBytes(key: string, bytes: Uint8Array, signal: AbortSignal): Promise<boolean> {
    await this.enter("createBytes", key, signal);
    if (this.objects.has(key)) return false;
    this.objects.set(key, bytes.slice());
    return true;
  }

  async getBytes(key: string, signal: AbortSignal): Promise<Uint8Array | null> {
    await this.enter("getBytes", key, signal);
    return this.objects.get(key)?.slice() ?? null;
  }

  async list(prefix: string, signal: AbortSignal, max = 100_000): Promise<string[]> {
    await this.enter("list", prefix, signal);
    // S3 lists in UTF-8 byte order; for these ASCII keys that is string order.
    return this.keys().filter((k) => k.startsWith(prefix)).slice(0, max);
  }

  async listSized(prefix: string, signal: AbortSignal, max = 100_000): Promise<ListedObject[]> {
    await this.enter("listSized", prefix, signal);
    return this.keys().filter((k) => k.startsWith(prefix)).slice(0, max).map((key) => ({
      key,
      bytes: this.objects.get(key)!.length,
    }));
  }

  async delete(keys: readonly string[], signal: AbortSignal): Promise<void> {
    await this.enter("delete", keys.join(","), signal);
    for (const key of keys) this.objects.delete(key);
  }
}

/** Names of the entries of `dir`, sorted. */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}
