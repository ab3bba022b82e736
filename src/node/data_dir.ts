/**
 * One process per data folder. LMDB itself allows several processes on one file, but the node
 * keeps offsets and chains in memory (the embedded log hands out offsets from its own counter), so
 * a second process on the same `DB_PATH` hands out offsets twice and loses acknowledged writes.
 * The first process takes an exclusive OS file lock (flock) on `{DB_PATH}/.lock` and holds it for
 * its lifetime; a second one is refused before it opens anything. The kernel drops the lock when
 * the holder dies (even by SIGKILL), so a stale pid left in the file never blocks a start: the pid
 * is only there to name the holder in the refusal.
 *
 * @module
 */
import { errorMessage, StartError } from "../util/mod.ts";

/** Name of the lock file inside `DB_PATH`. */
export const LOCK_FILE_NAME = ".lock";

/** Bound on the pid text read back from a lock file (a pid and a newline). */
const PID_BYTES_MAX = 32;

function inUse(path: string, pid: number | null): StartError {
  return new StartError(
    "data_dir_in_use",
    `Cannot use data folder ${path}: it is in use by another process (pid ${
      pid ?? "unknown"
    }); stop that process or give this one another DB_PATH`,
    { path, pid },
  );
}

function unusable(path: string, cause: unknown): StartError {
  return new StartError(
    "data_dir_unusable",
    `Cannot use data folder ${path}: ${errorMessage(cause)}`,
    {
      path,
    },
  );
}

/** The held lock on a data folder; {@linkcode DataDirLock.release} lets another process in. */
export class DataDirLock {
  private file: Deno.FsFile | null;

  /** @internal Use {@linkcode lockDataDir}. */
  constructor(readonly path: string, file: Deno.FsFile) {
    this.file = file;
  }

  /** Releases the lock (closing the file drops the flock). Idempotent. */
  release(): void {
    const file = this.file;
    if (file === null) return;
    this.file = null;
    try {
      file.unlockSync();
    } finally {
      file.close();
    }
  }
}

/**
 * Creates `path` if needed and takes the exclusive lock on `{path}/.lock`, writing this process's
 * pid into it. Never blocks. Throws a {@linkcode StartError}: `data_dir_in_use` (fields `path`,
 * `pid` of the holder or null if it has not written it yet) when another process holds it,
 * `data_dir_unusable` (`path`) when the folder cannot be created or the lock file opened.
 */
export function lockDataDir(path: string, pid: number = Deno.pid): DataDirLock {
  let file: Deno.FsFile;
  try {
    Deno.mkdirSync(path, { recursive: true });
    // Not truncated on open: the holder's pid must stay readable to a refused process.
    file = Deno.openSync(`${path}/${LOCK_FILE_NAME}`, { read: true, write: true, create: true });
  } catch (error) {
    throw unusable(path, error);
  }
  let locked: boolean;
  try {
    locked = file.tryLockSync(true);
  } catch (error) {
    file.close();
    throw unusable(path, error);
  }
  if (!locked) {
    const holder = readPid(file);
    file.close();
    throw inUse(path, holder);
  }
  try {
    file.truncateSync(0);
    file.writeSync(new TextEncoder().encode(`${pid}\n`));
  } catch (error) {
    file.close();
    throw unusable(path, error);
  }
  return new DataDirLock(path, file);
}

function readPid(file: Deno.FsFile): number | null {
  const buffer = new Uint8Array(PID_BYTES_MAX);
  let n: number | null;
  try {
    file.seekSync(0, Deno.SeekMode.Start);
    n = file.readSync(buffer);
  } catch {
    return null;
  }
  const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0)).trim();
  return /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : null;
}
