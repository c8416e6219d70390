/**
 * Shadow traffic (bench/shadow.ts) end to end: traffic recorded by a real engine is read
 * back from its WAL, turned back into commands and replayed at 10× into a fresh engine.
 * In order and on the recorded clock, the replayed state equals the recorded one — the
 * same digest — with the same or another shard count.
 *
 * The recorded traffic names its locations and TTLs, and lists a cross-shard reservation's
 * lines shard by shard: what a replay can rebuild exactly (the reservation body hash, part
 * of the digest, covers the request as the client sent it).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readShadowTraffic, replayTraffic, runShadow, ShadowClock } from '../bench/shadow.js';
import type { Request } from '../src/actors/types.js';
import { ManualClock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { PgWalStore } from '../src/persistence/pg-store.js';
import type { WalStore } from '../src/persistence/wal.js';
import { dropSchema, findPostgres, testDatabaseUrl, testSchemaName } from './support/services.js';

const postgres = await findPostgres();

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
});

async function start(store: WalStore, shards: number, clock: ManualClock | ShadowClock): Promise<Engine> {
  const engine = await Engine.start({ store, shards, clock });
  engines.push(engine);
  return engine;
}

/** Two SKUs on each of two shards. */
function skusByShard(engine: Engine): { a: string[]; b: string[] } {
  const a: string[] = [];
  const b: string[] = [];
  for (let i = 0; a.length < 2 || b.length < 2; i++) {
    const sku = `SKU-${i}`;
    (engine.shardOfSku(sku) === 0 ? a : b).push(sku);
  }
  return { a: a.slice(0, 2), b: b.slice(0, 2) };
}

/**
 * Records a day in the life of two shards: a channel, stock, safety stock, an adjustment,
 * single- and cross-shard holds, a partial commit, a commit naming a SKU alone, an
 * extension, a release, an expiry and a full commit, each 20 ms (recorded) after the last.
 */
async function record(engine: Engine, clock: ManualClock): Promise<void> {
  const { a, b } = skusByShard(engine);
  const [a0, a1] = a as [string, string];
  const [b0, b1] = b as [string, string];
  const send = async (request: Request, advanceMs = 20): Promise<void> => {
    clock.advance(advanceMs);
    const reply = await engine.execute(request);
    if (!reply.ok) throw new Error(`${request.type} refused: ${reply.code} ${reply.detail}`);
  };
  await send({ type: 'channel', channel: 'web', locations: ['dc-1', 'dc-2'], buffer: 1 });
  for (const sku of [a0, a1, b0, b1]) {
    await send({ type: 'set', sku, location: 'dc-1', onHand: 10 });
    await send({
      type: 'set',
      sku,
      location: 'dc-2',
      onHand: 5,
      sourceTs: Date.parse('2026-11-20T09:00:00Z'),
    });
  }
  await send({ type: 'safety', sku: a0, location: 'dc-1', safetyStock: 1 });
  await send({ type: 'adjust', sku: a0, location: 'dc-1', delta: 4, reason: 'receipt', key: 'po-1' });
  await send({
    type: 'reserve',
    reservationId: 'r1',
    orderId: 'o-1',
    channel: 'web',
    ttlSeconds: 900,
    lines: [{ sku: a0, location: 'dc-1', qty: 2 }],
  });
  await send({
    type: 'reserve',
    reservationId: 'r2',
    ttlSeconds: 600,
    lines: [
      { sku: a0, location: 'dc-2', qty: 1 },
      { sku: b0, location: 'dc-1', qty: 2 },
    ],
  });
  await send({
    type: 'reserve',
    reservationId: 'r3',
    ttlSeconds: 900,
    lines: [
      { sku: a1, location: 'dc-1', qty: 2 },
      { sku: a1, location: 'dc-2', qty: 2 },
    ],
  });
  await send({ type: 'commit', reservationId: 'r1', lines: [{ sku: a0, location: 'dc-1', qty: 1 }] });
  // Named by SKU alone: ships 2 from the first line, nothing from the second (released).
  await send({ type: 'commit', reservationId: 'r3', lines: [{ sku: a1, qty: 2 }] });
  await send({ type: 'extend', reservationId: 'r2', ttlSeconds: 1_200 });
  await send({
    type: 'reserve',
    reservationId: 'r4',
    ttlSeconds: 900,
    lines: [
      { sku: a1, location: 'dc-1', qty: 1 },
      { sku: b1, location: 'dc-2', qty: 1 },
    ],
  });
  await send({ type: 'release', reservationId: 'r4' });
  await send({
    type: 'reserve',
    reservationId: 'r5',
    ttlSeconds: 1,
    lines: [{ sku: b0, location: 'dc-2', qty: 1 }],
  });
  // Two recorded seconds later r5 has expired: the engine's own event, never sent by a client.
  clock.advance(2_000);
  await vi.waitFor(
    async () => {
      const reply = await engine.execute({ type: 'get', reservationId: 'r5' });
      expect(reply.ok && reply.kind === 'reservation' && reply.reservation.status).toBe('expired');
    },
    { timeout: 5_000, interval: 50 },
  );
  await send({ type: 'commit', reservationId: 'r2' });
  await send({ type: 'set', sku: b1, location: 'dc-1', onHand: 7 });
  await send({ type: 'adjust', sku: b0, location: 'dc-1', delta: -1, reason: 'damaged', key: 'd-1' });
}

describe('shadow traffic', () => {
  it('turns the WAL back into the commands that wrote it, skipping what the engine does itself', async () => {
    const clock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
    const store = new MemoryWalStore();
    await record(await start(store, 2, clock), clock);
    const traffic = await readShadowTraffic(store);
    const types: Record<string, number> = {};
    for (const { request } of traffic.commands) types[request.type] = (types[request.type] ?? 0) + 1;
    expect(types).toEqual({
      channel: 1,
      set: 9,
      safety: 1,
      adjust: 2,
      reserve: 5,
      commit: 4,
      extend: 1,
      release: 1,
    });
    expect(traffic.skipped).toEqual({
      'ChannelUpserted copy on another shard': 1,
      'ReservationHeld part merged into its cross-shard reserve': 2,
      'ReservationExtended part merged into its extend': 1,
      'ReservationReleased part merged into its release': 1,
      'ReservationExpired (the engine expires on its own clock)': 1,
    });
    const times = traffic.commands.map((c) => c.at);
    expect(times).toEqual([...times].sort((x, y) => x - y));
  });

  it.each([2, 1])(
    'replayed in order at 10× into a fresh engine of %i shard(s), reproduces the recorded state',
    async (shards) => {
      const recordedClock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
      const store = new MemoryWalStore();
      const original = await start(store, 2, recordedClock);
      await record(original, recordedClock);
      const recorded = await original.digest();
      const traffic = await readShadowTraffic(store);

      const clock = new ShadowClock('recorded', traffic.firstAt!);
      const fresh = await start(new MemoryWalStore(), shards, clock);
      const result = await replayTraffic(fresh, traffic.commands, { speed: 10, ordered: true, clock });

      expect(result.measurement.codes).toEqual({});
      expect(result.answered).toBe(traffic.commands.length);
      expect(result.measurement.latencyMs.count).toBe(traffic.commands.length);
      // About 2.7 recorded seconds at 10×.
      const spanSeconds = (traffic.lastAt! - traffic.firstAt!) / 1000;
      expect(result.intendedSeconds).toBeCloseTo(
        (traffic.commands.at(-1)!.at - traffic.commands[0]!.at) / 1000 / 10,
        6,
      );
      expect(result.elapsedSeconds).toBeGreaterThanOrEqual(result.intendedSeconds * 0.9);
      expect(result.elapsedSeconds).toBeLessThan(spanSeconds);
      // The expiry the recording saw happens in the replay too, from its clock (within a tick).
      await vi.waitFor(async () => expect(await fresh.digest()).toBe(recorded), {
        timeout: 2_000,
        interval: 50,
      });
    },
  );

  it('replays on schedule, concurrently, and reports rate, latency and outcomes', async () => {
    const recordedClock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
    const store = new MemoryWalStore();
    await record(await start(store, 2, recordedClock), recordedClock);
    const traffic = await readShadowTraffic(store);
    const clock = new ShadowClock('recorded', traffic.firstAt!);
    const fresh = await start(new MemoryWalStore(), 2, clock);
    const result = await replayTraffic(fresh, traffic.commands, { speed: 10, ordered: false, clock });
    expect(result.sent).toBe(traffic.commands.length);
    expect(result.answered).toBe(traffic.commands.length);
    expect(result.throttled).toBe(false);
    expect(result.measurement.operations.failed).toBe(0);
    expect(result.intendedRate).toBeCloseTo(traffic.commands.length / result.intendedSeconds, 6);
    expect(result.achievedRate).toBeGreaterThan(0);
    expect(result.measurement.latencyMs.p99).toBeGreaterThanOrEqual(result.measurement.latencyMs.p50);
  });

  it('refuses a speed that is not > 0', async () => {
    const engine = { execute: async () => ({ ok: true }) as never };
    await expect(
      replayTraffic(engine, [], { speed: 0, ordered: true, clock: new ShadowClock() }),
    ).rejects.toThrow(/speed/);
  });
});

describe.runIf(postgres.available)('shadow traffic from a PostgreSQL database (stockd bench shadow)', () => {
  it('replays the whole log to the same digest, and a later range on top of the state before it', async () => {
    const schema = testSchemaName();
    try {
      const recordedClock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
      const store = await PgWalStore.open({ connectionString: testDatabaseUrl, schema });
      const original = await Engine.start({ store, shards: 2, clock: recordedClock });
      await record(original, recordedClock);
      await original.stop();
      await store.close();

      const common = {
        source: { databaseUrl: testDatabaseUrl, schema },
        target: { store: 'memory' as const, schema: 'unused' },
        speed: 10,
        clock: 'recorded' as const,
      };
      const whole = await runShadow({ ...common, range: {}, ordered: true });
      expect(whole.seeded).toBeNull();
      expect(whole.result.measurement.codes).toEqual({});
      expect(whole.digest?.matches).toBe(true);

      // From the fourth row of each stream: the state before it is loaded first, so the
      // commits and releases in the range find their reservations.
      const later = await runShadow({ ...common, range: { fromSeq: 4 }, ordered: false });
      expect(later.seeded?.requests).toBeGreaterThan(0);
      expect(later.seeded?.refused).toEqual({});
      expect(later.result.answered).toBeGreaterThan(0);
      expect(later.result.measurement.codes).toEqual({});
      expect(later.digest).toBeNull();
    } finally {
      await dropSchema(schema);
    }
  });
});
