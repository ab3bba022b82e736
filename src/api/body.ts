/** Reading request bodies as a bounded stream: an oversized body is refused, never buffered. */
import { utf8Length } from "../keys/mod.ts";
import { OperationalError } from "../util/errors.ts";
import { JsonRefusedError, parseJsonExact } from "../util/json.ts";
import { badRequest } from "./problem.ts";

function tooLarge(limit: number): OperationalError {
  return new OperationalError(
    "body_too_large",
    `Cannot read body: larger than BODY_BYTES_MAX (${limit} bytes)`,
    { limit },
  );
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function incomplete(): OperationalError {
  // The client went away mid-body: its fault, not a server error to log with a stack.
  return badRequest(
    "incomplete_body",
    "Cannot read body: the connection closed before the whole body arrived",
  );
}

/**
 * Reads the body (at most `limit` bytes) and parses it as JSON. With `exact` (write routes) every
 * number keeps its token (`data` is stored as sent, DESIGN §3), a member name given twice in one
 * object and nesting deeper than `JSON_DEPTH_MAX` are refused.
 */
export async function readJson(
  request: Request,
  limit: number,
  exact = false,
): Promise<unknown> {
  return parseBody(await readBody(request, limit), exact);
}

/** Reads the body as UTF-8 text, at most `limit` bytes (refused past it, never buffered). */
export async function readBody(request: Request, limit: number): Promise<string> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await request.body?.cancel();
    throw tooLarge(limit);
  }
  // `request.body` is not touched on the fast path: the getter builds a ReadableStream, and
  // reading through it costs more than the rest of a get.
  let text: string;
  if (declared !== null) {
    // The declared length is within the limit and the HTTP layer holds the body to it, so it is
    // read in one call: Deno's fastest path (the common case: a get is mostly this).
    try {
      text = await request.text();
    } catch {
      throw incomplete();
    }
    // text() replaces invalid UTF-8 with U+FFFD; a replacement changes the byte length.
    if (text.includes("\uFFFD") && utf8Length(text) !== Number(declared)) {
      throw badRequest("invalid_json", "Cannot parse body: it is not UTF-8");
    }
  } else {
    if (request.body === null) throw badRequest("invalid_json", "Cannot parse body: it is empty");
    const bytes = await readChunked(request.body, limit);
    try {
      text = decoder.decode(bytes);
    } catch {
      throw badRequest("invalid_json", "Cannot parse body: it is not UTF-8");
    }
  }
  return text;
}

/** Parses a body read by {@linkcode readBody}; see {@linkcode readJson}. */
export function parseBody(text: string, exact = false): unknown {
  try {
    return exact ? parseJsonExact(text, { refuseDuplicates: true }) : JSON.parse(text);
  } catch (error) {
    if (error instanceof JsonRefusedError) {
      throw badRequest("invalid_json", `Cannot use body: it ${error.message}`);
    }
    if (/^\s*$/.test(text)) throw badRequest("invalid_json", "Cannot parse body: it is empty");
    throw badRequest("invalid_json", `Cannot parse body: ${(error as Error).message}`);
  }
}

/** A body of unknown length, read chunk by chunk and refused as soon as it passes `limit`. */
async function readChunked(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  while (true) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch {
      throw incomplete();
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
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
