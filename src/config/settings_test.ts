import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { type Config, ConfigError, loadConfig, redactedConfig } from "./config.ts";
import { LEVELS } from "../util/log.ts";
import {
  DERIVED_FIELDS,
  isDerived,
  LOG_LEVELS,
  type Setting,
  SETTINGS,
  variablesRead,
} from "./settings.ts";

/**
 * Every field of every section, checked by the compiler against {@linkcode Config} (a missing or
 * unknown field does not compile), so the tests below can tell a field no row sets.
 */
const FIELDS: { readonly [S in keyof Config]: Readonly<Record<keyof Config[S], true>> } = {
  cluster: { namespace: true, partitions: true, secret: true },
  node: { region: true, replicaGroup: true, instanceId: true, listenHost: true, logLevel: true },
  store: {
    dbPath: true,
    lmdbMapBytes: true,
    verifyTimeoutMs: true,
    verifyConcurrency: true,
    unownedRetainSec: true,
  },
  log: {
    kind: true,
    writeTimeoutMs: true,
    queueMax: true,
    applyBatchMax: true,
    messageBytesMax: true,
    embeddedLogMapBytes: true,
  },
  kafka: {
    seeds: true,
    clientId: true,
    tls: true,
    tlsCaFile: true,
    saslMechanism: true,
    saslUsername: true,
    saslPassword: true,
    replicationFactor: true,
    retentionMs: true,
    sessionTimeoutMs: true,
  },
  api: {
    port: true,
    internalPort: true,
    tlsCertFile: true,
    tlsKeyFile: true,
    idleTimeoutMs: true,
    connectionsMax: true,
    serveThreads: true,
    tokensRead: true,
    tokensWrite: true,
  },
  limits: {
    bodyBytesMax: true,
    recordsPerRequestMax: true,
    dataBytesMax: true,
    conditionBytesMax: true,
    listLimitMax: true,
    listScanMax: true,
    waitMsMax: true,
    waitersMax: true,
    conditionCacheMax: true,
    conditionCacheCharsMax: true,
  },
  gossip: {
    enabled: true,
    port: true,
    peers: true,
    dnsName: true,
    dnsServer: true,
    dnsIntervalMs: true,
    broadcastMs: true,
    advertiseAddr: true,
    proxyTimeoutMs: true,
  },
  backup: {
    enabled: true,
    intervalSec: true,
    keep: true,
    timeoutMs: true,
    peerBootstrap: true,
    fullIntervalSec: true,
    fullPercent: true,
  },
  archive: { enabled: true, segmentSec: true, segmentBytes: true, checkSec: true },
  s3: {
    restore: true,
    restoreTo: true,
    restoreThreads: true,
    restoreDecode: true,
    endpoint: true,
    bucket: true,
    region: true,
    forcePathStyle: true,
  },
  lifecycle: {
    takeover: true,
    shutdownTimeoutMs: true,
    handoffTimeoutMs: true,
    drainDelayMs: true,
  },
  watch: { retainSec: true, watchersMax: true, bufferBytes: true, heartbeatMs: true },
  history: { retainSec: true },
};

const allFields = Object.entries(FIELDS).flatMap(([s, fields]) =>
  Object.keys(fields).map((f) => `${s}.${f}`)
);

/** The field the naming rule gives `env` in `section`. */
function fieldByRule(section: string, env: string): string {
  const prefix = section.toUpperCase() + "_";
  if (env === section.toUpperCase()) return "enabled";
  const name = env.startsWith(prefix) ? env.slice(prefix.length) : env;
  return name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

Deno.test("every setting's field is the camelCase of its variable, without the section's prefix", () => {
  for (const s of SETTINGS) {
    equal(s.field, fieldByRule(s.section, s.env), `${s.env} in section ${s.section}`);
  }
  // The rule itself, on the examples of the module doc.
  equal(fieldByRule("gossip", "GOSSIP_BROADCAST_MS"), "broadcastMs");
  equal(fieldByRule("kafka", "KAFKA_SESSION_TIMEOUT_MS"), "sessionTimeoutMs");
  equal(fieldByRule("log", "APPLY_BATCH_MAX"), "applyBatchMax");
  equal(fieldByRule("backup", "BACKUP"), "enabled");
});

Deno.test("the settings table names each variable and each field once, and covers every field of Config", () => {
  const envs = SETTINGS.map((s) => s.env);
  deepEqual(envs.filter((e, i) => envs.indexOf(e) !== i), [], "variables in two rows");
  const fields = SETTINGS.map((s) => `${s.section}.${s.field}`);
  deepEqual(fields.filter((f, i) => fields.indexOf(f) !== i), [], "fields set by two rows");
  const covered = new Set([...fields, ...Object.keys(DERIVED_FIELDS)]);
  deepEqual(allFields.filter((f) => !covered.has(f)), [], "fields no row sets");
  deepEqual([...covered].filter((f) => !allFields.includes(f)), [], "rows of no field");
  ok(SETTINGS.length >= 60, `only ${SETTINGS.length} rows`);
});

Deno.test("loadConfig() fills exactly the fields of Config, each row's with its default", () => {
  const config = loadConfig({});
  const loaded = Object.entries(config).flatMap(([s, fields]) =>
    Object.keys(fields).map((f) => `${s}.${f}`)
  );
  deepEqual(loaded.sort(), [...allFields].sort());
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  for (const s of SETTINGS) {
    if (isDerived(s.default)) continue;
    const value = sections[s.section]![s.field];
    const expected = s.default === null && (s.kind === "list" || s.kind === "hostPorts")
      ? []
      : s.default;
    deepEqual(value, expected, `${s.env}'s default`);
  }
  equal(config.lifecycle.handoffTimeoutMs, 15_000);
  equal(config.gossip.advertiseAddr, "127.0.0.1");
  equal(config.s3.forcePathStyle, false);
  equal(config.gossip.dnsName, null);
});

Deno.test("every integer setting refuses a value just outside its bounds, naming both bounds", () => {
  let checked = 0;
  for (const s of SETTINGS) {
    if (s.kind !== "int" && s.kind !== "port") continue;
    ok(s.min !== undefined && s.max !== undefined, `${s.env} needs min and max`);
    if (typeof s.default === "number") {
      ok(s.default >= s.min && s.default <= s.max, `${s.env}'s default is out of its bounds`);
    }
    for (const value of [s.min - 1, s.max + 1]) {
      throws(() => loadConfig({ [s.env]: String(value) }), (error: unknown) => {
        ok(error instanceof ConfigError, `${s.env}=${value}: ${error}`);
        equal(error.variable, s.env);
        ok(error.message.includes(`[${s.min}, ${s.max}]`), error.message);
        return true;
      });
    }
    checked++;
  }
  ok(checked >= 30, `only ${checked} integer settings`);
});

Deno.test("a fallback variable is read when the setting's own is unset, and its errors name it", () => {
  const tigris = loadConfig({
    AWS_ENDPOINT_URL_S3: "https://fly.storage.tigris.dev",
    BUCKET_NAME: "b",
    AWS_REGION: "auto",
  });
  equal(tigris.s3.endpoint, "https://fly.storage.tigris.dev");
  equal(tigris.s3.bucket, "b");
  equal(tigris.s3.region, "auto");
  // Tigris' endpoint is virtual-hosted; an explicit S3_ENDPOINT is usually MinIO-like.
  equal(tigris.s3.forcePathStyle, false);
  equal(loadConfig({ S3_ENDPOINT: "http://127.0.0.1:9000" }).s3.forcePathStyle, true);
  equal(
    loadConfig({ S3_ENDPOINT: "http://s3", AWS_ENDPOINT_URL_S3: "http://t" }).s3.endpoint,
    "http://s3",
  );
  throws(
    () => loadConfig({ AWS_ENDPOINT_URL_S3: "ftp://x" }),
    /AWS_ENDPOINT_URL_S3 must be an http/,
  );
  throws(() => loadConfig({ S3_ENDPOINT: "ftp://x" }), /S3_ENDPOINT must be an http/);
  equal(loadConfig({ FLY_PRIVATE_IP: "fdaa::2" }).gossip.advertiseAddr, "fdaa::2");
  equal(loadConfig({ LISTEN_HOST: "10.0.0.5" }).gossip.advertiseAddr, "10.0.0.5");
  equal(loadConfig({ SHUTDOWN_TIMEOUT_MS: "5000" }).lifecycle.handoffTimeoutMs, 2500);
});

Deno.test("rows with fallbacks or derived defaults say so in docs, naming each fallback", () => {
  for (const s of SETTINGS) {
    const special = (s.fallbacks ?? []).length > 0 || isDerived(s.default);
    equal(s.defaultDoc !== undefined, special, `${s.env}: defaultDoc iff fallbacks or derived`);
    for (const fallback of s.fallbacks ?? []) {
      ok(s.defaultDoc?.includes(`\`${fallback}\``), `${s.env}'s defaultDoc names ${fallback}`);
    }
    ok(s.doc.length > 0 && !s.doc.includes("\n"), `${s.env}: one line of doc`);
  }
});

Deno.test("the starting line shows every setting by section and no secret", () => {
  const secrets = {
    CLUSTER_SECRET: "cluster-secret-0123456789",
    API_TOKENS_READ: "read-token-1,read-token-2",
    API_TOKENS_WRITE: "write-token-1",
    KAFKA_SEEDS: "k:9092",
    KAFKA_SASL_MECHANISM: "plain",
    KAFKA_SASL_USERNAME: "user",
    KAFKA_SASL_PASSWORD: "sasl-password-xyz",
  };
  const shown = redactedConfig(loadConfig(secrets));
  const text = JSON.stringify(shown);
  for (const secret of ["cluster-secret", "read-token", "write-token", "sasl-password"]) {
    ok(!text.includes(secret), `${secret} leaked: ${text}`);
  }
  equal(shown.api!.tokensRead, 2);
  equal(shown.api!.tokensWrite, 1);
  equal(shown.cluster!.secret, "redacted");
  equal(shown.kafka!.saslPassword, "redacted");
  equal(shown.kafka!.saslUsername, "user");
  const listed = Object.entries(shown).flatMap(([s, fields]) =>
    Object.keys(fields).map((f) => `${s}.${f}`)
  );
  deepEqual(listed.sort(), [...allFields].sort());
  equal(redactedConfig(loadConfig({})).cluster!.secret, null);
});

// ---------------------------------------------------------------------------------------------
// docs/configuration.md, held to the table both ways.

interface DocRow {
  readonly variable: string;
  /** The default column's text; undefined in tables without one (the Fly.io table). */
  readonly default: string | undefined;
  /** The bounds column's text, likewise. */
  readonly bounds: string | undefined;
}

/** The rows of the doc's tables whose first cell is a variable in backticks. */
function documentedRows(): DocRow[] {
  const doc = Deno.readTextFileSync(new URL("../../docs/configuration.md", import.meta.url));
  const rows: DocRow[] = [];
  let header: string[] | null = null;
  for (const line of doc.split("\n")) {
    if (!line.startsWith("|")) {
      header = null;
      continue;
    }
    const cells = line.slice(1, line.lastIndexOf("|")).split("|").map((c) => c.trim());
    if (header === null) {
      header = cells;
      continue;
    }
    const variable = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[0] ?? "")?.[1];
    if (variable === undefined) continue;
    const column = (name: string) =>
      header!.indexOf(name) < 0 ? undefined : cells[header!.indexOf(name)];
    rows.push({ variable, default: column("default"), bounds: column("bounds") });
  }
  return rows;
}

const UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

/** The numbers a cell states: `4096`, `-1`, `16 MiB`, `2^53−1`. */
function numbersIn(cell: string): Set<number> {
  const numbers = new Set<number>();
  const safeMax = "2^53−1";
  if (cell.includes(safeMax)) numbers.add(Number.MAX_SAFE_INTEGER);
  const rest = cell.replaceAll(safeMax, "");
  for (const [, digits, unit] of rest.matchAll(/(?<!\w)(-?\d+)(?: (B|KiB|MiB|GiB|TiB)\b)?/g)) {
    numbers.add(Number(digits) * (unit === undefined ? 1 : UNITS[unit]!));
  }
  return numbers;
}

/** Why the doc's default cell does not state `setting`'s default, or null when it does. */
function defaultMismatch(setting: Setting, cell: string): string | null {
  if (setting.defaultDoc !== undefined) {
    return cell === setting.defaultDoc ? null : `expected "${setting.defaultDoc}"`;
  }
  const value = setting.default;
  if (value === null) return /^unset( = .+)?$/.test(cell) ? null : `expected "unset"`;
  if (typeof value === "boolean") return cell === (value ? "1" : "0") ? null : `expected ${+value}`;
  if (typeof value === "string") return cell === `\`${value}\`` ? null : `expected \`${value}\``;
  if (typeof value === "number") {
    const bare = cell.replaceAll("`", "");
    const unit = /^(\d+) (B|KiB|MiB|GiB|TiB)$/.exec(bare);
    const documented = /^-?\d+$/.test(bare)
      ? Number(bare)
      : unit !== null
      ? Number(unit[1]) * UNITS[unit[2]!]!
      : NaN;
    return documented === value ? null : `expected ${value}`;
  }
  return "a derived default needs defaultDoc";
}

Deno.test("docs/configuration.md documents every variable the config reads, and no other", () => {
  const documented = new Set(documentedRows().map((r) => r.variable));
  const read = variablesRead();
  deepEqual([...read].filter((v) => !documented.has(v)), [], "add a row for each to the doc");
  deepEqual([...documented].filter((v) => !read.has(v)), [], "the config reads none of these");
  const rows = documentedRows().map((r) => r.variable);
  deepEqual(rows.filter((v, i) => rows.indexOf(v) !== i), [], "documented twice");
});

Deno.test("docs/configuration.md states each setting's default as the table has it", () => {
  const byVariable = new Map(SETTINGS.map((s) => [s.env, s]));
  const problems: string[] = [];
  let compared = 0;
  for (const row of documentedRows()) {
    if (row.default === undefined) continue;
    const setting = byVariable.get(row.variable);
    // A fallback variable (BUCKET_NAME…) has no default of its own.
    const problem = setting === undefined
      ? (row.default === "unset" ? null : `expected "unset" for a fallback`)
      : defaultMismatch(setting, row.default);
    if (problem !== null) problems.push(`${row.variable}: "${row.default}", ${problem}`);
    compared++;
  }
  deepEqual(problems, []);
  ok(compared >= SETTINGS.length, `only ${compared} defaults compared`);
});

Deno.test("docs/configuration.md states each integer setting's bounds as the table has them", () => {
  const byVariable = new Map(SETTINGS.map((s) => [s.env, s]));
  const problems: string[] = [];
  for (const row of documentedRows()) {
    const setting = byVariable.get(row.variable);
    if (setting === undefined || setting.min === undefined || row.bounds === undefined) continue;
    if (setting.kind !== "int" && setting.kind !== "port") continue;
    const stated = numbersIn(row.bounds);
    for (const bound of [setting.min, setting.max!]) {
      if (!stated.has(bound)) problems.push(`${row.variable}: "${row.bounds}" lacks ${bound}`);
    }
  }
  deepEqual(problems, []);
  deepEqual([...numbersIn("16 MiB – 1 TiB, ≥ `X_MAX`")], [16 * 1024 ** 2, 1024 ** 4]);
  deepEqual([...numbersIn("-1, or 1000 – 2^53−1")], [Number.MAX_SAFE_INTEGER, -1, 1000]);
});

Deno.test("the doc comparison sees a wrong default", () => {
  const partitions = SETTINGS.find((s) => s.env === "PARTITIONS")!;
  equal(defaultMismatch(partitions, "16"), null);
  match(defaultMismatch(partitions, "32")!, /expected 16/);
  const map = SETTINGS.find((s) => s.env === "LMDB_MAP_BYTES")!;
  equal(defaultMismatch(map, "1 GiB"), null);
  match(defaultMismatch(map, "2 GiB")!, /expected/);
  const region = SETTINGS.find((s) => s.env === "REGION")!;
  match(defaultMismatch(region, "`local`")!, /FLY_REGION/);
});

Deno.test("LOG_LEVEL accepts exactly the logger's levels, in any case, and refuses others", () => {
  deepEqual([...LOG_LEVELS], [...LEVELS]);
  equal(loadConfig({}).node.logLevel, "info");
  equal(loadConfig({ LOG_LEVEL: "WARN" }).node.logLevel, "warn");
  throws(() => loadConfig({ LOG_LEVEL: "verbose" }), /LOG_LEVEL must be one of debug, info/);
});
