/**
 * The deterministic simulation (bench/simulation.ts) as a test: a fixed list of seeds over
 * 1, 2 and 3 shards, each run twice to prove it is deterministic.
 *
 * To replay a failure, run with the seed it printed:
 *   SIM_SEED=1234 SIM_SHARDS=2 SIM_STEPS=10000 npx vitest run --project sim
 * SIM_SHARDS defaults to each of 1, 2 and 3; SIM_STEPS to 10,000.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, type SimulationReport } from '../bench/simulation.js';

const stepsPerRun = Number(process.env.SIM_STEPS ?? 10_000);

/** (seed, shards) pairs: the replayed one from the environment, else a fixed list. */
function runs(): Array<{ seed: number; shards: number }> {
  if (process.env.SIM_SEED !== undefined) {
    const seed = Number(process.env.SIM_SEED);
    const shardCounts = process.env.SIM_SHARDS !== undefined ? [Number(process.env.SIM_SHARDS)] : [1, 2, 3];
    return shardCounts.map((shards) => ({ seed, shards }));
  }
  const seeds = [1, 2, 3, 42, 1337, 65_537, 271_828, 3_141_592, 0xdead_beef, 0xffff_fffe];
  return seeds.map((seed, i) => ({ seed, shards: 1 + (i % 3) }));
}

describe('deterministic simulation', () => {
  const reports: SimulationReport[] = [];

  for (const { seed, shards } of runs()) {
    it(`seed ${seed}, ${shards} shard(s), ${stepsPerRun} steps`, async () => {
      const report = await runSimulation({ seed, steps: stepsPerRun, shards });
      reports.push(report);
      const c = report.counters;
      expect(c.steps).toBe(stepsPerRun);
      expect(c.crashesBeforeAppend + c.crashesAfterAppend).toBeGreaterThan(0);
      expect(c.appendFailures).toBeGreaterThan(0);
      expect(c.expiries).toBeGreaterThan(0);
      expect(c.replayChecks).toBeGreaterThan(0);
      if (shards > 1) expect(c.crossShardReservations).toBeGreaterThan(0);
    });
  }

  it('replays a seed exactly: same digest, same trace, same counters', async () => {
    const seed = process.env.SIM_SEED !== undefined ? Number(process.env.SIM_SEED) : 7;
    const shards = process.env.SIM_SHARDS !== undefined ? Number(process.env.SIM_SHARDS) : 3;
    const first = await runSimulation({ seed, steps: 3_000, shards });
    const second = await runSimulation({ seed, steps: 3_000, shards });
    expect(second.digest).toBe(first.digest);
    expect(second.trace).toBe(first.trace);
    expect(second.counters).toEqual(first.counters);
    expect(second.rejections).toEqual(first.rejections);
    // A different seed takes another path.
    const other = await runSimulation({ seed: seed + 1, steps: 3_000, shards });
    expect(other.trace).not.toBe(first.trace);
  });

  it('covers every fault and coordination path across the runs', () => {
    // Skipped when a single test was selected (the reports are then incomplete).
    if (reports.length === 0) return;
    const sum = (pick: (report: SimulationReport) => number): number =>
      reports.reduce((total, report) => total + pick(report), 0);
    expect(sum((r) => r.counters.steps)).toBeGreaterThanOrEqual(
      Math.min(100_000, reports.length * stepsPerRun),
    );
    expect(sum((r) => r.counters.crashesBeforeAppend)).toBeGreaterThan(0);
    expect(sum((r) => r.counters.crashesAfterAppend)).toBeGreaterThan(0);
    expect(sum((r) => r.counters.processRestarts)).toBeGreaterThan(0);
    expect(sum((r) => r.counters.snapshots)).toBeGreaterThan(0);
    expect(sum((r) => r.counters.expectationsChecked)).toBeGreaterThan(0);
  });
});
