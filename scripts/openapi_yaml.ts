// deno-lint-ignore-file no-console
/**
 * Writes docs/openapi.yaml from src/api/openapi.ts, the document's one source (with the default
 * limits). Run it after changing the API or the version; src/api/openapi_test.ts fails until the
 * file matches:
 *
 * ```sh
 * deno run --allow-read --allow-write scripts/openapi_yaml.ts
 * ```
 *
 * @module
 */
import { stringify } from "yaml";
import { defaultLimits, openApiDocument } from "../src/api/openapi.ts";

/** What the file starts with (YAML comments: the parsed document is unchanged). */
export const OPENAPI_YAML_HEADER =
  "# The OpenAPI 3.1 document of FireScroll's public API, with the default limits.\n" +
  "# Generated from src/api/openapi.ts by `deno run -R -W scripts/openapi_yaml.ts`: edit there.\n" +
  "# A node serves the same document with its own limits at GET /openapi.json.\n";

/** The text of docs/openapi.yaml. */
export function openApiYaml(): string {
  return OPENAPI_YAML_HEADER +
    stringify(openApiDocument(defaultLimits()), { lineWidth: 0, aliasDuplicateObjects: false });
}

if (import.meta.main) {
  const file = new URL("../docs/openapi.yaml", import.meta.url);
  await Deno.writeTextFile(file, openApiYaml());
  console.log(`wrote ${file.pathname}`);
}
