/**
 * The clean-stop record, `{DB_PATH}/{ns}/clean-stop.json`: written as the very last step of a
 * clean shutdown with each LMDB file's size and mtime, and removed as the first step of a start.
 * Its absence at start means the previous process did not stop cleanly (crash, kill, power
 * loss): every file is then verified before it is mapped. A file whose size or mtime differs
 * from the record was touched while no node ran (a copy, a restore by hand, a damaged disk) and
 * is verified too; the untouched files of a clean stop are trusted, so start-up stays fast.
 */

/** Name of the record inside a namespace's folder. */
export const CLEAN_STOP_FILE = "clean-stop.json";

/** What the record says about one file. */
export interface FileStamp {
  readonly size: number;
  readonly mtimeMs: number;
}

/** The record: file name (inside the folder) → stamp at the clean stop. */
export type CleanStop = ReadonlyMap<string, FileStamp>;

/** Files the record covers: partition files and the embedded log. */
const COVERED = /^(p\d+|log)\.mdb$/;

/** Most files a record may list (a partition count above this is refused by config anyway). */
const FILES_MAX = 100_000;

/**
 * Size and mtime of a file, or null when it does not exist. Synchronous: a stat takes
 * microseconds, an async one a round trip through the runtime's thread pool, and a hand-over
 * start looks at every file while requests wait.
 */
export function stampOf(path: string): FileStamp | null {
  try {
    const info = Deno.statSync(path);
    return { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * Reads and removes the record of `dir` (so a crash from now on leaves none). Null
 * when there was none or it is unreadable: the previous stop was not clean.
 */
export function takeCleanStop(dir: string): CleanStop | null {
  const path = `${dir}/${CLEAN_STOP_FILE}`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  Deno.removeSync(path);
  return parseCleanStop(text);
}

/** Parses a record's text; null when it is not a valid record. */
export function parseCleanStop(text: string): CleanStop | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const files = (value as { files?: unknown }).files;
  if (typeof files !== "object" || files === null || Array.isArray(files)) return null;
  const out = new Map<string, FileStamp>();
  for (const [name, stamp] of Object.entries(files)) {
    if (out.size >= FILES_MAX || !COVERED.test(name)) return null;
    const { size, mtimeMs } = (stamp ?? {}) as { size?: unknown; mtimeMs?: unknown };
    if (typeof size !== "number" || typeof mtimeMs !== "number") return null;
    out.set(name, { size, mtimeMs });
  }
  return out;
}

/**
 * Whether the file `name` must be verified before it is mapped: no clean stop, not in the
 * record, or changed since. A file that does not exist needs nothing.
 */
export function needsVerify(
  record: CleanStop | null,
  name: string,
  now: FileStamp | null,
): boolean {
  if (now === null) return false;
  const then = record?.get(name);
  return then === undefined || then.size !== now.size || then.mtimeMs !== now.mtimeMs;
}

/**
 * Writes the record for every covered file in `dir` (call it after every LMDB file there is
 * closed). Written to a temporary name and renamed, so a crash never leaves half a record.
 */
export async function writeCleanStop(dir: string, sync = true): Promise<void> {
  const files: Record<string, FileStamp> = {};
  if (stampOf(dir) === null) return; // Nothing was ever opened here.
  // Synchronous like stampOf: a hand-over's successor waits for this record.
  let count = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.isFile || !COVERED.test(entry.name)) continue;
    if (++count > FILES_MAX) break;
    const stamp = stampOf(`${dir}/${entry.name}`);
    if (stamp !== null) files[entry.name] = stamp;
  }
  const path = `${dir}/${CLEAN_STOP_FILE}`;
  const temporary = `${path}.tmp`;
  Deno.writeTextFileSync(temporary, JSON.stringify({ version: 1, files }));
  if (sync) {
    const file = await Deno.open(temporary, { write: true });
    try {
      await file.sync();
    } finally {
      file.close();
    }
  }
  Deno.renameSync(temporary, path);
}
