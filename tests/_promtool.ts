/**
 * promtool for the tests that hold metrics, alert rules and dashboards to Prometheus's own checker.
 * Found, in this order, at `FIRESCROLL_TEST_PROMTOOL` (scripts/test.sh sets it), in the cache
 * scripts/promtool.sh builds into (`.cache/promtool/<pinned version>/promtool`), then on `PATH`.
 * Missing, it fails the test that needs it with how to get it: these checks never skip silently.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** The version scripts/promtool.sh pins (`PROMTOOL_VERSION=`). */
async function pinnedVersion(): Promise<string> {
  const script = await Deno.readTextFile(new URL("scripts/promtool.sh", ROOT));
  const version = /^PROMTOOL_VERSION=(\S+)/m.exec(script)?.[1];
  if (version === undefined) throw new Error("Cannot read PROMTOOL_VERSION in scripts/promtool.sh");
  return version;
}

async function executable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** The promtool binary to run; throws (failing the test) when there is none. */
export async function promtoolPath(): Promise<string> {
  const given = Deno.env.get("FIRESCROLL_TEST_PROMTOOL");
  if (given !== undefined && given !== "") {
    if (await executable(given)) return given;
    throw new Error(`Cannot run promtool: FIRESCROLL_TEST_PROMTOOL=${given} is not an executable`);
  }
  const cached = new URL(`.cache/promtool/${await pinnedVersion()}/promtool`, ROOT).pathname;
  if (await executable(cached)) return cached;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir !== "" && await executable(`${dir}/promtool`)) return `${dir}/promtool`;
  }
  throw new Error(
    "Cannot run promtool: not built. Run `bash scripts/promtool.sh path` once (scripts/test.sh does)",
  );
}

/** What one promtool run printed and how it ended. */
export interface PromtoolResult {
  readonly success: boolean;
  /** stdout and stderr, trimmed. */
  readonly output: string;
}

/** Runs promtool with `args` in the repository root, `stdin` piped in when given. */
export async function promtool(args: readonly string[], stdin?: string): Promise<PromtoolResult> {
  const child = new Deno.Command(await promtoolPath(), {
    args: [...args],
    cwd: ROOT.pathname,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const { success, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { success, output: (decoder.decode(stdout) + decoder.decode(stderr)).trim() };
}

/** `promtool check metrics` of exposition `text`: its complaints, "" when there are none. */
export async function checkMetrics(text: string): Promise<string> {
  const { success, output } = await promtool(["check", "metrics"], text);
  return success && output === "" ? "" : output || "promtool check metrics failed";
}
