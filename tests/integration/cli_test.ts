/**
 * The command-line client (src/cli/, docs/cli.md) run as a user runs it, a subprocess, against
 * real nodes: every command, its output, and the exit codes scripts rely on. The client runs as
 * `deno run --no-config --allow-net --allow-env --allow-read src/cli/main.ts`: the permissions and
 * the config-less module graph of the `deno compile` binary.
 */
import assert from "node:assert/strict";
import { partitionOf } from "../../src/keys/mod.ts";
import { freshNamespace, needsKafka, startKafkaNode, waitForOffsets } from "./_kafka.ts";
import {
  fixedPort,
  REPO_ROOT,
  spawnNode,
  startNode,
  stepper,
  type TestNode,
  withNode,
} from "./_node.ts";

/** Bound on one client run; it is killed (and the test fails) past it. */
const CLI_TIMEOUT_MS = 30_000;

const CLI_ARGS = [
  "run",
  "--no-config",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "src/cli/main.ts",
];

/** The client's environment: the toolchain's only, so a developer's FIRESCROLL_* cannot leak in. */
function cliEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (["PATH", "HOME", "TMPDIR", "NO_COLOR"].includes(key) || key.startsWith("DENO_")) {
      out[key] = value;
    }
  }
  return { ...out, NO_COLOR: "1", ...env };
}

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the client to its end (bounded by `CLI_TIMEOUT_MS`), with `stdin` as its input. */
async function cli(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...CLI_ARGS, ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: cliEnv(options.env ?? {}),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Asserts an exit code, showing the run's output when it differs. */
function exits(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
}

/** Asserts `error: <code>: …` as the run's one stderr line. */
function errorLine(result: CliResult, code: string): void {
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, new RegExp(`^error: ${code}: \\S`), result.stderr);
}

function at(node: TestNode, ...args: string[]): string[] {
  return ["--url", node.apiUrl, ...args];
}

/** A client left running (watch): its stdout read line by line, bounded waits. */
class Running {
  private readonly lines: string[] = [];
  private readonly waiting: (() => void)[] = [];
  private rest = "";
  readonly status: Promise<Deno.CommandStatus>;
  readonly done: Promise<void>;

  constructor(private readonly child: Deno.ChildProcess) {
    this.status = child.status;
    this.done = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        this.rest += chunk;
        let newline = this.rest.indexOf("\n");
        while (newline >= 0) {
          this.lines.push(this.rest.slice(0, newline));
          this.rest = this.rest.slice(newline + 1);
          newline = this.rest.indexOf("\n");
        }
        for (const wake of this.waiting.splice(0)) wake();
      }
      for (const wake of this.waiting.splice(0)) wake();
    })();
    void child.stderr.cancel();
  }

  static start(args: string[]): Running {
    return new Running(
      new Deno.Command(Deno.execPath(), {
        args: [...CLI_ARGS, ...args],
        cwd: REPO_ROOT,
        clearEnv: true,
        env: cliEnv({}),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
      }).spawn(),
    );
  }

  /** Resolves with the first `n` lines, or throws after `timeoutMs`. */
  async take(n: number, timeoutMs = 15_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length < n) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${n} lines: ${this.lines}`);
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return this.lines.slice(0, n);
  }

  kill(signal: Deno.Signal): void {
    this.child.kill(signal);
  }
}

/** A port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("the client puts, gets, lists, deletes and batches against a real node", async (t) => {
  await withNode({ env: { PARTITIONS: "4", WAIT_MS_MAX: "5000" } }, async (node) => {
    const step = stepper(t, node);
    const partition = String(partitionOf("dns:example.com", 4));

    await step(
      "put prints the offsets, and get prints the record with every number as sent",
      async () => {
        const put = await cli(
          at(
            node,
            "--json",
            "put",
            "dns:example.com",
            "A",
            '{"ip":"192.0.2.7","n":1e400,"m":9007199254740993}',
          ),
        );
        exits(put, 0);
        const { offsets } = JSON.parse(put.stdout);
        assert.deepEqual(Object.keys(offsets), [partition]);
        const get = await cli(
          at(
            node,
            "--json",
            "get",
            "dns:example.com",
            "A",
            "--after",
            put.stdout,
            "--wait-ms",
            "3000",
          ),
        );
        exits(get, 0);
        assert.match(
          get.stdout,
          /^\{"pk":"dns:example.com","sk":"A","data":\{"ip":"192.0.2.7","n":1e400,"m":9007199254740993\},"version":\d+,"created_at":\d+,"updated_at":\d+\}\n$/,
        );
        const pretty = await cli(at(node, "get", "dns:example.com", "A"));
        exits(pretty, 0);
        assert.ok(
          pretty.stdout.startsWith(
            '{\n  "pk": "dns:example.com",\n  "sk": "A",\n  "data": {\n    "ip": "192.0.2.7",\n    "n": 1e400,',
          ),
          pretty.stdout,
        );
      },
    );

    await step("put takes --ttl-ms, data from stdin (-) and from a file (@path)", async () => {
      exits(
        await cli(at(node, "put", "dns:example.com", "TXT", "--ttl-ms", "600000", "-"), {
          stdin: '"v=spf1 -all"',
        }),
        0,
      );
      const file = await Deno.makeTempFile({ suffix: ".json" });
      try {
        await Deno.writeTextFile(file, '{"host":"mx.example.com","pri":10}');
        exits(await cli(at(node, "put", "dns:example.com", "MX", `@${file}`)), 0);
      } finally {
        await Deno.remove(file);
      }
      const txt = JSON.parse(
        (await cli(at(node, "--json", "get", "dns:example.com", "TXT"))).stdout,
      );
      assert.equal(txt.data, "v=spf1 -all");
      assert.ok(txt.expires_at > Date.now(), JSON.stringify(txt));
      const mx = JSON.parse((await cli(at(node, "--json", "get", "dns:example.com", "MX"))).stdout);
      assert.deepEqual(mx.data, { host: "mx.example.com", pri: 10 });
    });

    await step("get of a missing record exits 1 with error: not_found", async () => {
      const missing = await cli(at(node, "get", "dns:example.com", "AAAA"));
      exits(missing, 1);
      errorLine(missing, "not_found");
      assert.equal(missing.stdout, "");
    });

    await step(
      "list prints a table, one JSON line per record with --json, and follows --all",
      async () => {
        const table = await cli(at(node, "list", "dns:example.com"));
        exits(table, 0);
        const lines = table.stdout.trimEnd().split("\n");
        assert.match(lines[0]!, /^SK +VERSION +UPDATED_AT +DATA$/);
        assert.deepEqual(lines.slice(1, 4).map((l) => l.split(/ +/)[0]), ["A", "MX", "TXT"]);
        assert.equal(lines[4], "(3 records)");
        const json = await cli(at(node, "--json", "list", "dns:example.com", "--limit", "2"));
        exits(json, 0);
        assert.deepEqual(json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).sk), [
          "A",
          "MX",
        ]);
        assert.equal(json.stderr, 'next: "MX"\n');
        const all = await cli(
          at(node, "--json", "list", "dns:example.com", "--limit", "1", "--all"),
        );
        exits(all, 0);
        assert.deepEqual(all.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).sk), [
          "A",
          "MX",
          "TXT",
        ]);
        assert.equal(all.stderr, "");
        const prefix = await cli(at(node, "--json", "list", "dns:example.com", "--sk-prefix", "M"));
        assert.deepEqual(prefix.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).sk), ["MX"]);
      },
    );

    await step("delete removes a record, and a false --if writes nothing", async () => {
      const kept = await cli(
        at(node, "--json", "delete", "dns:example.com", "MX", "--if", "_version == -5"),
      );
      exits(kept, 0);
      exits(
        await cli(
          at(node, "get", "dns:example.com", "MX", "--after", kept.stdout, "--wait-ms", "3000"),
        ),
        0,
      );
      const gone = await cli(at(node, "--json", "delete", "dns:example.com", "MX"));
      exits(gone, 0);
      const after = await cli(
        at(node, "get", "dns:example.com", "MX", "--after", gone.stdout, "--wait-ms", "3000"),
      );
      exits(after, 1);
      errorLine(after, "not_found");
    });

    await step("batch applies ops from an argument and from stdin, all or nothing", async () => {
      const fromArg = await cli(at(
        node,
        "--json",
        "batch",
        JSON.stringify({
          ops: [
            { op: "put", pk: "app", sk: "flags", data: { dark: true } },
            { op: "put", pk: "app", sk: "limits", data: { rps: 100 } },
          ],
        }),
      ));
      exits(fromArg, 0);
      const stdin = JSON.stringify([
        { op: "delete", pk: "app", sk: "limits" },
        { op: "put", pk: "app", sk: "theme", data: "blue" },
      ]);
      const fromStdin = await cli(at(node, "--json", "batch"), { stdin });
      exits(fromStdin, 0);
      exits(
        await cli(at(node, "--json", "batch", "-"), {
          stdin: JSON.stringify([{ op: "put", pk: "app", sk: "x", data: 0 }]),
        }),
        0,
      );
      const list = await cli(
        at(node, "--json", "list", "app", "--after", fromStdin.stdout, "--wait-ms", "3000"),
      );
      assert.deepEqual(list.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).sk), [
        "flags",
        "theme",
        "x",
      ]);
      const aborted = await cli(at(
        node,
        "--json",
        "batch",
        JSON.stringify([
          { op: "put", pk: "app", sk: "y", data: 1 },
          { op: "put", pk: "app", sk: "flags", data: 2, if: "pk == null" },
        ]),
      ));
      exits(aborted, 0);
      const y = await cli(
        at(node, "get", "app", "y", "--after", aborted.stdout, "--wait-ms", "3000"),
      );
      exits(y, 1);
      errorLine(y, "not_found");
    });

    await step(
      "a batch over several partitions is refused, and --split sends it as puts and deletes",
      async () => {
        const keys = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
        const pks = keys.filter((pk, i) =>
          keys.findIndex((o) => partitionOf(o, 4) === partitionOf(pk, 4)) === i
        );
        assert.ok(pks.length >= 2);
        const ops = pks.map((pk) => ({ op: "put", pk, sk: "s", data: pk }));
        const refused = await cli(at(node, "batch", JSON.stringify(ops)));
        exits(refused, 1);
        errorLine(refused, "batch_spans_partitions");
        const split = await cli(
          at(node, "--json", "batch", "--split", "--chunk", "1", JSON.stringify(ops)),
        );
        exits(split, 0);
        const { offsets } = JSON.parse(split.stdout);
        assert.equal(Object.keys(offsets).length, pks.length);
        for (const pk of pks) {
          exits(
            await cli(at(node, "get", pk, "s", "--after", split.stdout, "--wait-ms", "3000")),
            0,
          );
        }
      },
    );

    await step("exit 1 carries the server's problem, exit 2 a usage error", async () => {
      const condition = await cli(at(node, "put", "a", "b", "1", "--if", "foo == 1"));
      exits(condition, 1);
      errorLine(condition, "invalid_condition");
      const notJson = await cli(at(node, "put", "a", "b", "{nope"));
      exits(notJson, 2);
      errorLine(notJson, "usage");
      const twice = await cli(at(node, "put", "a", "b", '{"a":1,"a":2}'));
      exits(twice, 2);
      assert.match(twice.stderr, /names the member "a" twice/);
      const unknown = await cli(at(node, "frobnicate"));
      exits(unknown, 2);
      errorLine(unknown, "usage");
      const bare = await cli([]);
      exits(bare, 2);
      assert.match(bare.stderr, /^fs \d+\.\d+\.\d+: /);
      const backup = await cli(at(node, "backup", "now"));
      exits(backup, 2);
      assert.match(backup.stderr, /no backup HTTP API.*deno task restore/);
    });

    await step("--help and --version answer with exit 0", async () => {
      const help = await cli(["--help"]);
      exits(help, 0);
      assert.match(help.stdout, /Exit codes:/);
      const listHelp = await cli(["list", "--help"]);
      exits(listHelp, 0);
      assert.match(listHelp.stdout, /^Usage: fs list <pk> \[flags\]/);
      const version = await cli(["--version"]);
      exits(version, 0);
      assert.match(version.stdout, /^fs \d+\.\d+\.\d+\n$/);
    });

    await step("FIRESCROLL_URL names the node when --url does not", async () => {
      const get = await cli(["get", "app", "flags"], { env: { FIRESCROLL_URL: node.apiUrl } });
      exits(get, 0);
    });
  });
});

/** The server files the client may import: single files, no component's mod.ts (src/cli/mod.ts). */
const CLIENT_IMPORTS = [
  "src/api/wire.ts",
  "src/util/assert.ts",
  "src/util/json.ts",
  "src/util/sleep.ts",
  "src/version.ts",
  "src/watch/sse.ts",
];

Deno.test("the client's module graph holds none of the server, so deno compile embeds only it", async () => {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--no-config", "--json", "src/cli/main.ts"],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
  }).output();
  assert.equal(info.code, 0, new TextDecoder().decode(info.stderr));
  const graph = JSON.parse(new TextDecoder().decode(info.stdout));
  const root = new URL("../../", import.meta.url).href;
  const outside = (graph.modules as { specifier: string }[])
    .map((m) => m.specifier.startsWith(root) ? m.specifier.slice(root.length) : m.specifier)
    .filter((path) => !path.startsWith("src/cli/") && !CLIENT_IMPORTS.includes(path));
  assert.deepEqual(outside, []);
  assert.deepEqual(graph.npmPackages ?? {}, {});
});

Deno.test("the client exits 4 when it cannot reach a node or the node is never ready", async () => {
  const url = `http://127.0.0.1:${closedPort()}`;
  const get = await cli(["--url", url, "get", "a", "b"]);
  exits(get, 4);
  errorLine(get, "cannot_connect");
  const ready = await cli([
    "--url",
    url,
    "wait-ready",
    "--timeout-ms",
    "600",
    "--interval-ms",
    "100",
  ]);
  exits(ready, 4);
  errorLine(ready, "timeout");
  assert.match(ready.stderr, /within 600 ms \(last: cannot_connect: /);
});

Deno.test("wait-ready exits 0 once a starting node answers /readyz 200", async () => {
  const apiPort = fixedPort(18_820);
  const internalPort = fixedPort(apiPort + 1);
  const waiting = cli([
    "--url",
    `http://127.0.0.1:${apiPort}`,
    "wait-ready",
    "--timeout-ms",
    "25000",
  ]);
  const node = await spawnNode({
    env: { API_PORT: String(apiPort), INTERNAL_PORT: String(internalPort) },
  });
  try {
    const ready = await waiting;
    exits(ready, 0);
    assert.match(ready.stdout, /^ready after \d+ ms\n$/);
    const json = await cli(["--url", `http://127.0.0.1:${apiPort}`, "--json", "wait-ready"]);
    exits(json, 0);
    assert.equal(json.stdout, '{"status":"ready"}\n');
  } finally {
    await node.cleanup();
  }
});

Deno.test("watch prints one JSON line per change, resumes after an id, and ends on Ctrl-C", async (t) => {
  await withNode({ env: { PARTITIONS: "4" } }, async (node) => {
    const step = stepper(t, node);
    const partition = partitionOf("w", 4);
    const offsets: number[] = [];
    for (const sk of ["1", "2", "3"]) {
      const put = await cli(at(node, "--json", "put", "w", sk, `{"n":${sk}}`));
      exits(put, 0);
      offsets.push(JSON.parse(put.stdout).offsets[partition]);
    }

    await step("--after an id and --count: exactly the changes after it, then exit 0", async () => {
      const watched = await cli(
        at(node, "watch", "--pk", "w", "--after", `${partition}:${offsets[0]}`, "--count", "2"),
      );
      exits(watched, 0);
      const events = watched.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(
        events.map((e) => [e.id, e.event, e.data.sk, e.data.data]),
        [
          [`${partition}:${offsets[1]}`, "put", "2", { n: 2 }],
          [`${partition}:${offsets[2]}`, "put", "3", { n: 3 }],
        ],
      );
    });

    await step(
      "a live watch prints new changes as they come; SIGINT ends it with exit 0",
      async () => {
        const running = Running.start(
          at(node, "watch", "--pk", "w", "--after", `${partition}:${offsets[2]}`),
        );
        try {
          exits(await cli(at(node, "delete", "w", "1")), 0);
          exits(await cli(at(node, "put", "w", "4", "[1.50]")), 0);
          const lines = await running.take(2);
          const [deleted, put] = lines.map((l) => JSON.parse(l));
          assert.deepEqual([deleted.event, deleted.data.sk], ["delete", "1"]);
          assert.deepEqual([put.event, put.data.sk], ["put", "4"]);
          // Numbers print as stored: 1.50, not 1.5.
          assert.match(lines[1]!, /"data":\[1\.50\]/);
        } finally {
          running.kill("SIGINT");
        }
        const status = await running.status;
        await running.done;
        assert.equal(status.code, 0);
      },
    );
  });
});

Deno.test("status reads nodes' internal ports and exits 3 when replicas diverge", async (t) => {
  // Two embedded nodes are two independent logs: the same writes give the same chains, and
  // different writes at the same offset the divergence status must flag.
  const secret = "cli-test-secret-0123456789";
  await withNode({ env: { PARTITIONS: "2", CLUSTER_SECRET: secret } }, async (a) => {
    await withNode({ env: { PARTITIONS: "2", CLUSTER_SECRET: secret } }, async (b) => {
      const step = stepper(t, a);
      const both = ["--internal-url", `${a.internalUrl},${b.internalUrl}`];

      await step("without the cluster secret, status exits 1 with the node's problem", async () => {
        const refused = await cli(["status", "--internal-url", a.internalUrl]);
        exits(refused, 1);
        assert.match(refused.stderr, /^error: unauthorized: /m);
      });

      await step("one node: a table of its partitions, exit 0", async () => {
        const one = await cli(["status", "--internal-url", a.internalUrl], {
          env: { CLUSTER_SECRET: secret },
        });
        exits(one, 0);
        assert.match(
          one.stdout,
          /^NODE +URL +GROUP +LOG +READY +PARTITIONS\nnode-\S+ +http:\/\/127\.0\.0\.1:\d+ +\S+ +embedded +yes +2 of 2\n/,
        );
        assert.match(one.stdout, /^PARTITION +NODE +STATE +OFFSET +BEHIND +LAG +RECORDS +CHAIN$/m);
        assert.match(one.stdout, /^0 +node-\S+ +serving +-1 +0 /m);
        assert.match(one.stdout, /ok: one node read/);
      });

      await step("one node read through two URLs: compared, no divergence, exit 0", async () => {
        exits(await cli(at(a, "put", "same", "k", '{"v":1}')), 0);
        const twice = a.internalUrl.replace("127.0.0.1", "localhost");
        const agree = await cli(["status", "--internal-url", `${a.internalUrl},${twice}`], {
          env: { CLUSTER_SECRET: secret },
        });
        exits(agree, 0);
        assert.match(agree.stdout, /ok: no divergence/);
        assert.match(agree.stdout, new RegExp(`^node-\\S+@${twice} `, "m"));
      });

      await step(
        "the same write on two separate logs: chains agree, digests differ, exit 3",
        async () => {
          // The chain hashes the messages; the records also hold the log timestamps, which two
          // separate logs give differently. Replicas of one log never differ so.
          exits(await cli(at(b, "put", "same", "k", '{"v":1}')), 0);
          const p = partitionOf("same", 2);
          const differ = await cli(["status", ...both], { env: { CLUSTER_SECRET: secret } });
          exits(differ, 3);
          assert.match(
            differ.stdout,
            new RegExp(
              `^DIVERGED: partition ${p} at offset 0 \\(digests differ, chains agree\\):$`,
              "m",
            ),
          );
        },
      );

      await step(
        "different writes at the same offset: chains differ, DIVERGED, exit 3",
        async () => {
          exits(await cli(at(a, "put", "same", "k", '{"v":2}')), 0);
          exits(await cli(at(b, "put", "same", "k", '{"v":3}')), 0);
          const p = partitionOf("same", 2);
          const diverged = await cli(["status", ...both], { env: { CLUSTER_SECRET: secret } });
          exits(diverged, 3);
          assert.match(
            diverged.stdout,
            new RegExp(`^DIVERGED: partition ${p} at offset 1 \\(chains differ\\):$`, "m"),
          );
          errorLine(diverged, "divergence");
          const json = await cli(["--json", "status", ...both], {
            env: { CLUSTER_SECRET: secret },
          });
          exits(json, 3);
          const report = JSON.parse(json.stdout);
          assert.deepEqual(
            report.divergences.map((d: { partition: number; offset: number; differs: string }) => [
              d.partition,
              d.offset,
              d.differs,
            ]),
            [[p, 1, "chain"]],
          );
          assert.equal(report.divergences[0].nodes.length, 2);
        },
      );

      await step("a node it cannot reach: exit 4, the others still shown", async () => {
        const down = `http://127.0.0.1:${closedPort()}`;
        const partial = await cli([
          "status",
          "--internal-url",
          a.internalUrl,
          "--internal-url",
          down,
        ], {
          env: { CLUSTER_SECRET: secret },
        });
        exits(partial, 4);
        assert.match(partial.stdout, /error: cannot_connect/);
        assert.match(partial.stdout, /^0 +node-/m);
        errorLine(partial, "cannot_connect");
      });
    });
  });
});

Deno.test("the client sends --token or FIRESCROLL_TOKEN as the API's bearer token", async () => {
  await withNode({ env: { API_TOKENS_READ: "r1", API_TOKENS_WRITE: "w1" } }, async (node) => {
    const none = await cli(at(node, "put", "auth", "k", '"v"'));
    exits(none, 1);
    errorLine(none, "unauthorized");
    const read = await cli(at(node, "put", "auth", "k", '"v"'), {
      env: { FIRESCROLL_TOKEN: "r1" },
    });
    exits(read, 1);
    errorLine(read, "forbidden");
    const write = await cli(at(node, "--json", "--token", "w1", "put", "auth", "k", '"v"'));
    exits(write, 0);
    const get = await cli(
      at(node, "get", "auth", "k", "--after", write.stdout, "--wait-ms", "3000"),
      {
        env: { FIRESCROLL_TOKEN: "r1" },
      },
    );
    exits(get, 0);
    assert.equal(JSON.parse(get.stdout).data, "v");
    const [partition, offset] = Object.entries(
      JSON.parse(write.stdout).offsets as Record<string, number>,
    )[0]!;
    const after = `${partition}:${offset - 1}`;
    const watch = await cli(at(node, "watch", "--pk", "auth", "--after", after, "--count", "1"), {
      env: { FIRESCROLL_TOKEN: "r1" },
    });
    exits(watch, 0);
    // Health routes are open: wait-ready needs no token.
    exits(await cli(at(node, "wait-ready")), 0);
  });
});

Deno.test({
  name: "status finds two replica groups of one Kafka log in agreement",
  ...needsKafka,
  async fn() {
    const namespace = freshNamespace("cli_status");
    const nodes: TestNode[] = [];
    try {
      nodes.push(await startKafkaNode(namespace, "ga"));
      nodes.push(await startKafkaNode(namespace, "gb"));
      const [a, b] = nodes as [TestNode, TestNode];
      const put = await cli(at(
        a,
        "--json",
        "batch",
        "--split",
        JSON.stringify(
          ["a", "b", "c", "d", "e", "f"].map((pk) => ({ op: "put", pk, sk: "k", data: { pk } })),
        ),
      ));
      exits(put, 0);
      const { offsets } = JSON.parse(put.stdout);
      await waitForOffsets(a, offsets);
      await waitForOffsets(b, offsets);
      const status = await cli(["status", "--internal-url", `${a.internalUrl},${b.internalUrl}`]);
      exits(status, 0);
      assert.match(status.stdout, /ok: no divergence/);
      assert.match(status.stdout, /kafka +yes +8 of 8\n.*kafka +yes +8 of 8\n/s);
      const json = JSON.parse(
        (await cli(["--json", "status", "--internal-url", `${a.internalUrl},${b.internalUrl}`]))
          .stdout,
      );
      // Every partition written is compared: both groups hold it at the same offset.
      for (const p of Object.keys(offsets)) {
        const rows = json.partitions.filter((r: { partition: number }) =>
          String(r.partition) === p
        );
        assert.equal(rows.length, 2);
        assert.equal(rows[0].offset, rows[1].offset);
        assert.equal(rows[0].chain, rows[1].chain);
        assert.equal(rows[0].digest, rows[1].digest);
      }
    } finally {
      for (const node of nodes) await node.cleanup();
    }
  },
});

Deno.test("watch resumes after a node restart from its last id: no change missed or repeated", async () => {
  const apiPort = fixedPort(18_830);
  const internalPort = fixedPort(apiPort + 1);
  const dbPath = await Deno.makeTempDir({ prefix: "firescroll_it_cli_" });
  const env = { API_PORT: String(apiPort), INTERNAL_PORT: String(internalPort), PARTITIONS: "2" };
  let node = await startNode({ env, dbPath });
  let running: Running | null = null;
  try {
    const first = await cli(at(node, "--json", "put", "r", "0", "0"));
    exits(first, 0);
    const [partition, offset] = Object.entries(JSON.parse(first.stdout).offsets)[0]!;
    running = Running.start(at(node, "watch", "--pk", "r", "--after", `${partition}:${offset}`));
    exits(await cli(at(node, "put", "r", "1", "1")), 0);
    await running.take(1);
    assert.equal(await node.stop(), 0);
    exits(await cli(at(node, "put", "r", "lost", "0")), 4);
    node = await startNode({ env, dbPath });
    exits(await cli(at(node, "put", "r", "2", "2")), 0);
    const events = (await running.take(2, 20_000)).map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => [e.event, e.data.sk]), [["put", "1"], ["put", "2"]]);
  } finally {
    running?.kill("SIGINT");
    await running?.status;
    await node.cleanup();
    await Deno.remove(dbPath, { recursive: true }).catch(() => {});
  }
});
