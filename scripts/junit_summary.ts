// deno-lint-ignore-file no-console
/**
 * Prints "N passed, N failed" (and ", N skipped") from a JUnit report written by `deno test`,
 * and exits 1 when a test failed or none ran.
 */
const path = Deno.args[0];
if (path === undefined) {
  console.error("usage: junit_summary.ts <junit.xml>");
  Deno.exit(2);
}
const xml = Deno.readTextFileSync(path);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const match of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
  const body = match[2] ?? "";
  if (/<(failure|error)\b/.test(body)) failed++;
  else if (/<skipped\b/.test(body)) skipped++;
  else passed++;
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
Deno.exit(failed > 0 || passed === 0 ? 1 : 0);
