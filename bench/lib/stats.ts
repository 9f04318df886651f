/**
 * The statistics benches print, one copy for all of them: medians of repeated samples and
 * percentiles of latencies, each by nearest rank over the sorted samples (no interpolation, so
 * every figure printed is one that was measured).
 */

/** The value at percentile `p` (0–100) of `values`; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** The middle value of `values` (the upper of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
