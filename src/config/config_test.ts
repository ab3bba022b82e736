import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  assertClusterRelations,
  CLUSTER_CONSTANTS,
  clusterRelationProblems,
  ConfigError,
  loadConfig,
  parseRestoreTo,
} from "./config.ts";
import { LMDB_KEY_BYTES_MAX, PK_BYTES_MAX, RECORD_KEY_BYTES_MAX, SK_BYTES_MAX } from "./cluster.ts";
import { SETTINGS } from "./settings.ts";

/** Asserts that `env` stops the node with a ConfigError naming `variable` and matching `bound`. */
function rejects(env: Record<string, string>, variable: string, bound: RegExp): void {
  throws(() => loadConfig(env), (error: unknown) => {
    ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    equal(error.variable, variable);
    equal(error.code, "invalid_config");
    match(error.message, new RegExp(`^Cannot start: ${variable} `));
    match(error.message, bound);
    return true;
  });
}

Deno.test("loadConfig() gives a laptop-ready embedded node for an empty environment", () => {
  const config = loadConfig({});
  equal(config.log.kind, "embedded");
  deepEqual(config.kafka.seeds, []);
  equal(config.cluster.partitions, 16);
  equal(config.api.port, 8190);
  equal(config.api.internalPort, 8191);
  equal(config.store.dbPath, "./data");
  equal(config.cluster.namespace, "default");
  equal(config.node.region, "local");
  equal(config.node.replicaGroup, "default");
  match(config.node.instanceId, /^node-[0-9a-f]{12}$/);
  equal(config.api.tlsCertFile, null);
  equal(config.api.tlsKeyFile, null);
  equal(config.cluster.secret, null);
  deepEqual(config.api.tokensRead, []);
  deepEqual(config.api.tokensWrite, []);
  ok(config.limits.dataBytesMax <= config.limits.bodyBytesMax);
  ok(config.limits.listScanMax >= config.limits.listLimitMax);
});

Deno.test("loadConfig() treats blank values as unset", () => {
  const config = loadConfig({ PARTITIONS: "  ", DB_PATH: "", KAFKA_SEEDS: " " });
  equal(config.cluster.partitions, 16);
  equal(config.store.dbPath, "./data");
  equal(config.log.kind, "embedded");
});

Deno.test("loadConfig() reads every kind of value it is given", () => {
  const config = loadConfig({
    NAMESPACE: "prod_eu-1",
    PARTITIONS: " 12 ",
    KAFKA_SEEDS: "kafka-1:9092, 10.0.0.2:9093,[fdaa::3]:9092",
    API_PORT: "9000",
    INTERNAL_PORT: "9001",
    TLS_CERT_FILE: "/certs/cert.pem",
    TLS_KEY_FILE: "/certs/key.pem",
    API_TOKENS_READ: "r1,r2",
    API_TOKENS_WRITE: "w1",
    CLUSTER_SECRET: "0123456789abcdef",
    DB_PATH: "/data",
  });
  equal(config.cluster.namespace, "prod_eu-1");
  equal(config.cluster.partitions, 12);
  equal(config.log.kind, "kafka");
  deepEqual(config.kafka.seeds, ["kafka-1:9092", "10.0.0.2:9093", "[fdaa::3]:9092"]);
  equal(config.api.port, 9000);
  equal(config.api.internalPort, 9001);
  equal(config.api.tlsCertFile, "/certs/cert.pem");
  equal(config.api.tlsKeyFile, "/certs/key.pem");
  deepEqual(config.api.tokensRead, ["r1", "r2"]);
  deepEqual(config.api.tokensWrite, ["w1"]);
  equal(config.cluster.secret, "0123456789abcdef");
  equal(config.store.dbPath, "/data");
});

Deno.test("loadConfig() returns a frozen config, lists included", () => {
  const config = loadConfig({
    KAFKA_SEEDS: "k:9092",
    API_TOKENS_READ: "r",
    GOSSIP_PEERS: "p:1",
    CLUSTER_SECRET: "0123456789abcdef",
  });
  ok(Object.isFrozen(config));
  throws(() => {
    (config.cluster as { partitions: number }).partitions = 1;
  }, TypeError);
  throws(() => {
    (config as { cluster: unknown }).cluster = {};
  }, TypeError);
  for (const section of Object.values(config)) ok(Object.isFrozen(section));
  for (
    const list of [
      config.kafka.seeds,
      config.api.tokensRead,
      config.api.tokensWrite,
      config.gossip.peers,
    ]
  ) {
    ok(Object.isFrozen(list));
    throws(() => (list as string[]).push("x"), TypeError);
  }
  deepEqual(config.kafka.seeds, ["k:9092"]);
});

Deno.test("loadConfig() takes REGION from FLY_REGION and INSTANCE_ID from FLY_MACHINE_ID", () => {
  const fly = loadConfig({ FLY_REGION: "ams", FLY_MACHINE_ID: "148e4d55f36278" });
  equal(fly.node.region, "ams");
  equal(fly.node.instanceId, "148e4d55f36278");
  const explicit = loadConfig({
    FLY_REGION: "ams",
    FLY_MACHINE_ID: "148e4d55f36278",
    REGION: "lab",
    INSTANCE_ID: "n1",
  });
  equal(explicit.node.region, "lab");
  equal(explicit.node.instanceId, "n1");
});

Deno.test("loadConfig() rejects integers that are malformed, naming the variable and bounds", () => {
  for (const value of ["abc", "1.5", "1e3", "0x10", "16 partitions", "--1"]) {
    rejects({ PARTITIONS: value }, "PARTITIONS", /\[1, 4096\]/);
  }
  rejects({ API_PORT: "80a" }, "API_PORT", /\[0, 65535\]/);
  rejects({ PARTITIONS: "99999999999999999999" }, "PARTITIONS", /\[1, 4096\]/);
});

Deno.test("loadConfig() rejects integers outside their bounds, naming the variable and bounds", () => {
  rejects({ PARTITIONS: "0" }, "PARTITIONS", /\[1, 4096\], got 0/);
  rejects({ PARTITIONS: "4097" }, "PARTITIONS", /\[1, 4096\], got 4097/);
  rejects({ PARTITIONS: "-3" }, "PARTITIONS", /got -3/);
  rejects({ API_PORT: "65536" }, "API_PORT", /\[0, 65535\]/);
  rejects({ INTERNAL_PORT: "-1" }, "INTERNAL_PORT", /\[0, 65535\]/);
  rejects({ BODY_BYTES_MAX: "1023" }, "BODY_BYTES_MAX", /\[1024, 67108864\]/);
  rejects({ LIST_LIMIT_MAX: "0" }, "LIST_LIMIT_MAX", /\[1, 100000\]/);
  rejects({ WAITERS_MAX: "0" }, "WAITERS_MAX", /\[1, 1000000\]/);
  rejects({ LOG_QUEUE_MAX: "1000001" }, "LOG_QUEUE_MAX", /\[1, 1000000\]/);
  rejects({ LMDB_MAP_BYTES: "1024" }, "LMDB_MAP_BYTES", /\[16777216, /);
  equal(loadConfig({ PARTITIONS: "1" }).cluster.partitions, 1);
  equal(loadConfig({ PARTITIONS: "4096" }).cluster.partitions, 4096);
});

Deno.test("loadConfig() rejects names outside the safe alphabet", () => {
  for (const value of ["a b", "ns/x", "ns.x", "ünï", "x".repeat(65)]) {
    rejects({ NAMESPACE: value }, "NAMESPACE", /\[A-Za-z0-9_-\]\{1,64\}/);
  }
  rejects({ REGION: "fra!" }, "REGION", /\[A-Za-z0-9_-\]/);
  rejects({ REPLICA_GROUP: "a:b" }, "REPLICA_GROUP", /\[A-Za-z0-9_-\]/);
  rejects({ INSTANCE_ID: "n 1" }, "INSTANCE_ID", /\[A-Za-z0-9_-\]/);
  equal(loadConfig({ NAMESPACE: "x".repeat(64) }).cluster.namespace, "x".repeat(64));
});

Deno.test("loadConfig() rejects a TLS certificate without its key, and a key without its cert", () => {
  rejects({ TLS_CERT_FILE: "/c.pem" }, "TLS_KEY_FILE", /together with TLS_CERT_FILE/);
  rejects({ TLS_KEY_FILE: "/k.pem" }, "TLS_CERT_FILE", /together with TLS_KEY_FILE/);
});

Deno.test("loadConfig() rejects a short CLUSTER_SECRET", () => {
  rejects({ CLUSTER_SECRET: "0123456789abcde" }, "CLUSTER_SECRET", /at least 16/);
});

Deno.test("loadConfig() rejects limits that contradict each other", () => {
  rejects(
    { BODY_BYTES_MAX: "100000", DATA_BYTES_MAX: "100001" },
    "DATA_BYTES_MAX",
    /at most BODY_BYTES_MAX \(100000\), got 100001/,
  );
  rejects(
    { MESSAGE_BYTES_MAX: "65536", DATA_BYTES_MAX: "65536" },
    "DATA_BYTES_MAX",
    /4 KiB of MESSAGE_BYTES_MAX \(65536\)/,
  );
  rejects(
    { LIST_LIMIT_MAX: "500", LIST_SCAN_MAX: "499" },
    "LIST_SCAN_MAX",
    /at least LIST_LIMIT_MAX \(500\), got 499/,
  );
  rejects({ API_PORT: "9000", INTERNAL_PORT: "9000" }, "INTERNAL_PORT", /differ from API_PORT/);
  rejects({ INTERNAL_PORT: "8190" }, "INTERNAL_PORT", /differ from API_PORT \(8190\)/);
  // Equal bounds are fine, and port 0 (any free port) may be used for both.
  equal(
    loadConfig({ BODY_BYTES_MAX: "100000", DATA_BYTES_MAX: "100000" }).limits.dataBytesMax,
    100000,
  );
  equal(loadConfig({ LIST_LIMIT_MAX: "500", LIST_SCAN_MAX: "500" }).limits.listScanMax, 500);
  equal(loadConfig({ API_PORT: "0", INTERNAL_PORT: "0" }).api.port, 0);
});

Deno.test("loadConfig() rejects malformed KAFKA_SEEDS entries", () => {
  for (
    const seeds of ["kafka", "kafka:", ":9092", "kafka:9092:1", "k:9092,bad host:1", "k:99999"]
  ) {
    rejects({ KAFKA_SEEDS: seeds }, "KAFKA_SEEDS", /host:port/);
  }
});

Deno.test("loadConfig() reads Kafka TLS and SASL settings and names the missing ones", () => {
  const config = loadConfig({
    KAFKA_SEEDS: "broker:9093",
    KAFKA_TLS: "1",
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
    KAFKA_SASL_USERNAME: "u",
    KAFKA_SASL_PASSWORD: "p",
  });
  equal(config.kafka.tls, true);
  const { saslMechanism, saslUsername, saslPassword } = config.kafka;
  deepEqual(
    { mechanism: saslMechanism, username: saslUsername, password: saslPassword },
    { mechanism: "scram-sha-512", username: "u", password: "p" },
  );
  equal(loadConfig({}).kafka.saslMechanism, null);
  throws(
    () => loadConfig({ KAFKA_SASL_MECHANISM: "gssapi" }),
    /KAFKA_SASL_MECHANISM must be one of/,
  );
  throws(() => loadConfig({ KAFKA_SASL_MECHANISM: "plain" }), /KAFKA_SASL_USERNAME must be set/);
  throws(
    () => loadConfig({ KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "u" }),
    /KAFKA_SASL_PASSWORD must be set/,
  );
  throws(() => loadConfig({ KAFKA_TLS: "yes" }), /KAFKA_TLS must be 1, 0, true or false/);
});

Deno.test("loadConfig() closes idle connections after 60 s by default and refuses a timeout shorter than a request may wait", () => {
  equal(loadConfig({}).api.idleTimeoutMs, 60_000);
  equal(loadConfig({ IDLE_TIMEOUT_MS: "0" }).api.idleTimeoutMs, 0);
  equal(
    loadConfig({ IDLE_TIMEOUT_MS: "500", WAIT_MS_MAX: "100", LOG_WRITE_TIMEOUT_MS: "100" }).api
      .idleTimeoutMs,
    500,
  );
  rejects({ IDLE_TIMEOUT_MS: "10000" }, "IDLE_TIMEOUT_MS", /longer than WAIT_MS_MAX/);
  rejects(
    { IDLE_TIMEOUT_MS: "5000", WAIT_MS_MAX: "100", LOG_WRITE_TIMEOUT_MS: "5000" },
    "IDLE_TIMEOUT_MS",
    /5000/,
  );
});

Deno.test("the cluster-wide constants agree with each other and with the settings' bounds", () => {
  deepEqual(clusterRelationProblems(), []);
  assertClusterRelations();
  equal(RECORD_KEY_BYTES_MAX, 2 + PK_BYTES_MAX + SK_BYTES_MAX);
  ok(RECORD_KEY_BYTES_MAX <= LMDB_KEY_BYTES_MAX);
});

Deno.test("clusterRelationProblems() names the relation a changed constant or bound breaks", () => {
  const broken = (changes: Partial<typeof CLUSTER_CONSTANTS>, settings = SETTINGS) =>
    clusterRelationProblems({ ...CLUSTER_CONSTANTS, ...changes }, settings).join("\n");
  match(broken({ lmdbKeyBytesMax: 511 }), /must fit LMDB's key limit \(511\)/);
  const longPk = broken({ pkBytesMax: 4096, recordKeyBytesMax: 2 + 4096 + 1024 });
  match(longPk, /LMDB's key limit/);
  match(longPk, /largest pk and sk and a message's framing/);
  match(broken({ recordKeyBytesMax: 1000 }), /u16 pk length, the pk and the sk/);
  match(broken({ messageKeysAndFramingBytes: 8192 }), /smallest MESSAGE_BYTES_MAX/);
  match(broken({ messageOpsMax: 1000 }), /records of the largest request/);
  match(broken({ messageConditionCharsMax: 1024 }), /longest condition the API accepts/);
  const smallerMessages = SETTINGS.map((s) =>
    s.env === "MESSAGE_BYTES_MAX" ? { ...s, min: 1024 } : s
  );
  match(broken({}, smallerMessages), /smallest MESSAGE_BYTES_MAX/);
});

Deno.test("S3_RESTORE_TO makes a time-travel replica: log kind archive, no gossip, a bucket needed, no backups", () => {
  const env = {
    S3_BUCKET: "b",
    PARTITIONS: "4",
    GOSSIP_PEERS: "127.0.0.1:7946",
    CLUSTER_SECRET: "s".repeat(32),
  };
  const config = loadConfig({ ...env, S3_RESTORE_TO: "2026-12-01T09:30:00Z" });
  equal(config.log.kind, "archive");
  equal(config.gossip.enabled, false);
  equal(loadConfig({ ...env, KAFKA_SEEDS: "k:9092" }).log.kind, "kafka");
  rejects({ S3_RESTORE_TO: "latest" }, "S3_BUCKET", /S3_RESTORE_TO is set/);
  rejects({ ...env, S3_RESTORE_TO: "latest", BACKUP: "1" }, "BACKUP", /time-travel/);
  rejects({ ...env, S3_RESTORE_TO: "yesterday" }, "S3_RESTORE_TO", /RFC 3339/);
  rejects({ ...env, S3_RESTORE_TO: "2026-13-45T99:00:00Z" }, "S3_RESTORE_TO", /RFC 3339/);
  rejects({ ...env, S3_RESTORE_TO: '{"4": 10}' }, "S3_RESTORE_TO", /partition "4"/);
  rejects({ ...env, S3_RESTORE_TO: '{"1": -2}' }, "S3_RESTORE_TO", /offset -2/);
  rejects({ ...env, S3_RESTORE_TO: '{"1": 1.5}' }, "S3_RESTORE_TO", /offset 1.5/);
  rejects({ ...env, S3_RESTORE_TO: "[1]" }, "S3_RESTORE_TO", /RFC 3339/);
  rejects({ ...env, S3_RESTORE_TO: "{1:" }, "S3_RESTORE_TO", /must be JSON/);
});

Deno.test("parseRestoreTo() reads a time (any offset), offsets per partition, and latest", () => {
  deepEqual(parseRestoreTo("latest", 4), { kind: "latest" });
  deepEqual(parseRestoreTo("2026-12-01T10:30:00.250+01:00", 4), {
    kind: "time",
    time: Date.UTC(2026, 11, 1, 9, 30, 0, 250),
  });
  deepEqual(parseRestoreTo('{"0": 5, "3": -1}', 4), {
    kind: "offsets",
    offsets: new Map([[0, 5], [3, -1]]),
  });
});
