/**
 * FireScroll for Deno: reads the command line (`--help`, `--version` answer and exit), loads the
 * config, starts a node (src/app.ts, the composition root), and stops it gracefully on
 * SIGINT/SIGTERM.
 *
 * @module
 */
import process from "node:process";
import {
  type Config,
  ConfigError,
  loadConfig,
  parseArgs,
  unknownVariables,
  usage,
} from "./src/config/mod.ts";
import { startApp } from "./src/app.ts";
import { errorMessage, log, setLogLevel, StartError } from "./src/util/mod.ts";
import { VERSION } from "./src/version.ts";

/**
 * kafkajs schedules a timer with a negative delay on every connection (harmless: it is clamped to
 * 1 ms), and Deno's Node layer prints a TimeoutNegativeWarning for it to stderr: not a JSON line,
 * and noise in every Kafka node's log. That one warning is dropped; all others pass.
 */
function quietTimeoutWarnings(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string })?.type;
    if (type === "TimeoutNegativeWarning") return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

function loadOrExit(env: Record<string, string>, takeover: boolean): Config {
  try {
    // `--takeover` is `TAKEOVER=1` (a hand-over restart, docs/operations.md).
    return loadConfig(takeover ? { ...env, TAKEOVER: "1" } : env);
  } catch (error) {
    if (error instanceof ConfigError) {
      log("error", "invalid_config", { variable: error.variable, error: error.message });
      Deno.exit(2);
    }
    throw error;
  }
}

/** Ends a start that cannot go on with one JSON line naming the cause, never a stack trace. */
function startFailed(error: unknown, event = "start_failed"): never {
  if (error instanceof StartError) {
    log("error", error.event, { ...error.fields, error: error.message });
  } else {
    // Not an expected failure: a bug, so the stack goes along, inside the one line.
    log("error", event, {
      error: errorMessage(error),
      ...(error instanceof Error && event === "start_failed" ? { stack: error.stack } : {}),
    });
  }
  Deno.exit(1);
}

/** Writes `text` (plain text, not a log line) and exits with `code`. */
function answerAndExit(
  code: number,
  text: string,
  to: { writeSync(bytes: Uint8Array): number } = Deno.stdout,
): never {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += to.writeSync(bytes.subarray(written));
  Deno.exit(code);
}

/** A variable that looks like a setting but is not read is most likely a misspelt one. */
function warnUnknownVariables(env: Record<string, string>): void {
  for (const { name, didYouMean } of unknownVariables(env)) {
    log("warn", "unknown_variable", {
      variable: name,
      ...(didYouMean === null ? {} : { did_you_mean: didYouMean }),
      message: "set, but no setting of this name exists: it has no effect",
    });
  }
}

async function main(): Promise<void> {
  const invocation = parseArgs(Deno.args);
  // Answered before anything is read or opened.
  if (invocation.kind === "help") answerAndExit(0, usage(VERSION));
  if (invocation.kind === "version") {
    answerAndExit(0, `firescroll ${VERSION} (deno ${Deno.version.deno})\n`);
  }
  if (invocation.kind === "invalid") answerAndExit(2, invocation.message + "\n", Deno.stderr);
  quietTimeoutWarnings();
  const env = Deno.env.toObject();
  const config = loadOrExit(env, invocation.takeover);
  setLogLevel(config.node.logLevel);
  warnUnknownVariables(env);
  const app = await startApp(config, startFailed);
  // A successor took the folder and ports over (TAKEOVER): this process is done.
  void app.handedOver.then(() => Deno.exit(0));
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log("info", "stopping", { signal });
    const deadline = setTimeout(() => {
      log("error", "stop_timeout", { timeout_ms: config.lifecycle.shutdownTimeoutMs });
      Deno.exit(1);
    }, config.lifecycle.shutdownTimeoutMs);
    try {
      await app.stop();
      clearTimeout(deadline);
      log("info", "stopped", {});
      Deno.exit(0);
    } catch (error) {
      log("error", "stop_failed", { error: errorMessage(error) });
      Deno.exit(1);
    }
  };
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
}

if (import.meta.main) await main().catch((error) => startFailed(error));
