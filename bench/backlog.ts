// deno-lint-ignore-file no-console
/**
 * Backlog writer for the catch-up benchmark (bench/kafka.sh): writes N new records through a
 * node's `/records/put`, shaped so that every log message carries exactly R records.
 *
 * The records of one put that fall in the same partition travel as ONE log message (DESIGN §3,
 * grouping). So each request carries R fresh keys of each of M partitions (keys are picked with
 * the node's own partitioner): `--records-per-message 100 --messages-per-request 1` writes one
 * 100-record message per request; `--records-per-message 1 --messages-per-request 16` writes 16
 * one-record messages per request (one per partition). Keys are `<prefix>-<i>`, sk `s`, data
 * ≈ 100 bytes of JSON (as bench/seed.ts). `--concurrency` requests are in flight.
 *
 * Usage:
 *   deno run --allow-net=127.0.0.1 --allow-env bench/backlog.ts --url http://127.0.0.1:8190 \
 *     [--records 1000000] [--records-per-message 100] [--messages-per-request 1]
 *     [--partitions 16] [--concurrency 16] [--prefix bl] [--timeout-s 600]
 * Prints one JSON line: records, messages, seconds, rates, and `high_watermarks` (per
 * partition, the highest acknowledged offset + 1: on a fresh namespace written only by this
 * client, the topic's end offsets). Exits 1 on any non-200 answer or on timeout.
 *
 * @module
 */
import { partitionOf } from "../src/keys/mod.ts";
import { recordData } from "./seed.ts";
import { flag, intFlag } from "./_args.ts";

/** Hands out fresh keys of a chosen partition, hashing `<prefix>-<i>` for i = 0, 1, … */
class KeySource {
  private next = 0;
  private readonly queues: string[][];
  /** Keys hashed so far and not handed out; bounded by one request's worth per partition. */
  constructor(private readonly prefix: string, private readonly partitions: number) {
    this.queues = Array.from({ length: partitions }, () => []);
  }

  take(partition: number, count: number): string[] {
    const queue = this.queues[partition]!;
    // Uniform hashing: about partitions × count keys to find count of one partition.
    for (let guard = 0; queue.length < count; guard++) {
      if (guard > 1000 * this.partitions * count) {
        throw new Error(`Cannot find keys of partition ${partition}: the partitioner is skewed`);
      }
      const pk = `${this.prefix}-${this.next++}`;
      this.queues[partitionOf(pk, this.partitions)]!.push(pk);
    }
    return queue.splice(0, count);
  }
}

async function main(): Promise<void> {
  const url = (flag("url") ?? "http://127.0.0.1:8190").replace(/\/$/, "");
  const records = intFlag("records", {
    fallback: 1_000_000,
    min: 1,
    max: 100_000_000,
    what: "write the backlog",
  });
  const partitions = intFlag("partitions", {
    fallback: 16,
    min: 1,
    max: 4096,
    what: "write the backlog",
  });
  const perMessage = intFlag("records-per-message", {
    fallback: 100,
    min: 1,
    max: 1000,
    what: "write the backlog",
  });
  const messagesPerRequest = intFlag("messages-per-request", {
    fallback: 1,
    min: 1,
    max: partitions,
    what: "write the backlog",
  });
  const concurrency = intFlag("concurrency", {
    fallback: 16,
    min: 1,
    max: 1024,
    what: "write the backlog",
  });
  const prefix = flag("prefix") ?? "bl";
  const signal = AbortSignal.timeout(
    intFlag("timeout-s", { fallback: 600, min: 1, max: 86_400, what: "write the backlog" }) * 1000,
  );
  // RECORDS_PER_REQUEST_MAX defaults to 1000.
  if (perMessage * messagesPerRequest > 1000) {
    throw new Error("Cannot write the backlog: more than 1000 records per request");
  }
  const keys = new KeySource(prefix, partitions);
  const highest = new Map<number, number>();
  let written = 0;
  let messages = 0;
  let requests = 0;
  let bodyBytes = 0;
  let rotation = 0;
  let dataSeq = 0;
  const started = performance.now();

  const writer = async () => {
    while (written < records && !signal.aborted) {
      // The last request may carry fewer records, but always whole messages of perMessage.
      const left = records - written;
      const m = Math.max(1, Math.min(messagesPerRequest, Math.floor(left / perMessage)));
      const r = Math.min(perMessage, left);
      written += m * r;
      const batch = [];
      for (let k = 0; k < m; k++) {
        const partition = (rotation++) % partitions;
        for (const pk of keys.take(partition, r)) {
          batch.push({ pk, sk: "s", data: recordData(dataSeq++) });
        }
      }
      messages += m;
      const body = JSON.stringify({ records: batch });
      bodyBytes += body.length;
      const response = await fetch(`${url}/records/put`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal,
      });
      const text = await response.text();
      if (response.status !== 200) {
        throw new Error(`Cannot write the backlog: ${response.status} ${text.slice(0, 300)}`);
      }
      requests++;
      const { offsets } = JSON.parse(text) as { offsets: Record<string, number> };
      if (Object.keys(offsets).length !== m) {
        throw new Error(`Cannot write the backlog: expected ${m} messages, got offsets ${text}`);
      }
      for (const [p, offset] of Object.entries(offsets)) {
        if ((highest.get(Number(p)) ?? -1) < offset) highest.set(Number(p), offset);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, writer));
  if (signal.aborted) throw new Error("Cannot write the backlog: timed out");
  const seconds = (performance.now() - started) / 1000;
  const highWatermarks: Record<string, number> = {};
  for (const [p, offset] of [...highest].sort((a, b) => a[0] - b[0])) {
    highWatermarks[String(p)] = offset + 1;
  }
  console.log(JSON.stringify({
    event: "backlog_written",
    records: written,
    messages,
    requests,
    records_per_message: perMessage,
    messages_per_request: messagesPerRequest,
    concurrency,
    body_mb: Number((bodyBytes / 1e6).toFixed(1)),
    seconds: Number(seconds.toFixed(2)),
    records_per_s: Math.round(written / seconds),
    messages_per_s: Math.round(messages / seconds),
    high_watermarks: highWatermarks,
  }));
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
