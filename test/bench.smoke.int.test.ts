import { describe, expect, it } from 'vitest';
import { formatCoreLoop, lookupYardstick, runCoreLoop } from '../bench/core-loop.js';
import {
  type ActivityCounts,
  formatThroughput,
  openLoop,
  rememberEarlierReservations,
  runThroughput,
  seedStock,
  Workload,
} from '../bench/engine-throughput.js';
import { measureDirectoryMemory, measureRecordMemory, measureReservationMemory } from '../bench/memory.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

// Tiny forms of every benchmark, so they never rot. Figures are not asserted here (shared,
// noisy machines); only that each benchmark runs end to end and reports sane numbers.
/** The engine benchmark at a tiny size. */
const tinyThroughput = {
  skus: 200,
  seconds: 0.3,
  waveSize: 100,
  latencyWaveSize: 20,
  wavesInFlight: 2,
  loadFraction: 0.5,
  rates: [500],
};

describe('benchmark smoke', () => {
  it.each([
    { shards: 1, hotSku: false },
    { shards: 2, hotSku: true },
  ])('engine throughput runs (shards=$shards hot=$hotSku)', async ({ shards, hotSku }) => {
    const result = await runThroughput({ ...tinyThroughput, shards, hotSku, youngGenerationMb: 8 });
    expect(result.commands).toBeGreaterThan(0);
    expect(result.atRates.map((r) => r.rate)).toEqual([500]);
    expect(result.atRates[0]!.roundTripMs.max).toBeGreaterThan(0);
    expect(result.commandsPerSecond).toBeGreaterThan(0);
    expect(result.rejected).toBe(0);
    expect(result.roundTripMs!.p99).toBeGreaterThanOrEqual(result.roundTripMs!.p50);
    expect(formatThroughput(result)).toContain('commands/s');
    // The open loop at half of saturation, split by background snapshots: every wave on one side.
    const split = result.snapshots!;
    expect((split.during?.waves ?? 0) + (split.without?.waves ?? 0)).toBeGreaterThan(0);
    expect(formatThroughput(result)).toMatch(
      /no background snapshot ran meanwhile|while a background snapshot ran/,
    );
  });

  it('engine throughput splits the open loop by background snapshots', async () => {
    const base = { ...tinyThroughput, shards: 1, hotSku: false, seconds: 0.5, rates: [] };
    // Due every 2,000 events, checked every 50 ms: snapshots run through the open loop.
    const often = await runThroughput({ ...base, snapshotEveryEvents: 2_000, snapshotCheckMs: 50 });
    expect(often.snapshots!.overlapped).toBeGreaterThan(0);
    expect(often.snapshots!.during!.waves).toBeGreaterThan(0);
    expect(formatThroughput(often)).toContain('while a background snapshot ran');
    const none = await runThroughput({
      ...base,
      snapshotEveryEvents: 1_000_000_000_000,
      snapshotCheckMs: 50,
    });
    expect(none.snapshots).toMatchObject({ during: null, overlapped: 0 });
    expect(none.snapshots!.without!.waves).toBeGreaterThan(0);
    expect(formatThroughput(none)).toContain('no background snapshot ran meanwhile');
  });

  it('engine throughput without the saturation phase measures only the fixed rates', async () => {
    const result = await runThroughput({ ...tinyThroughput, shards: 1, hotSku: false, saturation: false });
    expect(result.commandsPerSecond).toBeNull();
    expect(result.roundTripMs).toBeNull();
    expect(result.snapshots).toBeNull();
    expect(result.atRates[0]!.roundTripMs.max).toBeGreaterThan(0);
    expect(formatThroughput(result)).toContain('saturation not measured');
    expect(formatThroughput(result)).toContain('at 500/s');
  });

  it("the open loop sets apart the waves an activity's run overlapped", async () => {
    const engine = await Engine.start({ store: new MemoryWalStore(), shards: 1 });
    try {
      const options = { ...tinyThroughput, shards: 1, hotSku: false };
      await seedStock(engine, options);
      const workload = new Workload(options);
      const measure = async (activity: () => ActivityCounts) => {
        const result = await openLoop(engine, workload, options, 2_000, 0.4, {
          warmupSeconds: 0.05,
          activity,
        });
        const counts = {
          all: result.all.totalCount,
          marked: result.marked.totalCount,
          unmarked: result.unmarked.totalCount,
          runs: result.overlappingRuns,
        };
        result.destroy();
        return counts;
      };
      // A run under way throughout: every wave. 20-command waves at 2,000/s leave every
      // 10 ms: 5 in the warm-up, not counted, then 40.
      const throughout = await measure(() => ({ started: 1, finished: 0 }));
      expect(throughout.all).toBe(40);
      expect(throughout).toMatchObject({ marked: throughout.all, unmarked: 0, runs: 1 });
      // Runs that ended before: none.
      const before = await measure(() => ({ started: 3, finished: 3 }));
      expect(before).toMatchObject({ marked: 0, unmarked: before.all, runs: 0 });
      // One run from 150 to 250 ms: the waves around it, and not the others.
      const t0 = performance.now();
      const middle = await measure(() => {
        const t = performance.now() - t0;
        return { started: t >= 150 ? 1 : 0, finished: t >= 250 ? 1 : 0 };
      });
      expect(middle.runs).toBe(1);
      expect(middle.marked).toBeGreaterThan(0);
      expect(middle.unmarked).toBeGreaterThan(0);
      expect(middle.marked + middle.unmarked).toBe(middle.all);
    } finally {
      await engine.stop();
    }
  });

  it('BENCH_REMEMBERED fills the router directory: an earlier id is taken, with two shards', async () => {
    const engine = await Engine.start({ store: new MemoryWalStore(), shards: 2 });
    try {
      rememberEarlierReservations(engine, 250_000);
      await engine.execute({ type: 'set', sku: 'A', location: 'WH1', onHand: 10 });
      const lines = [{ sku: 'A', qty: 1, location: 'WH1' }];
      const reused = await engine.execute({ type: 'reserve', reservationId: 'earlier-0000249999', lines });
      expect(reused).toMatchObject({ ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
      const fresh = await engine.execute({ type: 'reserve', reservationId: 'earlier-0000250000', lines });
      expect(fresh.ok).toBe(true);
    } finally {
      await engine.stop();
    }
  });

  it('the bare core loop is measured, with its slowest batch', () => {
    const result = runCoreLoop(5_000, 100, 1_000);
    expect(result.commandsPerSecond).toBeGreaterThan(0);
    // Half the mix reserves; the other half commits or releases earlier reservations, and
    // finished reservations are kept for the retention window.
    expect(result.reservations).toBe(2_500);
    expect(result.batchMs.max).toBeGreaterThanOrEqual(result.batchMs.p50);
    expect(result.slowest.ms).toBe(result.batchMs.max);
    expect(formatCoreLoop(result)).toContain('commands/s');
  });

  it('the lookup yardstick times a lookup of every key, in a Map and in the id index', () => {
    const y = lookupYardstick(20_000);
    for (const ns of [y.mapNs, y.indexNs, y.indexMissNs]) {
      expect(Number.isFinite(ns)).toBe(true);
      expect(ns).toBeGreaterThan(0);
    }
  });

  it('memory per record is measured', () => {
    const result = measureRecordMemory(10_000, 2);
    // Without --expose-gc (as under vitest) the figure is noisy at this size; `npm run bench` measures it properly.
    expect(result.records).toBe(10_000);
    expect(Number.isFinite(result.bytesPerRecord)).toBe(true);
  });

  it('memory per reservation is measured', () => {
    const result = measureReservationMemory(10_000);
    expect(result.reservations).toBe(10_000);
    expect(Number.isFinite(result.bytesPerReservation)).toBe(true);
    expect(result.bytesPerReservation).toBeGreaterThanOrEqual(result.heapBytesPerReservation);
  });

  it('memory per reservation in the router directory is measured', () => {
    const result = measureDirectoryMemory(10_000);
    expect(result.reservations).toBe(10_000);
    expect(Number.isFinite(result.bytesPerReservation)).toBe(true);
  });
});
