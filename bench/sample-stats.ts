/**
 * The figures every bench section reports for a list of timings, in one place so that all
 * sections round and rank them the same way.
 */
import { performance } from 'node:perf_hooks';

/** Median, p90 and range of a list of samples, rounded to 0.1. */
export interface Stats {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
}

/** {@link Stats} without the p90, for sections with too few samples for one to mean much. */
export type Summary = Omit<Stats, 'p90'>;

const r1 = (x: number): number => Math.round(x * 10) / 10;

/** The {@link Stats} of `samples` (at least one); p90 is the nearest-rank one. */
export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  const p90 = s[Math.max(0, Math.ceil(0.9 * n) - 1)]!;
  return { n, median: r1(median), p90: r1(p90), min: r1(s[0]!), max: r1(s[n - 1]!) };
}

/** The {@link Summary} of `samples` (at least one). */
export function summary(samples: number[]): Summary {
  const { p90: _p90, ...rest } = stats(samples);
  return rest;
}

/** Milliseconds `fn` took to settle. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
