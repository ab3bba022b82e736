/**
 * The help texts of the client: `fs help` (every command, the global flags, the exit codes) and
 * `fs help <command>` (its arguments, flags and an example). src/cli/help_test.ts holds them to
 * the flags the parser takes.
 *
 * @module
 */
import { type CommandName, DEFAULT_CHUNK, DEFAULT_INTERNAL_URL, DEFAULT_URL } from "./args.ts";

interface Topic {
  /** The synopsis, after `fs `. */
  readonly usage: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Further lines of explanation. */
  readonly details: readonly string[];
  /** Each flag with its one-line doc (the key is the flag without `--`). */
  readonly flags: Readonly<Record<string, string>>;
  readonly example: string;
}

/** Every command's help; the flags named here are exactly the ones the parser takes. */
export const TOPICS: Readonly<Record<CommandName, Topic>> = {
  put: {
    usage: "put <pk> <sk> <data|-|@file>",
    summary: "write one record (data: JSON text, - for stdin, @file)",
    details: [
      'Prints the write\'s offsets ({"offsets":{"<partition>":<offset>}}); pass them to',
      "get/list --after to read your write. A 200 says nothing about whether --if passed.",
    ],
    flags: {
      "ttl-ms": "expire the record this many ms after the write (1 ms … ten years)",
      "expires-at": "expire the record at this unix ms instead",
      if: "a condition (jexl over pk, sk, data, _version, …): e.g. 'pk == null'",
    },
    example: `fs put dns:example.com A '{"ip":"192.0.2.7","ttl":60}' --if 'pk == null'`,
  },
  get: {
    usage: "get <pk> <sk>",
    summary: "print one record as JSON (missing: exit 1, error: not_found)",
    details: [],
    flags: {
      after: 'offsets of a write to wait for: {"<partition>":<offset>} or put --json output',
      "wait-ms": "how long the node may wait for --after (default: no wait)",
    },
    example: "fs get dns:example.com A",
  },
  delete: {
    usage: "delete <pk> <sk>",
    summary: "delete one record (a missing record is no error)",
    details: [],
    flags: { if: "a condition; the delete applies only where it holds" },
    example: "fs delete dns:example.com A --if '_version == 41'",
  },
  list: {
    usage: "list <pk>",
    summary: "list a partition key's records by sort key",
    details: [
      "Pretty: a table. --json: one record per line; when more follow (no --all), stderr",
      "gets `next: <sk as JSON>`.",
    ],
    flags: {
      "sk-prefix": "only sort keys starting with this (an exact match included)",
      "start-after": "start after this sort key (a previous page's next)",
      "end-before": "stop before this sort key",
      limit: "records per page (node default 100, at most LIST_LIMIT_MAX)",
      reverse: "descending sort keys",
      if: "keep only records where this condition holds",
      "if-stop": "end the scan at the first record failing --if",
      all: "follow next until the end (every page)",
      after: "offsets of a write to wait for (see get)",
      "wait-ms": "how long the node may wait for --after",
    },
    example: "fs list dns:example.com --sk-prefix A --all",
  },
  batch: {
    usage: "batch [ops|-|@file]",
    summary: "apply ops from the argument, @file or stdin (default)",
    details: [
      'Input: {"ops":[{"op":"put"|"delete","pk","sk","data"?,"if"?,"ttl_ms"?,"expires_at"?}]}',
      "or a bare [...] of ops. Sent to POST /records/batch: every key in one partition, all or",
      "nothing (a false if aborts it). With --split, consecutive puts and deletes are sent to",
      "/records/put and /records/delete instead, in order: may span partitions, not atomic.",
    ],
    flags: {
      split: "not atomic: runs of puts/deletes as put/delete requests (any partitions)",
      chunk:
        `with --split, records per request (default ${DEFAULT_CHUNK}, RECORDS_PER_REQUEST_MAX)`,
    },
    example:
      `echo '[{"op":"put","pk":"a","sk":"1","data":1},{"op":"delete","pk":"a","sk":"0"}]' | fs batch`,
  },
  watch: {
    usage: "watch",
    summary: "stream changes as JSON lines until Ctrl-C",
    details: [
      'One line per event: {"id","event","data"}; event is put, delete, expire, reset or',
      "overflow. A stream the node ends is resumed after its last id (no gap, no repeat);",
      "pass an id to --after to resume later. Ctrl-C or SIGTERM ends it with exit 0.",
    ],
    flags: {
      pk: "only this partition key's changes",
      "sk-prefix": "only sort keys starting with this",
      partitions: "only these partitions (comma list or repeated)",
      after: 'resume after this event id (5:42, 0:17,1:-1) or {"<partition>":<offset>}',
      count: "exit 0 after this many events",
      once: "exit 0 when the node ends the stream instead of resuming",
    },
    example: "fs watch --pk dns:example.com --after 5:41",
  },
  status: {
    usage: "status",
    summary: "nodes × partitions from the internal ports; compare hash chains",
    details: [
      "Reads GET /internal/status and /metrics (lag) of every --internal-url. Replicas of a",
      "partition at the same offset must show the same chain and digest: when they do not,",
      "status prints DIVERGED and exits 3. A node it cannot read: exit 4 (or 1 on a problem).",
    ],
    flags: {
      "internal-url":
        `a node's internal port (repeat or comma list; default FIRESCROLL_INTERNAL_URL or ${DEFAULT_INTERNAL_URL})`,
      "cluster-secret": "the nodes' CLUSTER_SECRET (default: the CLUSTER_SECRET variable)",
    },
    example: "fs status --internal-url http://10.0.0.1:8191,http://10.0.0.2:8191",
  },
  "wait-ready": {
    usage: "wait-ready",
    summary: "poll GET /readyz until 200 (exit 0) or --timeout-ms (exit 4)",
    details: ["--timeout-ms is the whole wait here (default 60000)."],
    flags: { "interval-ms": "pause between polls (default 250)" },
    example: "fs wait-ready --timeout-ms 120000 && fs put app flags '{}'",
  },
  backup: {
    usage: "backup now|list|restore",
    summary: "not available over HTTP: explains what to use (exit 2)",
    details: [
      "Nodes have no backup HTTP API. Backups run on each node's schedule (BACKUP=1,",
      "BACKUP_INTERVAL_SEC; the firescroll_backup_* metrics on /metrics show them); a node",
      "restores its partitions from S3 by itself (S3_RESTORE=1). A partition file as of a",
      "point: `deno task restore --partition N --to <offset|time|latest> --out DIR`",
      "(docs/operations.md).",
    ],
    flags: {},
    example: "deno task restore --partition 3 --to latest --out /tmp/restored",
  },
  help: {
    usage: "help [command]",
    summary: "this help, or one command's",
    details: [],
    flags: {},
    example: "fs help list",
  },
};

const GLOBAL_LINES = [
  `  --url URL          public API (default FIRESCROLL_URL or ${DEFAULT_URL})`,
  "  --token TOKEN      bearer token (default FIRESCROLL_TOKEN); a read token cannot write",
  "  --json             compact machine output (one JSON value, or one per line)",
  "  --timeout-ms N     bound on each request (default 30000; wait-ready: the whole wait)",
  "  --version          print the version",
  "  -h, --help         this help",
];

const EXIT_LINES = [
  "  0  ok",
  "  1  the server answered with a problem (stderr: error: <code>: <detail>); get: not_found",
  "  2  usage error (unknown command or flag, missing argument, input that is not JSON)",
  "  3  status: replicas at the same offset disagree (divergence)",
  "  4  cannot connect, or no answer / not ready in time",
];

/** `fs help`: every command, the global flags and the exit codes. */
export function generalHelp(version: string): string {
  const width = Math.max(...Object.values(TOPICS).map((t) => t.usage.length)) + 2;
  const lines = [
    `fs ${version}: the command-line client of FireScroll for Deno (docs/cli.md)`,
    "",
    "Usage: fs [--url URL] [--token TOKEN] [--json] <command> [arguments] [flags]",
    "",
    "Commands:",
    ...Object.values(TOPICS).map((t) => `  ${t.usage.padEnd(width)}${t.summary}`),
    "",
    "Global flags:",
    ...GLOBAL_LINES,
    "",
    "Exit codes:",
    ...EXIT_LINES,
    "",
    "Backups have no HTTP API: see fs help backup.",
  ];
  return lines.join("\n") + "\n";
}

/** `fs help <command>`. */
export function commandHelp(name: CommandName): string {
  const topic = TOPICS[name];
  const flags = Object.entries(topic.flags);
  const width = Math.max(0, ...flags.map(([f]) => f.length)) + 4;
  const lines = [
    `Usage: fs ${topic.usage}${flags.length > 0 ? " [flags]" : ""}`,
    "",
    topic.summary,
    ...topic.details,
    ...(flags.length > 0
      ? ["", "Flags:", ...flags.map(([f, doc]) => `  --${f.padEnd(width)}${doc}`)]
      : []),
    "",
    "Example:",
    `  ${topic.example}`,
    "",
    "Global flags (fs help): --url, --token, --json, --timeout-ms.",
  ];
  return lines.join("\n") + "\n";
}
