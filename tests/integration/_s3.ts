/**
 * Helpers for integration tests against the real S3-compatible server that `scripts/test.sh`
 * starts (versitygw, `scripts/s3.sh`), and the Kafka tools they need (short retention).
 *
 * @module
 */
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { createTopic, KAFKA } from "./_kafka.ts";
import { REPO_ROOT, run } from "./_node.ts";

/** The test server's endpoint (scripts/s3.sh defaults). */
export const S3_ENDPOINT = Deno.env.get("FIRESCROLL_TEST_S3") ?? null;
/** The bucket scripts/s3.sh creates. */
export const S3_BUCKET = "firescroll-test";

/** Options for tests that need Kafka and S3: ignored without them. */
export const needsKafkaAndS3 = {
  ignore: KAFKA === null || S3_ENDPOINT === null,
  sanitizeOps: false,
  sanitizeResources: false,
};

/** The node environment for backups/restores against the test server. */
export function s3Env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    S3_ENDPOINT: S3_ENDPOINT!,
    S3_BUCKET,
    S3_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "firescroll",
    AWS_SECRET_ACCESS_KEY: "firescroll-secret",
    ...extra,
  };
}

/** A client of the test server, independent of the code under test. */
export function s3Client(): S3Client {
  return new S3Client({
    endpoint: S3_ENDPOINT!,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "firescroll", secretAccessKey: "firescroll-secret" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** The `latest.json` manifest of a partition, or null. */
export async function latestManifest(
  client: S3Client,
  namespace: string,
  partition: number,
): Promise<{ offset: number; chain: string } | null> {
  try {
    const result = await client.send(
      new GetObjectCommand({ Bucket: S3_BUCKET, Key: `${namespace}/p${partition}/latest.json` }),
    );
    return JSON.parse(await result.Body!.transformToString());
  } catch {
    return null;
  }
}

/** Keys under a prefix. */
export async function listKeys(client: S3Client, prefix: string): Promise<string[]> {
  const result = await client.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: prefix }));
  return (result.Contents ?? []).map((c) => c.Key!).sort();
}

/** Overwrites an object with other bytes (a corrupted snapshot). */
export async function overwrite(client: S3Client, key: string, body: Uint8Array): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: key, Body: body }));
}

/** Stops or starts the test S3 server. */
export async function s3Server(action: "stop" | "start"): Promise<void> {
  const result = await run("bash", [`${REPO_ROOT}scripts/s3.sh`, action]);
  if (result.code !== 0) {
    throw new Error(`s3.sh ${action} failed: ${result.stdout}${result.stderr}`);
  }
}

/** Creates a topic with short retention and small segments, so early offsets get deleted. */
export function createShortRetentionTopic(topic: string, partitions: number): Promise<void> {
  return createTopic(topic, partitions, {
    "retention.ms": "2000",
    "segment.ms": "300",
    "file.delete.delay.ms": "100",
  });
}

/** The first offset Kafka still holds per partition. */
export async function logStartOffsets(topic: string): Promise<Map<number, number>> {
  const result = await run("bash", [
    `${REPO_ROOT}scripts/kafka.sh`,
    "tool",
    "org.apache.kafka.tools.GetOffsetShell",
    "--bootstrap-server",
    KAFKA!,
    "--topic",
    topic,
    "--time",
    "-2",
  ]);
  if (result.code !== 0) throw new Error(`GetOffsetShell failed: ${result.stderr}`);
  const out = new Map<number, number>();
  for (const line of result.stdout.split("\n")) {
    const match = /:(\d+):(\d+)$/.exec(line.trim());
    if (match !== null) out.set(Number(match[1]), Number(match[2]));
  }
  return out;
}
