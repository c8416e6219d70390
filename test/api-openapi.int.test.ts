/**
 * The OpenAPI document: generated from the route schemas, OpenAPI 3.1, every route of the
 * contract present with its parameters, bodies, responses and security, and every $ref
 * resolvable. Swagger UI is served at /docs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, startApi, stopAll, type TestApi } from './support/api.js';

let api: TestApi;
// The document is deep, untyped JSON navigated by path: `any` keeps the assertions readable.
// biome-ignore lint/suspicious/noExplicitAny: see above
let doc: Record<string, any>;

beforeAll(async () => {
  api = await startApi({ keys: [{ key: 'docs-key-0000000000', scopes: ['read'] }] });
  const response = await api.app.inject({ method: 'GET', url: '/docs/json' });
  expect(response.statusCode).toBe(200);
  doc = json(response);
});
afterAll(stopAll);

/** The contract of issue 4: method and path of every route. */
const contract: Array<[string, string]> = [
  ['put', '/v1/stock/{sku}/{location}'],
  ['post', '/v1/stock/adjustments'],
  ['get', '/v1/stock/{sku}'],
  ['put', '/v1/channels/{channel}'],
  ['get', '/v1/channels'],
  ['get', '/v1/atp/{sku}'],
  ['post', '/v1/atp/query'],
  ['post', '/v1/reservations'],
  ['get', '/v1/reservations/{id}'],
  ['post', '/v1/reservations/{id}/commit'],
  ['post', '/v1/reservations/{id}/release'],
  ['post', '/v1/reservations/{id}/extend'],
  ['post', '/v1/batch'],
  ['get', '/v1/events'],
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/metrics'],
];

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1 with info and the two key schemes', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
  });

  it('lists exactly the routes of the contract', () => {
    const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, item]) => Object.keys(item).map((method) => [method, path] as [string, string]),
    );
    expect(listed.sort()).toEqual([...contract].sort());
  });

  it('documents parameters, bodies, success and problem responses of every /v1 route', () => {
    for (const [method, path] of contract.filter(([, p]) => p.startsWith('/v1'))) {
      const operation = doc.paths[path][method];
      expect(operation.summary, `${method} ${path}`).toEqual(expect.any(String));
      expect(operation.security, `${method} ${path}`).toEqual([{ bearer: [] }, { apiKey: [] }]);
      const params = (path.match(/\{(\w+)\}/g) ?? []).map((p) => p.slice(1, -1));
      for (const name of params) {
        expect(
          operation.parameters.some((p: { name: string; in: string }) => p.name === name && p.in === 'path'),
        ).toBe(true);
      }
      const statuses = Object.keys(operation.responses);
      expect(
        statuses.some((s) => s.startsWith('2')),
        `${method} ${path}`,
      ).toBe(true);
      expect(statuses).toContain('401');
      expect(operation.responses['401'].content['application/problem+json'].schema).toBeDefined();
      if (method !== 'get' && !path.endsWith('/release') && path !== '/v1/reservations/{id}/commit') {
        expect(operation.requestBody, `${method} ${path}`).toBeDefined();
      }
    }
    const reserve = doc.paths['/v1/reservations'].post;
    expect(Object.keys(reserve.responses)).toEqual(expect.arrayContaining(['200', '201', '409', '422']));
    expect(
      reserve.parameters.some(
        (p: { name: string; in: string }) => p.name === 'idempotency-key' && p.in === 'header',
      ),
    ).toBe(true);
    const lines = reserve.requestBody.content['application/json'].schema.properties.lines;
    expect(lines.maxItems).toBe(100);
    const events = doc.paths['/v1/events'].get;
    expect(events.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['after', 'limit']);
  });

  it('describes the batch commands as a union and the problem schema once', () => {
    const batch = doc.paths['/v1/batch'].post.requestBody.content['application/json'].schema;
    const union = batch.properties.commands.items.anyOf as Array<{
      properties: { op: { const?: string; enum?: string[] } };
    }>;
    // The generator writes a const as a one-value enum.
    expect(union.map((c) => c.properties.op.const ?? c.properties.op.enum?.[0]).sort()).toEqual(
      ['adjust', 'atp', 'commit', 'extend', 'release', 'reserve', 'set'].sort(),
    );
    expect(doc.components.schemas.Problem.properties.code.enum).toContain('INSUFFICIENT_STOCK');
  });

  it('every $ref resolves inside the document', () => {
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node !== null && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === '$ref' && typeof v === 'string') refs.push(v);
          else walk(v);
        }
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.startsWith('#/'), ref).toBe(true);
      const target = ref
        .slice(2)
        .split('/')
        // biome-ignore lint/suspicious/noExplicitAny: walking arbitrary JSON
        .reduce<any>((node, part) => node?.[part], doc);
      expect(target, ref).toBeDefined();
    }
  });

  it('serves Swagger UI at /docs', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/docs/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/html');
  });
});
