import assert from "node:assert/strict";
import { LOCK_FILE_NAME, lockDataDir } from "./data_dir.ts";
import { StartError } from "../util/mod.ts";

function startError(fn: () => unknown): StartError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof StartError, String(error));
    return error;
  }
  throw new Error("expected a StartError");
}

Deno.test("lockDataDir() creates the folder and writes the holder's pid into the lock file", () => {
  const root = Deno.makeTempDirSync();
  try {
    const lock = lockDataDir(`${root}/data/nested`, 4242);
    assert.equal(Deno.readTextFileSync(`${root}/data/nested/${LOCK_FILE_NAME}`), "4242\n");
    lock.release();
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("lockDataDir() refuses a held folder with data_dir_in_use naming the path and the holder's pid", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const held = lockDataDir(dir, 1234);
    const error = startError(() => lockDataDir(dir, 5678));
    assert.equal(error.event, "data_dir_in_use");
    assert.deepEqual(error.fields, { path: dir, pid: 1234 });
    assert.match(error.message, /in use by another process \(pid 1234\)/);
    // The refused attempt must not have overwritten the holder's pid.
    assert.equal(Deno.readTextFileSync(`${dir}/${LOCK_FILE_NAME}`), "1234\n");
    held.release();
    lockDataDir(dir, 5678).release();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lockDataDir() ignores a stale pid left by a holder that died", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/${LOCK_FILE_NAME}`, "99999999\n");
    const lock = lockDataDir(dir, 77);
    assert.equal(Deno.readTextFileSync(`${dir}/${LOCK_FILE_NAME}`), "77\n");
    lock.release();
    lock.release();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lockDataDir() reports a file where the folder should be as data_dir_unusable", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/file`, "x");
    const error = startError(() => lockDataDir(`${dir}/file`));
    assert.equal(error.event, "data_dir_unusable");
    assert.deepEqual(error.fields, { path: `${dir}/file` });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
