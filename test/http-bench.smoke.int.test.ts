import { describe, expect, it } from 'vitest';
import { formatHttpBench, type HttpBenchOptions, runHttpBench } from '../bench/http.js';

// A tiny run of the HTTP benchmark (bench/http.ts) so it never rots: real child servers,
// autocannon, the open-loop client, msgpack batches. Figures are not asserted (shared,
// noisy machines); only that every scenario runs and reports sane numbers. The servers
// run from dist/, so `npm run build` first.
describe('HTTP benchmark smoke', () => {
  it('runs every scenario end to end', async () => {
    const options: HttpBenchOptions = {
      seconds: 0.5,
      rounds: 1,
      connections: 4,
      batchSize: 20,
      batchConnections: 1,
      shards: 1,
      skus: 50,
      loadFraction: 0.5,
      warmupSeconds: 0.2,
      rateLimit: true,
      store: 'memory',
    };
    const result = await runHttpBench(options);
    expect(result.closed.map((r) => r.scenario)).toEqual([
      'trivial POST (ceiling)',
      'reserve',
      'atp GET',
      'batch msgpack ×20',
    ]);
    for (const run of result.closed) {
      expect(run.requests, run.scenario).toBeGreaterThan(0);
      expect(run.failures, run.scenario).toBe(0);
      expect(run.cpuMicrosPerRequest, run.scenario).toBeGreaterThan(0);
      expect(run.latencyMs.p99, run.scenario).toBeGreaterThanOrEqual(run.latencyMs.p50);
    }
    expect(result.closed[3]!.linesPerSecond).toBeGreaterThan(0);
    // The ceiling at the reserve's open-loop rate (the machine's own tail), then the reserve.
    expect(result.open.map((r) => r.scenario)).toEqual(['trivial POST (ceiling)', 'reserve']);
    expect(result.open[0]!.targetPerSecond).toBe(result.open[1]!.targetPerSecond);
    for (const run of result.open) {
      expect(run.achievedPerSecond, run.scenario).toBeGreaterThan(0);
      expect(run.failures, run.scenario).toBe(0);
      expect(run.warmupLatencyMs?.p99, run.scenario).toBeGreaterThan(0);
    }
    expect(formatHttpBench(result, options)).toContain('warm-up');
    expect(Number.isFinite(result.reserveShareOfCeiling)).toBe(true);
    expect(formatHttpBench(result, options)).toContain('req/s');
  });
});
