/**
 * Bad configuration stops a node at boot, quickly, naming the variable at fault.
 */
import assert from "node:assert/strict";
import { SETTINGS } from "../../src/config/mod.ts";
import { VERSION } from "../../src/version.ts";
import { fixedPort, nodeEnv, READY_TIMEOUT_MS, REPO_ROOT, spawnNode, withNode } from "./_node.ts";

const EXIT_TIMEOUT_MS = 15_000;

interface BadConfig {
  readonly env: Record<string, string>;
  readonly variable: string;
  /** Part of the message that states the bound. */
  readonly says: RegExp;
}

const BAD: BadConfig[] = [
  { env: { PARTITIONS: "0" }, variable: "PARTITIONS", says: /\[1, 4096\]/ },
  { env: { PARTITIONS: "sixteen" }, variable: "PARTITIONS", says: /integer/ },
  { env: { WAIT_MS_MAX: "-5" }, variable: "WAIT_MS_MAX", says: /\[0, / },
  { env: { CLUSTER_SECRET: "short" }, variable: "CLUSTER_SECRET", says: /16 characters/ },
  { env: { TLS_CERT_FILE: "/nonexistent.pem" }, variable: "TLS_KEY_FILE", says: /TLS_CERT_FILE/ },
  {
    env: { BODY_BYTES_MAX: "4096", DATA_BYTES_MAX: "8192" },
    variable: "DATA_BYTES_MAX",
    says: /BODY_BYTES_MAX/,
  },
  { env: { NAMESPACE: "has space" }, variable: "NAMESPACE", says: /A-Za-z0-9/ },
];

/** Spawns a node with `env` and waits (bounded) for it to exit; returns code, time, logs. */
async function boot(env: Record<string, string>) {
  const node = await spawnNode({ env });
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const code = await Promise.race([
      node.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`node still running after ${EXIT_TIMEOUT_MS} ms`)),
          EXIT_TIMEOUT_MS,
        );
      }),
    ]);
    return { code, ms: performance.now() - started, logs: node.logs };
  } finally {
    clearTimeout(timer);
    await node.cleanup();
  }
}

Deno.test("a bad PARTITIONS value makes the node exit non-zero at once, naming PARTITIONS", async () => {
  const { code, ms, logs } = await boot({ PARTITIONS: "0" });
  assert.notEqual(code, 0);
  assert.ok(ms < EXIT_TIMEOUT_MS);
  const events = logs.events();
  const error = events.find((e) => e.event === "invalid_config");
  assert.ok(error !== undefined, logs.tail());
  assert.equal(error.level, "error");
  assert.equal(error.variable, "PARTITIONS");
  assert.match(String(error.error), /PARTITIONS/);
  assert.ok(!events.some((e) => e.event === "api_listening"), "it must not serve");
});

Deno.test("every bad config value stops the node, naming the variable and its bound", async () => {
  const results = await Promise.all(BAD.map((bad) => boot(bad.env)));
  for (let i = 0; i < BAD.length; i++) {
    const bad = BAD[i]!;
    const { code, logs } = results[i]!;
    const label = `${JSON.stringify(bad.env)}:\n${logs.tail(10)}`;
    assert.notEqual(code, 0, label);
    const error = logs.events().find((e) => e.event === "invalid_config");
    assert.ok(error !== undefined, label);
    assert.equal(error.variable, bad.variable, label);
    assert.match(String(error.error), new RegExp(bad.variable), label);
    assert.match(String(error.error), bad.says, label);
  }
});

// ---------------------------------------------------------------------------------------------
// The command line, misspelt variables, LOG_LEVEL and the start-up lines (issue 16).

/** Runs `main.ts` with `args` in the test environment; its exit code and output, bounded. */
async function runMain(args: string[], env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "firescroll_it_args_" });
  const dbPath = `${dir}/data`;
  try {
    const started = performance.now();
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "main.ts", ...args],
      cwd: REPO_ROOT,
      clearEnv: true,
      env: nodeEnv(env, dbPath),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(EXIT_TIMEOUT_MS),
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      ms: performance.now() - started,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      dataDirCreated: await Deno.stat(dbPath).then(() => true, () => false),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("--version prints the version and exits 0 without starting anything", async () => {
  const { code, ms, stdout, stderr, dataDirCreated } = await runMain(["--version"]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, new RegExp(`^firescroll ${VERSION.replaceAll(".", "\\.")}\\b`));
  assert.equal(stderr, "");
  assert.ok(!stdout.includes('"event"'), "no log line: nothing starts");
  assert.equal(dataDirCreated, false);
  assert.ok(ms < EXIT_TIMEOUT_MS);
});

Deno.test("--help and -h print the usage with every variable and exit 0 without starting anything", async () => {
  for (const flag of ["--help", "-h"]) {
    const { code, stdout, stderr, dataDirCreated } = await runMain([flag]);
    assert.equal(code, 0, `${flag}: ${stderr}`);
    assert.equal(stderr, "", flag);
    assert.equal(dataDirCreated, false, flag);
    for (
      const text of ["npm start", "npm test", "--takeover", "--version", "docs/configuration.md"]
    ) {
      assert.ok(stdout.includes(text), `${flag} does not mention ${text}`);
    }
    for (const setting of SETTINGS) {
      assert.match(
        stdout,
        new RegExp(`\\n  ${setting.env} `),
        `${flag} does not list ${setting.env}`,
      );
    }
    assert.ok(!stdout.includes('"event"'), `${flag}: no log line, nothing starts`);
  }
});

Deno.test("an unknown argument is refused on stderr with exit code 2, before anything starts", async () => {
  const { code, stdout, stderr, dataDirCreated } = await runMain(["--takeover", "--bogus"]);
  assert.equal(code, 2);
  assert.match(stderr, /unknown argument "--bogus"/);
  assert.equal(stdout, "");
  assert.equal(dataDirCreated, false);
});

Deno.test("a misspelt variable gets an unknown_variable warning naming the setting it misses", async () => {
  await withNode({ env: { API_PORTS: "1", KAFKA_BROKERS: "k:9092" } }, (node) => {
    const unknown = node.logs.events().filter((e) => e.event === "unknown_variable");
    const byName = new Map(unknown.map((e) => [e.variable, e]));
    assert.equal(byName.get("API_PORTS")?.level, "warn", node.logs.tail());
    assert.equal(byName.get("API_PORTS")?.did_you_mean, "API_PORT");
    assert.equal(byName.get("KAFKA_BROKERS")?.level, "warn");
    assert.equal(byName.get("KAFKA_BROKERS")?.did_you_mean, undefined);
    // Only those two: not PATH, HOME, DENO_*, nor the variables the test sets and the config reads.
    assert.deepEqual([...byName.keys()].sort(), ["API_PORTS", "KAFKA_BROKERS"]);
    return Promise.resolve();
  });
});

Deno.test("the starting line names the version, and node_ready comes once with the seconds and partitions", async () => {
  await withNode({ env: { PARTITIONS: "4" } }, async (node) => {
    const starting = node.logs.events().find((e) => e.event === "starting");
    assert.equal(starting?.version, VERSION);
    assert.equal(starting?.deno, Deno.version.deno);
    let ready: Record<string, unknown>[] = [];
    for (let i = 0; i < 100 && ready.length === 0; i++) {
      ready = node.logs.events().filter((e) => e.event === "node_ready");
      if (ready.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    ready = node.logs.events().filter((e) => e.event === "node_ready");
    assert.equal(ready.length, 1, node.logs.tail());
    assert.equal(ready[0]!.level, "info");
    assert.equal(ready[0]!.partitions_serving, 4);
    const seconds = ready[0]!.seconds as number;
    assert.ok(typeof seconds === "number" && seconds > 0 && seconds < READY_TIMEOUT_MS / 1000);
    const status = await node.internal("/internal/status");
    assert.equal(status.json.version, VERSION);
  });
});

Deno.test("LOG_LEVEL=warn leaves out every info line and keeps the warnings", async () => {
  const apiPort = fixedPort(18_760);
  const internalPort = fixedPort(apiPort + 1);
  const node = await spawnNode({
    env: { LOG_LEVEL: "warn", API_PORT: String(apiPort), INTERNAL_PORT: String(internalPort) },
  });
  try {
    let status = 0;
    for (let i = 0; i < 200 && status !== 200 && !node.hasExited; i++) {
      status = await fetch(`http://127.0.0.1:${apiPort}/readyz`, {
        signal: AbortSignal.timeout(1000),
      })
        .then(async (r) => (await r.body?.cancel(), r.status))
        .catch(() => 0);
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200, node.logs.tail());
    node.signal("SIGTERM");
    assert.equal(await node.exited, 0, node.logs.tail());
    const events = node.logs.events();
    assert.deepEqual(events.filter((e) => e.level !== "warn" && e.level !== "error"), []);
    // An open API and internal port are warned about whatever the level.
    assert.ok(events.some((e) => e.event === "api_open"), node.logs.tail());
    assert.ok(!node.logs.all.some((l) => l.startsWith("stderr:")), node.logs.tail());
  } finally {
    await node.cleanup();
  }
});
