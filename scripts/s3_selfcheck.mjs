// deno-lint-ignore-file no-console -- CLI tool: its output is the report
// End-to-end check of the dev S3 server started by scripts/s3.sh, using the
// real AWS SDK (the client family production will talk to). Not part of the
// test suite: the SDK is not a project dependency, so it is loaded from a
// scratch dir outside the repo:
//
//   mkdir -p /tmp/s3check && (cd /tmp/s3check && npm init -y >/dev/null &&
//     npm install @aws-sdk/client-s3 @aws-sdk/lib-storage)
//   scripts/s3.sh start && node scripts/s3_selfcheck.mjs
//
// Env: S3CHECK_SDK_DIR (/tmp/s3check), S3_PORT (19000), S3_BUCKET
// (firescroll-test), S3_CHECKSUMS=default to also exercise the SDK's default
// (flexible checksum, aws-chunked) upload path.
import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Readable } from "node:stream";

const sdkDir = process.env.S3CHECK_SDK_DIR ?? "/tmp/s3check";
const require = createRequire(join(sdkDir, "noop.js"));
let s3, storage;
try {
  s3 = require("@aws-sdk/client-s3");
  storage = require("@aws-sdk/lib-storage");
} catch (e) {
  console.error(`cannot load @aws-sdk/client-s3 + lib-storage from ${sdkDir}: ${e.message}`);
  process.exit(2);
}

const port = process.env.S3_PORT ?? "19000";
const Bucket = process.env.S3_BUCKET ?? "firescroll-test";
const MiB = 1024 * 1024;
const checksumMode = process.env.S3_CHECKSUMS === "default" ? "WHEN_SUPPORTED" : "WHEN_REQUIRED";

const client = new s3.S3Client({
  endpoint: `http://127.0.0.1:${port}`,
  region: "us-east-1",
  credentials: { accessKeyId: "firescroll", secretAccessKey: "firescroll-secret" },
  forcePathStyle: true,
  requestChecksumCalculation: checksumMode,
  responseChecksumValidation: checksumMode,
});

const run = `selfcheck-${Date.now()}-${randomBytes(3).toString("hex")}`;
const sha = (b) => createHash("sha256").update(b).digest("hex");
let passed = 0;
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? ` (${detail})` : ""}`);
}

async function getBytes(Key) {
  const r = await client.send(new s3.GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await r.Body.transformToByteArray());
}

// Feeds `data` as a stream of odd-sized chunks with no known length, so the
// SDK must buffer parts itself (the streamed-upload path s3rver corrupted).
function oddChunks(data) {
  return Readable.from((function* () {
    for (let i = 0, n = 0; i < data.length; i += n) {
      n = 100_000 + ((i / 7) % 900_000 | 0);
      yield data.subarray(i, i + n);
    }
  })());
}

async function main() {
  console.log(
    `s3 selfcheck against 127.0.0.1:${port} ` +
      `bucket ${Bucket}, checksums ${checksumMode}, prefix ${run}/`,
  );

  // 1. Multipart via lib-storage from a stream: 12 MiB -> parts 5+5+2 MiB.
  const big = randomBytes(12 * MiB + 12345);
  const bigKey = `${run}/snap/part-000.mdb`;
  let t = Date.now();
  const up = new storage.Upload({
    client,
    params: { Bucket, Key: bigKey, Body: oddChunks(big) },
    partSize: 5 * MiB,
    queueSize: 2,
  });
  const res = await up.done();
  const upMs = Date.now() - t;
  check(
    "lib-storage multipart upload (stream)",
    /-3"?$/.test(res.ETag ?? ""),
    `etag ${res.ETag}, ${upMs} ms`,
  );
  t = Date.now();
  const got = await getBytes(bigKey);
  check(
    "multipart round-trip byte-identical",
    got.length === big.length && sha(got) === sha(big),
    `${got.length} bytes, sha256 ${sha(got).slice(0, 16)}…, get ${Date.now() - t} ms`,
  );

  // 2. Low-level multipart with explicit parts (what a snapshotter may do).
  const a = randomBytes(5 * MiB), b = randomBytes(5 * MiB), c = randomBytes(777);
  const mpKey = `${run}/snap/part-001.mdb`;
  const { UploadId } = await client.send(
    new s3.CreateMultipartUploadCommand({ Bucket, Key: mpKey }),
  );
  const Parts = [];
  for (const [i, body] of [a, b, c].entries()) {
    const r = await client.send(
      new s3.UploadPartCommand({
        Bucket,
        Key: mpKey,
        UploadId,
        PartNumber: i + 1,
        Body: body,
      }),
    );
    Parts.push({ ETag: r.ETag, PartNumber: i + 1 });
  }
  await client.send(
    new s3.CompleteMultipartUploadCommand({
      Bucket,
      Key: mpKey,
      UploadId,
      MultipartUpload: { Parts },
    }),
  );
  const all = Buffer.concat([a, b, c]);
  const got2 = await getBytes(mpKey);
  check("explicit 3-part upload byte-identical", sha(got2) === sha(all), `${got2.length} bytes`);

  // Ranged GET across the part boundary.
  const rg = await client.send(
    new s3.GetObjectCommand({
      Bucket,
      Key: mpKey,
      Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}`,
    }),
  );
  const rgb = Buffer.from(await rg.Body.transformToByteArray());
  check("ranged GET across part boundary", rgb.equals(all.subarray(5 * MiB - 10, 5 * MiB + 10)));

  // 3. Small objects + ListObjectsV2 with prefix (and pagination).
  for (const k of ["snap/manifest.json", "other/x", "snap2/y"]) {
    await client.send(new s3.PutObjectCommand({ Bucket, Key: `${run}/${k}`, Body: `v:${k}` }));
  }
  const list = async (Prefix, extra = {}) => {
    const keys = [];
    let ContinuationToken;
    do {
      const r = await client.send(
        new s3.ListObjectsV2Command({ Bucket, Prefix, ContinuationToken, ...extra }),
      );
      for (const o of r.Contents ?? []) keys.push(o.Key);
      ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return keys.sort();
  };
  const want = [`${run}/snap/manifest.json`, bigKey, mpKey].sort();
  const keys = await list(`${run}/snap/`);
  check("ListObjectsV2 prefix", JSON.stringify(keys) === JSON.stringify(want), keys.join(","));
  const paged = await list(`${run}/snap/`, { MaxKeys: 1 });
  check("ListObjectsV2 paginated (MaxKeys=1)", JSON.stringify(paged) === JSON.stringify(want));
  const d = await client.send(
    new s3.ListObjectsV2Command({ Bucket, Prefix: `${run}/`, Delimiter: "/" }),
  );
  const cps = (d.CommonPrefixes ?? []).map((p) => p.Prefix).sort();
  check(
    "ListObjectsV2 delimiter",
    JSON.stringify(cps) ===
      JSON.stringify([`${run}/other/`, `${run}/snap/`, `${run}/snap2/`]),
    cps.join(","),
  );
  check(
    "small object round-trip",
    (await getBytes(`${run}/snap/manifest.json`)).toString() === "v:snap/manifest.json",
  );

  // 4. DeleteObject, then the key is gone from HEAD and LIST.
  await client.send(new s3.DeleteObjectCommand({ Bucket, Key: `${run}/snap/manifest.json` }));
  let status = 0;
  try {
    await client.send(new s3.HeadObjectCommand({ Bucket, Key: `${run}/snap/manifest.json` }));
  } catch (e) {
    status = e.$metadata?.httpStatusCode ?? -1;
  }
  check("DeleteObject -> HEAD 404", status === 404, `status ${status}`);
  const after = await list(`${run}/snap/`);
  check(
    "DeleteObject -> gone from list",
    !after.includes(`${run}/snap/manifest.json`) &&
      after.length === 2,
    after.join(","),
  );

  // Clean up everything this run wrote.
  for (const k of await list(`${run}/`)) {
    await client.send(new s3.DeleteObjectCommand({ Bucket, Key: k }));
  }
  check("cleanup", (await list(`${run}/`)).length === 0);
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL unexpected error: ${e.name}: ${e.message}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
