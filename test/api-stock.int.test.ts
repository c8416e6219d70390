/**
 * HTTP API: stock levels, adjustments, channels and ATP, through app.inject() against a
 * real engine (one shard; the reservation tests cover two).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, problem, startApi, stopAll, type TestApi } from './support/api.js';

let api: TestApi;
let n = 0;
/** A SKU no other test touches. */
const freshSku = (): string => `stock-test-${n++}`;

beforeAll(async () => {
  api = await startApi();
});
afterAll(stopAll);

const put = (url: string, payload: unknown) =>
  api.app.inject({ method: 'PUT', url, payload: payload as object });
const post = (url: string, payload: unknown) =>
  api.app.inject({ method: 'POST', url, payload: payload as object });
const get = (url: string) => api.app.inject({ method: 'GET', url });

describe('PUT /v1/stock/{sku}/{location}', () => {
  it('sets the level and answers the record', async () => {
    const sku = freshSku();
    const response = await put(`/v1/stock/${sku}/WH1`, { onHand: 10, safetyStock: 2 });
    expect(response.statusCode).toBe(200);
    expect(json(response)).toEqual({
      sku,
      location: 'WH1',
      onHand: 10,
      reserved: 0,
      safetyStock: 2,
      available: 8,
      version: 1,
    });
  });

  it('is a compare-and-set with ifVersion: 409 VERSION_CONFLICT with the current version', async () => {
    const sku = freshSku();
    expect((await put(`/v1/stock/${sku}/WH1`, { onHand: 1, ifVersion: 0 })).statusCode).toBe(200);
    const conflict = problem(
      await put(`/v1/stock/${sku}/WH1`, { onHand: 2, ifVersion: 0 }),
      409,
      'VERSION_CONFLICT',
    );
    expect(conflict.currentVersion).toBe(1);
    expect(json(await put(`/v1/stock/${sku}/WH1`, { onHand: 2, ifVersion: 1 })).version).toBe(2);
  });

  it('refuses an update older than the last source timestamp: 409 STALE_UPDATE', async () => {
    const sku = freshSku();
    await put(`/v1/stock/${sku}/WH1`, { onHand: 5, sourceTs: 2_000 });
    problem(await put(`/v1/stock/${sku}/WH1`, { onHand: 6, sourceTs: 1_000 }), 409, 'STALE_UPDATE');
  });

  it.each([
    [{ onHand: -1 }, 422, 'INVALID_QUANTITY'],
    [{ onHand: 1.5 }, 422, 'INVALID_QUANTITY'],
    [{ onHand: '5' }, 422, 'INVALID_QUANTITY'],
    [{ onHand: 1_000_000_001 }, 422, 'INVALID_QUANTITY'],
    [{}, 400, 'INVALID_REQUEST'],
    [{ onHand: 1, extra: true }, 400, 'INVALID_REQUEST'],
    [{ onHand: 1, ifVersion: -1 }, 400, 'INVALID_REQUEST'],
  ])('refuses %j with %i %s and changes nothing', async (body, status, code) => {
    const sku = freshSku();
    problem(await put(`/v1/stock/${sku}/WH1`, body), status, code);
    problem(await get(`/v1/stock/${sku}`), 404, 'STOCK_NOT_FOUND');
  });

  it('refuses a SKU over 128 UTF-8 bytes even when it has fewer characters', async () => {
    const sku = encodeURIComponent('é'.repeat(65)); // 65 characters, 130 bytes
    problem(await put(`/v1/stock/${sku}/WH1`, { onHand: 1 }), 400, 'INVALID_REQUEST');
    problem(await put(`/v1/stock/${'x'.repeat(129)}/WH1`, { onHand: 1 }), 400, 'INVALID_REQUEST');
  });
});

describe('POST /v1/stock/adjustments', () => {
  it('answers each item in order: applied, duplicate, rejected', async () => {
    const sku = freshSku();
    await put(`/v1/stock/${sku}/WH1`, { onHand: 5 });
    const first = await post('/v1/stock/adjustments', {
      adjustments: [
        { sku, location: 'WH1', delta: 3, reason: 'receipt', key: 'k1' },
        { sku, location: 'WH1', delta: 3, reason: 'receipt', key: 'k1' },
        { sku, location: 'WH1', delta: -100, reason: 'count', key: 'k2' },
        { sku, location: 'WH1', delta: 4, reason: 'other', key: 'k1' },
        { sku, location: 'WH1', delta: 0, reason: 'zero', key: 'k3' },
      ],
    });
    expect(first.statusCode).toBe(200);
    const results = json<{ results: Array<Record<string, unknown>> }>(first).results;
    expect(results.map((r) => r.status)).toEqual([
      'applied',
      'duplicate',
      'rejected',
      'rejected',
      'rejected',
    ]);
    expect((results[0]!.stock as { onHand: number }).onHand).toBe(8);
    expect((results[1]!.stock as { onHand: number }).onHand).toBe(8);
    expect((results[2]!.error as { code: string }).code).toBe('ADJUSTMENT_BELOW_ZERO');
    expect((results[3]!.error as { code: string }).code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((results[4]!.error as { code: string }).code).toBe('INVALID_QUANTITY');
    expect(results[2]).toMatchObject({ sku, location: 'WH1', key: 'k2' });
  });

  it('refuses an empty list, more items than the limit, and a malformed item as a whole', async () => {
    problem(await post('/v1/stock/adjustments', { adjustments: [] }), 400, 'INVALID_REQUEST');
    const item = { sku: 'x', location: 'WH1', delta: 1, reason: '', key: 'k' };
    const tooMany = Array.from({ length: 1_001 }, (_, i) => ({ ...item, key: `k${i}` }));
    problem(await post('/v1/stock/adjustments', { adjustments: tooMany }), 413, 'LIMIT_EXCEEDED');
    problem(
      await post('/v1/stock/adjustments', { adjustments: [{ ...item, key: undefined }] }),
      400,
      'INVALID_REQUEST',
    );
    problem(
      await post('/v1/stock/adjustments', { adjustments: [{ ...item, reason: 'r'.repeat(257) }] }),
      400,
      'INVALID_REQUEST',
    );
    problem(await get('/v1/stock/x'), 404, 'STOCK_NOT_FOUND');
  });
});

describe('GET /v1/stock/{sku}', () => {
  it('lists every location with totals', async () => {
    const sku = freshSku();
    await put(`/v1/stock/${sku}/WH2`, { onHand: 4 });
    await put(`/v1/stock/${sku}/WH1`, { onHand: 10, safetyStock: 3 });
    const body = json(await get(`/v1/stock/${sku}`));
    expect(body).toEqual({
      sku,
      locations: expect.arrayContaining([
        { location: 'WH1', onHand: 10, reserved: 0, safetyStock: 3, available: 7, version: 1 },
        { location: 'WH2', onHand: 4, reserved: 0, safetyStock: 0, available: 4, version: 1 },
      ]),
      totals: { onHand: 14, reserved: 0, available: 11 },
    });
  });

  it('is 404 STOCK_NOT_FOUND for a SKU never recorded', async () => {
    problem(await get(`/v1/stock/${freshSku()}`), 404, 'STOCK_NOT_FOUND');
  });

  it('decodes percent-encoded SKUs', async () => {
    const sku = 'A/B C#1';
    await put(`/v1/stock/${encodeURIComponent(sku)}/WH1`, { onHand: 1 });
    expect(json(await get(`/v1/stock/${encodeURIComponent(sku)}`)).sku).toBe(sku);
  });
});

describe('channels', () => {
  it('PUT creates or replaces a channel; GET lists it', async () => {
    const created = await put('/v1/channels/web-a', { locations: ['WH1', 'WH2'], buffer: 2 });
    expect(created.statusCode).toBe(200);
    expect(json(created)).toEqual({ channel: 'web-a', locations: ['WH1', 'WH2'], buffer: 2 });
    await put('/v1/channels/web-a', { locations: ['WH2'] });
    const list = json<{ channels: Array<{ channel: string }> }>(await get('/v1/channels'));
    expect(list.channels).toContainEqual({ channel: 'web-a', locations: ['WH2'], buffer: 0 });
  });

  it.each([
    [{ locations: [] }, 400, 'INVALID_REQUEST'],
    [{ locations: ['WH1', 'WH1'] }, 400, 'INVALID_REQUEST'],
    [{ locations: Array.from({ length: 65 }, (_, i) => `L${i}`) }, 413, 'LIMIT_EXCEEDED'],
    [{ locations: ['WH1'], buffer: -1 }, 422, 'INVALID_QUANTITY'],
  ])('refuses %j with %i %s', async (body, status, code) => {
    problem(await put('/v1/channels/bad', body), status, code);
    const list = json<{ channels: Array<{ channel: string }> }>(await get('/v1/channels'));
    expect(list.channels.map((c) => c.channel)).not.toContain('bad');
  });
});

describe('ATP', () => {
  it('GET answers the channel ATP and the availability per location', async () => {
    const sku = freshSku();
    await put('/v1/channels/atp-web', { locations: ['WH1', 'WH2'], buffer: 1 });
    await put(`/v1/stock/${sku}/WH1`, { onHand: 5 });
    await put(`/v1/stock/${sku}/WH2`, { onHand: 3, safetyStock: 1 });
    expect(json(await get(`/v1/atp/${sku}?channel=atp-web`))).toEqual({
      sku,
      available: 6,
      byLocation: { WH1: 5, WH2: 2 },
    });
    expect(json(await get(`/v1/atp/${sku}`))).toEqual({ sku, available: 7, byLocation: { WH1: 5, WH2: 2 } });
    expect(json(await get(`/v1/atp/${sku}?channel=atp-web&location=WH2`))).toEqual({
      sku,
      available: 2,
      byLocation: { WH2: 2 },
    });
  });

  it('GET refuses an unknown channel, a location outside it, and unknown query fields', async () => {
    await put('/v1/channels/atp-web2', { locations: ['WH1'] });
    problem(await get('/v1/atp/x?channel=nope'), 422, 'UNKNOWN_CHANNEL');
    problem(await get('/v1/atp/x?channel=atp-web2&location=WH9'), 422, 'LOCATION_NOT_IN_CHANNEL');
    problem(await get('/v1/atp/x?chanel=atp-web2'), 400, 'INVALID_REQUEST');
    problem(await get('/v1/atp/x?channel='), 400, 'INVALID_REQUEST');
  });

  it('POST /v1/atp/query answers many SKUs in order', async () => {
    const [a, b] = [freshSku(), freshSku()];
    await put(`/v1/stock/${a}/WH1`, { onHand: 4 });
    const response = await post('/v1/atp/query', { skus: [b, a] });
    expect(json(response)).toEqual({
      items: [
        { sku: b, available: 0 },
        { sku: a, available: 4 },
      ],
    });
    problem(await post('/v1/atp/query', { skus: [a], channel: 'nope' }), 422, 'UNKNOWN_CHANNEL');
    problem(await post('/v1/atp/query', { skus: [] }), 400, 'INVALID_REQUEST');
    problem(
      await post('/v1/atp/query', { skus: Array.from({ length: 1_001 }, (_, i) => `s${i}`) }),
      413,
      'LIMIT_EXCEEDED',
    );
  });
});
