/**
 * Gossip datagrams: one node's state, JSON, signed with HMAC-SHA256 over the cluster secret.
 *
 * Layout: 32-byte HMAC-SHA256(secret, payload) ‖ payload (UTF-8 JSON). At most
 * {@linkcode DATAGRAM_BYTES_MAX} bytes, which fits one unfragmented UDP packet on any path.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Largest datagram sent or accepted. */
export const DATAGRAM_BYTES_MAX = 1200;
const MAC_BYTES = 32;

/** What a node says about itself every broadcast interval. */
export interface NodeState {
  /** Message format version. */
  readonly v: 1;
  /** Instance id. */
  readonly id: string;
  readonly namespace: string;
  readonly region: string;
  readonly group: string;
  /** `host:port` of the node's internal HTTP port (IPv6 hosts in brackets). */
  readonly addr: string;
  /** Process start time (ms): a restarted node is a new incarnation. */
  readonly inc: number;
  /** Sequence number within the incarnation; older or repeated ones are stale. */
  readonly seq: number;
  /** Sender's clock (ms) when sent. */
  readonly ts: number;
  readonly state: "alive" | "leaving";
  /** Partition count, so a bitmap of another namespace layout is never misread. */
  readonly partitions: number;
  /** Base64 bitmap of the partitions the node serves (bit p of byte p >> 3, LSB first). */
  readonly serving: string;
}

/** Why a datagram was dropped (a metric label). */
export type DropReason = "oversized" | "unsigned" | "bad_signature" | "malformed";

/** Encodes a set of partitions as a base64 bitmap. */
export function encodeBitmap(partitions: Iterable<number>, count: number): string {
  const bytes = new Uint8Array(Math.ceil(count / 8));
  for (const p of partitions) bytes[p >> 3]! |= 1 << (p & 7);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Decodes a base64 bitmap into the partitions it holds (below `count`), or null if malformed. */
export function decodeBitmap(bitmap: string, count: number): Set<number> | null {
  let binary: string;
  try {
    binary = atob(bitmap);
  } catch {
    return null;
  }
  if (binary.length !== Math.ceil(count / 8)) return null;
  const out = new Set<number>();
  for (let p = 0; p < count; p++) {
    if (binary.charCodeAt(p >> 3) & (1 << (p & 7))) out.add(p);
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function mac(secret: string, payload: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", secret).update(payload).digest());
}

/** Signs and encodes a state; throws if it does not fit a datagram (a config error upstream). */
export function encodeState(state: NodeState, secret: string): Uint8Array {
  const payload = encoder.encode(JSON.stringify(state));
  const out = new Uint8Array(MAC_BYTES + payload.length);
  out.set(mac(secret, payload), 0);
  out.set(payload, MAC_BYTES);
  if (out.length > DATAGRAM_BYTES_MAX) {
    throw new Error(
      `Cannot gossip: the state datagram is ${out.length} bytes, more than ${DATAGRAM_BYTES_MAX}`,
    );
  }
  return out;
}

/** The decoded state, or why the datagram must be dropped. Never throws. */
export function decodeState(
  datagram: Uint8Array,
  secret: string,
): { ok: true; state: NodeState } | { ok: false; reason: DropReason } {
  if (datagram.length > DATAGRAM_BYTES_MAX) return { ok: false, reason: "oversized" };
  if (datagram.length <= MAC_BYTES || datagram[MAC_BYTES] !== 0x7b /* "{" */) {
    return { ok: false, reason: "unsigned" };
  }
  const payload = datagram.subarray(MAC_BYTES);
  if (!timingSafeEqual(mac(secret, payload), datagram.subarray(0, MAC_BYTES))) {
    return { ok: false, reason: "bad_signature" };
  }
  let state: unknown;
  try {
    state = JSON.parse(decoder.decode(payload));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  const s = state as Record<string, unknown>;
  const strings = ["id", "namespace", "region", "group", "addr", "serving"] as const;
  const numbers = ["inc", "seq", "ts", "partitions"] as const;
  if (
    typeof state !== "object" || state === null || s.v !== 1 ||
    strings.some((k) => typeof s[k] !== "string" || (s[k] as string).length > 1024) ||
    numbers.some((k) => typeof s[k] !== "number" || !Number.isSafeInteger(s[k])) ||
    (s.state !== "alive" && s.state !== "leaving")
  ) {
    return { ok: false, reason: "malformed" };
  }
  return { ok: true, state: state as NodeState };
}
