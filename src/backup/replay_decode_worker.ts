/**
 * The entry module of a replay's decoding worker (`replay_decode.ts`): downloads (when sent a
 * key) and decodes each segment it is asked for, in order, and answers with the decoded segment
 * (its buffers transferred), null when the segment is gone, or the failure.
 *
 * @module
 */
import { loadSdk, S3ObjectStore } from "./object_store.ts";
import {
  decodeForReplay,
  forTransfer,
  type WorkerReply,
  type WorkerRequest,
} from "./replay_decode.ts";

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(reply: WorkerReply, transfer?: ArrayBuffer[]): void;
};

/** The store of the first request that named one: a replay reads one bucket. */
let objects: S3ObjectStore | null = null;
/** The worker ends with its replay (terminated): nothing aborts a download but that. */
const signal = new AbortController().signal;

scope.onmessage = async (event) => {
  const request = event.data;
  if ("start" in request) {
    // Ready once its modules are loaded; the SDK loads meanwhile (0.1–0.3 s), while the replay
    // still applies segments it asked for before: the first download here awaits the same load.
    if (request.start.sdk) loadSdk().catch(() => {});
    scope.postMessage({ ready: true });
    return;
  }
  const { id } = request;
  try {
    let gz: Uint8Array | null;
    if ("gz" in request) gz = request.gz;
    else {
      objects ??= new S3ObjectStore(request.s3);
      gz = await objects.getBytes(request.key, signal);
    }
    if (gz === null) {
      scope.postMessage({ id, ok: true, decoded: null });
      return;
    }
    const [decoded, transfer] = forTransfer(await decodeForReplay(gz, request));
    scope.postMessage({ id, ok: true, decoded }, transfer);
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    scope.postMessage({ id, ok: false, name: e.name, message: e.message });
  }
};
