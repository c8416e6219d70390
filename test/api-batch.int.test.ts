/**
 * HTTP API: POST /v1/batch — mixed commands answered in order, each on its own, in JSON
 * and in MessagePack (Content-Type in, Accept out).
 */
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, problem, startApi, stopAll, type TestApi } from './support/api.js';

let api: TestApi;
const wire = new Packr({ useRecords: false });

beforeAll(async () => {
  api = await startApi({
    shards: 2,
    limits: { batchCommandsMax: 50, batchBodyBytesMax: 64 * 1024 },
    keys: [
      { key: 'writer-key-0000000001', scopes: ['write'] },
      { key: 'reader-writer-key-002', scopes: ['read', 'write'] },
    ],
  });
  await api.app.inject({
    method: 'PUT',
    url: '/v1/stock/batch-sku/WH1',
    payload: { onHand: 10 },
    headers: { authorization: 'Bearer reader-writer-key-002' },
  });
});
afterAll(stopAll);

const auth = { authorization: 'Bearer reader-writer-key-002' };
const batch = (commands: unknown[], headers: Record<string, string> = auth) =>
  api.app.inject({ method: 'POST', url: '/v1/batch', payload: { commands }, headers });

interface Result {
  status: number;
  body: Record<string, unknown>;
}

describe('POST /v1/batch (JSON)', () => {
  it('answers every command in order with the single route’s status and body', async () => {
    const response = await batch([
      { op: 'set', sku: 'batch-a', location: 'WH1', onHand: 5 },
      { op: 'reserve', reservationId: 'batch-r1', lines: [{ sku: 'batch-a', qty: 2 }] },
      { op: 'reserve', reservationId: 'batch-r1', lines: [{ sku: 'batch-a', qty: 2 }] },
      { op: 'reserve', reservationId: 'batch-r2', lines: [{ sku: 'batch-a', qty: 99 }] },
      { op: 'atp', sku: 'batch-a' },
      { op: 'adjust', sku: 'batch-a', location: 'WH1', delta: 1, reason: 'found', key: 'adj-1' },
      { op: 'extend', reservationId: 'batch-r1', ttlSeconds: 120 },
      { op: 'commit', reservationId: 'batch-r1', lines: [{ sku: 'batch-a', qty: 1 }] },
      { op: 'release', reservationId: 'missing' },
      { op: 'teleport', sku: 'batch-a' },
      { op: 'reserve', reservationId: 'batch-r3', lines: [{ sku: 'batch-a', qty: -1 }] },
      { op: 'set', sku: 'batch-a', location: 'WH1', onHand: 5, bodyHash: 3 },
    ]);
    expect(response.statusCode).toBe(200);
    const { results } = json<{ results: Result[] }>(response);
    expect(results.map((r) => r.status)).toEqual([
      200, 201, 200, 409, 200, 200, 200, 200, 404, 400, 422, 400,
    ]);
    expect(results[0]!.body).toMatchObject({ sku: 'batch-a', onHand: 5, version: 1 });
    expect(results[1]!.body).toMatchObject({
      reservationId: 'batch-r1',
      status: 'held',
      lines: [{ qty: 2 }],
    });
    expect(results[2]!.body).toEqual(results[1]!.body);
    expect(results[3]!.body).toMatchObject({
      code: 'INSUFFICIENT_STOCK',
      shortages: [{ sku: 'batch-a', requested: 99 }],
    });
    expect(results[4]!.body).toEqual({ sku: 'batch-a', available: 3, byLocation: { WH1: 3 } });
    expect(results[5]!.body).toMatchObject({
      sku: 'batch-a',
      location: 'WH1',
      key: 'adj-1',
      status: 'applied',
      stock: { onHand: 6 },
    });
    expect(results[7]!.body).toMatchObject({ status: 'committed', lines: [{ committed: 1, held: 0 }] });
    expect(results[8]!.body).toMatchObject({
      code: 'RESERVATION_NOT_FOUND',
      type: 'urn:stockd:error:RESERVATION_NOT_FOUND',
    });
    expect(results[9]!.body).toMatchObject({
      code: 'INVALID_REQUEST',
      detail: expect.stringContaining('commands/9/op'),
    });
    expect(results[10]!.body).toMatchObject({
      code: 'INVALID_QUANTITY',
      detail: expect.stringContaining('commands/10/lines/0/qty'),
    });
    expect(results[11]!.body).toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('bad commands among good ones: each answer stays at its own command', async () => {
    const response = await batch([
      { op: 'teleport' },
      { op: 'set', sku: 'batch-m', location: 'WH1', onHand: 3 },
      { op: 'adjust', sku: 'batch-m', location: 'WH1', delta: 'lots', reason: 'x', key: 'k' },
      { op: 'adjust', sku: 'batch-m', location: 'WH1', delta: 2, reason: 'found', key: 'adj-m' },
      { op: 'reserve', reservationId: 'batch-m1', lines: [] },
      { op: 'reserve', reservationId: 'batch-m1', lines: [{ sku: 'batch-m', qty: 4 }] },
      { op: 'atp', sku: 'batch-m' },
    ]);
    expect(response.statusCode).toBe(200);
    const { results } = json<{ results: Result[] }>(response);
    expect(results.map((r) => r.status)).toEqual([400, 200, 422, 200, 400, 201, 200]);
    expect(results[1]!.body).toMatchObject({ sku: 'batch-m', onHand: 3 });
    expect(results[2]!.body).toMatchObject({ detail: expect.stringContaining('commands/2/') });
    expect(results[3]!.body).toMatchObject({ key: 'adj-m', status: 'applied', stock: { onHand: 5 } });
    expect(results[4]!.body).toMatchObject({ detail: expect.stringContaining('commands/4/') });
    expect(results[5]!.body).toMatchObject({ reservationId: 'batch-m1', lines: [{ qty: 4 }] });
    expect(results[6]!.body).toEqual({ sku: 'batch-m', available: 1, byLocation: { WH1: 1 } });
  });

  it('refuses the envelope as a whole: empty, too many commands, not a list, body too large', async () => {
    problem(await batch([]), 400, 'INVALID_REQUEST');
    problem(await batch(Array.from({ length: 51 }, () => ({ op: 'atp', sku: 'x' }))), 413, 'LIMIT_EXCEEDED');
    problem(
      await api.app.inject({ method: 'POST', url: '/v1/batch', payload: { commands: {} }, headers: auth }),
      400,
      'INVALID_REQUEST',
    );
    problem(
      await api.app.inject({
        method: 'POST',
        url: '/v1/batch',
        payload: { commands: [], more: 1 },
        headers: auth,
      }),
      400,
      'INVALID_REQUEST',
    );
    const huge = [{ op: 'set', sku: 'x'.repeat(70_000), location: 'WH1', onHand: 1 }];
    problem(await batch(huge), 413, 'LIMIT_EXCEEDED');
  });

  it('atp commands need the read scope as well; write commands do not', async () => {
    const response = await batch(
      [
        { op: 'atp', sku: 'batch-sku' },
        { op: 'set', sku: 'batch-sku', location: 'WH2', onHand: 1 },
      ],
      { authorization: 'Bearer writer-key-0000000001' },
    );
    const { results } = json<{ results: Result[] }>(response);
    expect(results.map((r) => [r.status, r.body.code])).toEqual([
      [403, 'FORBIDDEN'],
      [200, undefined],
    ]);
  });
});

describe('POST /v1/batch (MessagePack)', () => {
  it('accepts application/msgpack and answers in it when asked', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/batch',
      payload: wire.pack({
        commands: [
          { op: 'reserve', reservationId: 'mp-1', lines: [{ sku: 'batch-sku', qty: 1 }] },
          { op: 'atp', sku: 'batch-sku' },
        ],
      }),
      headers: { ...auth, 'content-type': 'application/msgpack', accept: 'application/msgpack' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/msgpack');
    const { results } = wire.unpack(response.rawPayload) as { results: Result[] };
    expect(results[0]).toMatchObject({ status: 201, body: { reservationId: 'mp-1', status: 'held' } });
    expect(results[1]).toMatchObject({ status: 200, body: { sku: 'batch-sku', byLocation: { WH1: 9 } } });
  });

  it('answers JSON to a msgpack body without Accept, and refuses bytes that are not msgpack', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/batch',
      payload: wire.pack({ commands: [{ op: 'atp', sku: 'batch-sku' }] }),
      headers: { ...auth, 'content-type': 'application/msgpack' },
    });
    expect(response.headers['content-type']).toContain('application/json');
    expect(json<{ results: Result[] }>(response).results[0]!.status).toBe(200);
    const broken = await api.app.inject({
      method: 'POST',
      url: '/v1/batch',
      payload: Buffer.from([0xc1, 0xc1, 0xc1]),
      headers: { ...auth, 'content-type': 'application/msgpack' },
    });
    problem(broken, 400, 'INVALID_REQUEST');
  });

  it('checks msgpack values like JSON: a Date or binary where a string belongs is refused', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/batch',
      payload: wire.pack({
        commands: [
          { op: 'atp', sku: new Date(0) },
          { op: 'atp', sku: Buffer.from('abc') },
        ],
      }),
      headers: { ...auth, 'content-type': 'application/msgpack' },
    });
    expect(response.statusCode, response.body).toBe(200);
    const { results } = json<{ results: Result[] }>(response);
    expect(results.map((r) => r.status)).toEqual([400, 400]);
  });

  it('msgpack is accepted on /v1/batch only', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/atp/query',
      payload: wire.pack({ skus: ['batch-sku'] }),
      headers: { ...auth, 'content-type': 'application/msgpack' },
    });
    problem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });
});
