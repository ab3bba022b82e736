// deno-lint-ignore-file no-console
/**
 * Probe for issue 15 (the log archived to S3), before any archive code: three facts the design
 * depends on, measured here.
 *
 * 1. Is `CompressionStream("gzip")` deterministic — the same input gives the same bytes, whatever
 *    the chunks it is fed in? Several nodes archiving one partition could then upload identical
 *    segments.
 * 2. Does the S3 server take a conditional create (`If-None-Match: *` on PutObject: the second
 *    writer gets 412), so that the first writer of a segment wins without a read first?
 * 3. How fast does gzip go over log-message-like bytes (JSON puts of ~100 B records), in MB/s of
 *    input and µs per message: what the archive adds to a write's CPU.
 *
 *   deno run -A bench/archive_probe.ts [S3_ENDPOINT] [BUCKET]
 *
 * Prints one JSON object. Without an endpoint, the S3 part is skipped.
 *
 * @module
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const encoder = new TextEncoder();

async function gzip(chunks: readonly Uint8Array[]): Promise<Uint8Array> {
  const stream = new Blob(chunks as unknown as BlobPart[]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gzipChunked(chunks: readonly Uint8Array<ArrayBuffer>[]): Promise<Uint8Array> {
  const compressor = new CompressionStream("gzip");
  const writer = compressor.writable.getWriter();
  const reading = new Response(compressor.readable).arrayBuffer();
  for (const chunk of chunks) await writer.write(chunk);
  await writer.close();
  return new Uint8Array(await reading);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `n` messages as the API writes them: one put of one ~100-byte record each. */
function messages(n: number): Uint8Array<ArrayBuffer>[] {
  return Array.from({ length: n }, (_, i) =>
    encoder.encode(JSON.stringify({
      v: 1,
      atomic: false,
      ops: [{
        op: "put",
        pk: `user-${i % 5000}`,
        sk: "profile",
        data: { name: `name-${i}`, plan: i % 3 === 0 ? "pro" : "free", n: i, region: "ams" },
      }],
    })));
}

const result: Record<string, unknown> = {};
const msgs = messages(20_000);
const bytes = msgs.reduce((n, m) => n + m.length, 0);

// 1. Determinism: whole, in message-sized chunks, in 4 KiB chunks, twice each.
const joined = new Uint8Array(bytes);
let at = 0;
for (const m of msgs) {
  joined.set(m, at);
  at += m.length;
}
const small: Uint8Array<ArrayBuffer>[] = [];
for (let i = 0; i < joined.length; i += 4096) small.push(joined.subarray(i, i + 4096));
const outputs = [
  await gzip([joined]),
  await gzip([joined]),
  await gzipChunked(msgs),
  await gzipChunked(msgs),
  await gzipChunked(small),
];
result.gzip_deterministic = outputs.every((o) => equalBytes(o, outputs[0]!));
result.gzip_same_chunks_same_bytes = equalBytes(outputs[0]!, outputs[1]!) &&
  equalBytes(outputs[2]!, outputs[3]!);
result.gzip_sizes = {
  whole: outputs[0]!.length,
  per_message: outputs[2]!.length,
  per_4k: outputs[4]!.length,
};
result.input_bytes = bytes;
result.gzip_header_mtime = new DataView(outputs[0]!.buffer).getUint32(4, true);

// 3. Speed, 5 rounds each (median): the whole segment at once, and message by message.
async function medianMs(run: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[2]!;
}
for (
  const [name, run] of [
    ["whole", () => gzip([joined])],
    ["per_message", () => gzipChunked(msgs)],
  ] as const
) {
  const ms = await medianMs(run);
  result[`gzip_${name}`] = {
    ms: Math.round(ms * 10) / 10,
    mb_per_s: Math.round(bytes / 1e6 / (ms / 1000)),
    us_per_message: Math.round((ms * 1000 / msgs.length) * 100) / 100,
  };
}
result.gzip_ratio_whole = Math.round((outputs[0]!.length / bytes) * 1000) / 1000;

// 2. Conditional create on the S3 server.
const endpoint = Deno.args[0];
if (endpoint !== undefined) {
  const bucket = Deno.args[1] ?? "firescroll-test";
  const s3 = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: Deno.env.get("AWS_ACCESS_KEY_ID") ?? "firescroll",
      secretAccessKey: Deno.env.get("AWS_SECRET_ACCESS_KEY") ?? "firescroll-secret",
    },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const key = `probe/archive-${Date.now()}`;
  const put = async (body: Uint8Array) => {
    try {
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, IfNoneMatch: "*" }),
      );
      return 200;
    } catch (error) {
      return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ??
        String(error);
    }
  };
  result.conditional_create = { first: await put(outputs[0]!), second: await put(outputs[1]!) };
}
console.log(JSON.stringify(result));
