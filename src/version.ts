/**
 * The version of FireScroll for Deno: printed by `--version`, in the `starting` log line, in
 * `/internal/status` and in `firescroll_build_info`. `deno.json` and `package.json` carry the same
 * string (src/version_test.ts holds them to it).
 *
 * @module
 */

/** This release's version (semver). */
export const VERSION = "0.16.0";
