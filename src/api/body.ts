/** Reading request bodies as a bounded stream: an oversized body is refused, never buffered. */
import { OperationalError } from "../util/errors.ts";
import { badRequest } from "./problem.ts";

function tooLarge(limit: number): OperationalError {
  return new OperationalError(
    "body_too_large",
    413,
    `Cannot read body: larger than BODY_BYTES_MAX (${limit} bytes)`,
    { limit },
  );
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Reads the body (at most `limit` bytes) and parses it as JSON. */
export async function readJson(request: Request, limit: number): Promise<unknown> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await request.body?.cancel();
    throw tooLarge(limit);
  }
  if (request.body === null) throw badRequest("invalid_json", "Cannot parse body: it is empty");
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  while (true) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch {
      // The client went away mid-body: its fault, not a server error to log with a stack.
      throw badRequest(
        "incomplete_body",
        "Cannot read body: the connection closed before the whole body arrived",
      );
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  let bytes: Uint8Array;
  if (chunks.length === 1) bytes = chunks[0]!;
  else {
    bytes = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw badRequest("invalid_json", "Cannot parse body: it is not UTF-8");
  }
  if (text.trim() === "") throw badRequest("invalid_json", "Cannot parse body: it is empty");
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest("invalid_json", `Cannot parse body: ${(error as Error).message}`);
  }
}
