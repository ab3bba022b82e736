/**
 * The command line of `main.ts`: its arguments (`--takeover`, `--version`, `--help`), and the
 * help text, whose list of environment variables is generated from the settings table so that
 * it names every setting with its default and cannot drift from it.
 */
import { isDerived, type Setting, SETTINGS } from "./settings.ts";

/** What the command line asks for. */
export type Invocation =
  /** Start a node; `takeover` is `--takeover` (`TAKEOVER=1`). */
  | { readonly kind: "run"; readonly takeover: boolean }
  /** Print the help text and exit 0. */
  | { readonly kind: "help" }
  /** Print the version and exit 0. */
  | { readonly kind: "version" }
  /** An argument that is not one of the above: say so on stderr and exit 2. */
  | { readonly kind: "invalid"; readonly message: string };

/** Reads `main.ts`'s arguments. An unknown argument wins over everything else. */
export function parseArgs(args: readonly string[]): Invocation {
  let help = false;
  let version = false;
  let takeover = false;
  for (const arg of args) {
    if (arg === "--help" || arg === "-h") help = true;
    else if (arg === "--version") version = true;
    else if (arg === "--takeover") takeover = true;
    else {
      return {
        kind: "invalid",
        message: `firescroll: unknown argument ${JSON.stringify(arg)} (see --help)`,
      };
    }
  }
  if (help) return { kind: "help" };
  if (version) return { kind: "version" };
  return { kind: "run", takeover };
}

/** Widest name column of the variable list; longer names push their line's doc to the next. */
const NAME_WIDTH = 26;
const DEFAULT_WIDTH = 14;

/**
 * The help text: what the program is, how to start it, its options, and every environment
 * variable of `settings` with its default and its one line of doc.
 */
export function usage(version: string, settings: readonly Setting[] = SETTINGS): string {
  const lines = [
    `firescroll ${version}: FireScroll for Deno, a configuration database for read-mostly records.`,
    "Writes go to one shared log (Kafka, or the embedded log on a single machine); every node",
    "materializes its partitions of the log into local LMDB files and serves reads from them.",
    "",
    "Usage:",
    "  deno run -A main.ts [--takeover]   start a node, configured by environment variables",
    "  npm start                          the same, installing Deno and the dependencies first",
    "  npm test                           start a Kafka broker and an S3 server, run every test",
    "",
    "Options:",
    "  --takeover   start as a hand-over restart: take DB_PATH and the ports over from the node",
    "               running there, which drains and exits (TAKEOVER=1)",
    "  --version    print the version and exit",
    "  -h, --help   print this help and exit",
    "",
    "Environment (empty counts as unset; details: docs/configuration.md):",
    `  ${"variable".padEnd(NAME_WIDTH)}${"default".padEnd(DEFAULT_WIDTH)}meaning`,
  ];
  for (const s of settings) {
    const shown = defaultText(s);
    const doc = s.doc.replaceAll("`", "");
    const head = `  ${s.env.padEnd(NAME_WIDTH)}${shown.padEnd(DEFAULT_WIDTH)}`;
    if (s.env.length < NAME_WIDTH && shown.length < DEFAULT_WIDTH) {
      lines.push(head + doc);
    } else {
      // A long default (one computed from others) gets a line of its own.
      lines.push(`  ${s.env.padEnd(NAME_WIDTH)}${shown}`);
      lines.push(" ".repeat(2 + NAME_WIDTH + DEFAULT_WIDTH) + doc);
    }
  }
  return lines.join("\n") + "\n";
}

const BYTE_UNITS: readonly [string, number][] = [
  ["GiB", 1024 ** 3],
  ["MiB", 1024 ** 2],
  ["KiB", 1024],
];

/** A setting's default as the help shows it: the doc's words for a computed one, sizes in units. */
function defaultText(s: Setting): string {
  if (s.defaultDoc !== undefined) return s.defaultDoc.replaceAll("`", "");
  const value = s.default;
  if (value === null) return "unset";
  if (isDerived(value)) return "computed";
  if (typeof value === "boolean") return value ? "1" : "0";
  if (typeof value === "number" && s.env.includes("BYTES") && value > 0) {
    for (const [unit, size] of BYTE_UNITS) if (value % size === 0) return `${value / size} ${unit}`;
  }
  return String(value);
}
