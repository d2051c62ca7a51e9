/** Go's duration units in milliseconds (`time.ParseDuration`; `us` and `µs` are the same). */
const UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds in a Go duration (`90m`, `1h30m`, `1.5h`, `250ms`), or undefined when `v` is not
 * one. Docker's `since`/`until` values take durations meaning "that long ago" (moby
 * `timetypes.GetTimestamp`), and the CLI passes them through verbatim for prune filters.
 */
export function goDurationMs(v: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) return undefined;
  let total = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * UNITS_MS[m[2]!]!;
  return total;
}
