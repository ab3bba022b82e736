/** How many threads a `*_THREADS` setting asks for: 0 = one per CPU this process may use. */
export function threadCount(configured: number): number {
  return configured > 0 ? configured : Math.max(1, navigator.hardwareConcurrency);
}
