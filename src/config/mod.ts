/**
 * Configuration: reads environment variables into one frozen, validated {@linkcode Config}.
 * Every limit the node enforces is defined here; `docs/configuration.md` lists them.
 *
 * @module
 */
export { ConfigError, loadConfig, PK_BYTES_MAX, SK_BYTES_MAX } from "./config.ts";
export type { Config, LogKind } from "./config.ts";
