/**
 * Node: wires the log, apply and the stores together and runs the partition lifecycle
 * (closed → opening → restoring → catching up → serving → retiring → closed; one state per
 * partition in `partition_state.ts`). The API and, later, the cluster talk to a
 * {@linkcode Node}.
 *
 * @module
 */
export { encodeWrites, Node } from "./node.ts";
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
  ReadReplicas,
  SnapshotSource,
} from "./ports.ts";
export { liveJson, movedError, Reader, recordJson, stoppingError, unavailable } from "./reader.ts";
export type {
  AsOf,
  GetKey,
  GetRequest,
  HistoryRequest,
  ListRequest,
  LocalPartitions,
  ReadAfter,
  ReaderOptions,
  StoreReads,
} from "./reader.ts";
export { LocalSlots, Waiters } from "./waiters.ts";
export type { WaiterSlots } from "./waiters.ts";
export { DataDirLock, LOCK_FILE_NAME, lockDataDir } from "./data_dir.ts";
export {
  CONTROL_SOCKET_NAME,
  ControlSocket,
  controlSocketPath,
  requestTakeover,
  type Takeover,
} from "./hand_over.ts";
