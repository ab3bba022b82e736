/**
 * Node: wires the log, apply and the stores together and runs the partition lifecycle
 * (closed → opening → restoring → catching up → serving → retiring → closed; one state per
 * partition in `partition_state.ts`). The API and, later, the cluster talk to a
 * {@linkcode Node}.
 *
 * @module
 */
export { Node } from "./node.ts";
export type { HandOffPeers, NodeDeps, PartitionStatus } from "./node.ts";
export { isAllowed, PartitionTable } from "./partition_state.ts";
export type { Partition, PartitionState, TransitionChange } from "./partition_state.ts";
export type {
  AppendRequest,
  FetchedSnapshot,
  MutationLog,
  PartitionConsumer,
  PeerKey,
  PeerReads,
  SnapshotSource,
} from "./ports.ts";
export { Reader, recordJson } from "./reader.ts";
export type {
  GetKey,
  GetRequest,
  ListRequest,
  LocalPartitions,
  ReadAfter,
  ReaderOptions,
} from "./reader.ts";
export { DataDirLock, LOCK_FILE_NAME, lockDataDir } from "./data_dir.ts";
