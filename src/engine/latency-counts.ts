/**
 * A latency histogram as plain counts (plain arrays and numbers, so it can be cloned to
 * another thread). A shard worker keeps one for its WAL appends and hands it over with its
 * stats; the API keeps one per route and status. /metrics renders both as Prometheus
 * histograms (src/api/metrics.ts).
 */

/** Upper bounds of the buckets, in milliseconds; one more bucket counts what is above. */
export const latencyBoundsMs: readonly number[] = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500];

export interface LatencyCounts {
  /** Observations per bucket (not cumulative): counts[i] ≤ bounds[i], the last one above all. */
  readonly counts: number[];
  sumMs: number;
  count: number;
}

export function newLatencyCounts(): LatencyCounts {
  return { counts: new Array<number>(latencyBoundsMs.length + 1).fill(0), sumMs: 0, count: 0 };
}

export function recordLatency(histogram: LatencyCounts, ms: number): void {
  let bucket = 0;
  while (bucket < latencyBoundsMs.length && ms > latencyBoundsMs[bucket]!) bucket++;
  histogram.counts[bucket]!++;
  histogram.sumMs += ms;
  histogram.count++;
}
