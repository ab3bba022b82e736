/**
 * Configuration: reads environment variables into one frozen, validated {@linkcode Config} in
 * sections, through the settings table (`settings.ts`: one row per variable, one name per
 * setting from variable to field), and holds the constants every replica must share
 * (`cluster.ts`). Every limit the node enforces is defined here; `docs/configuration.md` lists
 * them and is tested against the table. Also: the command line of `main.ts` and its help
 * (`usage.ts`), and the variables set that look like settings but are not read
 * (`unknown_variables.ts`).
 *
 * @module
 */
export {
  assertClusterRelations,
  changesRetainMs,
  CLUSTER_CONSTANTS,
  type ClusterConstants,
  clusterRelationProblems,
  ConfigError,
  loadConfig,
  parseRestoreTo,
  redactedConfig,
} from "./config.ts";
export type {
  Config,
  ConfigApi,
  ConfigArchive,
  ConfigBackup,
  ConfigGossip,
  ConfigHistory,
  ConfigKafka,
  ConfigLifecycle,
  ConfigLimits,
  ConfigLog,
  ConfigNode,
  ConfigS3,
  ConfigStore,
  ConfigWatch,
  LogKind,
  RestoreTarget,
} from "./config.ts";
export {
  EXPIRES_AT_MAX,
  LMDB_KEY_BYTES_MAX,
  MESSAGE_CONDITION_CHARS_MAX,
  MESSAGE_ENVELOPE_BYTES_MAX,
  MESSAGE_KEYS_AND_FRAMING_BYTES,
  MESSAGE_OPS_MAX,
  MESSAGE_VERSION,
  PK_BYTES_MAX,
  RECORD_FORMAT,
  RECORD_FORMAT_EXPIRING,
  RECORD_KEY_BYTES_MAX,
  RECORD_KEY_PREFIX_BYTES,
  SK_BYTES_MAX,
  STORE_FORMAT,
  TTL_MS_MAX,
} from "./cluster.ts";
export type { ConfigCluster } from "./cluster.ts";
export {
  type DeriveContext,
  DERIVED_FIELDS,
  type DerivedDefault,
  isDerived,
  LOG_LEVELS,
  SASL_MECHANISMS,
  type SectionName,
  type Setting,
  type SettingDefault,
  type SettingKind,
  SETTINGS,
  variablesRead,
} from "./settings.ts";
export { suspectPrefixes, type UnknownVariable, unknownVariables } from "./unknown_variables.ts";
export { type Invocation, parseArgs, usage } from "./usage.ts";
