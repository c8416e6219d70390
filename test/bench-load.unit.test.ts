/**
 * The load-generation core of the benchmark suite, without any target: the Zipf sampler,
 * the workloads' mix, the mapping onto the HTTP contract, and the open loop's correction
 * for coordinated omission.
 */
import { describe, expect, it } from 'vitest';
import { httpCallOf, outcomesOf } from '../bench/load/http-codec.js';
import { openLoop } from '../bench/load/open-loop.js';
import { isFailure, type Operation, okOutcome, single } from '../bench/load/operation.js';
import { Random, ZipfSampler } from '../bench/load/random.js';
import { Recorder } from '../bench/load/recorder.js';
import type { Sender } from '../bench/load/senders.js';
import { judgeStep, stepLoad } from '../bench/load/step.js';
import { createScenario, defaultSizes } from '../bench/scenarios.js';

describe('ZipfSampler', () => {
  it('is uniform at s = 0 and halves from rank 1 to rank 2 at s = 1', () => {
    const flat = new ZipfSampler(4, 0);
    for (let k = 0; k < 4; k++) expect(flat.probability(k)).toBeCloseTo(0.25, 12);
    const skewed = new ZipfSampler(1_000, 1);
    expect(skewed.probability(0) / skewed.probability(1)).toBeCloseTo(2, 9);
  });

  it('draws ranks with the intended frequencies', () => {
    const sampler = new ZipfSampler(100, 1.2);
    const random = new Random(7);
    const counts = new Array<number>(100).fill(0);
    const draws = 200_000;
    for (let i = 0; i < draws; i++) counts[sampler.sample(random)]!++;
    for (const k of [0, 1, 9, 99]) {
      expect(counts[k]! / draws).toBeCloseTo(sampler.probability(k), 2);
    }
  });
});

describe('workloads', () => {
  const sizes = { ...defaultSizes, skus: 100, locations: 3 };

  it('are the same for the same seed', () => {
    const a = createScenario('zipf', sizes, 't');
    const b = createScenario('zipf', sizes, 't');
    for (let i = 0; i < 100; i++) expect(a.next()).toEqual(b.next());
  });

  it('lifecycle: reserves, then commits and releases acknowledged holds in the configured shares', () => {
    const scenario = createScenario('lifecycle', sizes, 't');
    const counts: Record<string, number> = { reserve: 0, commit: 0, release: 0 };
    let shortTtl = 0;
    const settled = new Set<string>();
    for (let i = 0; i < 40_000; i++) {
      const operation = scenario.next()!;
      const request = operation.requests[0]!;
      counts[request.type]!++;
      if (request.type === 'reserve' && request.ttlSeconds === sizes.expireTtlSeconds) shortTtl++;
      if (request.type === 'commit' || request.type === 'release') {
        // Only acknowledged holds are settled, and each one once.
        expect(settled.has(request.reservationId)).toBe(false);
        settled.add(request.reservationId);
      }
      scenario.observe(operation, [okOutcome]);
    }
    expect(counts.commit! / counts.reserve!).toBeCloseTo(0.7, 1);
    expect(counts.release! / counts.reserve!).toBeCloseTo(0.2, 1);
    expect(shortTtl / counts.reserve!).toBeCloseTo(0.1, 1);
  });

  it('lifecycle: a refused hold is never settled', () => {
    const scenario = createScenario('lifecycle', sizes, 't');
    for (let i = 0; i < 1_000; i++) {
      const operation = scenario.next()!;
      expect(operation.requests[0]!.type).toBe('reserve');
      scenario.observe(operation, ['INSUFFICIENT_STOCK']);
    }
  });

  it('wms-resync: a finite job of absolute sets in batches', () => {
    const scenario = createScenario('wms-resync', { ...sizes, resyncSets: 2_500, batchSize: 1_000 }, 't');
    expect(scenario.finiteOperations).toBe(3);
    const sizesSent: number[] = [];
    for (let operation = scenario.next(); operation !== null; operation = scenario.next()) {
      expect(operation.batch).toBe(true);
      expect(operation.requests.every((request) => request.type === 'set')).toBe(true);
      sizesSent.push(operation.requests.length);
    }
    expect(sizesSent).toEqual([1_000, 1_000, 500]);
  });

  it('flash-sale: the check fails when more is reserved than is on hand', async () => {
    const scenario = createScenario('flash-sale', { ...sizes, flashStock: 10 }, 't');
    const [seed] = scenario.seed();
    const good = await scenario.verify!(async () => [{ location: seed!.location, onHand: 10, reserved: 10 }]);
    expect(good.every((check) => check.passed)).toBe(true);
    const oversold = await scenario.verify!(async () => [
      { location: seed!.location, onHand: 10, reserved: 11 },
    ]);
    expect(oversold.some((check) => !check.passed)).toBe(true);
  });
});

describe('the HTTP mapping', () => {
  it('renders each request as its route of the contract', () => {
    const reserve = httpCallOf(
      single({
        type: 'reserve',
        reservationId: 'r/1',
        ttlSeconds: 60,
        bodyHash: 5,
        lines: [{ sku: 'A', qty: 1, location: 'L0' }],
      }),
    );
    expect(reserve).toEqual({
      method: 'POST',
      path: '/v1/reservations',
      body: JSON.stringify({
        reservationId: 'r/1',
        ttlSeconds: 60,
        lines: [{ sku: 'A', qty: 1, location: 'L0' }],
      }),
    });
    expect(httpCallOf(single({ type: 'commit', reservationId: 'r/1' }))).toEqual({
      method: 'POST',
      path: '/v1/reservations/r%2F1/commit',
      body: undefined,
    });
    expect(httpCallOf(single({ type: 'atp', sku: 'A B', channel: 'web' })).path).toBe(
      '/v1/atp/A%20B?channel=web',
    );
    expect(httpCallOf(single({ type: 'set', sku: 'A', location: 'L0', onHand: 3 }))).toEqual({
      method: 'PUT',
      path: '/v1/stock/A/L0',
      body: '{"onHand":3}',
    });
    const batch = httpCallOf({
      batch: true,
      requests: [{ type: 'set', sku: 'A', location: 'L0', onHand: 3 }],
    });
    expect(batch.path).toBe('/v1/batch');
    expect(JSON.parse(batch.body!)).toEqual({
      commands: [{ op: 'set', sku: 'A', location: 'L0', onHand: 3 }],
    });
  });

  it('reads outcomes from statuses, problem bodies and batch results', () => {
    const one = single({ type: 'atp', sku: 'A' });
    expect(outcomesOf(one, 200, '{}')).toEqual([okOutcome]);
    expect(outcomesOf(one, 409, '{"code":"INSUFFICIENT_STOCK"}')).toEqual(['INSUFFICIENT_STOCK']);
    expect(outcomesOf(one, 502, '<html>')).toEqual(['HTTP_502']);
    const two: Operation = { batch: true, requests: [one.requests[0]!, one.requests[0]!] };
    const body = JSON.stringify({
      results: [
        { status: 200, body: {} },
        { status: 422, body: { code: 'UNKNOWN_CHANNEL' } },
      ],
    });
    expect(outcomesOf(two, 200, body)).toEqual([okOutcome, 'UNKNOWN_CHANNEL']);
    expect(outcomesOf(two, 503, '{"code":"OVERLOADED"}')).toEqual(['OVERLOADED', 'OVERLOADED']);
    expect(['INSUFFICIENT_STOCK', 'OVERLOADED', 'HTTP_502', 'TIMEOUT'].map(isFailure)).toEqual([
      false,
      true,
      true,
      true,
    ]);
  });
});

describe('the open loop', () => {
  it('measures from the scheduled send time, so a stall of the sender counts in full', async () => {
    const instant: Sender = {
      send: async (operation) => operation.requests.map(() => okOutcome),
      close: async () => {},
    };
    const scenario = createScenario('uniform', { ...defaultSizes, skus: 10, locations: 1 }, 't');
    const recorder = new Recorder();
    // 100 operations a second for 0.5 s; at 100 ms this thread stalls for 200 ms, so the 20
    // operations due meanwhile leave late. A generator timing from the actual send would see ~0 ms.
    const stall = setTimeout(() => {
      const until = performance.now() + 200;
      while (performance.now() < until) {
        // Busy: nothing else runs on this thread, as in a GC pause or a saturated generator.
      }
    }, 100);
    const stats = await openLoop({
      scenario,
      recorder,
      sender: instant,
      rate: 100,
      seconds: 0.5,
      maxInFlight: 1_000,
      drainSeconds: 1,
    });
    clearTimeout(stall);
    const measurement = recorder.result(stats.elapsedSeconds);
    recorder.destroy();
    expect(stats.sent).toBe(50);
    expect(measurement.operations.ok).toBe(50);
    expect(measurement.latencyMs.max).toBeGreaterThan(150);
    expect(measurement.latencyMs.p90).toBeGreaterThan(50);
    expect(measurement.latencyMs.p50).toBeLessThan(50);
  });

  it('marks a run saturated when too many operations are outstanding', async () => {
    const never: Sender = { send: () => new Promise(() => {}), close: async () => {} };
    const recorder = new Recorder();
    const stats = await openLoop({
      scenario: createScenario('uniform', { ...defaultSizes, skus: 10, locations: 1 }, 't'),
      recorder,
      sender: never,
      rate: 1_000,
      seconds: 1,
      maxInFlight: 10,
      drainSeconds: 0.05,
    });
    const measurement = recorder.result(stats.elapsedSeconds);
    recorder.destroy();
    expect(stats.saturated).toBe(true);
    expect(stats.timedOut).toBe(10);
    expect(measurement.codes).toEqual({ TIMEOUT: 10 });
    expect(judgeStep(stats, measurement, 15)).not.toBe('');
  });
});

describe('the step mode', () => {
  it('doubles the rate while steps pass, stops at the first that misses the objective, and names the last that passed the knee', async () => {
    // Answers the first 300 operations at once and every later one after 150 ms: steps of
    // 1 s at 100 and 200 a second send 100 and 200 (all fast), the one at 400 sends 400,
    // all slow, so it misses the objective. (One-second steps and a 40 ms objective leave a
    // passing step room for a pause of a machine busy with other tests: its last answer may
    // come 110 ms late and its p99 be 40 ms and still pass.)
    let calls = 0;
    const slowingDown: Sender = {
      send: async (operation) => {
        if (calls++ >= 300) await new Promise((resolve) => setTimeout(resolve, 150));
        return operation.requests.map(() => okOutcome);
      },
      close: async () => {},
    };
    const outcome = await stepLoad({
      scenario: createScenario('uniform', { ...defaultSizes, skus: 10, locations: 1 }, 't'),
      sender: slowingDown,
      startRate: 100,
      factor: 2,
      stepSeconds: 1,
      maxSteps: 5,
      objectiveP99Ms: 40,
      maxInFlight: 1_000,
      drainSeconds: 2,
    });
    expect(outcome.steps.map((step) => step.offeredRate)).toEqual([100, 200, 400]);
    expect(outcome.steps.map((step) => step.passed)).toEqual([true, true, false]);
    // Its last answers come 150 ms late: the achieved rate is judged first, then the p99.
    expect(outcome.steps[2]!.reason).toMatch(
      /^achieved [\d.]+\/s of 400\/s offered$|^p99 [\d.]+ ms > 40 ms$/,
    );
    expect(outcome.knee?.offeredRate).toBe(200);
  });
});
