/**
 * Variables that look like ours but that the config does not read: a misspelt setting is
 * otherwise silently ignored, and the node runs with the default. A name is suspect when it is a
 * near miss of a variable the config reads (a letter or two off, another case, the same words in
 * another order or number, cut short: `API_PORTS`, `api_port`, `PORT_API`, `TLS_CERT`), or when it starts
 * with `FIRESCROLL_` or with the prefix of a section whose variables carry it (`API_`, `KAFKA_`,
 * `S3_`, …, taken from the settings table). The platform's and the toolchain's own variables
 * (`PATH`, `AWS_*`, `FLY_*`, `DENO_*`, …) never are.
 */
import { type Setting, SETTINGS, variablesRead } from "./settings.ts";

/** One variable set in the environment that the config does not read. */
export interface UnknownVariable {
  readonly name: string;
  /** The variable the config reads that it is closest to, or null when none is close. */
  readonly didYouMean: string | null;
}

/** Set by shells, containers, CI and the runtime: never ours, never reported. */
const STANDARD = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "PWD",
  "OLDPWD",
  "SHLVL",
  "TERM",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
  "TMP",
  "TEMP",
  "HOSTNAME",
  "NO_COLOR",
  "FORCE_COLOR",
  "COLORTERM",
  "CI",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
]);

/**
 * Prefixes of other software's variables (the AWS SDK's credential chain reads `AWS_*`, Fly.io
 * sets `FLY_*`), and of the test harness's (`FIRESCROLL_TEST_*`, read by the tests, not by nodes).
 */
const STANDARD_PREFIXES = [
  "AWS_",
  "FLY_",
  "DENO_",
  "NODE_",
  "NPM_",
  "LC_",
  "XDG_",
  "SSL_",
  "FIRESCROLL_TEST_",
];

/** Our own prefix: every variable under it is suspect, none is read. */
const OWN_PREFIX = "FIRESCROLL_";

/**
 * `FIRESCROLL_` and the prefix (`<SECTION>_`) of every section at least one of whose variables
 * carries it, in table order.
 */
export function suspectPrefixes(settings: readonly Setting[] = SETTINGS): string[] {
  const prefixes = [OWN_PREFIX];
  for (const s of settings) {
    const prefix = s.section.toUpperCase() + "_";
    if (s.env.startsWith(prefix) && !prefixes.includes(prefix)) prefixes.push(prefix);
  }
  return prefixes;
}

/**
 * The variables of `env` that look like settings but are not read (see the module doc), sorted
 * by name, each with the closest variable read. `settings` is the table (a test may pass another).
 */
export function unknownVariables(
  env: Readonly<Record<string, string | undefined>>,
  settings: readonly Setting[] = SETTINGS,
): UnknownVariable[] {
  const read = variablesRead(settings);
  const known = [...read];
  const prefixes = suspectPrefixes(settings);
  const out: UnknownVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    if (read.has(name) || env[name] === undefined || isStandard(name)) continue;
    const upper = name.toUpperCase();
    // `FIRESCROLL_API_PORT` means `API_PORT`.
    const bare = upper.startsWith(OWN_PREFIX) ? upper.slice(OWN_PREFIX.length) : upper;
    const didYouMean = closest(bare, known);
    const prefixed = name === upper && prefixes.some((p) => name.startsWith(p));
    if (didYouMean !== null || prefixed) out.push({ name, didYouMean });
  }
  return out;
}

function isStandard(name: string): boolean {
  const upper = name.toUpperCase();
  return STANDARD.has(upper) || STANDARD_PREFIXES.some((p) => upper.startsWith(p));
}

/**
 * The known name nearest to `name` (upper case) when it is a near miss, else null: the same words
 * in another order or number (distance 0), else at most one edit away (two for names of ten
 * characters or more), an edit being an insertion, a deletion, a substitution or a swap of two
 * neighbours; else the one name that goes on from it (`TLS_CERT` → `TLS_CERT_FILE`). Ties go to
 * the earlier name.
 */
function closest(name: string, known: readonly string[]): string | null {
  const words = wordKey(name);
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    if (wordKey(candidate) === words) return candidate;
    const limit = candidate.length >= 10 ? 2 : 1;
    if (Math.abs(candidate.length - name.length) > limit) continue;
    const distance = editDistance(name, candidate, limit);
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best !== null) return best;
  // A name cut short: `TLS_CERT` for `TLS_CERT_FILE`, when only one name goes on from it. Not a
  // single word: `DB` or `CLUSTER` alone are too likely someone else's.
  if (!name.includes("_")) return null;
  const longer = known.filter((candidate) => candidate.startsWith(name + "_"));
  return longer.length === 1 ? longer[0]! : null;
}

/** The words of a name, singular, sorted: `TOKENS_API_READ` and `API_TOKEN_READ` share it. */
function wordKey(name: string): string {
  return name.split("_").filter((w) => w !== "").map((w) =>
    w.length > 3 && w.endsWith("S") && !w.endsWith("SS") ? w.slice(0, -1) : w
  ).sort().join("_");
}

/**
 * Optimal string alignment distance of `a` and `b` (Levenshtein plus swaps of neighbours),
 * or `limit + 1` once it is sure to exceed `limit`.
 */
export function editDistance(a: string, b: string, limit = Infinity): number {
  // Three rows: the one before the previous is needed for swaps.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, before[j - 2]! + 1);
      }
      current[j] = d;
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > limit) return limit + 1;
    [before, previous, current] = [previous, current, before];
  }
  const distance = previous[b.length]!;
  return distance > limit ? limit + 1 : distance;
}
