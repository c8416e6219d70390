/**
 * Property-based fuzzing of the HTTP API (fast-check) against a real engine: random and
 * mutated bodies, random path segments and query strings, odd content types.
 *
 * Properties, for every request:
 *   - never a 5xx;
 *   - every error is application/problem+json whose `code` is one of src/errors.ts and
 *     whose `status` is the response's;
 *   - a refused request (4xx) changes nothing: the engine's digest is the same after it.
 *
 * The clock is manual, so no reservation expires during a run (an expiry is a legitimate
 * change that a refused request may trigger). STOCKD_FC_RUNS=n soaks, STOCKD_FC_SEED=s
 * replays a reported failure.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/engine/clock.js';
import { errorCodes } from '../src/errors.js';
import { startApi, stopAll, type TestApi } from './support/api.js';

let api: TestApi;
const wire = new Packr({ useRecords: false });

function runs(numRuns: number): fc.Parameters<unknown> {
  const seed = process.env.STOCKD_FC_SEED;
  return {
    numRuns: Number(process.env.STOCKD_FC_RUNS ?? numRuns),
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    interruptAfterTimeLimit: 40_000,
  };
}

beforeAll(async () => {
  api = await startApi({ shards: 1, clock: new ManualClock() });
  const seed: Array<{ method: 'PUT' | 'POST'; url: string; payload?: object }> = [
    { method: 'PUT', url: '/v1/channels/web', payload: { locations: ['WH1', 'WH2'], buffer: 1 } },
    { method: 'PUT', url: '/v1/stock/fz-a/WH1', payload: { onHand: 50 } },
    { method: 'PUT', url: '/v1/stock/fz-b/WH2', payload: { onHand: 5 } },
    {
      method: 'POST',
      url: '/v1/reservations',
      payload: { reservationId: 'held-1', lines: [{ sku: 'fz-a', qty: 2 }] },
    },
    {
      method: 'POST',
      url: '/v1/reservations',
      payload: { reservationId: 'rel-1', lines: [{ sku: 'fz-a', qty: 1 }] },
    },
    { method: 'POST', url: '/v1/reservations/rel-1/release' },
  ];
  for (const request of seed) {
    const response = await api.app.inject(request);
    expect(response.statusCode).toBeLessThan(300);
  }
});
afterAll(stopAll);

interface Probe {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH';
  readonly url: string;
  readonly payload?: string | Buffer;
  readonly contentType?: string;
}

async function check(probe: Probe): Promise<void> {
  const before = await api.engine.digest();
  const response = await api.app.inject({
    method: probe.method,
    url: probe.url,
    ...(probe.payload === undefined ? {} : { payload: probe.payload }),
    headers: probe.contentType === undefined ? {} : { 'content-type': probe.contentType },
  });
  const where = `${probe.method} ${probe.url} ${String(probe.payload).slice(0, 200)} → ${response.statusCode} ${response.body.slice(0, 300)}`;
  expect(response.statusCode, where).toBeLessThan(500);
  if (response.statusCode >= 400) {
    expect(response.headers['content-type'], where).toContain('application/problem+json');
    const body = JSON.parse(response.body) as { code: string; status: number };
    expect(errorCodes, where).toContain(body.code);
    expect(body.status, where).toBe(response.statusCode);
    expect(await api.engine.digest(), `state changed: ${where}`).toBe(before);
  }
}

/* ---------------------------------------------------------------- arbitraries */

const valid: Record<string, () => Record<string, unknown>> = {
  'POST /v1/reservations': () => ({
    reservationId: 'fz-r',
    channel: 'web',
    lines: [{ sku: 'fz-a', qty: 1 }],
  }),
  'PUT /v1/stock/fz-a/WH1': () => ({ onHand: 40, safetyStock: 1, ifVersion: 1 }),
  'POST /v1/stock/adjustments': () => ({
    adjustments: [{ sku: 'fz-a', location: 'WH1', delta: 1, reason: 'r', key: 'k' }],
  }),
  'PUT /v1/channels/web2': () => ({ locations: ['WH1'], buffer: 0 }),
  'POST /v1/atp/query': () => ({ skus: ['fz-a'], channel: 'web' }),
  'POST /v1/reservations/held-1/commit': () => ({ lines: [{ sku: 'fz-a', qty: 1 }] }),
  'POST /v1/reservations/held-1/extend': () => ({ ttlSeconds: 60 }),
  'POST /v1/batch': () => ({
    commands: [{ op: 'reserve', reservationId: 'fz-b', lines: [{ sku: 'fz-b', qty: 1 }] }],
  }),
};

const keys = [
  'lines',
  'commands',
  'adjustments',
  'skus',
  'locations',
  0,
  1,
  'qty',
  'sku',
  'location',
  'reservationId',
  'ttlSeconds',
  'strategy',
  'onHand',
  'ifVersion',
  'sourceTs',
  'delta',
  'key',
  'reason',
  'op',
  'channel',
  'buffer',
  'orderId',
  'bodyHash',
  'type',
  '__proto__',
  'constructor',
  'x',
] as const;

const oddValue = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(
    -1,
    0,
    1.5,
    2 ** 53,
    -(2 ** 31),
    1e21,
    '',
    ' ',
    '1',
    'é'.repeat(65),
    'x'.repeat(129),
    null,
    [],
    {},
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

const mutation = fc.record({
  path: fc.array(fc.constantFrom(...keys), { minLength: 1, maxLength: 4 }),
  value: fc.option(oddValue, { nil: undefined }),
});

/**
 * Sets (or deletes) the value at `path`, creating objects on the way. Only own properties
 * are followed and defined, so `__proto__` and `constructor` become plain keys of the body
 * (as a client could send them) and never reach this process's prototypes.
 */
function mutate(body: Record<string, unknown>, path: readonly (string | number)[], value: unknown): void {
  const define = (node: object, key: string | number, v: unknown): void => {
    Object.defineProperty(node, key, { value: v, enumerable: true, writable: true, configurable: true });
  };
  let node: object = body;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    let next = Object.hasOwn(node, key) ? (node as Record<string | number, unknown>)[key] : undefined;
    if (next === null || typeof next !== 'object') {
      next = typeof path[i + 1] === 'number' ? [] : {};
      define(node, key, next);
    }
    node = next as object;
  }
  const last = path.at(-1)!;
  if (value === undefined) delete (node as Record<string | number, unknown>)[last];
  else define(node, last, value);
}

const mutatedBody = fc
  .record({
    route: fc.constantFrom(...Object.keys(valid)),
    mutations: fc.array(mutation, { maxLength: 3 }),
    encoding: fc.constantFrom('json', 'json', 'json', 'msgpack', 'text', 'broken'),
  })
  .map(({ route, mutations, encoding }): Probe => {
    const [method, url] = route.split(' ') as [Probe['method'], string];
    const body = valid[route]!();
    for (const { path, value } of mutations) mutate(body, path, value);
    const text = JSON.stringify(body) ?? 'null';
    switch (encoding) {
      case 'msgpack':
        return { method, url, payload: wire.pack(body), contentType: 'application/msgpack' };
      case 'text':
        return { method, url, payload: text, contentType: 'text/plain' };
      case 'broken':
        return {
          method,
          url,
          payload: text.slice(0, Math.max(0, text.length - 2)),
          contentType: 'application/json',
        };
      default:
        return { method, url, payload: text, contentType: 'application/json' };
    }
  });

const anyBody = fc
  .record({
    route: fc.constantFrom(...Object.keys(valid)),
    body: fc.jsonValue(),
  })
  .map(({ route, body }): Probe => {
    const [method, url] = route.split(' ') as [Probe['method'], string];
    return { method, url, payload: JSON.stringify(body) ?? 'null', contentType: 'application/json' };
  });

const segment = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 140 }).map(encodeURIComponent),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{0,20}$/),
  fc.constantFrom('held-1', 'rel-1', 'fz-a', 'WH1', 'web', '%', '%E0%A4%A', '..', 'x'.repeat(1_500)),
);

const fuzzedPath = fc
  .tuple(
    fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH'),
    fc.constantFrom(
      (a: string, b: string) => `/v1/stock/${a}/${b}`,
      (a: string) => `/v1/stock/${a}`,
      (a: string, b: string) => `/v1/atp/${a}?channel=${b}`,
      (a: string, b: string) => `/v1/atp/${a}?location=${b}&limit=${a}`,
      (a: string) => `/v1/reservations/${a}`,
      (a: string, b: string) => `/v1/reservations/${a}/${b}`,
      (a: string) => `/v1/reservations/${a}/release`,
      (a: string) => `/v1/reservations/${a}/commit`,
      (a: string, b: string) => `/v1/events?after=${a}&limit=${b}`,
      (a: string) => `/v1/channels/${a}`,
      (a: string, b: string) => `/${a}/${b}`,
    ),
    segment,
    segment,
    fc.option(fc.jsonValue(), { nil: undefined }),
  )
  .map(
    ([method, build, a, b, body]): Probe => ({
      method: method as Probe['method'],
      url: build(a, b),
      ...(body === undefined || method === 'GET'
        ? {}
        : { payload: JSON.stringify(body) ?? 'null', contentType: 'application/json' }),
    }),
  );

describe('fuzzing', () => {
  it('mutated bodies: no 5xx, problems with known codes, no change when refused', async () => {
    await fc.assert(fc.asyncProperty(mutatedBody, check), runs(150));
  });

  it('arbitrary JSON bodies: the same', async () => {
    await fc.assert(fc.asyncProperty(anyBody, check), runs(60));
  });

  it('arbitrary paths, methods and query strings: the same', async () => {
    await fc.assert(fc.asyncProperty(fuzzedPath, check), runs(150));
  });
});
