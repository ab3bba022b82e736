import { deepEqual, equal, ok } from "node:assert/strict";
import { docSection } from "../../tests/_helpers.ts";
import { createMetrics } from "./metrics.ts";

interface DocRow {
  readonly type: string;
  readonly labels: string[];
}

/** The rows of the "Every metric" table of docs/operations.md: name → type and labels. */
async function documentedMetrics(): Promise<Map<string, DocRow>> {
  const rows = new Map<string, DocRow>();
  for (const line of await docSection("operations.md", "### Every metric")) {
    const cells = line.split("|").map((c) => c.trim());
    // | `name` | type | `a`, `b` | meaning |
    const name = /^`([a-z_][a-z0-9_]*)`$/.exec(cells[1] ?? "")?.[1];
    if (name === undefined) continue;
    ok(!rows.has(name), `${name} is listed twice`);
    const labels = cells[3] === ""
      ? []
      : cells[3]!.split(",").map((l) => l.trim().replace(/`/g, ""));
    ok((cells[4] ?? "").length > 0, `${name} has no meaning in docs/operations.md`);
    rows.set(name, { type: cells[2]!, labels });
  }
  return rows;
}

/** Every metric family as rendered: name → type, from the `# TYPE` lines. */
function renderedMetrics(): Map<string, string> {
  const out = new Map<string, string>();
  const text = createMetrics().registry.render();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(match[1]!, match[2]!);
  return out;
}

Deno.test("docs/operations.md lists every metric of createMetrics() with its type and labels", async () => {
  const documented = await documentedMetrics();
  // The process's metrics included: createMetrics() registers them with their render hook.
  const rendered = renderedMetrics();
  ok(rendered.size > 50, `rendered ${rendered.size} metrics`);
  ok(rendered.has("process_resident_memory_bytes") && rendered.has("firescroll_build_info"));
  const missing = [...rendered.keys()].filter((name) => !documented.has(name));
  deepEqual(missing, [], "metrics missing from docs/operations.md");
  const extra = [...documented.keys()].filter((name) => !rendered.has(name));
  deepEqual(extra, [], "metrics in docs/operations.md that do not exist");
  for (const [name, type] of rendered) equal(documented.get(name)!.type, type, `type of ${name}`);
  // Label names are not rendered until a child exists; the registry knows them.
  const families = createMetrics().registry.families();
  deepEqual(families.map((f) => f.name).sort(), [...rendered.keys()].sort());
  for (const { name, labelNames } of families) {
    deepEqual(documented.get(name)?.labels, [...labelNames], `labels of ${name}`);
  }
});
