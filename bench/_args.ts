/**
 * Command-line options of the benchmark clients: `--name value`, with an optional environment
 * variable as the second source.
 *
 * @module
 */

/** The value after `--name`, or undefined. */
export function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

/** The value after `--name`; throws "Cannot <what>: --name is required" without one. */
export function required(name: string, what: string): string {
  const value = flag(name);
  if (value === undefined) throw new Error(`Cannot ${what}: --${name} is required`);
  return value;
}

/** An integer option (`--name`, else `env` when given, else `fallback`) within [min, max]. */
export function intFlag(
  name: string,
  options: { fallback: number; min: number; max: number; what: string; env?: string },
): number {
  const env = options.env;
  const raw = flag(name) ?? (env === undefined ? undefined : Deno.env.get(env));
  if (raw === undefined || raw === "") return options.fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < options.min || n > options.max) {
    const source = env === undefined ? `--${name}` : `--${name} (${env})`;
    throw new Error(
      `Cannot ${options.what}: ${source} must be an integer in [${options.min}, ${options.max}]`,
    );
  }
  return n;
}
