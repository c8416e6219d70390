/**
 * Property tests of the real engine (worker threads, WAL in a MemoryWalStore) against the
 * reference model (test/support/reference-model.ts).
 *
 * fast-check generates a small universe (3-6 SKUs, 2-3 locations, 1-2 channels, 5
 * reservation ids, 3 adjustment keys, so repeats and conflicts are frequent) and a
 * sequence of commands and queries over it, partial commits by SKU included (across the
 * parts of a cross-shard reservation they must answer as one shard would). The clock is a
 * ManualClock that never moves,
 * so nothing expires. Every reply's essence must equal the model's (one documented
 * exception: which code a refused multi-shard reservation reports, see expectSameReply),
 * the final state must equal the model's, and every shard's invariants must hold.
 *
 *  1. sequential execute() on 1, 2 or 3 shards;
 *  2. restarts on the same store with a different shard count (twice, with traffic and
 *     sometimes a snapshot in between): the state and its layout-independent digest survive;
 *  3. one executeMany() of the whole sequence, on 1 shard (every kind of request) and on
 *     2-3 shards (SKU-keyed requests and reservations whose lines live on one shard): a
 *     shard's mailbox keeps order, so single-shard requests see each other exactly as
 *     sequential ones do.
 *
 * STOCKD_FC_RUNS=n runs every property n times (a soak); STOCKD_FC_SEED=s replays a seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { shardOf } from '../src/actors/hash.js';
import type { LineRequest, Reply, Request, Reserve, SourcingStrategy } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';
import { ManualClock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { essence, ReferenceModel } from './support/reference-model.js';

/* --------------------------------------------------------------------------- universe */

// Ordered so that the first three spread over every shard for 2 and 3 shards.
const allSkus = ['sku-a', 'sku-b', 'sku-e', 'sku-c', 'sku-d', 'sku-f'];
// Channel order differs from name order, so 'priority' without a channel differs from with one.
const allLocations = ['loc-1', 'loc-2', 'loc-3'];
const allChannels = ['web', 'store'];
/** Never configured: reserving or asking ATP through it is UNKNOWN_CHANNEL. */
const ghostChannel = 'ghost';
const reservationIds = ['r1', 'r2', 'r3', 'r4', 'r5'];
const adjustmentKeys = ['k1', 'k2', 'k3'];

interface Universe {
  readonly skus: readonly string[];
  readonly locations: readonly string[];
  readonly channels: readonly string[];
  readonly shards: number;
}

const universeArb: fc.Arbitrary<Universe> = fc
  .record({
    skuCount: fc.integer({ min: 3, max: 6 }),
    locationCount: fc.integer({ min: 2, max: 3 }),
    channelCount: fc.integer({ min: 1, max: 2 }),
    shards: fc.constantFrom(1, 2, 3),
  })
  .map(({ skuCount, locationCount, channelCount, shards }) => ({
    skus: allSkus.slice(0, skuCount),
    locations: allLocations.slice(0, locationCount),
    channels: allChannels.slice(0, channelCount),
    shards,
  }));

/* ------------------------------------------------------------------------- generators */

interface Options {
  /**
   * Only requests that go straight to one shard's mailbox: SKU-keyed ones (set, adjust,
   * safety, stock, atp) and reservations whose lines all live on one shard, each with an
   * id of its own (a second request for the same id would not be single-shard).
   */
  readonly singleShardOnly?: boolean;
  /** Leave channel upserts out of the body (they are broadcast, not single-shard). */
  readonly noChannels?: boolean;
}

function channelArb(u: Universe): fc.Arbitrary<Request> {
  return fc.record({
    type: fc.constant('channel' as const),
    channel: fc.constantFrom(...u.channels),
    locations: fc.shuffledSubarray([...u.locations], { minLength: 1 }),
    buffer: fc.integer({ min: 0, max: 3 }),
  });
}

function requestArb(u: Universe, options: Options): fc.Arbitrary<Request> {
  const sku = fc.constantFrom(...u.skus);
  const location = fc.constantFrom(...u.locations);
  const rid = fc.constantFrom(...reservationIds);
  const maybeChannel = fc.option(
    fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...u.channels) }, fc.constant(ghostChannel)),
    { nil: undefined },
  );

  const set = fc.record(
    {
      type: fc.constant('set' as const),
      sku,
      location,
      onHand: fc.integer({ min: 0, max: 10 }),
      safetyStock: fc.integer({ min: 0, max: 2 }),
    },
    { requiredKeys: ['type', 'sku', 'location', 'onHand'] },
  );
  const adjust = fc.record({
    type: fc.constant('adjust' as const),
    sku,
    location,
    delta: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: -4, max: 6 }) }, fc.constant(0)),
    reason: fc.constantFrom('recount', 'damage'),
    key: fc.constantFrom(...adjustmentKeys),
  });
  const safety = fc.record({
    type: fc.constant('safety' as const),
    sku,
    location,
    safetyStock: fc.integer({ min: 0, max: 3 }),
  });
  const stock = fc.record({ type: fc.constant('stock' as const), sku });
  const atp = fc.record(
    { type: fc.constant('atp' as const), sku, channel: maybeChannel },
    { requiredKeys: ['type', 'sku'] },
  );
  const skuKeyed: fc.WeightedArbitrary<Request>[] = [
    { weight: 4, arbitrary: set },
    { weight: 3, arbitrary: adjust },
    { weight: 1, arbitrary: safety },
    { weight: 1, arbitrary: stock },
    { weight: 2, arbitrary: atp },
  ];

  const lineOf = (skuArb: fc.Arbitrary<string>): fc.Arbitrary<LineRequest> =>
    fc.record(
      {
        sku: skuArb,
        qty: fc.oneof({ weight: 29, arbitrary: fc.integer({ min: 1, max: 4 }) }, fc.constant(0)),
        location: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, location),
      },
      { requiredKeys: ['sku', 'qty'] },
    );
  const reserveOf = (lines: fc.Arbitrary<LineRequest[]>): fc.Arbitrary<Request> =>
    fc
      .record(
        {
          reservationId: rid,
          channel: maybeChannel,
          strategy: fc.constantFrom<SourcingStrategy>('priority', 'split', 'most_available'),
          ttlSeconds: fc.constantFrom(60, 600),
          orderId: fc.constant('order-1'),
          lines,
        },
        { requiredKeys: ['reservationId', 'lines'] },
      )
      .map((body): Reserve => {
        // Optional keys absent, not present-and-undefined, so requests look like a client's.
        const request: Record<string, unknown> = { type: 'reserve' };
        for (const [key, value] of Object.entries(body)) if (value !== undefined) request[key] = value;
        request.lines = body.lines.map((l) => (l.location === undefined ? { sku: l.sku, qty: l.qty } : l));
        return request as unknown as Reserve;
      });

  if (options.singleShardOnly) {
    const skusOfShard = new Map<number, string[]>();
    for (const s of u.skus) {
      const shard = shardOf(s, defaultLimits.partitionCount, u.shards);
      skusOfShard.set(shard, [...(skusOfShard.get(shard) ?? []), s]);
    }
    const oneShardLines = fc
      .constantFrom(...skusOfShard.values())
      .chain((skus) => fc.array(lineOf(fc.constantFrom(...skus)), { minLength: 1, maxLength: 3 }));
    return fc.oneof(...skuKeyed, { weight: 6, arbitrary: reserveOf(oneShardLines) });
  }

  const lines = fc.array(lineOf(sku), { minLength: 1, maxLength: 3 });
  const reserve = reserveOf(lines);
  const commit = fc.record({ type: fc.constant('commit' as const), reservationId: rid });
  // A partial commit naming SKUs (each once): on several shards it spans parts.
  const commitLines = fc.record({
    type: fc.constant('commit' as const),
    reservationId: rid,
    lines: fc.uniqueArray(sku, { minLength: 1, maxLength: 2 }).map((skus) => skus.map((s) => ({ sku: s }))),
  });
  const release = fc.record({ type: fc.constant('release' as const), reservationId: rid });
  const extend = fc.record({
    type: fc.constant('extend' as const),
    reservationId: rid,
    ttlSeconds: fc.constantFrom(0, 30, 300),
  });
  const get = fc.record({ type: fc.constant('get' as const), reservationId: rid });
  const all: fc.WeightedArbitrary<Request>[] = [
    ...skuKeyed,
    { weight: 8, arbitrary: reserve },
    { weight: 2, arbitrary: commit },
    { weight: 2, arbitrary: commitLines },
    { weight: 2, arbitrary: release },
    { weight: 1, arbitrary: extend },
    { weight: 1, arbitrary: get },
  ];
  if (!options.noChannels) all.push({ weight: 1, arbitrary: channelArb(u) });
  return fc.oneof(...all);
}

/** Every (sku, location) gets a stock level and every channel is configured, then random traffic. */
function setupArb(u: Universe): fc.Arbitrary<Request[]> {
  const sets = u.skus.flatMap((sku) =>
    u.locations.map((location) =>
      fc.record({
        type: fc.constant('set' as const),
        sku: fc.constant(sku),
        location: fc.constant(location),
        onHand: fc.integer({ min: 0, max: 12 }),
      }),
    ),
  );
  const channels = u.channels.map((channel) =>
    fc.record({
      type: fc.constant('channel' as const),
      channel: fc.constant(channel),
      locations: fc.shuffledSubarray([...u.locations], { minLength: 1 }),
      buffer: fc.integer({ min: 0, max: 2 }),
    }),
  );
  return fc.tuple(...sets, ...channels).map((requests) => [...requests]);
}

/**
 * A number in a generated sequence stands for "send an earlier reservation again,
 * verbatim" (a client retry: an idempotent replay, or a conflict if the id was reused).
 */
function withRepeats(items: ReadonlyArray<Request | number>): Request[] {
  const out: Request[] = [];
  for (const item of items) {
    if (typeof item !== 'number') out.push(item);
    else {
      const earlier = out.filter((r) => r.type === 'reserve');
      if (earlier.length > 0) out.push(earlier[item % earlier.length]!);
    }
  }
  return out;
}

interface Scenario {
  readonly u: Universe;
  readonly setup: Request[];
  readonly body: Request[];
}

function scenarioArb(
  options: Options & { readonly shards?: readonly number[] } = {},
): fc.Arbitrary<Scenario> {
  return universeArb
    .filter((u) => options.shards === undefined || options.shards.includes(u.shards))
    .chain((u) =>
      fc.record({
        u: fc.constant(u),
        setup: setupArb(u),
        body: options.singleShardOnly
          ? fc
              .array(requestArb(u, options), { minLength: 1, maxLength: 60, size: 'max' })
              .map((requests) =>
                requests.map((r, i) => (r.type === 'reserve' ? { ...r, reservationId: `m-${i}` } : r)),
              )
          : fc
              .array(fc.oneof({ weight: 12, arbitrary: requestArb(u, options) }, fc.nat()), {
                minLength: 1,
                maxLength: 60,
                size: 'max',
              })
              .map(withRepeats),
      }),
    );
}

/* ---------------------------------------------------------------------------- helpers */

/**
 * Runs per property; STOCKD_FC_RUNS overrides them all (a longer soak), STOCKD_FC_SEED
 * replays a reported failure. Every run starts real workers, so shrinking a failure is
 * slow: it stops after a time limit and reports the smallest counterexample found so far.
 */
function fcOptions(numRuns: number): fc.Parameters<unknown> {
  const seed = process.env.STOCKD_FC_SEED;
  return {
    numRuns: Number(process.env.STOCKD_FC_RUNS ?? numRuns),
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    interruptAfterTimeLimit: 45_000,
  };
}

const describeRequest = (i: number, request: Request) => `request #${i}: ${JSON.stringify(request)}`;

async function executeAndCompare(
  engine: Engine,
  model: ReferenceModel,
  clock: ManualClock,
  requests: readonly Request[],
  offset = 0,
): Promise<void> {
  for (let i = 0; i < requests.length; i++) {
    const request = requests[i]!;
    const actual = await engine.execute(request);
    const expected = model.execute(request, clock.now());
    expectSameReply(actual, expected, describeRequest(offset + i, request));
  }
}

function expectSameReply(actual: Reply, expected: Reply, what: string): void {
  expect(essence(actual), what).toEqual(essence(expected));
}

/** The whole observable state: stock of every SKU, ATP per channel, every reservation, invariants. */
async function expectSameState(
  engine: Engine,
  model: ReferenceModel,
  clock: ManualClock,
  u: Universe,
  extraReservationIds: readonly string[] = [],
): Promise<void> {
  const queries: Request[] = [{ type: 'channels' }];
  for (const sku of u.skus) {
    queries.push({ type: 'stock', sku });
    queries.push({ type: 'atp', sku });
    for (const channel of u.channels) queries.push({ type: 'atp', sku, channel });
  }
  for (const reservationId of [...reservationIds, ...extraReservationIds]) {
    queries.push({ type: 'get', reservationId });
  }
  for (const query of queries) {
    const actual = await engine.execute(query);
    const expected = model.execute(query, clock.now());
    expect(essence(actual), `final state: ${JSON.stringify(query)}`).toEqual(essence(expected));
  }
  await expectNoViolations(engine);
}

async function expectNoViolations(engine: Engine): Promise<void> {
  const shards = await engine.inspect();
  expect(shards.flatMap((shard) => shard.violations)).toEqual([]);
}

function startEngine(store: MemoryWalStore, shards: number, clock: ManualClock): Promise<Engine> {
  return Engine.start({ store, shards, clock });
}

/* -------------------------------------------------------------------------- properties */

describe('engine against the reference model', () => {
  it('sequential execute() matches the model reply by reply, and in the final state', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async ({ u, setup, body }) => {
        const clock = new ManualClock();
        const model = new ReferenceModel();
        const engine = await startEngine(new MemoryWalStore(), u.shards, clock);
        try {
          await executeAndCompare(engine, model, clock, setup);
          await executeAndCompare(engine, model, clock, body, setup.length);
          await expectSameState(engine, model, clock, u);
        } finally {
          await engine.stop();
        }
      }),
      fcOptions(30),
    );
  });

  it('a restart with a different shard count keeps the digest and the state', async () => {
    const scenario = scenarioArb().chain((s) => {
      // Traffic after the first restart; its repeats may resend reservations from before it.
      const before = s.body.filter((r) => r.type === 'reserve');
      const more = fc
        .array(fc.oneof({ weight: 4, arbitrary: requestArb(s.u, {}) }, fc.nat()), {
          maxLength: 15,
          size: 'max',
        })
        .map((items) => withRepeats([...before, ...items]).slice(before.length));
      return fc.record({
        s: fc.constant(s),
        more,
        // Shard counts of the second and third engine, each different from the one before.
        second: fc.constantFrom(...[1, 2, 3].filter((n) => n !== s.u.shards)),
        thirdOffset: fc.constantFrom(1, 2),
        snapshotBeforeFirstRestart: fc.boolean(),
      });
    });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ s, more, second, thirdOffset, snapshotBeforeFirstRestart }) => {
        const { u, setup, body } = s;
        const third = ((second - 1 + thirdOffset) % 3) + 1;
        const clock = new ManualClock();
        const model = new ReferenceModel();
        const store = new MemoryWalStore();

        let engine = await startEngine(store, u.shards, clock);
        let digest: string;
        try {
          await executeAndCompare(engine, model, clock, [...setup, ...body]);
          if (snapshotBeforeFirstRestart) await engine.snapshotNow();
          digest = await engine.digest();
        } finally {
          await engine.stop();
        }

        engine = await startEngine(store, second, clock);
        try {
          expect(await engine.digest(), `digest after ${u.shards} → ${second} shards`).toBe(digest);
          await expectSameState(engine, model, clock, u);
          // Traffic after the restart (the cross-shard directory was rebuilt from the shards).
          await executeAndCompare(engine, model, clock, more);
          digest = await engine.digest();
        } finally {
          await engine.stop();
        }

        engine = await startEngine(store, third, clock);
        try {
          expect(await engine.digest(), `digest after ${second} → ${third} shards`).toBe(digest);
          await expectSameState(engine, model, clock, u);
          digest = await engine.digest();
        } finally {
          await engine.stop();
        }

        // With the same shard count Engine.digest() itself must survive a restart.
        engine = await startEngine(store, third, clock);
        try {
          expect(await engine.digest(), `Engine.digest() after ${third} → ${third} shards`).toBe(digest);
        } finally {
          await engine.stop();
        }
      }),
      fcOptions(15),
    );
  });

  it('one executeMany() of single-shard requests (1 shard, all kinds) matches the model in order', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ shards: [1], noChannels: true }), async ({ u, setup, body }) => {
        const clock = new ManualClock();
        const model = new ReferenceModel();
        const engine = await startEngine(new MemoryWalStore(), u.shards, clock);
        try {
          await executeAndCompare(engine, model, clock, setup);
          const replies = await engine.executeMany(body);
          expect(replies).toHaveLength(body.length);
          for (let i = 0; i < body.length; i++) {
            const expected = model.execute(body[i]!, clock.now());
            expectSameReply(replies[i]!, expected, describeRequest(i, body[i]!));
          }
          await expectSameState(engine, model, clock, u);
        } finally {
          await engine.stop();
        }
      }),
      fcOptions(30),
    );
  });

  it('one executeMany() of single-shard requests over 2-3 shards matches the model in order', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ shards: [2, 3], singleShardOnly: true }), async ({ u, setup, body }) => {
        const clock = new ManualClock();
        const model = new ReferenceModel();
        const engine = await startEngine(new MemoryWalStore(), u.shards, clock);
        try {
          await executeAndCompare(engine, model, clock, setup);
          const replies = await engine.executeMany(body);
          for (let i = 0; i < body.length; i++) {
            const expected = model.execute(body[i]!, clock.now());
            expectSameReply(replies[i]!, expected, describeRequest(i, body[i]!));
          }
          const ids = body.flatMap((r) => (r.type === 'reserve' ? [r.reservationId] : []));
          await expectSameState(engine, model, clock, u, ids);
        } finally {
          await engine.stop();
        }
      }),
      fcOptions(20),
    );
  });
});
