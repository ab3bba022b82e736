/**
 * API: the public port's handler (records, health) and the internal port's handler (metrics,
 * status), each a `fetch(Request) → Response` function over a node. The only place where errors
 * become HTTP responses (problem+json).
 *
 * @module
 */
export { type Closing, expectAcceptStops, Front, type Handler } from "./front.ts";
export { type Forwarding, forwardTarget } from "./forward.ts";
export { IdleSweeper, sweepIntervalMs, type SweepResult } from "./idle_sweeper.ts";
export { internalHandler } from "./internal.ts";
export { problemResponse } from "./problem.ts";
export { type ApiNode, publicHandler } from "./public.ts";
export { recordJson } from "../node/mod.ts";
export type * from "./wire.ts";
