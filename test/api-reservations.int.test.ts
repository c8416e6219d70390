/**
 * HTTP API: reservations — create (idempotent, by body id or Idempotency-Key), get,
 * commit (whole and partial), release, extend — on two shards, so cross-shard
 * reservations go through the same routes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, problem, startApi, stopAll, type TestApi } from './support/api.js';

let api: TestApi;
let n = 0;
const freshId = (): string => `order-${n++}`;
/** Two SKUs on different shards, stocked 10 at WH1 and WH2, sold by channel `web`. */
let skuA: string;
let skuB: string;

beforeAll(async () => {
  api = await startApi({ shards: 2 });
  const found: string[] = [];
  for (let i = 0; found.length < 2; i++) {
    const sku = `res-sku-${i}`;
    if (api.engine.shardOfSku(sku) === found.length) found.push(sku);
  }
  [skuA, skuB] = found as [string, string];
  await api.app.inject({ method: 'PUT', url: '/v1/channels/web', payload: { locations: ['WH1', 'WH2'] } });
  for (const sku of found) {
    for (const location of ['WH1', 'WH2']) {
      await api.app.inject({ method: 'PUT', url: `/v1/stock/${sku}/${location}`, payload: { onHand: 10 } });
    }
  }
});
afterAll(stopAll);

function reserve(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return api.app.inject({ method: 'POST', url: '/v1/reservations', payload: body, headers });
}

async function reservedOf(sku: string): Promise<number> {
  const body = json<{ totals: { reserved: number } }>(
    await api.app.inject({ method: 'GET', url: `/v1/stock/${sku}` }),
  );
  return body.totals.reserved;
}

describe('POST /v1/reservations', () => {
  it('holds stock: 201 with the allocation', async () => {
    const id = freshId();
    const response = await reserve({ reservationId: id, channel: 'web', lines: [{ sku: skuA, qty: 2 }] });
    expect(response.statusCode).toBe(201);
    expect(response.headers['idempotent-replayed']).toBeUndefined();
    const body = json(response);
    expect(body).toEqual({
      reservationId: id,
      status: 'held',
      expiresAt: expect.any(Number),
      lines: [{ sku: skuA, location: 'WH1', qty: 2 }],
    });
  });

  it('the same request again: 200, the original body, Idempotent-Replayed: true, nothing held twice', async () => {
    const id = freshId();
    const body = { channel: 'web', ttlSeconds: 600, lines: [{ sku: skuA, qty: 1 }] };
    const before = await reservedOf(skuA);
    const first = await reserve(body, { 'idempotency-key': id });
    const again = await reserve(body, { 'idempotency-key': id });
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(json(again)).toEqual(json(first));
    expect(await reservedOf(skuA)).toBe(before + 1);
  });

  it('the Idempotency-Key header serves as the id; both given must agree; one is required', async () => {
    const id = freshId();
    const viaHeader = await reserve({ lines: [{ sku: skuA, qty: 1 }] }, { 'idempotency-key': id });
    expect(json(viaHeader).reservationId).toBe(id);
    problem(
      await reserve({ reservationId: 'a', lines: [{ sku: skuA, qty: 1 }] }, { 'idempotency-key': 'b' }),
      400,
      'INVALID_REQUEST',
    );
    problem(await reserve({ lines: [{ sku: skuA, qty: 1 }] }), 400, 'INVALID_REQUEST');
    problem(
      await reserve({ lines: [{ sku: skuA, qty: 1 }] }, { 'idempotency-key': 'k'.repeat(129) }),
      400,
      'INVALID_REQUEST',
    );
  });

  it('the same id with another body: 422 IDEMPOTENCY_KEY_REUSED, also across shards', async () => {
    const id = freshId();
    await reserve({ reservationId: id, lines: [{ sku: skuA, qty: 1 }] });
    problem(
      await reserve({ reservationId: id, lines: [{ sku: skuA, qty: 2 }] }),
      422,
      'IDEMPOTENCY_KEY_REUSED',
    );
    problem(
      await reserve({ reservationId: id, lines: [{ sku: skuB, qty: 1 }] }),
      422,
      'IDEMPOTENCY_KEY_REUSED',
    );
  });

  it('all or nothing across shards: 409 INSUFFICIENT_STOCK with shortages, nothing held', async () => {
    const [beforeA, beforeB] = [await reservedOf(skuA), await reservedOf(skuB)];
    const refused = problem(
      await reserve({
        reservationId: freshId(),
        channel: 'web',
        strategy: 'split',
        lines: [
          { sku: skuA, qty: 1 },
          { sku: skuB, qty: 1_000 },
        ],
      }),
      409,
      'INSUFFICIENT_STOCK',
    );
    expect(refused.shortages).toEqual([{ sku: skuB, requested: 1_000, available: expect.any(Number) }]);
    expect([await reservedOf(skuA), await reservedOf(skuB)]).toEqual([beforeA, beforeB]);
  });

  it('a cross-shard reservation holds on both shards and reads back as one', async () => {
    const id = freshId();
    const created = await reserve({
      reservationId: id,
      orderId: 'po-7',
      channel: 'web',
      lines: [
        { sku: skuA, qty: 1 },
        { sku: skuB, qty: 1, location: 'WH2' },
      ],
    });
    expect(created.statusCode).toBe(201);
    const got = json(await api.app.inject({ method: 'GET', url: `/v1/reservations/${id}` }));
    expect(got).toMatchObject({ reservationId: id, orderId: 'po-7', channel: 'web', status: 'held' });
    expect(got.lines).toEqual(
      expect.arrayContaining([
        { sku: skuA, location: 'WH1', qty: 1, held: 1, committed: 0 },
        { sku: skuB, location: 'WH2', qty: 1, held: 1, committed: 0 },
      ]),
    );
  });

  it.each([
    [{ lines: [] }, 400, 'INVALID_REQUEST'],
    [{ lines: [{ sku: 'x', qty: 0 }] }, 422, 'INVALID_QUANTITY'],
    [{ lines: [{ sku: 'x', qty: -3 }] }, 422, 'INVALID_QUANTITY'],
    [{ lines: [{ sku: 'x', qty: 2.5 }] }, 422, 'INVALID_QUANTITY'],
    [{ lines: [{ sku: 'x' }] }, 400, 'INVALID_REQUEST'],
    [{ lines: [{ sku: '', qty: 1 }] }, 400, 'INVALID_REQUEST'],
    [{ lines: [{ sku: 'x', qty: 1, bin: 3 }] }, 400, 'INVALID_REQUEST'],
    [{ lines: [{ sku: 'x', qty: 1 }], ttlSeconds: 0 }, 422, 'INVALID_TTL'],
    [{ lines: [{ sku: 'x', qty: 1 }], ttlSeconds: 2_592_001 }, 422, 'INVALID_TTL'],
    [{ lines: [{ sku: 'x', qty: 1 }], strategy: 'cheapest' }, 400, 'INVALID_REQUEST'],
    [{ lines: [{ sku: 'x', qty: 1 }], channel: 'nope' }, 422, 'UNKNOWN_CHANNEL'],
    [{ lines: [{ sku: 'SKU_A', qty: 1, location: 'WH9' }], channel: 'web' }, 422, 'LOCATION_NOT_IN_CHANNEL'],
    [{ lines: Array.from({ length: 101 }, () => ({ sku: 'x', qty: 1 })) }, 413, 'LIMIT_EXCEEDED'],
    [{ lines: [{ sku: 'x', qty: 1 }], bodyHash: 1 }, 400, 'INVALID_REQUEST'],
  ])('refuses %j with %i %s and holds nothing', async (body, status, code) => {
    const id = freshId();
    // The table is built before the SKUs are chosen: SKU_A stands for skuA.
    const resolved = JSON.parse(JSON.stringify(body).replaceAll('"SKU_A"', JSON.stringify(skuA)));
    problem(await reserve({ reservationId: id, ...resolved }), status, code);
    problem(
      await api.app.inject({ method: 'GET', url: `/v1/reservations/${id}` }),
      404,
      'RESERVATION_NOT_FOUND',
    );
  });
});

describe('commit, release, extend', () => {
  async function held(lines = [{ sku: skuA, qty: 2 }]): Promise<string> {
    const id = freshId();
    const response = await reserve({ reservationId: id, channel: 'web', lines });
    expect(response.statusCode).toBe(201);
    return id;
  }
  const act = (id: string, action: string, payload?: unknown, headers: Record<string, string> = {}) =>
    api.app.inject({
      method: 'POST',
      url: `/v1/reservations/${id}/${action}`,
      headers,
      ...(payload === undefined ? {} : { payload: payload as object }),
    });

  it('commit ships every held line; repeating it answers 200 with its state', async () => {
    const id = await held();
    const committed = await act(id, 'commit');
    expect(committed.statusCode).toBe(200);
    expect(json(committed)).toMatchObject({
      status: 'committed',
      lines: [{ sku: skuA, qty: 2, held: 0, committed: 2 }],
    });
    const again = await act(id, 'commit', undefined, { 'content-type': 'application/json' });
    expect(again.statusCode).toBe(200);
    expect(json(again)).toEqual(json(committed));
    problem(await act(id, 'release'), 409, 'RESERVATION_NOT_HELD');
    problem(await act(id, 'extend', { ttlSeconds: 60 }), 409, 'RESERVATION_NOT_HELD');
  });

  it('partial commit: named lines are settled, the rest stays held', async () => {
    const id = await held([
      { sku: skuA, qty: 3 },
      { sku: skuB, qty: 2 },
    ]);
    // Refusals first, while every part is held: a SKU the reservation does not have, on
    // each shard, alone or beside a good line (all or nothing: the good line stays held).
    for (const shard of [0, 1]) {
      let missing = 'not-in-it-0';
      for (let i = 1; api.engine.shardOfSku(missing) !== shard; i++) missing = `not-in-it-${i}`;
      problem(await act(id, 'commit', { lines: [{ sku: missing }] }), 400, 'INVALID_REQUEST');
      problem(
        await act(id, 'commit', { lines: [{ sku: skuA, qty: 1 }, { sku: missing }] }),
        400,
        'INVALID_REQUEST',
      );
    }
    problem(
      await act(id, 'commit', {
        lines: [
          { sku: skuA, qty: 1 },
          { sku: skuB, qty: 5 },
        ],
      }),
      422,
      'INVALID_QUANTITY',
    );
    problem(await act(id, 'commit', { lines: [{ sku: skuB, qty: 5 }] }), 422, 'INVALID_QUANTITY');
    problem(await act(id, 'commit', { lines: [] }), 400, 'INVALID_REQUEST');
    problem(await act(id, 'commit', { lines: [{ sku: skuB, qty: 0 }] }), 422, 'INVALID_QUANTITY');
    problem(await act(id, 'commit', { lines: [{ sku: skuB, qty: 1, extra: 1 }] }), 400, 'INVALID_REQUEST');
    const partial = await act(id, 'commit', { lines: [{ sku: skuA, qty: 1 }] });
    expect(partial.statusCode).toBe(200);
    const body = json<{ status: string; lines: Array<Record<string, unknown>> }>(partial);
    expect(body.status).toBe('held');
    expect(body.lines).toEqual(
      expect.arrayContaining([
        { sku: skuA, location: expect.any(String), qty: 3, held: 0, committed: 1 },
        { sku: skuB, location: expect.any(String), qty: 2, held: 2, committed: 0 },
      ]),
    );
    expect(json(await act(id, 'commit', { lines: [{ sku: skuB }] })).status).toBe('committed');
  });

  it('release frees the stock; repeating it answers 200; commit after release is 409', async () => {
    const before = await reservedOf(skuA);
    const id = await held();
    expect(await reservedOf(skuA)).toBe(before + 2);
    const released = await act(id, 'release');
    expect(released.statusCode).toBe(200);
    expect(json(released).status).toBe('released');
    expect(await reservedOf(skuA)).toBe(before);
    expect((await act(id, 'release')).statusCode).toBe(200);
    problem(await act(id, 'commit'), 409, 'RESERVATION_NOT_HELD');
  });

  it('extend moves expiresAt; a bad TTL is 422 INVALID_TTL', async () => {
    const id = await held();
    const before = json<{ expiresAt: number }>(
      await api.app.inject({ method: 'GET', url: `/v1/reservations/${id}` }),
    );
    const extended = await act(id, 'extend', { ttlSeconds: 86_400 });
    expect(extended.statusCode).toBe(200);
    expect(json<{ expiresAt: number }>(extended).expiresAt).toBeGreaterThan(before.expiresAt);
    problem(await act(id, 'extend', { ttlSeconds: 0 }), 422, 'INVALID_TTL');
    problem(await act(id, 'extend', {}), 400, 'INVALID_REQUEST');
    problem(await act(id, 'extend'), 400, 'INVALID_REQUEST');
  });

  it('an unknown id is 404 RESERVATION_NOT_FOUND for every action', async () => {
    for (const action of ['commit', 'release'])
      problem(await act('nope', action), 404, 'RESERVATION_NOT_FOUND');
    problem(await act('nope', 'extend', { ttlSeconds: 60 }), 404, 'RESERVATION_NOT_FOUND');
    problem(
      await api.app.inject({ method: 'GET', url: '/v1/reservations/nope' }),
      404,
      'RESERVATION_NOT_FOUND',
    );
  });
});
