/**
 * A latency histogram as plain counts, kept by a shard worker for its WAL appends and
 * read through its stats (structured-cloned, so plain arrays and numbers only). The API
 * renders it as the Prometheus histogram stockd_shard_wal_append_seconds.
 */

/** Upper bounds of the buckets, in milliseconds; one more bucket counts what is above. */
export const appendLatencyBoundsMs: readonly number[] = [
  0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500,
];

export interface LatencyCounts {
  /** Observations per bucket (not cumulative): counts[i] ≤ bounds[i], the last one above all. */
  readonly counts: number[];
  sumMs: number;
  count: number;
}

export function newLatencyCounts(): LatencyCounts {
  return { counts: new Array<number>(appendLatencyBoundsMs.length + 1).fill(0), sumMs: 0, count: 0 };
}

export function recordLatency(histogram: LatencyCounts, ms: number): void {
  let bucket = 0;
  while (bucket < appendLatencyBoundsMs.length && ms > appendLatencyBoundsMs[bucket]!) bucket++;
  histogram.counts[bucket]!++;
  histogram.sumMs += ms;
  histogram.count++;
}
