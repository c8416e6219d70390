/**
 * The benchmark's alternatives (bench/baselines) against the real PostgreSQL and Redis:
 * they must keep the promises stockd keeps — validation, idempotency, no oversell — or the
 * comparison would flatter them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Baseline } from '../bench/baselines/baseline.js';
import { buildBaselineServer } from '../bench/baselines/http-front.js';
import { PgRowBaseline } from '../bench/baselines/pg-row.js';
import { RedisLuaBaseline } from '../bench/baselines/redis-lua.js';
import type { Reply, Reserve } from '../src/actors/types.js';
import {
  dropSchema,
  findPostgres,
  findRedis,
  testDatabaseUrl,
  testRedisUrl,
  testSchemaName,
} from './support/services.js';

const postgres = await findPostgres();
const redis = await findRedis();

interface Case {
  readonly name: string;
  readonly available: boolean;
  open(): Promise<{ baseline: Baseline; cleanup: () => Promise<void> }>;
}

const cases: Case[] = [
  {
    name: 'pg-row',
    available: postgres.available,
    async open() {
      const schema = testSchemaName();
      const baseline = await PgRowBaseline.open({
        connectionString: testDatabaseUrl,
        schema,
        reset: true,
        expiryTickMs: 50,
      });
      return {
        baseline,
        cleanup: async () => {
          await baseline.close();
          await dropSchema(schema);
        },
      };
    },
  },
  {
    name: 'redis-lua',
    available: redis.available,
    async open() {
      const namespace = testSchemaName();
      const baseline = await RedisLuaBaseline.open({
        url: testRedisUrl,
        namespace,
        reset: true,
        expiryTickMs: 50,
      });
      return {
        baseline,
        cleanup: async () => {
          // A second instance with reset deletes the test's keys.
          const sweeper = await RedisLuaBaseline.open({ url: testRedisUrl, namespace, reset: true });
          await sweeper.close();
          await baseline.close();
        },
      };
    },
  },
];

let ids = 0;
const newId = (): string => `r-${++ids}`;

function reserve(sku: string, qty: number, extra: Partial<Reserve> = {}): Reserve {
  return { type: 'reserve', reservationId: newId(), lines: [{ sku, qty, location: 'WH1' }], ...extra };
}

function reservationOf(reply: Reply) {
  if (!reply.ok || reply.kind !== 'reservation')
    throw new Error(`expected a reservation, got ${JSON.stringify(reply)}`);
  return reply;
}

function codeOf(reply: Reply): string {
  return reply.ok ? 'ok' : reply.code;
}

describe.each(cases)('$name baseline', (testCase) => {
  let baseline: Baseline;
  let cleanup: () => Promise<void>;
  let skuCount = 0;

  beforeAll(async () => {
    if (!testCase.available) return;
    ({ baseline, cleanup } = await testCase.open());
  });
  afterAll(async () => {
    await cleanup?.();
  });

  /** A fresh SKU with `onHand` units at WH1. */
  async function stocked(onHand: number): Promise<string> {
    const sku = `SKU-${++skuCount}`;
    const reply = await baseline.execute({ type: 'set', sku, location: 'WH1', onHand });
    expect(reply.ok).toBe(true);
    return sku;
  }

  async function levels(sku: string): Promise<{ onHand: number; reserved: number; available: number }> {
    const reply = await baseline.execute({ type: 'stock', sku });
    if (!reply.ok || reply.kind !== 'stockList') throw new Error(JSON.stringify(reply));
    const record = reply.locations[0]!;
    return { onHand: record.onHand, reserved: record.reserved, available: record.available };
  }

  describe.runIf(testCase.available)('against the real service', () => {
    it('holds stock and answers the reservation', async () => {
      const sku = await stocked(10);
      const reply = reservationOf(
        await baseline.execute(reserve(sku, 3, { orderId: 'o-1', ttlSeconds: 60 })),
      );
      expect(reply.replayed).toBe(false);
      expect(reply.reservation).toMatchObject({
        status: 'held',
        orderId: 'o-1',
        channel: null,
        lines: [{ sku, location: 'WH1', qty: 3, held: 3, committed: 0 }],
      });
      expect(reply.reservation.expiresAt - reply.reservation.createdAt).toBe(60_000);
      expect(await levels(sku)).toEqual({ onHand: 10, reserved: 3, available: 7 });
      const atp = await baseline.execute({ type: 'atp', sku });
      expect(atp).toMatchObject({ ok: true, kind: 'atp', available: 7, byLocation: { WH1: 7 } });
    });

    it('refuses what is not available, with the shortage, and changes nothing', async () => {
      const sku = await stocked(5);
      await baseline.execute({ type: 'set', sku, location: 'WH2', onHand: 2 });
      const request: Reserve = {
        type: 'reserve',
        reservationId: newId(),
        lines: [
          { sku, qty: 2, location: 'WH2' },
          { sku, qty: 6, location: 'WH1' },
        ],
      };
      const refused = await baseline.execute(request);
      expect(refused).toMatchObject({
        ok: false,
        code: 'INSUFFICIENT_STOCK',
        shortages: [{ sku, requested: 8, available: 7 }],
      });
      expect(await levels(sku)).toEqual({ onHand: 5, reserved: 0, available: 5 });
      // A refused id stays free: with stock it is held afresh.
      await baseline.execute({ type: 'set', sku, location: 'WH1', onHand: 6 });
      expect(codeOf(await baseline.execute(request))).toBe('ok');
    });

    it('replays the same request and refuses the same id with another body', async () => {
      const sku = await stocked(10);
      const request = reserve(sku, 2);
      const first = reservationOf(await baseline.execute(request));
      const again = reservationOf(await baseline.execute(request));
      expect(again.replayed).toBe(true);
      expect(again.reservation).toEqual(first.reservation);
      expect((await levels(sku)).reserved).toBe(2);
      const reused = await baseline.execute({ ...request, lines: [{ sku, qty: 3, location: 'WH1' }] });
      expect(codeOf(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
      expect((await levels(sku)).reserved).toBe(2);
    });

    it('creates one reservation when the same request arrives many times at once', async () => {
      const sku = await stocked(10);
      const request = reserve(sku, 4);
      const replies = await Promise.all(Array.from({ length: 20 }, () => baseline.execute(request)));
      expect(replies.filter((reply) => reservationOf(reply).replayed === false)).toHaveLength(1);
      expect((await levels(sku)).reserved).toBe(4);
    });

    it('commits: ships the units, repeats harmlessly, then refuses a release', async () => {
      const sku = await stocked(10);
      const { reservationId } = reserve(sku, 4);
      await baseline.execute({ ...reserve(sku, 4), reservationId });
      const committed = reservationOf(await baseline.execute({ type: 'commit', reservationId }));
      expect(committed.reservation).toMatchObject({
        status: 'committed',
        lines: [{ held: 0, committed: 4 }],
      });
      expect(await levels(sku)).toEqual({ onHand: 6, reserved: 0, available: 6 });
      const again = reservationOf(await baseline.execute({ type: 'commit', reservationId }));
      expect(again.reservation.status).toBe('committed');
      expect(await levels(sku)).toEqual({ onHand: 6, reserved: 0, available: 6 });
      expect(codeOf(await baseline.execute({ type: 'release', reservationId }))).toBe('RESERVATION_NOT_HELD');
      expect(codeOf(await baseline.execute({ type: 'commit', reservationId: 'nope' }))).toBe(
        'RESERVATION_NOT_FOUND',
      );
    });

    it('releases: gives the units back, repeats harmlessly, then refuses a commit', async () => {
      const sku = await stocked(10);
      const request = reserve(sku, 7);
      await baseline.execute(request);
      const released = reservationOf(
        await baseline.execute({ type: 'release', reservationId: request.reservationId }),
      );
      expect(released.reservation).toMatchObject({ status: 'released', lines: [{ held: 0, committed: 0 }] });
      expect(await levels(sku)).toEqual({ onHand: 10, reserved: 0, available: 10 });
      expect(codeOf(await baseline.execute({ type: 'release', reservationId: request.reservationId }))).toBe(
        'ok',
      );
      expect(codeOf(await baseline.execute({ type: 'commit', reservationId: request.reservationId }))).toBe(
        'RESERVATION_NOT_HELD',
      );
    });

    it('expires a reservation whose TTL has passed and frees its units', async () => {
      const sku = await stocked(10);
      const request = reserve(sku, 5, { ttlSeconds: 1 });
      await baseline.execute(request);
      const extended = reserve(sku, 1, { ttlSeconds: 1 });
      await baseline.execute(extended);
      expect(
        codeOf(
          await baseline.execute({ type: 'extend', reservationId: extended.reservationId, ttlSeconds: 60 }),
        ),
      ).toBe('ok');
      await new Promise((resolve) => setTimeout(resolve, 1_300));
      const read = reservationOf(
        await baseline.execute({ type: 'get', reservationId: request.reservationId }),
      );
      expect(read.reservation.status).toBe('expired');
      expect(await levels(sku)).toEqual({ onHand: 10, reserved: 1, available: 9 });
      expect(codeOf(await baseline.execute({ type: 'commit', reservationId: request.reservationId }))).toBe(
        'RESERVATION_NOT_HELD',
      );
    });

    it('never oversells a hot SKU under concurrent reserves', async () => {
      const sku = await stocked(60);
      const requests = Array.from({ length: 300 }, (_, i) => reserve(sku, 1 + (i % 3)));
      const replies = await baseline.executeMany(requests);
      let held = 0;
      replies.forEach((reply, i) => {
        if (reply.ok) held += requests[i]!.lines[0]!.qty;
        else expect(reply.code).toBe('INSUFFICIENT_STOCK');
      });
      expect(held).toBeLessThanOrEqual(60);
      // Units of 1 are still asked for until the end, so the pool is drained to its last units.
      expect(held).toBeGreaterThanOrEqual(58);
      expect(await levels(sku)).toEqual({ onHand: 60, reserved: held, available: 60 - held });
    });

    it('validates like stockd and refuses what it does not implement', async () => {
      const sku = await stocked(10);
      expect(codeOf(await baseline.execute(reserve(sku, 0)))).toBe('INVALID_QUANTITY');
      expect(codeOf(await baseline.execute(reserve(sku, 1, { ttlSeconds: 0 })))).toBe('INVALID_TTL');
      expect(codeOf(await baseline.execute(reserve(sku, 1, { channel: 'web' })))).toBe('UNKNOWN_CHANNEL');
      expect(
        codeOf(await baseline.execute({ type: 'reserve', reservationId: newId(), lines: [{ sku, qty: 1 }] })),
      ).toBe('INVALID_REQUEST');
      expect(codeOf(await baseline.execute({ type: 'set', sku, location: 'WH1', onHand: -1 }))).toBe(
        'INVALID_QUANTITY',
      );
      expect(codeOf(await baseline.execute({ type: 'stock', sku: 'never-stocked' }))).toBe('STOCK_NOT_FOUND');
      expect((await levels(sku)).reserved).toBe(0);
    });

    it('sets stock absolutely, by compare-and-set and in bulk', async () => {
      const sku = await stocked(10);
      const conflict = await baseline.execute({ type: 'set', sku, location: 'WH1', onHand: 3, ifVersion: 7 });
      expect(conflict).toMatchObject({ ok: false, code: 'VERSION_CONFLICT', currentVersion: 1 });
      const fresh = `${sku}-new`;
      expect(
        codeOf(await baseline.execute({ type: 'set', sku: fresh, location: 'WH1', onHand: 3, ifVersion: 0 })),
      ).toBe('ok');
      expect(
        codeOf(await baseline.execute({ type: 'set', sku: fresh, location: 'WH1', onHand: 4, ifVersion: 0 })),
      ).toBe('VERSION_CONFLICT');
      expect(
        codeOf(await baseline.execute({ type: 'set', sku, location: 'WH1', onHand: 5, sourceTs: 100 })),
      ).toBe('ok');
      expect(
        codeOf(await baseline.execute({ type: 'set', sku, location: 'WH1', onHand: 6, sourceTs: 99 })),
      ).toBe('STALE_UPDATE');
      const bulk = await baseline.executeMany([
        { type: 'set', sku, location: 'WH1', onHand: 20 },
        { type: 'set', sku, location: 'WH2', onHand: 21 },
        { type: 'set', sku, location: 'WH1', onHand: 22 },
        { type: 'set', sku, location: 'WH3', onHand: -5 },
      ]);
      expect(bulk.map(codeOf)).toEqual(['ok', 'ok', 'ok', 'INVALID_QUANTITY']);
      const stock = await baseline.execute({ type: 'stock', sku });
      if (!stock.ok || stock.kind !== 'stockList') throw new Error(JSON.stringify(stock));
      expect(stock.locations.map((l) => [l.location, l.onHand])).toEqual([
        ['WH1', 22],
        ['WH2', 21],
      ]);
    });

    it('answers through stockd’s HTTP front with the same contract', async () => {
      const sku = await stocked(3);
      const app = await buildBaselineServer(baseline);
      try {
        const body = { reservationId: newId(), lines: [{ sku, qty: 2, location: 'WH1' }] };
        const created = await app.inject({ method: 'POST', url: '/v1/reservations', payload: body });
        expect(created.statusCode).toBe(201);
        expect(created.json()).toMatchObject({ reservationId: body.reservationId, status: 'held' });
        const replayed = await app.inject({ method: 'POST', url: '/v1/reservations', payload: body });
        expect(replayed.statusCode).toBe(200);
        expect(replayed.headers['idempotent-replayed']).toBe('true');
        const short = await app.inject({
          method: 'POST',
          url: '/v1/reservations',
          payload: { ...body, reservationId: newId() },
        });
        expect(short.statusCode).toBe(409);
        expect(short.headers['content-type']).toContain('application/problem+json');
        expect(short.json()).toMatchObject({
          code: 'INSUFFICIENT_STOCK',
          shortages: [{ sku, requested: 2, available: 1 }],
        });
        const unknownField = await app.inject({
          method: 'POST',
          url: '/v1/reservations',
          payload: { ...body, reservationId: newId(), surprise: 1 },
        });
        expect(unknownField.statusCode).toBe(400);
        const atp = await app.inject({ method: 'GET', url: `/v1/atp/${sku}` });
        expect(atp.json()).toEqual({ sku, available: 1, byLocation: { WH1: 1 } });
        const commit = await app.inject({
          method: 'POST',
          url: `/v1/reservations/${body.reservationId}/commit`,
        });
        expect(commit.statusCode).toBe(200);
        expect(commit.json()).toMatchObject({ status: 'committed' });
        // Batch commands are independent (the contract): pg-row runs them concurrently, so no order is assumed.
        const batch = await app.inject({
          method: 'POST',
          url: '/v1/batch',
          payload: {
            commands: [
              { op: 'set', sku, location: 'WH1', onHand: 9 },
              { op: 'atp', sku: `${sku}-none` },
            ],
          },
        });
        expect(batch.json()).toEqual({
          results: [
            { status: 200, body: expect.objectContaining({ sku, onHand: 9, available: 9 }) },
            { status: 200, body: { sku: `${sku}-none`, available: 0, byLocation: {} } },
          ],
        });
      } finally {
        await app.close();
      }
    });
  });
});
