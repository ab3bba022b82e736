/**
 * Node: wires the log, apply and the stores together and runs the partition lifecycle
 * (assign → open → catch up → serve → revoke). The API and, later, the cluster talk to a
 * {@linkcode Node}.
 *
 * @module
 */
export { Node } from "./node.ts";
export type { HandOffPeers, NodeDeps, PartitionState, PartitionStatus } from "./node.ts";
export type {
  AppendRequest,
  FetchedSnapshot,
  MutationLog,
  PartitionConsumer,
  SnapshotSource,
} from "./ports.ts";
export { DataDirLock, LOCK_FILE_NAME, lockDataDir } from "./data_dir.ts";
