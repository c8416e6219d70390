import { describe, expect, it } from 'vitest';
import { latencyBoundsMs, newLatencyCounts, recordLatency } from '../src/engine/latency-counts.js';

describe('latency counts (the WAL append histogram)', () => {
  it('given durations on, between and beyond the bounds, when recorded, then each lands in the first bucket that holds it', () => {
    const histogram = newLatencyCounts();
    expect(histogram.counts).toHaveLength(latencyBoundsMs.length + 1);
    recordLatency(histogram, 0); // ≤ 0.5 ms
    recordLatency(histogram, 0.5); // on a bound: that bucket (Prometheus `le`)
    recordLatency(histogram, 0.51); // ≤ 1 ms
    recordLatency(histogram, 7); // ≤ 10 ms
    recordLatency(histogram, 2_500); // the last bound
    recordLatency(histogram, 60_000); // above every bound
    const expected = new Array<number>(latencyBoundsMs.length + 1).fill(0);
    expected[0] = 2;
    expected[1] = 1;
    expected[latencyBoundsMs.indexOf(10)] = 1;
    expected[latencyBoundsMs.length - 1] = 1;
    expected[latencyBoundsMs.length] = 1;
    expect(histogram.counts).toEqual(expected);
    expect(histogram.count).toBe(6);
    expect(histogram.sumMs).toBeCloseTo(0 + 0.5 + 0.51 + 7 + 2_500 + 60_000);
  });

  it('has increasing bounds', () => {
    for (let i = 1; i < latencyBoundsMs.length; i++) {
      expect(latencyBoundsMs[i]!).toBeGreaterThan(latencyBoundsMs[i - 1]!);
    }
  });
});
