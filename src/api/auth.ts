/** Bearer-token authorization of the public API (`API_TOKENS_READ`, `API_TOKENS_WRITE`). */
import type { Config } from "../config/mod.ts";
import { OperationalError } from "../util/errors.ts";

/** Compares in time independent of where the strings differ. */
export function safeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}

function matches(token: string, tokens: readonly string[]): boolean {
  let found = false;
  for (const t of tokens) found = safeEqual(token, t) || found;
  return found;
}

/** The bearer token of a request, or null. */
export function bearer(request: Request): string | null {
  const header = request.headers.get("authorization");
  if (header === null) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match === null ? null : match[1]!;
}

/**
 * Throws 401 `unauthorized` / 403 `forbidden` unless the request may `need`. With no tokens
 * configured the API is open (the node warns loudly at startup).
 */
export function authorize(request: Request, config: Config, need: "read" | "write"): void {
  if (config.api.tokensRead.length === 0 && config.api.tokensWrite.length === 0) return;
  const token = bearer(request);
  if (token === null) {
    throw new OperationalError(
      "unauthorized",
      "Cannot authorize: send Authorization: Bearer <token>",
    );
  }
  if (matches(token, config.api.tokensWrite)) return;
  if (matches(token, config.api.tokensRead)) {
    if (need === "read") return;
    throw new OperationalError("forbidden", "Cannot write: this token may only read");
  }
  throw new OperationalError("unauthorized", "Cannot authorize: unknown token");
}
