/**
 * The deployment files — `Dockerfile`, `.dockerignore`, `fly.toml`, `compose.yaml` — checked
 * against the config module (`docs/configuration.md` is held to the settings table by
 * `src/config/settings_test.ts`). No Docker and no Fly.io account is needed: the files are
 * parsed, their environments are fed to `loadConfig()`, and the ports, paths, signals and
 * timeouts they name are compared with what the node actually uses. A variable or a port renamed
 * in one place only fails here.
 */
import { deepEqual, doesNotMatch, equal, match, notEqual, ok } from "node:assert/strict";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { internalHandler, publicHandler } from "../src/api/mod.ts";
import { buildApp } from "../src/app.ts";
import { type Config, loadConfig, variablesRead } from "../src/config/mod.ts";
import { VERSION } from "../src/version.ts";

const ROOT = new URL("../", import.meta.url);

function read(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

// ---------------------------------------------------------------------------------------------
// What the code reads and does, taken from the code so that nothing here restates it.

/** Every variable the config reads: the table's rows, their fallbacks, what defaults read. */
const CONFIG_VARIABLES = variablesRead();

/** Set by Fly.io on every Machine; the config reads them, and Fly refuses them in `[env]`. */
const FLY_RUNTIME: Readonly<Record<string, string>> = {
  FLY_REGION: "ams",
  FLY_APP_NAME: "firescroll-test",
  FLY_MACHINE_ID: "148ed193b95089",
  FLY_PRIVATE_IP: "fdaa:0:1:a7b:1cc:2d5e:7d3a:2",
};

/**
 * Read by the AWS SDK's default credential chain, not by the config: deployment files may set them.
 */
const PENDING_VARIABLES = new Set([
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
]);

/** Never in fly.toml: `fly secrets set` holds them. */
const SECRETS = [
  "CLUSTER_SECRET",
  "API_TOKENS_READ",
  "API_TOKENS_WRITE",
  "KAFKA_SEEDS",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
];

/** What `fly secrets set` adds in the walk-through (docs/deploy-fly.md). */
const FLY_SECRETS: Readonly<Record<string, string>> = {
  CLUSTER_SECRET: "0123456789abcdef0123456789abcdef",
  API_TOKENS_WRITE: "write-token",
  API_TOKENS_READ: "read-token",
  KAFKA_SEEDS: "firescroll-redpanda.internal:9092",
};

/** The signals main.ts stops gracefully on. */
function handledSignals(): Set<string> {
  const source = read("main.ts");
  return new Set(
    Array.from(source.matchAll(/addSignalListener\(\s*"(SIG[A-Z0-9]+)"/g), (m) => m[1]!),
  );
}

// ---------------------------------------------------------------------------------------------
// Small typed accessors for parsed TOML/YAML.

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function table(value: unknown, what: string): Table {
  ok(isTable(value), `${what} must be a table/mapping, got ${JSON.stringify(value)}`);
  return value;
}

function text(value: unknown, what: string): string {
  equal(typeof value, "string", `${what} must be a string, got ${JSON.stringify(value)}`);
  return value as string;
}

function integer(value: unknown, what: string): number {
  ok(Number.isInteger(value), `${what} must be an integer, got ${JSON.stringify(value)}`);
  return value as number;
}

/** A list that TOML/YAML may spell as one table (`[mounts]`) or an array (`[[mounts]]`). */
function tables(value: unknown, what: string): Table[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.map((v, i) => table(v, `${what}[${i}]`));
  return [table(value, what)];
}

/**
 * Milliseconds of a duration: a Go-style string (`"35s"`, `"1m30s"`, `"500ms"`), or a bare number
 * in `bareUnitMs` (Fly: seconds for kill_timeout, milliseconds for check times).
 */
function durationMs(value: unknown, bareUnitMs: number, what: string): number {
  if (typeof value === "number") return value * bareUnitMs;
  const spelled = text(value, what);
  match(spelled, /^(\d+(\.\d+)?(ms|s|m|h))+$/, `${what} must be a duration like "35s"`);
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const part of spelled.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(part[1]) * units[part[2]!]!;
  }
  return total;
}

function splitHostPort(entry: string): { host: string; port: number } {
  const parsed = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
  ok(parsed !== null, `expected host:port, got ${entry}`);
  return { host: parsed[1]!, port: Number(parsed[2]) };
}

// ---------------------------------------------------------------------------------------------
// The files.

const FLY = parseToml(read("fly.toml")) as Table;
const FLY_ENV = table(FLY.env, "fly.toml [env]");
const FLY_HTTP = table(FLY.http_service, "fly.toml [http_service]");

/** The config of a Fly Machine: fly.toml's [env] plus what Fly and `fly secrets set` add. */
function flyConfig(): Config {
  const env: Record<string, string> = { ...FLY_RUNTIME, ...FLY_SECRETS };
  for (const [key, value] of Object.entries(FLY_ENV)) env[key] = text(value, `[env] ${key}`);
  return loadConfig(env);
}

// Compose files use YAML merge keys (`<<: *anchor`), which Docker Compose resolves.
const COMPOSE = table(parseYaml(read("compose.yaml"), { merge: true }), "compose.yaml");
const SERVICES = table(COMPOSE.services, "compose.yaml services");
/** The FireScroll nodes: the services built from this repository's Dockerfile. */
const NODES = Object.keys(SERVICES).filter((name) =>
  table(SERVICES[name], name).build !== undefined
);

function service(name: string): Table {
  return table(SERVICES[name], `compose service ${name}`);
}

/** A compose service's environment as strings (compose allows a mapping or `KEY=value` lines). */
function composeEnv(name: string): Record<string, string> {
  const raw = service(name).environment;
  const env: Record<string, string> = {};
  if (Array.isArray(raw)) {
    for (const line of raw) {
      const entry = text(line, `${name} environment entry`);
      const eq = entry.indexOf("=");
      ok(eq > 0, `${name}: environment entry "${entry}" must be KEY=value (no host pass-through)`);
      env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  }
  for (const [key, value] of Object.entries(table(raw, `${name} environment`))) {
    // null would pass the host's variable through: a compose file must not depend on the shell.
    ok(value !== null && value !== undefined, `${name}: ${key} has no value`);
    env[key] = String(value);
  }
  return env;
}

function nodeConfig(name: string): Config {
  return loadConfig(composeEnv(name));
}

/** Published ports of a compose service, short (`"127.0.0.1:8190:8190"`) or long syntax. */
function publishedPorts(
  name: string,
): { hostIp: string | null; target: number; protocol: string }[] {
  const raw = service(name).ports;
  if (raw === undefined) return [];
  ok(Array.isArray(raw), `${name}: ports must be a list`);
  return raw.map((entry) => {
    if (isTable(entry)) {
      return {
        hostIp: entry.host_ip === undefined ? null : text(entry.host_ip, `${name} host_ip`),
        target: integer(entry.target, `${name} port target`),
        protocol: entry.protocol === undefined ? "tcp" : text(entry.protocol, `${name} protocol`),
      };
    }
    const spec = String(entry);
    const [address, protocol = "tcp"] = spec.split("/") as [string, string?];
    const parts = address.split(":");
    ok(parts.length >= 1 && parts.length <= 3, `${name}: cannot read port "${spec}"`);
    return {
      hostIp: parts.length === 3 ? parts[0]! : null,
      target: Number(parts[parts.length - 1]),
      protocol,
    };
  });
}

/** Volumes of a compose service as (source, target), short (`"name:/data"`) or long syntax. */
function mountedVolumes(name: string): { source: string; target: string }[] {
  const raw = service(name).volumes;
  if (raw === undefined) return [];
  ok(Array.isArray(raw), `${name}: volumes must be a list`);
  return raw.map((entry) => {
    if (isTable(entry)) {
      return {
        source: text(entry.source, `${name} volume source`),
        target: text(entry.target, `${name} volume target`),
      };
    }
    const [source, target] = text(entry, `${name} volume`).split(":") as [string, string];
    return { source, target };
  });
}

/** The text of a command/healthcheck that compose allows as a string or a list. */
function commandText(value: unknown, what: string): string {
  if (Array.isArray(value)) return value.map((v) => text(v, what)).join(" ");
  return text(value, what);
}

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's stages, each a list of instructions (continuations joined, comments gone). */
function dockerfileStages(source: string): Instruction[][] {
  const joined = source
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n")
    .replace(/\\\n/g, " ");
  const stages: Instruction[][] = [];
  for (const line of joined.split("\n")) {
    const parsed = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (parsed === null) continue;
    const instruction = { keyword: parsed[1]!.toUpperCase(), args: parsed[2]!.trim() };
    if (instruction.keyword === "FROM") stages.push([]);
    ok(stages.length > 0, `Dockerfile: ${instruction.keyword} before the first FROM`);
    stages[stages.length - 1]!.push(instruction);
  }
  return stages;
}

const DOCKERFILE_STAGES = dockerfileStages(read("Dockerfile"));
/** The stage that becomes the image. */
const RUNTIME_STAGE = DOCKERFILE_STAGES[DOCKERFILE_STAGES.length - 1]!;

function instructions(keyword: string): Instruction[] {
  return RUNTIME_STAGE.filter((i) => i.keyword === keyword);
}

/** `ENV` of the runtime stage (the `KEY=value` form). */
function dockerfileEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of instructions("ENV")) {
    for (const pair of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) {
      env[pair[1]!] = pair[2]!.replace(/^"|"$/g, "");
    }
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// The config module itself.

Deno.test("the variables the settings table reads include the ones checked here", () => {
  for (const known of ["API_PORT", "INTERNAL_PORT", "GOSSIP_PORT", "DB_PATH", "KAFKA_SEEDS"]) {
    ok(CONFIG_VARIABLES.has(known), `the config no longer reads ${known}?`);
  }
  for (const flyVariable of Object.keys(FLY_RUNTIME)) {
    ok(CONFIG_VARIABLES.has(flyVariable), `the config no longer reads ${flyVariable}`);
  }
  for (const secret of SECRETS) {
    ok(
      CONFIG_VARIABLES.has(secret) || PENDING_VARIABLES.has(secret),
      `${secret} is neither read nor pending`,
    );
  }
  ok(handledSignals().has("SIGTERM"), "main.ts must stop gracefully on SIGTERM");
});

// ---------------------------------------------------------------------------------------------
// fly.toml

Deno.test("fly.toml sets only variables the config reads, as strings, and no secrets", () => {
  for (const [key, value] of Object.entries(FLY_ENV)) {
    ok(CONFIG_VARIABLES.has(key), `fly.toml [env] ${key}: the config does not read it`);
    equal(typeof value, "string", `fly.toml [env] ${key}: Fly env values are strings`);
    ok(!key.startsWith("FLY_"), `fly.toml [env] ${key}: Fly sets FLY_* itself`);
    ok(!SECRETS.includes(key), `fly.toml [env] ${key}: a secret; use fly secrets set`);
  }
});

Deno.test("fly.toml's environment on a Fly Machine makes a valid cluster node of its region", () => {
  const config = flyConfig();
  equal(config.log.kind, "kafka");
  equal(config.node.region, FLY_RUNTIME.FLY_REGION);
  equal(config.node.instanceId, FLY_RUNTIME.FLY_MACHINE_ID);
  ok(config.gossip.enabled, "a Fly node must gossip with its region");
  equal(config.gossip.dnsName, `${FLY_RUNTIME.FLY_REGION}.${FLY_RUNTIME.FLY_APP_NAME}.internal`);
  equal(config.gossip.advertiseAddr, FLY_RUNTIME.FLY_PRIVATE_IP);
  // 6PN is IPv6-only: peers, proxied reads and metrics scrapes arrive over IPv6.
  ok(
    config.node.listenHost === "::" || config.node.listenHost === "[::]",
    `LISTEN_HOST must be the IPv6 wildcard on Fly, got ${config.node.listenHost}`,
  );
  ok(config.gossip.peers.length === 0, "on Fly, peers come from DNS, not GOSSIP_PEERS");
});

Deno.test("fly.toml publishes the API port and never the internal or gossip port", () => {
  const config = flyConfig();
  equal(integer(FLY_HTTP.internal_port, "http_service.internal_port"), config.api.port);
  const published = [
    config.api.port,
    ...tables(FLY.services, "services").map((s) => integer(s.internal_port, "services port")),
  ];
  ok(!published.includes(config.api.internalPort), "the internal port must stay private");
  ok(!published.includes(config.gossip.port), "the gossip port must stay private");
  ok(
    tables(FLY.services, "services").every((s) => s.protocol !== "udp"),
    "no UDP service: gossip stays on 6PN",
  );
  equal(FLY_HTTP.force_https, true);
  ok(
    FLY_HTTP.auto_stop_machines === "off" || FLY_HTTP.auto_stop_machines === false,
    "a stopped Machine stops consuming the log: auto_stop_machines must be off",
  );
  const httpOptions = table(FLY_HTTP.http_options, "http_service.http_options");
  equal(httpOptions.h2_backend, true, "the API speaks h2c: let Fly's proxy use it");
});

Deno.test("fly.toml mounts its volume at DB_PATH", () => {
  const config = flyConfig();
  const mounts = tables(FLY.mounts, "mounts");
  equal(mounts.length, 1, "one volume per Machine");
  const mount = mounts[0]!;
  equal(text(mount.destination, "mounts.destination"), config.store.dbPath);
  match(text(mount.source, "mounts.source"), /^[a-z0-9_]+$/, "Fly volume names: a-z, 0-9, _");
});

Deno.test("fly.toml gives a stopping node more time than SHUTDOWN_TIMEOUT_MS", () => {
  const config = flyConfig();
  const signal = text(FLY.kill_signal, "kill_signal");
  ok(handledSignals().has(signal), `main.ts does not stop gracefully on ${signal}`);
  const killTimeoutMs = durationMs(FLY.kill_timeout, 1000, "kill_timeout");
  ok(
    killTimeoutMs > config.lifecycle.shutdownTimeoutMs,
    `kill_timeout (${killTimeoutMs} ms) must exceed SHUTDOWN_TIMEOUT_MS (${config.lifecycle.shutdownTimeoutMs})`,
  );
  ok(killTimeoutMs <= 300_000, "Fly caps kill_timeout at 300 s");
  ok(config.lifecycle.handoffTimeoutMs < config.lifecycle.shutdownTimeoutMs);
});

Deno.test("fly.toml's health check asks GET /readyz, a route of the public API", async () => {
  const config = flyConfig();
  const checks = tables(FLY_HTTP.checks, "http_service.checks");
  equal(checks.length, 1);
  const check = checks[0]!;
  equal(text(check.method ?? "GET", "check method").toUpperCase(), "GET");
  equal(text(check.path, "check path"), "/readyz");
  const intervalMs = durationMs(check.interval, 1, "check interval");
  const timeoutMs = durationMs(check.timeout, 1, "check timeout");
  const graceMs = durationMs(check.grace_period, 1, "check grace_period");
  ok(timeoutMs < intervalMs, "check timeout must be shorter than its interval");
  ok(graceMs >= 5000, "grace_period must leave time to start and open the partitions");

  // The route is real: a node built from this very config answers it (not ready yet: 503),
  // while an unknown path is a 404.
  const { node, reader } = buildApp(config);
  const handler = publicHandler(node, reader);
  const response = await handler(new Request(`http://machine${check.path}`));
  ok([200, 503].includes(response.status), `${check.path} answered ${response.status}`);
  match(await response.text(), /"status"/);
  const unknown = await handler(new Request("http://machine/no-such-route"));
  equal(unknown.status, 404);
  await unknown.body?.cancel();
});

Deno.test("fly.toml's [metrics] scrapes /metrics on the internal port, which needs no secret", async () => {
  const config = flyConfig();
  const metrics = tables(FLY.metrics, "metrics");
  equal(metrics.length, 1);
  equal(integer(metrics[0]!.port, "metrics.port"), config.api.internalPort);
  const path = text(metrics[0]!.path, "metrics.path");
  // Fly's scraper sends no cluster secret: the route must answer without one.
  const { node, gossip } = buildApp(config);
  const response = await internalHandler(node, { gossip })(new Request(`http://machine${path}`));
  equal(response.status, 200);
  match(await response.text(), /^# (HELP|TYPE) firescroll_/m);
});

// ---------------------------------------------------------------------------------------------
// compose.yaml

Deno.test("compose.yaml runs at least two FireScroll nodes built from the Dockerfile", () => {
  ok(NODES.length >= 2, `expected two or more nodes, found ${NODES.join(", ")}`);
  for (const name of NODES) {
    const build = service(name).build;
    ok(
      build === "." || (isTable(build) && (build.context ?? ".") === "."),
      `${name} must build this repository's Dockerfile`,
    );
  }
});

Deno.test("compose.yaml sets only variables the config or the AWS SDK reads", () => {
  for (const name of NODES) {
    for (const key of Object.keys(composeEnv(name))) {
      ok(
        CONFIG_VARIABLES.has(key) || PENDING_VARIABLES.has(key),
        `${name}: ${key} is read by nothing`,
      );
      ok(!key.startsWith("FLY_"), `${name}: ${key} belongs to Fly.io`);
    }
  }
});

Deno.test("each compose node's environment passes loadConfig() as a Kafka cluster node", () => {
  const configs = NODES.map((name) => ({ name, config: nodeConfig(name) }));
  for (const { name, config } of configs) {
    equal(config.log.kind, "kafka", `${name}: KAFKA_SEEDS must be set`);
    ok(config.gossip.enabled, `${name}: nodes of one region must gossip`);
    // Peers reach the internal port at the advertised host: the service name on compose's network.
    equal(config.gossip.advertiseAddr, name, `${name}: ADVERTISE_ADDR must be the service name`);
  }
  // What a cluster must share, and what must differ.
  const [first, ...rest] = configs;
  for (const { name, config } of rest) {
    equal(config.cluster.namespace, first!.config.cluster.namespace, `${name}: NAMESPACE`);
    equal(
      config.node.region,
      first!.config.node.region,
      `${name}: REGION (gossip stays in a region)`,
    );
    equal(config.cluster.partitions, first!.config.cluster.partitions, `${name}: PARTITIONS`);
    equal(config.cluster.secret, first!.config.cluster.secret, `${name}: CLUSTER_SECRET`);
    deepEqual(config.kafka.seeds, first!.config.kafka.seeds, `${name}: KAFKA_SEEDS`);
  }
  const ids = configs.map(({ config }) => config.node.instanceId);
  equal(new Set(ids).size, ids.length, "INSTANCE_ID must differ between nodes");
});

Deno.test("compose.yaml backs every node up to its MinIO: bucket, endpoint and credentials agree", () => {
  const minio = composeEnv("minio");
  const init = (service("minio-init").command as string[]).join(" ");
  for (const name of NODES) {
    const config = nodeConfig(name);
    const env = composeEnv(name);
    ok(config.backup.enabled, `${name}: BACKUP=1`);
    ok(config.archive.enabled, `${name}: the log archive is on with backups`);
    ok(config.s3.restore, `${name}: S3_RESTORE=1`);
    ok(config.s3.forcePathStyle, `${name}: MinIO is addressed path-style`);
    const endpoint = new URL(config.s3.endpoint!);
    deepEqual([endpoint.hostname, endpoint.port], ["minio", "9000"], `${name}: S3_ENDPOINT`);
    equal(env.AWS_ACCESS_KEY_ID, minio.MINIO_ROOT_USER, `${name}: the MinIO user`);
    equal(env.AWS_SECRET_ACCESS_KEY, minio.MINIO_ROOT_PASSWORD, `${name}: the MinIO password`);
    match(init, new RegExp(`\\bmc mb --ignore-existing local/${config.s3.bucket}\\b`));
    equal(
      table(table(service(name).depends_on, `${name} depends_on`)["minio-init"], "minio-init")
        .condition,
      "service_completed_successfully",
      `${name} starts once the bucket exists`,
    );
  }
  ok(
    init.includes(`http://minio:9000 ${minio.MINIO_ROOT_USER} ${minio.MINIO_ROOT_PASSWORD}`),
    "minio-init signs in as the MinIO user",
  );
});

Deno.test("compose.yaml's Redpanda takes the test suite from the host, as the README says", () => {
  const command = (service("redpanda").command as string[]).join(" ");
  match(command, /--kafka-addr=\S*\binternal:\/\/0\.0\.0\.0:9092\b/);
  match(command, /--kafka-addr=\S*\bexternal:\/\/0\.0\.0\.0:19092\b/);
  match(command, /--advertise-kafka-addr=\S*\binternal:\/\/redpanda:9092\b/);
  match(command, /--advertise-kafka-addr=\S*\bexternal:\/\/127\.0\.0\.1:19092\b/);
  deepEqual(publishedPorts("redpanda"), [{ hostIp: "127.0.0.1", target: 19092, protocol: "tcp" }]);
  for (const name of NODES) deepEqual(nodeConfig(name).kafka.seeds, ["redpanda:9092"], name);
  const init = (service("redpanda-init").command as string[]).join(" ");
  match(init, /\bcluster config set group_initial_rebalance_delay 0\b/);
  const readme = read("README.md");
  ok(readme.includes("KAFKA_SEEDS=127.0.0.1:19092 npm test"), "README: the suite on Redpanda");
  ok(readme.includes("docker compose up -d redpanda redpanda-init"), "README: start Redpanda");
});

Deno.test("compose.yaml and fly.toml promise nothing that is not built", () => {
  for (const file of ["compose.yaml", "fly.toml", "Dockerfile"]) {
    doesNotMatch(
      read(file),
      /read by nothing|once (they|backups) land|when backups land|backup issue/i,
    );
  }
});

Deno.test("each compose node publishes its API port on 127.0.0.1 only, and nothing else", () => {
  const hostPorts = new Set<string>();
  for (const name of NODES) {
    const config = nodeConfig(name);
    const ports = publishedPorts(name);
    ok(ports.length > 0, `${name}: publish the API port`);
    for (const port of ports) {
      equal(port.hostIp, "127.0.0.1", `${name}: publish on localhost only`);
      equal(port.target, config.api.port, `${name}: the published container port is API_PORT`);
      equal(port.protocol, "tcp");
      notEqual(port.target, config.api.internalPort);
      notEqual(port.target, config.gossip.port);
    }
    const spec = JSON.stringify(service(name).ports);
    ok(!hostPorts.has(spec), `${name}: host ports collide with another node`);
    hostPorts.add(spec);
  }
});

Deno.test("each compose node keeps DB_PATH on a named volume of its own", () => {
  const declared = table(COMPOSE.volumes, "compose.yaml volumes");
  const used = new Set<string>();
  for (const name of NODES) {
    const config = nodeConfig(name);
    const data = mountedVolumes(name).filter((v) => v.target === config.store.dbPath);
    equal(data.length, 1, `${name}: DB_PATH ${config.store.dbPath} must be a mounted volume`);
    const source = data[0]!.source;
    ok(source in declared, `${name}: volume ${source} must be a named volume`);
    ok(!used.has(source), `${name}: shares volume ${source} with another node`);
    used.add(source);
  }
});

Deno.test("compose.yaml's KAFKA_SEEDS name the Redpanda service at the address it advertises", () => {
  for (const name of NODES) {
    const config = nodeConfig(name);
    for (const seed of config.kafka.seeds) {
      const { host, port } = splitHostPort(seed);
      ok(host in SERVICES, `${name}: seed ${seed} is not a compose service`);
      const broker = service(host);
      match(text(broker.image, `${host} image`), /redpanda/);
      const command = commandText(broker.command, `${host} command`);
      const advertised = /--advertise-kafka-addr[= ](\S+)/.exec(command);
      ok(advertised !== null, `${host} must advertise its Kafka address`);
      const addresses = advertised[1]!.split(",").map((a) => a.replace(/^[a-z_]+:\/\//, ""));
      ok(addresses.includes(`${host}:${port}`), `${host} advertises ${addresses}, not ${seed}`);
      ok(broker.healthcheck !== undefined, `${host} needs a healthcheck to be waited for`);
      const dependsOn = table(service(name).depends_on, `${name} depends_on`);
      equal(table(dependsOn[host], `${name} depends_on ${host}`).condition, "service_healthy");
    }
  }
});

Deno.test("compose.yaml's GOSSIP_PEERS name the other nodes at their gossip port", () => {
  for (const name of NODES) {
    const expected = NODES.filter((other) => other !== name)
      .map((other) => `${other}:${nodeConfig(other).gossip.port}`)
      .sort();
    deepEqual([...nodeConfig(name).gossip.peers].sort(), expected, `${name}: GOSSIP_PEERS`);
  }
});

Deno.test("compose.yaml's node healthcheck asks /readyz on the API port with deno", () => {
  const flyCheckPath = text(tables(FLY_HTTP.checks, "checks")[0]!.path, "check path");
  for (const name of NODES) {
    const config = nodeConfig(name);
    const healthcheck = table(service(name).healthcheck, `${name} healthcheck`);
    ok(Array.isArray(healthcheck.test), `${name}: healthcheck test must be a list`);
    const test = healthcheck.test as unknown[];
    // The Deno image has no curl or wget.
    deepEqual(test.slice(0, 2), ["CMD", "deno"], `${name}: run the check with deno`);
    const url = /http:\/\/(127\.0\.0\.1|localhost):(\d+)(\/[^'"\s)]*)/.exec(
      commandText(test, `${name} healthcheck`),
    );
    ok(url !== null, `${name}: the healthcheck must fetch a local URL`);
    equal(Number(url[2]), config.api.port, `${name}: healthcheck port is API_PORT`);
    equal(url[3], flyCheckPath, `${name}: same readiness route as fly.toml`);
  }
});

Deno.test("compose.yaml gives a stopping node more time than SHUTDOWN_TIMEOUT_MS", () => {
  for (const name of NODES) {
    const config = nodeConfig(name);
    const graceMs = durationMs(service(name).stop_grace_period, 1000, `${name} stop_grace_period`);
    ok(
      graceMs > config.lifecycle.shutdownTimeoutMs,
      `${name}: stop_grace_period (${graceMs} ms) must exceed SHUTDOWN_TIMEOUT_MS`,
    );
  }
});

Deno.test("compose.yaml's S3 settings point at the MinIO service and a bucket it creates", () => {
  const creators = Object.keys(SERVICES).filter((s) =>
    /\bmc mb\b/.test(commandText(service(s).command ?? "", `${s} command`))
  );
  equal(creators.length, 1, "one one-shot service creates the bucket");
  const creator = creators[0]!;
  for (const name of NODES) {
    const env = composeEnv(name);
    const endpoint = new URL(text(env.S3_ENDPOINT, `${name} S3_ENDPOINT`));
    ok(endpoint.hostname in SERVICES, `${name}: S3_ENDPOINT host is not a compose service`);
    match(text(service(endpoint.hostname).image, "S3 image"), /minio/);
    const bucket = text(env.S3_BUCKET, `${name} S3_BUCKET`);
    ok(
      commandText(service(creator).command, "bucket command").includes(`/${bucket}`),
      `${creator} must create bucket ${bucket}`,
    );
    const dependsOn = table(service(name).depends_on, `${name} depends_on`);
    equal(
      table(dependsOn[creator], `${name} depends_on ${creator}`).condition,
      "service_completed_successfully",
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore

Deno.test("the Dockerfile runs on the pinned official Deno image that development uses", () => {
  const from = RUNTIME_STAGE[0]!.args.split(/\s+/)[0]!;
  const image = /^denoland\/deno:(?:(?:debian|ubuntu|alpine|distroless)-)?(\d+\.\d+\.\d+)$/.exec(
    from,
  );
  ok(image !== null, `the image must be denoland/deno with a pinned x.y.z tag, got ${from}`);
  match(image[1]!, /^2\./, "Deno 2");
  const bootstrap = /DENO_VERSION="\$\{DENO_VERSION:-(\d+\.\d+\.\d+)\}"/.exec(
    read("scripts/bootstrap.sh"),
  );
  ok(bootstrap !== null, "scripts/bootstrap.sh pins DENO_VERSION");
  equal(image[1], bootstrap[1], "the image's Deno must be the one tests run on");
});

Deno.test("the Dockerfile runs main.ts as a non-root user and stops it with a handled signal", () => {
  const users = instructions("USER");
  ok(users.length > 0, "set USER");
  const user = users[users.length - 1]!.args.split(":")[0]!;
  ok(!["root", "0"].includes(user), `USER must not be root, got ${user}`);
  const userAt = RUNTIME_STAGE.lastIndexOf(users[users.length - 1]!);
  const cmds = instructions("CMD");
  equal(cmds.length, 1);
  ok(RUNTIME_STAGE.indexOf(cmds[0]!) > userAt, "USER must come before CMD");
  const cmd = JSON.parse(cmds[0]!.args) as string[];
  deepEqual(cmd.slice(0, 2), ["deno", "run"]);
  equal(cmd[cmd.length - 1], "main.ts");
  const stopSignal = instructions("STOPSIGNAL").map((i) => i.args);
  equal(stopSignal.length, 1);
  ok(handledSignals().has(stopSignal[0]!), `main.ts does not stop gracefully on ${stopSignal[0]}`);
  ok(
    instructions("RUN").some((i) => /\bdeno cache main\.ts\b/.test(i.args)),
    "cache the dependencies at build time",
  );
});

Deno.test("the Dockerfile exposes the ports fly.toml configures and keeps DB_PATH on a volume", () => {
  const config = flyConfig();
  const exposed = new Set(
    instructions("EXPOSE").flatMap((i) => i.args.split(/\s+/)).map((p) =>
      p.includes("/") ? p : `${p}/tcp`
    ),
  );
  deepEqual(
    exposed,
    new Set([
      `${config.api.port}/tcp`,
      `${config.api.internalPort}/tcp`,
      `${config.gossip.port}/udp`,
    ]),
  );
  // With no environment at all, the image must listen where fly.toml and compose.yaml expect.
  const imageConfig = loadConfig({
    ...dockerfileEnv(),
    CLUSTER_SECRET: FLY_SECRETS.CLUSTER_SECRET,
  });
  equal(imageConfig.api.port, config.api.port);
  equal(imageConfig.api.internalPort, config.api.internalPort);
  equal(imageConfig.gossip.port, config.gossip.port);
  const dbPath = dockerfileEnv().DB_PATH;
  equal(dbPath, config.store.dbPath, "ENV DB_PATH must be fly.toml's mount destination");
  ok(
    instructions("VOLUME").some((i) =>
      i.args.replace(/[[\]"]/g, "").split(/[\s,]+/).includes(dbPath!)
    ),
    "declare DB_PATH a VOLUME",
  );
  for (const name of NODES) equal(nodeConfig(name).store.dbPath, dbPath, `${name}: DB_PATH`);
});

Deno.test("the Dockerfile copies what the node needs, and .dockerignore keeps it in the context", () => {
  const copies = instructions("COPY").filter((i) => !i.args.startsWith("--from"));
  const sources = copies.flatMap((i) => {
    const words = i.args.split(/\s+/).filter((w) => !w.startsWith("--"));
    return words.slice(0, -1);
  });
  for (const needed of ["deno.json", "package.json", "main.ts", "src"]) {
    ok(sources.includes(needed), `COPY ${needed} into the image`);
  }
  ok(
    instructions("COPY").some((i) => /^--from=\S+\s+\S*node_modules/.test(i.args)),
    "node_modules comes from the npm stage",
  );
  const ignored = read(".dockerignore")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  for (const local of [".git", ".tools", ".cache", "node_modules", "data"]) {
    ok(ignored.includes(local), `.dockerignore must exclude ${local}`);
  }
  for (const source of [...sources, "package-lock.json", "Dockerfile"]) {
    for (const pattern of ignored) {
      ok(
        pattern !== source && !source.startsWith(`${pattern}/`),
        `.dockerignore's ${pattern} hides ${source} from the build`,
      );
    }
  }
});

Deno.test("the Dockerfile installs exactly the lock file, labels its version and checks readiness", () => {
  const installs = DOCKERFILE_STAGES.flat().filter((i) =>
    i.keyword === "RUN" && /\bnpm\b/.test(i.args)
  );
  ok(installs.length > 0, "an npm stage installs node_modules");
  for (const i of installs) {
    match(i.args, /\bnpm ci\b/, `install with npm ci (the lock file, nothing else): ${i.args}`);
    doesNotMatch(i.args, /\bnpm (install|i)\b/);
  }
  const labels = instructions("LABEL").map((i) => i.args).join(" ");
  match(
    labels,
    new RegExp(`org\\.opencontainers\\.image\\.version="${VERSION.replaceAll(".", "\\.")}"`),
  );
  match(labels, /org\.opencontainers\.image\.title="[^"]+"/);
  const checks = instructions("HEALTHCHECK");
  equal(checks.length, 1, "one HEALTHCHECK");
  const command = /\bCMD\s+(\[.*\])\s*$/.exec(checks[0]!.args);
  ok(command !== null, "HEALTHCHECK CMD in exec form");
  const argv = JSON.parse(command[1]!) as string[];
  equal(argv[0], "deno", "the image has no curl: Deno asks");
  const script = argv[argv.length - 1]!;
  match(script, /\/readyz\b/);
  match(script, /API_PORT/);
  ok(script.includes(`'${flyConfig().api.port}'`), "the check falls back to the default API_PORT");
});

// ---------------------------------------------------------------------------------------------
// docs/deploy-fly.md

Deno.test("docs/deploy-fly.md names the volume and ports that fly.toml uses", () => {
  const guide = read("docs/deploy-fly.md");
  const config = flyConfig();
  const volume = text(tables(FLY.mounts, "mounts")[0]!.source, "mounts.source");
  match(guide, new RegExp(`fly volumes create ${volume}\\b`));
  for (const port of [config.api.port, config.api.internalPort, config.gossip.port]) {
    ok(guide.includes(String(port)), `docs/deploy-fly.md does not mention port ${port}`);
  }
  for (const secret of ["CLUSTER_SECRET", "KAFKA_SEEDS", "API_TOKENS_WRITE"]) {
    ok(guide.includes(secret), `docs/deploy-fly.md must say how to set ${secret}`);
  }
});
