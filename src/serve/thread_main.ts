/**
 * The entry module of a serving thread's `Worker` (see `thread.ts`).
 *
 * @module
 */
import { runThread } from "./thread.ts";

runThread(globalThis as unknown as Parameters<typeof runThread>[0]);
