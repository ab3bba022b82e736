import { deepEqual, equal } from "node:assert/strict";
import { SETTINGS, variablesRead } from "./settings.ts";
import { editDistance, suspectPrefixes, unknownVariables } from "./unknown_variables.ts";

/** `unknownVariables()` of these names (each set to "1"), as `name → didYouMean`. */
function unknown(...names: string[]): Record<string, string | null> {
  const env = Object.fromEntries(names.map((n) => [n, "1"]));
  return Object.fromEntries(unknownVariables(env).map((u) => [u.name, u.didYouMean]));
}

Deno.test("unknownVariables() names a near miss of a setting with the setting it misses", () => {
  deepEqual(unknown("API_PORTS"), { API_PORTS: "API_PORT" });
  deepEqual(unknown("KAFKA_SEED"), { KAFKA_SEED: "KAFKA_SEEDS" });
  // Two edits in a long name, a swap of neighbours, a missing letter.
  deepEqual(unknown("PARTITON"), { PARTITON: "PARTITIONS" });
  deepEqual(unknown("GOSSIP_BRAODCAST_MS"), { GOSSIP_BRAODCAST_MS: "GOSSIP_BROADCAST_MS" });
  deepEqual(unknown("SHUTDOWN_TIMOUT_MS"), { SHUTDOWN_TIMOUT_MS: "SHUTDOWN_TIMEOUT_MS" });
  deepEqual(unknown("REGIONS"), { REGIONS: "REGION" });
});

Deno.test("unknownVariables() sees the same words in another order or number, another case, a name cut short", () => {
  deepEqual(unknown("PORT_API"), { PORT_API: "API_PORT" });
  deepEqual(unknown("MAX_LIST_LIMIT"), { MAX_LIST_LIMIT: "LIST_LIMIT_MAX" });
  deepEqual(unknown("API_TOKEN_READ"), { API_TOKEN_READ: "API_TOKENS_READ" });
  deepEqual(unknown("WATCHER_MAX"), { WATCHER_MAX: "WATCHERS_MAX" });
  deepEqual(unknown("api_port"), { api_port: "API_PORT" });
  deepEqual(unknown("FIRESCROLL_API_PORT"), { FIRESCROLL_API_PORT: "API_PORT" });
  deepEqual(unknown("TLS_CERT", "KAFKA_TLS_CA"), {
    KAFKA_TLS_CA: "KAFKA_TLS_CA_FILE",
    TLS_CERT: "TLS_CERT_FILE",
  });
});

Deno.test("unknownVariables() names a variable with one of our prefixes even when nothing is close", () => {
  deepEqual(unknown("KAFKA_BROKERS", "S3_ACCESS_KEY", "FIRESCROLL_MODE", "BACKUP_NOW"), {
    BACKUP_NOW: null,
    FIRESCROLL_MODE: null,
    KAFKA_BROKERS: null,
    S3_ACCESS_KEY: null,
  });
  deepEqual(suspectPrefixes(), [
    "FIRESCROLL_",
    "CLUSTER_",
    "LOG_",
    "KAFKA_",
    "API_",
    "GOSSIP_",
    "BACKUP_",
    "ARCHIVE_",
    "S3_",
    "HISTORY_",
    "WATCH_",
  ]);
});

Deno.test("unknownVariables() is quiet about every variable the config reads, fallbacks included", () => {
  const read = [...variablesRead()];
  deepEqual(unknown(...read), {});
  for (const name of ["AWS_REGION", "BUCKET_NAME", "AWS_ENDPOINT_URL_S3", "FLY_APP_NAME"]) {
    equal(read.includes(name), true, name);
  }
  equal(SETTINGS.some((s) => s.env === "LOG_LEVEL"), true);
});

Deno.test("unknownVariables() is quiet about the platform's, the toolchain's and the test harness's variables", () => {
  deepEqual(
    unknown(
      "PATH",
      "HOME",
      "USER",
      "TZ",
      "NO_COLOR",
      "HOSTNAME",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_PROFILE",
      "AWS_DEFAULT_REGION",
      "FLY_ALLOC_ID",
      "FLY_PUBLIC_IP",
      "DENO_DIR",
      "DENO_NO_UPDATE_CHECK",
      "LC_ALL",
      "XDG_CACHE_HOME",
      "SSL_CERT_FILE",
      "FIRESCROLL_TEST_KAFKA",
      "FIRESCROLL_TEST_S3",
      "PORT",
      "DATABASE_URL",
      "api_key",
      "LISTEN_FDS",
      "SEED_URL",
      "DB",
      "HISTORY",
    ),
    {},
  );
});

Deno.test("editDistance() counts insertions, deletions, substitutions and swaps, up to a limit", () => {
  equal(editDistance("API_PORT", "API_PORT"), 0);
  equal(editDistance("API_PORTS", "API_PORT"), 1);
  equal(editDistance("API_PROT", "API_PORT"), 1);
  equal(editDistance("API_HOST", "API_PORT"), 2);
  equal(editDistance("", "ABC"), 3);
  equal(editDistance("REGION", "NAMESPACE", 2), 3);
});
