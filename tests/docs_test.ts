/**
 * The repository's Markdown documents point only at things in the repository: every relative link
 * of README.md, docs/, bench/ and patches/ names a file or folder that exists here (a reader of a
 * clone must be able to follow it), and none reaches outside the checkout.
 */
import { ok } from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** The Markdown files readers are sent to. */
function documents(): string[] {
  const out = ["README.md"];
  for (const dir of ["docs", "bench", "patches"]) {
    for (const entry of Deno.readDirSync(new URL(`${dir}/`, ROOT))) {
      if (entry.isFile && entry.name.endsWith(".md")) out.push(`${dir}/${entry.name}`);
    }
  }
  return out;
}

/** The targets of a document's inline links, without any `#anchor`. */
function relativeLinks(markdown: string): string[] {
  const targets: string[] = [];
  // Code blocks and code spans are not links.
  const prose = markdown.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  for (const [, target] of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target!) || target!.startsWith("#")) continue;
    targets.push(target!.split("#")[0]!);
  }
  return targets;
}

Deno.test("every relative link in the repository's Markdown names a path inside the repository", () => {
  const root = Deno.realPathSync(ROOT);
  let checked = 0;
  for (const document of documents()) {
    const base = new URL(document, ROOT);
    for (const target of relativeLinks(Deno.readTextFileSync(base))) {
      const url = new URL(target, base);
      let path: string;
      try {
        path = Deno.realPathSync(url);
      } catch {
        throw new Error(`${document}: the link ${target} names nothing in the repository`);
      }
      ok(
        path === root || path.startsWith(`${root}/`),
        `${document}: ${target} leaves the repository`,
      );
      checked++;
    }
  }
  ok(checked >= 10, `only ${checked} links checked: is the parser still finding them?`);
});
