/**
 * The object store snapshots live in: a small interface, and its S3 implementation (AWS SDK v3)
 * that works with MinIO-style endpoints (path style) and Tigris (virtual-hosted style).
 *
 * The SDK is imported when a store first talks to S3, not with this module: loading it costs
 * ~100 ms of CPU, and every serving thread's module graph reaches this file (through the internal
 * API's snapshot route) without ever using S3.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import type { ConfigS3 } from "../config/mod.ts";
import { assert } from "../util/assert.ts";

/** What backups and restores need from object storage. */
export interface ObjectStore {
  /** Uploads a file (multipart when large). */
  putFile(key: string, path: string, signal: AbortSignal): Promise<void>;
  /** Writes a small JSON object. */
  putJson(key: string, value: unknown, signal: AbortSignal): Promise<void>;
  /** Reads a small JSON object, or null when the key does not exist. */
  getJson(key: string, signal: AbortSignal): Promise<unknown | null>;
  /** Downloads an object to a file; false when the key does not exist. */
  getFile(key: string, path: string, signal: AbortSignal): Promise<boolean>;
  /**
   * Creates a small object unless the key exists (S3's `If-None-Match: *`): true when this call
   * created it, false when an object was there already (first writer wins; it is not replaced).
   */
  createBytes(key: string, bytes: Uint8Array, signal: AbortSignal): Promise<boolean>;
  /** Reads a small object whole, or null when the key does not exist. */
  getBytes(key: string, signal: AbortSignal): Promise<Uint8Array | null>;
  /** Every key under `prefix` (paged; bounded by `max`). */
  list(prefix: string, signal: AbortSignal, max?: number): Promise<string[]>;
  /** Every object under `prefix` with its size (paged; bounded by `max`). */
  listSized(prefix: string, signal: AbortSignal, max?: number): Promise<ListedObject[]>;
  /** Deletes keys (absent ones are fine). */
  delete(keys: readonly string[], signal: AbortSignal): Promise<void>;
  /** What another thread needs to open the same store (absent: it cannot). */
  readonly threadable?: S3Options;
}

/** A key and its object's size, as a listing gives them. */
export interface ListedObject {
  readonly key: string;
  readonly bytes: number;
}

/**
 * Where and how to reach S3: the `s3` config section whole (`endpoint`, `region`,
 * `forcePathStyle`, and `bucket`, which must be set).
 */
export interface S3Options {
  readonly s3: ConfigS3;
  /** Bytes per multipart part (S3's minimum is 5 MiB). */
  readonly partBytes?: number;
}

const MiB = 1024 * 1024;
/** Bound on the keys one listing returns, so a huge prefix cannot exhaust memory. */
const LIST_MAX = 100_000;

/** The SDK's modules, loaded once per thread on first use. */
type Sdk = typeof import("@aws-sdk/client-s3") & typeof import("@aws-sdk/lib-storage");
let sdkLoading: Promise<Sdk> | null = null;

/** Loads the SDK (once per thread): a thread that will talk to S3 can load it ahead. */
export function loadSdk(): Promise<Sdk> {
  sdkLoading ??= Promise.all([import("@aws-sdk/client-s3"), import("@aws-sdk/lib-storage")])
    .then(([client, storage]) => ({ ...client, ...storage }));
  return sdkLoading;
}

/** {@linkcode ObjectStore} on S3 or an S3-compatible server. */
export class S3ObjectStore implements ObjectStore {
  private connecting: Promise<{ client: S3Client; sdk: Sdk }> | null = null;

  /** `s3.bucket`, asserted set. */
  private readonly bucket: string;

  constructor(private readonly options: S3Options) {
    assert(options.s3.bucket !== null, "the object store needs S3_BUCKET (checked by config)");
    this.bucket = options.s3.bucket;
  }

  /** Its options: plain data, which a worker thread opens the same store with. */
  get threadable(): S3Options {
    return this.options;
  }

  /** The client (created, and the SDK loaded, by the first call). */
  private s3(): Promise<{ client: S3Client; sdk: Sdk }> {
    const { s3 } = this.options;
    this.connecting ??= loadSdk().then((sdk) => ({
      sdk,
      client: new sdk.S3Client({
        region: s3.region,
        ...(s3.endpoint === null ? {} : { endpoint: s3.endpoint }),
        forcePathStyle: s3.forcePathStyle,
        // Local S3 servers reject the SDK's default trailing checksums; S3 itself needs none.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        maxAttempts: 3,
      }),
    }));
    return this.connecting;
  }

  async putFile(key: string, path: string, signal: AbortSignal): Promise<void> {
    // The abort listener below only hears a later abort: an expired backup timeout must not
    // start an upload.
    signal.throwIfAborted();
    const { client, sdk } = await this.s3();
    signal.throwIfAborted();
    const file = await Deno.open(path, { read: true });
    try {
      const upload = new sdk.Upload({
        client,
        params: { Bucket: this.bucket, Key: key, Body: file.readable },
        partSize: this.options.partBytes ?? 8 * MiB,
        queueSize: 2,
        leavePartsOnError: false,
      });
      const abort = () => void upload.abort().catch(() => {});
      signal.addEventListener("abort", abort, { once: true });
      try {
        await upload.done();
      } finally {
        signal.removeEventListener("abort", abort);
      }
    } finally {
      try {
        file.close();
      } catch { /* the stream closed it */ }
    }
  }

  async putJson(key: string, value: unknown, signal: AbortSignal): Promise<void> {
    const { client, sdk } = await this.s3();
    await client.send(
      new sdk.PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: JSON.stringify(value),
        ContentType: "application/json",
      }),
      { abortSignal: signal },
    );
  }

  async getJson(key: string, signal: AbortSignal): Promise<unknown | null> {
    const { client, sdk } = await this.s3();
    try {
      const result = await client.send(
        new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }),
        { abortSignal: signal },
      );
      const text = await result.Body!.transformToString();
      return JSON.parse(text);
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async createBytes(key: string, bytes: Uint8Array, signal: AbortSignal): Promise<boolean> {
    const { client, sdk } = await this.s3();
    try {
      await client.send(
        new sdk.PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, IfNoneMatch: "*" }),
        { abortSignal: signal },
      );
      return true;
    } catch (error) {
      // 412: the key exists. 409: a concurrent conditional write of it is in flight (S3).
      const status = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata
        ?.httpStatusCode;
      if (status === 412 || status === 409) return false;
      throw error;
    }
  }

  async getBytes(key: string, signal: AbortSignal): Promise<Uint8Array | null> {
    const { client, sdk } = await this.s3();
    try {
      const result = await client.send(
        new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }),
        { abortSignal: signal },
      );
      return await result.Body!.transformToByteArray();
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async getFile(key: string, path: string, signal: AbortSignal): Promise<boolean> {
    const { client, sdk } = await this.s3();
    let body: ReadableStream<Uint8Array>;
    try {
      const result = await client.send(
        new sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }),
        { abortSignal: signal },
      );
      body = result.Body!.transformToWebStream() as ReadableStream<Uint8Array>;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    await body.pipeTo(file.writable, { signal });
    return true;
  }

  async list(prefix: string, signal: AbortSignal, max = LIST_MAX): Promise<string[]> {
    return (await this.listSized(prefix, signal, max)).map((o) => o.key);
  }

  async listSized(prefix: string, signal: AbortSignal, max = LIST_MAX): Promise<ListedObject[]> {
    const { client, sdk } = await this.s3();
    const keys: ListedObject[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new sdk.ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
        { abortSignal: signal },
      );
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) keys.push({ key: object.Key, bytes: object.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined && keys.length < max);
    return keys;
  }

  async delete(keys: readonly string[], signal: AbortSignal): Promise<void> {
    const { client, sdk } = await this.s3();
    // One DeleteObject per key: retention deletes a handful, and the batch API needs a
    // Content-MD5 that some S3-compatible servers and SDK checksum modes disagree on.
    for (const key of keys) {
      await client.send(
        new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }),
        { abortSignal: signal },
      );
    }
  }
}

function isMissing(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NoSuchKey" || e?.name === "NotFound" || e?.$metadata?.httpStatusCode === 404;
}
