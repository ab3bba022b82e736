/**
 * Wire types of the public and internal HTTP API (DESIGN §3). No internal imports: these are the
 * shapes clients see.
 */

/** A record in a response. */
export interface WireRecord {
  pk: string;
  sk: string;
  data: unknown;
  version: number;
  created_at: number;
  updated_at: number;
}

/** A key in a request or in `missing`. */
export interface WireKey {
  pk: string;
  sk: string;
}

/** Response of put, delete and batch: the log offset per partition written. */
export interface WriteResponse {
  offsets: Record<string, number>;
}

/** Response of `/records/get`, records in request order. */
export interface GetResponse {
  records: WireRecord[];
  missing: WireKey[];
}

/** Response of `/records/list`. */
export interface ListResponse {
  records: WireRecord[];
  next: string | null;
}

/** An RFC 9457 problem. `code` is stable; `detail` is for people. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  [extension: string]: unknown;
}
