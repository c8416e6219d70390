/** HTTP API: API keys and scopes on every route kind, and per-key rate limits. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, problem, startApi, stopAll, type TestApi } from './support/api.js';

const keys = {
  reader: 'reader-key-aaaaaaaaaaaa',
  writer: 'writer-key-bbbbbbbbbbbb',
  admin: 'admin-key-cccccccccccc',
};

afterAll(stopAll);

describe('API keys and scopes', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startApi({
      keys: [
        { key: keys.reader, scopes: ['read'] },
        { key: keys.writer, scopes: ['write'] },
        { key: keys.admin, scopes: ['admin'] },
      ],
    });
  });
  const call = (method: 'GET' | 'PUT' | 'POST', url: string, key?: string, payload?: object) =>
    api.app.inject({
      method,
      url,
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
      ...(payload === undefined ? {} : { payload }),
    });

  it('401 UNAUTHORIZED without a key or with an unknown one, before the body is read', async () => {
    const missing = problem(await call('GET', '/v1/channels'), 401, 'UNAUTHORIZED');
    expect(missing.detail).toContain('Authorization: Bearer');
    const unknown = await call('GET', '/v1/channels', 'not-a-key');
    problem(unknown, 401, 'UNAUTHORIZED');
    expect(unknown.headers['www-authenticate']).toContain('Bearer');
    // A malformed body from an unauthenticated client is still a 401, never a parse error.
    const raw = await api.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      payload: '{not json',
      headers: { 'content-type': 'application/json' },
    });
    problem(raw, 401, 'UNAUTHORIZED');
  });

  it('403 FORBIDDEN with a valid key lacking the scope', async () => {
    problem(await call('PUT', '/v1/stock/a/WH1', keys.reader, { onHand: 1 }), 403, 'FORBIDDEN');
    problem(await call('GET', '/v1/stock/a', keys.writer), 403, 'FORBIDDEN');
    problem(await call('PUT', '/v1/channels/web', keys.writer, { locations: ['WH1'] }), 403, 'FORBIDDEN');
    problem(await call('GET', '/metrics', keys.writer), 403, 'FORBIDDEN');
  });

  it('admits each scope to its routes; admin implies read and write', async () => {
    expect((await call('PUT', '/v1/stock/a/WH1', keys.writer, { onHand: 1 })).statusCode).toBe(200);
    expect((await call('GET', '/v1/stock/a', keys.reader)).statusCode).toBe(200);
    expect((await call('PUT', '/v1/channels/web', keys.admin, { locations: ['WH1'] })).statusCode).toBe(200);
    expect((await call('GET', '/v1/stock/a', keys.admin)).statusCode).toBe(200);
    expect((await call('PUT', '/v1/stock/a/WH1', keys.admin, { onHand: 2 })).statusCode).toBe(200);
    expect((await call('GET', '/metrics', keys.reader)).statusCode).toBe(200);
  });

  it('accepts the key as X-API-Key too', async () => {
    const response = await api.app.inject({
      method: 'GET',
      url: '/v1/channels',
      headers: { 'x-api-key': keys.reader },
    });
    expect(response.statusCode).toBe(200);
  });

  it('health, readiness and the documentation need no key', async () => {
    expect((await call('GET', '/healthz')).statusCode).toBe(200);
    expect((await call('GET', '/readyz')).statusCode).toBe(200);
    expect((await call('GET', '/docs/json')).statusCode).toBe(200);
  });
});

describe('rate limits', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startApi({
      keys: [
        { key: keys.reader, scopes: ['read'] },
        { key: keys.writer, scopes: ['read', 'write'], rateLimitMax: 5 },
      ],
      rateLimit: { max: 3, timeWindowMs: 60_000 },
    });
  });
  const get = (key: string) =>
    api.app.inject({ method: 'GET', url: '/v1/channels', headers: { authorization: `Bearer ${key}` } });

  it('429 RATE_LIMITED as problem+json with Retry-After once a key spent its window; other keys go on', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(keys.reader)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await get(keys.reader);
    const body = problem(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(String(body.detail)).toContain('3');
    // A key with its own limit gets it, and its bucket is its own.
    const own: number[] = [];
    for (let i = 0; i < 6; i++) own.push((await get(keys.writer)).statusCode);
    expect(own).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('does not limit health checks', async () => {
    for (let i = 0; i < 10; i++)
      expect((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('an unauthenticated request is refused before it spends anyone’s budget', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/v1/channels' });
    problem(response, 401, 'UNAUTHORIZED');
    expect(json(response).code).toBe('UNAUTHORIZED');
  });
});
