// Applies the committed patches in this folder to node_modules, after `npm install` (bootstrap.sh
// and the Dockerfile run it; it is not an npm lifecycle script because the image installs with
// --ignore-scripts). Each patch is a unified diff named `<package>+<version>.patch`; it applies
// only to exactly that installed version. A hunk applies when its old text occurs exactly once
// in the file, and counts as already applied when only its new text does: running this twice
// changes nothing. Anything else (another version, a file that matches neither) exits 1, so a
// dependency upgrade cannot silently drop a patch.
//
//   node patches/apply.mjs          apply every patch (idempotent)
//   node patches/apply.mjs --check  exit 1 unless every patch is applied; change nothing
//   node patches/apply.mjs --revert restore the original files (for A/B runs: bench/patch_ab.sh)
//
// Runs on Node.js (npm's machine, no Deno yet) and is imported by Deno tests; no dependencies.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Parses a unified diff into files and hunks. Each hunk becomes the text it expects (context and
 * removed lines) and the text it leaves (context and added lines).
 * @param {string} text
 * @returns {{ path: string, hunks: { oldText: string, newText: string }[] }[]}
 */
export function parsePatch(text) {
  const files = [];
  let file = null;
  let hunk = null;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    if (line.startsWith("--- ")) {
      hunk = null;
      continue;
    }
    if (line.startsWith("+++ ")) {
      const path = line.slice(4).trim().replace(/^b\//, "");
      file = { path, hunks: [] };
      files.push(file);
      hunk = null;
      continue;
    }
    if (line.startsWith("@@")) {
      if (file === null) throw new Error(`hunk before any file header: ${line}`);
      hunk = { old: [], new: [] };
      file.hunks.push(hunk);
      continue;
    }
    if (hunk === null) continue;
    const body = line.slice(1);
    if (line.startsWith(" ") || line === "") {
      hunk.old.push(body);
      hunk.new.push(body);
    } else if (line.startsWith("-")) hunk.old.push(body);
    else if (line.startsWith("+")) hunk.new.push(body);
    else if (!line.startsWith("\\")) throw new Error(`unexpected diff line: ${line}`);
  }
  return files.map((f) => ({
    path: f.path,
    hunks: f.hunks.map((h) => ({ oldText: h.old.join("\n"), newText: h.new.join("\n") })),
  }));
}

function occurrences(haystack, needle) {
  let count = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) count++;
  return count;
}

/**
 * Applies hunks to a file's content.
 * @param {string} content
 * @param {{ oldText: string, newText: string }[]} hunks
 * @returns {{ content: string, applied: number, already: number }}
 */
export function applyHunks(content, hunks) {
  let applied = 0;
  let already = 0;
  for (const [i, { oldText, newText }] of hunks.entries()) {
    const olds = occurrences(content, oldText);
    const news = occurrences(content, newText);
    if (news === 1 && (olds === 0 || (olds === 1 && newText.includes(oldText)))) already++;
    else if (olds === 1) {
      content = content.replace(oldText, () => newText);
      applied++;
    } else {
      throw new Error(
        `hunk ${i + 1} does not apply: its old text occurs ${olds} times, its new text ${news}`,
      );
    }
  }
  return { content, applied, already };
}

/** `kafkajs+2.2.4.patch` → ["kafkajs", "2.2.4"]; `@scope+name+1.0.0.patch` → ["@scope/name", …]. */
export function patchTarget(fileName) {
  const parts = fileName.replace(/\.patch$/, "").split("+");
  if (parts.length < 2) throw new Error(`${fileName}: expected <package>+<version>.patch`);
  const version = parts.pop();
  return [parts.join("/"), version];
}

/**
 * Applies (or with `mode` "check", only inspects; with "revert", undoes) every patch of
 * `patchesDir` under `root`.
 * @param {string} root
 * @param {string} patchesDir
 * @param {"apply" | "check" | "revert"} mode
 * @returns {{ patch: string, file: string, applied: number, already: number }[]}
 */
export function patchAll(root, patchesDir, mode) {
  const check = mode === "check";
  const results = [];
  const names = readdirSync(patchesDir).filter((n) => n.endsWith(".patch")).sort();
  for (const name of names) {
    const [pkg, version] = patchTarget(name);
    const manifest = JSON.parse(
      readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8"),
    );
    if (manifest.version !== version) {
      throw new Error(
        `${name}: installed ${pkg} is ${manifest.version}, the patch is for ${version}`,
      );
    }
    for (const file of parsePatch(readFileSync(join(patchesDir, name), "utf8"))) {
      const path = join(root, file.path);
      const before = readFileSync(path, "utf8");
      const hunks = mode === "revert"
        ? file.hunks.map((h) => ({ oldText: h.newText, newText: h.oldText }))
        : file.hunks;
      const out = applyHunks(before, hunks);
      if (check && out.applied > 0) throw new Error(`${name}: ${file.path} is not patched`);
      if (!check && out.content !== before) writeFileSync(path, out.content);
      results.push({ patch: name, file: file.path, applied: out.applied, already: out.already });
    }
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const mode = process.argv.includes("--check")
    ? "check"
    : process.argv.includes("--revert")
    ? "revert"
    : "apply";
  try {
    for (const r of patchAll(root, dirname(fileURLToPath(import.meta.url)), mode)) {
      const done = mode === "revert" ? "reverted" : "applied";
      const what = r.applied > 0 ? `${done} ${r.applied} hunk(s)` : `already ${done}`;
      process.stderr.write(`patches: ${r.patch}: ${r.file}: ${what}\n`);
    }
  } catch (error) {
    process.stderr.write(`patches: ${error.message}\n`);
    process.exit(1);
  }
}
