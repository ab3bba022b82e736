/**
 * The {@linkcode ObjectStore} conformance suite (src/backup/object_store_conformance.ts) against a
 * real S3-compatible server: the one `scripts/test.sh` starts (`FIRESCROLL_TEST_S3`), or any
 * bucket, which is how a Tigris, MinIO or R2 user checks theirs (docs/operations.md):
 *
 * - `FIRESCROLL_TEST_S3`: the endpoint URL (the tests are skipped without it);
 * - `FIRESCROLL_TEST_S3_BUCKET` (default `firescroll-test`), `FIRESCROLL_TEST_S3_REGION`
 *   (default `us-east-1`), `FIRESCROLL_TEST_S3_PATH_STYLE` (`1` by default, `0` for
 *   virtual-hosted style);
 * - `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (default: the local test server's).
 *
 * Everything is written under `firescroll-conformance/<random>/` and deleted afterwards.
 */
import { S3ObjectStore } from "../../src/backup/mod.ts";
import { objectStoreConformance } from "../../src/backup/object_store_conformance.ts";
import { loadConfig } from "../../src/config/mod.ts";
import { S3_BUCKET, S3_ENDPOINT } from "./_s3.ts";

const env = (name: string) => Deno.env.get(name) ?? undefined;

if (S3_ENDPOINT !== null && env("AWS_ACCESS_KEY_ID") === undefined) {
  // The SDK reads credentials from the environment: the local server's, unless given.
  Deno.env.set("AWS_ACCESS_KEY_ID", "firescroll");
  Deno.env.set("AWS_SECRET_ACCESS_KEY", "firescroll-secret");
}

objectStoreConformance(
  "S3ObjectStore",
  () => {
    const run = crypto.randomUUID().slice(0, 8);
    return Promise.resolve({
      store: new S3ObjectStore({
        s3: loadConfig({
          S3_ENDPOINT: S3_ENDPOINT ?? "",
          S3_REGION: env("FIRESCROLL_TEST_S3_REGION") ?? "us-east-1",
          S3_BUCKET: env("FIRESCROLL_TEST_S3_BUCKET") ?? S3_BUCKET,
          S3_FORCE_PATH_STYLE: env("FIRESCROLL_TEST_S3_PATH_STYLE") === "0" ? "0" : "1",
        }).s3,
        // S3's smallest part, so the suite's large file is uploaded in three.
        partBytes: 5 * 1024 * 1024,
      }),
      prefix: `firescroll-conformance/${Date.now().toString(36)}_${run}/`,
    });
  },
  { ignore: S3_ENDPOINT === null, sanitizeOps: false, sanitizeResources: false },
);
