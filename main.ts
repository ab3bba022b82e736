/**
 * FireScroll for Deno: loads the config, builds a node, serves the public and internal ports,
 * and stops gracefully on SIGINT/SIGTERM.
 *
 * @module
 */
import process from "node:process";
import { IdleSweeper, internalHandler, publicHandler, sweepIntervalMs } from "./src/api/mod.ts";
import { type Config, ConfigError, loadConfig } from "./src/config/mod.ts";
import { buildApp } from "./src/app.ts";
import { joinHostPort } from "./src/cluster/mod.ts";
import { lockDataDir } from "./src/node/mod.ts";
import { bindOrThrow, errorMessage, log, sleep, StartError } from "./src/util/mod.ts";

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

function loadOrExit(): Config {
  try {
    return loadConfig(Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) {
      log("error", "invalid_config", { variable: error.variable, error: error.message });
      Deno.exit(2);
    }
    throw error;
  }
}

function tlsOptions(config: Config): { cert: string; key: string } | Record<never, never> {
  if (config.tlsCertFile === null || config.tlsKeyFile === null) return {};
  const read = (variable: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      const message = `Cannot read ${variable}: ${errorMessage(error)}`;
      throw new StartError("tls_file_unreadable", message, { variable, path });
    }
  };
  return {
    cert: read("TLS_CERT_FILE", config.tlsCertFile),
    key: read("TLS_KEY_FILE", config.tlsKeyFile),
  };
}

/** Ends a start that cannot go on with one JSON line naming the cause, never a stack trace. */
function startFailed(error: unknown): never {
  if (error instanceof StartError) {
    log("error", error.event, { ...error.fields, error: error.message });
  } else {
    // Not an expected failure: a bug, so the stack goes along, inside the one line.
    log("error", "start_failed", {
      error: errorMessage(error),
      ...(error instanceof Error ? { stack: error.stack } : {}),
    });
  }
  Deno.exit(1);
}

async function main(): Promise<void> {
  quietTimeoutWarnings();
  const config = loadOrExit();
  // Before anything is opened: a second process on one folder would hand out offsets twice.
  const dataDir = lockDataDir(config.dbPath);
  const { clusterSecret: _, apiTokensRead, apiTokensWrite, ...shown } = config;
  log("info", "starting", {
    ...shown,
    apiTokensRead: apiTokensRead.length,
    apiTokensWrite: apiTokensWrite.length,
  });
  if (apiTokensRead.length === 0 && apiTokensWrite.length === 0) {
    log("warn", "api_open", {
      message:
        "API_TOKENS_READ and API_TOKENS_WRITE are unset: anyone who can reach the API port can read and write",
    });
  }
  if (config.clusterSecret === null) {
    log("warn", "internal_open", {
      message: "CLUSTER_SECRET is unset: /internal/* is not authenticated",
    });
  }
  const { node, gossip, router, backups, kafka } = buildApp(config);
  try {
    // The log first (topics, partition-count guard): a node that cannot start never listens.
    await node.open();
  } catch (error) {
    // A damaged embedded log: one line naming the file and how to recover.
    if (error instanceof StartError) startFailed(error);
    log("error", "start_failed", { error: errorMessage(error) });
    Deno.exit(1);
  }
  const tls = tlsOptions(config);
  const api = bindOrThrow("api", config.listenHost, config.apiPort, () =>
    Deno.serve({
      hostname: config.listenHost,
      port: config.apiPort,
      ...tls,
      onListen: ({ port, hostname }) =>
        log("info", "api_listening", { hostname, port, tls: "cert" in tls }),
    }, publicHandler(node, router)));
  const internal = bindOrThrow(
    "internal",
    config.listenHost,
    config.internalPort,
    () =>
      Deno.serve({
        hostname: config.listenHost,
        port: config.internalPort,
        onListen: ({ port, hostname }) => log("info", "internal_listening", { hostname, port }),
      }, internalHandler(node, gossip)),
  );
  // Deno.serve never closes an idle connection itself: see src/api/idle_sweeper.ts.
  const sweeper = IdleSweeper.open({
    port: api.addr.port,
    idleTimeoutMs: config.idleTimeoutMs,
    connectionsMax: config.connectionsMax,
    metrics: node.metrics,
  });
  if (sweeper === null) {
    log("warn", "idle_sweep_unavailable", {
      message:
        "not Linux or no FFI: idle connections are not closed and CONNECTIONS_MAX is not kept",
    });
  }
  if (gossip !== null) {
    node.attachPeers({
      announceLeaving: () => gossip.announceLeaving(),
      servedElsewhere: (p) => gossip.membership.servedElsewhere(p),
      anyAlivePeer: () => gossip.membership.list().some((m) => m.health === "alive"),
    });
  }
  const gossipStop = new AbortController();
  const gossiping = gossip === null ? Promise.resolve() : gossip.run(
    joinHostPort(config.advertiseHost, internal.addr.port),
    () => node.servingPartitions(),
    gossipStop.signal,
  ).catch((error) => {
    if (error instanceof StartError) startFailed(error);
    log("error", "gossip_failed", { error: errorMessage(error) });
    Deno.exit(1);
  });
  // Gossip runs before partitions are assigned, so peer bootstrap can find peers.
  node.consume();
  const background = new AbortController();
  const backingUp = backups === null
    ? Promise.resolve()
    : backups.run(node, background.signal).catch((error) => {
      log("error", "backup_loop_failed", { error: errorMessage(error) });
    });
  const sweepingIdle = sweeper?.run(sweepIntervalMs(config.idleTimeoutMs), background.signal);
  const sweeping = (async () => {
    const everyMs = Math.min(60_000, Math.max(1000, config.unownedRetainSec * 500));
    while (!background.signal.aborted) {
      await node.sweepUnowned(Date.now()).catch((error) =>
        log("warn", "sweep_failed", { error: errorMessage(error) })
      );
      await sleep(everyMs, background.signal);
    }
  })();
  if (backups !== null && kafka !== null) {
    // Snapshots must come more often than the log forgets, or a gap can open between them.
    const retentionMs = await kafka.retentionMs();
    if (retentionMs !== null && retentionMs >= 0 && config.backupIntervalSec * 1000 > retentionMs) {
      log("warn", "backup_interval_exceeds_retention", {
        backup_interval_sec: config.backupIntervalSec,
        retention_ms: retentionMs,
        message: "BACKUP_INTERVAL_SEC is longer than the mutations topic's retention.ms",
      });
    }
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log("info", "stopping", { signal });
    const deadline = setTimeout(() => {
      log("error", "stop_timeout", { timeout_ms: config.shutdownTimeoutMs });
      Deno.exit(1);
    }, config.shutdownTimeoutMs);
    try {
      // Fail parked `after` reads at once, then stop accepting and drain in-flight requests;
      // then no write can race the close.
      node.drain();
      // In a region cluster, keep serving reads until peers have taken the partitions over.
      await node.handOff();
      await api.shutdown();
      background.abort();
      await Promise.all([backingUp, sweeping, sweepingIdle]);
      await node.stop();
      dataDir.release();
      gossipStop.abort();
      await gossiping;
      await internal.shutdown();
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

if (import.meta.main) await main().catch(startFailed);
