/**
 * Serving threads (issue 13, docs/architecture.md "Serving threads"): with `SERVE_THREADS` above
 * 1, that many workers each serve the public port and read the partition files directly, while
 * the main thread stays the node's only writer (log consumer, apply, gossip, backups, the
 * internal port). The main thread keeps them in step through shared memory
 * ({@linkcode SharedState}) and answers their calls (appends, peer reads, metrics).
 *
 * @module
 */
export { ServeThreads, type ServeThreadsOptions } from "./threads.ts";
export { type ReadState, SharedState } from "./shared_state.ts";
export { ThreadPartitions, type ThreadPartitionsOptions } from "./thread_partitions.ts";
export { fromWire, toWire, type WireError } from "./calls.ts";
