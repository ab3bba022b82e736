/**
 * The README's "Walk-through with curl", run as written against a fresh node: every `$ curl …`
 * line of its shell blocks is run with real curl (the node's ports put in for 8190 and 8191) and
 * its output compared with the lines the README shows under it. What differs between runs is
 * masked on both sides (timestamps, the node id, hash chains, the serving thread), and `…` in the
 * README stands for any text. A block that starts a command in the background (`… &`, the watch
 * example) is compared as a whole: the lines of all its commands, in any interleaving.
 */
import { deepEqual, match, ok } from "node:assert/strict";
import { REPO_ROOT, type TestNode, withNode } from "./_node.ts";

/** One `$ command` of a shell block and the lines the README shows after it. */
interface Step {
  readonly command: string;
  readonly expected: string[];
}

/** The shell blocks of the README's walk-through, each a list of steps. */
export function walkThrough(readme: string): Step[][] {
  const start = readme.indexOf("\n## Walk-through with curl");
  ok(start >= 0, "README.md has a walk-through");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const blocks: Step[][] = [];
  for (const [, body] of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const steps: Step[] = [];
    const lines = body!.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.startsWith("$ ")) {
        let command = line.slice(2);
        while (command.endsWith("\\") && i + 1 < lines.length) {
          command = command.slice(0, -1) + lines[++i]!.trim();
        }
        steps.push({ command, expected: [] });
      } else if (line !== "") {
        ok(steps.length > 0, `output before any command: ${line}`);
        steps[steps.length - 1]!.expected.push(line);
      }
    }
    if (steps.length > 0) blocks.push(steps);
  }
  return blocks;
}

/** What differs between two runs of the same requests, made the same. */
export function mask(line: string): string {
  return line
    .replace(/"(created_at|updated_at)":\d+/g, '"$1":0')
    .replace(/"thread":\d+/g, '"thread":1')
    .replace(/\bthread \d+\b/g, "thread 1")
    .replace(/"id":"node-[0-9a-f]+"/g, '"id":"node-x"')
    .replace(/"(chain|digest)":"[0-9a-f]+"/g, '"$1":"h"');
}

/** Whether `actual` is the README's `expected` line, `…` standing for any text. */
function same(expected: string, actual: string): boolean {
  const pattern = mask(expected).split("…").map((part) =>
    part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  )
    .join(".*");
  return new RegExp(`^${pattern}$`).test(mask(actual));
}

function localize(command: string, node: TestNode): string {
  return command
    .replaceAll("localhost:8190", `127.0.0.1:${node.apiPort}`)
    .replaceAll("localhost:8191", `127.0.0.1:${node.internalPort}`);
}

const decoder = new TextDecoder();

function lines(bytes: Uint8Array): string[] {
  return decoder.decode(bytes).split("\n").filter((l) => l !== "");
}

/** Runs one command line with bash, bounded in time; its stdout lines. */
async function run(command: string): Promise<string[]> {
  const output = await new Deno.Command("bash", {
    args: ["-c", command],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  ok(output.success, `${command}\n${decoder.decode(output.stderr)}`);
  return lines(output.stdout);
}

/** Runs a block with a background command: every line of every command, in any order. */
async function runWithBackground(steps: Step[], node: TestNode): Promise<void> {
  const background: Deno.ChildProcess[] = [];
  const actual: string[] = [];
  try {
    for (const step of steps) {
      const command = localize(step.command, node);
      if (command.trimEnd().endsWith("&")) {
        background.push(
          new Deno.Command("bash", {
            args: ["-c", `exec ${command.trimEnd().slice(0, -1)}`],
            stdin: "null",
            stdout: "piped",
            stderr: "null",
          }).spawn(),
        );
        // The stream's first lines come before the next command, as in the README.
        await new Promise((r) => setTimeout(r, 500));
      } else {
        actual.push(...await run(command));
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    for (const child of background) {
      child.kill("SIGTERM");
      actual.push(...lines((await child.output()).stdout));
    }
  }
  const expected = steps.flatMap((s) => s.expected);
  const unmatched = [...actual];
  for (const line of expected) {
    const at = unmatched.findIndex((a) => same(line, a));
    ok(at >= 0, `README line not in the output:\n${line}\noutput:\n${actual.join("\n")}`);
    unmatched.splice(at, 1);
  }
  deepEqual(unmatched, [], "output lines the README does not show");
}

Deno.test("walkThrough() reads commands, continuations and the output under each", () => {
  const readme = 'x\n## Walk-through with curl\n\n```sh\n$ curl a \\\n  -d b\n{"ok":1}\n\n' +
    "$ curl c\n```\n\n## Next\n```sh\n$ not this\n```\n";
  deepEqual(walkThrough(readme), [[{ command: "curl a -d b", expected: ['{"ok":1}'] }, {
    command: "curl c",
    expected: [],
  }]]);
  ok(same('{"a":…,"b":2}', '{"a":{"x":1},"b":2}'));
  ok(!same('{"a":1}', '{"a":2}'));
  ok(same('{"created_at":1795290432284}', '{"created_at":1}'));
});

Deno.test({
  name: "the README's curl walk-through gives, against a fresh node, the outputs it shows",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const blocks = walkThrough(Deno.readTextFileSync(`${REPO_ROOT}README.md`));
    ok(blocks.length >= 8, `the walk-through has ${blocks.length} shell blocks`);
    await withNode({}, async (node) => {
      for (const steps of blocks) {
        if (steps.some((s) => s.command.trimEnd().endsWith("&"))) {
          await runWithBackground(steps, node);
          continue;
        }
        for (const step of steps) {
          match(step.command, /^curl /, "the walk-through runs curl only");
          const actual = await run(localize(step.command, node));
          const message = `$ ${step.command}\nREADME:\n${step.expected.join("\n")}\nnode:\n${
            actual.join("\n")
          }`;
          ok(actual.length === step.expected.length, message);
          step.expected.forEach((line, i) => ok(same(line, actual[i]!), message));
        }
      }
    });
  },
});
