/**
 * The entry module of a restore pool's worker thread (restore_pool.ts): restores the one
 * partition it is sent and answers with the result or the failure.
 *
 * @module
 */
import { setLogLevel } from "../util/log.ts";
import { restoreJob, type RestoreReply, type RestoreRequest } from "./restore_pool.ts";

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<RestoreRequest>) => void) | null;
  postMessage(reply: RestoreReply): void;
};

scope.onmessage = async (event) => {
  setLogLevel(event.data.options.logLevel);
  let reply: RestoreReply;
  try {
    reply = { ok: true, restored: await restoreJob(event.data) };
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    reply = { ok: false, name: e.name, message: e.message };
  }
  scope.postMessage(reply);
};
