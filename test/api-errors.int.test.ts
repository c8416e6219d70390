/**
 * HTTP API: what goes wrong and how it is answered — malformed input, limits, unknown
 * routes, overload, WAL failures, recovery — plus /healthz, /readyz and /metrics.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NotifyingStore } from '../src/api/events.js';
import { buildServer } from '../src/api/server.js';
import { defaultLimits } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { latencyBoundsMs } from '../src/engine/latency-counts.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { json, problem, startApi, stopAll, stopApi } from './support/api.js';

afterAll(stopAll);

describe('malformed requests', () => {
  it('each is a problem with a stable code, never a 500, and changes nothing', async () => {
    const api = await startApi({ limits: { bodyBytesMax: 1_024 } });
    const before = await api.engine.digest();
    const send = (payload: string | Buffer, contentType = 'application/json', url = '/v1/reservations') =>
      api.app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType } });

    problem(await send('{"lines": ['), 400, 'INVALID_REQUEST');
    problem(await send('[1, 2]'), 400, 'INVALID_REQUEST');
    problem(await send('null'), 400, 'INVALID_REQUEST');
    problem(await send(''), 400, 'INVALID_REQUEST');
    problem(await send('{"__proto__": {"x": 1}, "lines": []}'), 400, 'INVALID_REQUEST');
    problem(await send('{"constructor": {"prototype": {}}}'), 400, 'INVALID_REQUEST');
    problem(await send('lines=1', 'application/x-www-form-urlencoded'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    problem(await send('hello', 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    const big = JSON.stringify({ reservationId: 'r', lines: [{ sku: 'x'.repeat(2_000), qty: 1 }] });
    problem(await send(big), 413, 'LIMIT_EXCEEDED');
    problem(await api.app.inject({ method: 'GET', url: '/v1/nowhere' }), 404, 'ROUTE_NOT_FOUND');
    problem(await api.app.inject({ method: 'DELETE', url: '/v1/reservations/r1' }), 404, 'ROUTE_NOT_FOUND');
    problem(
      await api.app.inject({ method: 'GET', url: `/v1/stock/${'x'.repeat(1_100)}` }),
      400,
      'INVALID_REQUEST',
    );
    problem(await api.app.inject({ method: 'GET', url: '/v1/stock/%E0%A4%A' }), 400, 'INVALID_REQUEST');
    expect(await api.engine.digest()).toBe(before);
    await stopApi(api);
  });
});

describe('availability', () => {
  it('answers 503 UNAVAILABLE with Retry-After while the engine recovers, then serves', async () => {
    const store = new NotifyingStore(new MemoryWalStore());
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const starting = gate.then(() => Engine.start({ store, shards: 1 }));
    const app = await buildServer({ engine: starting, store });
    try {
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      const notReady = await app.inject({ method: 'GET', url: '/readyz' });
      problem(notReady, 503, 'UNAVAILABLE');
      expect(notReady.headers['retry-after']).toBe('1');
      const early = await app.inject({ method: 'GET', url: '/v1/channels' });
      problem(early, 503, 'UNAVAILABLE');
      expect(early.headers['retry-after']).toBe('1');
      problem(await app.inject({ method: 'GET', url: '/v1/events' }), 503, 'UNAVAILABLE');
      release();
      const engine = await starting;
      try {
        expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
        expect((await app.inject({ method: 'GET', url: '/v1/channels' })).statusCode).toBe(200);
      } finally {
        await app.close();
        await engine.stop();
      }
    } finally {
      release();
    }
  });

  it('a failed WAL append is 503 UNAVAILABLE; /readyz says not ready until the shard recovered', async () => {
    const api = await startApi();
    await api.app.inject({ method: 'PUT', url: '/v1/stock/wal-sku/WH1', payload: { onHand: 5 } });
    api.memory.failNextAppends(1);
    const failed = await api.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      payload: { reservationId: 'wal-1', lines: [{ sku: 'wal-sku', qty: 1 }] },
    });
    problem(failed, 503, 'UNAVAILABLE');
    expect(failed.headers['retry-after']).toBe('1');
    const ready = await api.app.inject({ method: 'GET', url: '/readyz' });
    // The shard rebuilds from its log in the background; right after the failure it is degraded.
    if (ready.statusCode === 503) problem(ready, 503, 'UNAVAILABLE');
    await api.engine.whenReady();
    expect((await api.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    // The retry with the same id is safe: it either finds the hold or makes it, once.
    const retried = await api.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      payload: { reservationId: 'wal-1', lines: [{ sku: 'wal-sku', qty: 1 }] },
    });
    expect([200, 201]).toContain(retried.statusCode);
    const stock = json<{ totals: { reserved: number } }>(
      await api.app.inject({ method: 'GET', url: '/v1/stock/wal-sku' }),
    );
    expect(stock.totals.reserved).toBe(1);
    await stopApi(api);
  });

  it('/readyz is 503 while the WAL store does not answer, even with every shard idle and ready', async () => {
    // A store whose reads can be made to hang, as an unreachable database would.
    class StallingStore extends MemoryWalStore {
      stalled = false;
      override lastSeq(stream: number): Promise<number> {
        return this.stalled ? new Promise<number>(() => undefined) : super.lastSeq(stream);
      }
    }
    const memory = new StallingStore();
    const api = await startApi({ memory });
    expect((await api.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    memory.stalled = true;
    const stalled = await api.app.inject({ method: 'GET', url: '/readyz' });
    expect(problem(stalled, 503, 'UNAVAILABLE').detail).toContain('WAL store');
    memory.stalled = false;
    expect((await api.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    await stopApi(api);
  });

  it('a full mailbox is 503 OVERLOADED with Retry-After, item by item in a batch', async () => {
    const api = await startApi({
      engineLimits: { ...defaultLimits, mailboxDepthMax: 8, batchCommandsMax: 2, inflightBatchesMax: 4 },
    });
    const commands = Array.from({ length: 40 }, (_, i) => ({ op: 'atp', sku: `s${i}` }));
    const response = await api.app.inject({ method: 'POST', url: '/v1/batch', payload: { commands } });
    const results = json<{ results: Array<{ status: number; body: { code?: string } }> }>(response).results;
    const overloaded = results.filter((r) => r.status === 503);
    expect(overloaded.length).toBeGreaterThan(0);
    expect(overloaded.every((r) => r.body.code === 'OVERLOADED')).toBe(true);
    const singles = await Promise.all(
      Array.from({ length: 40 }, (_, i) => api.app.inject({ method: 'GET', url: `/v1/atp/s${i}` })),
    );
    const refused = singles.filter((r) => r.statusCode === 503);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      problem(r, 503, 'OVERLOADED');
      expect(r.headers['retry-after']).toBe('1');
    }
    await stopApi(api);
  });
});

describe('/metrics', () => {
  it('exposes request latency per route, batch sizes, mailbox depth, WAL appends and rejections', async () => {
    const api = await startApi({ shards: 2 });
    await api.app.inject({ method: 'PUT', url: '/v1/stock/m-sku/WH1', payload: { onHand: 1 } });
    await api.app.inject({ method: 'GET', url: '/v1/stock/unknown-sku' });
    await api.app.inject({
      method: 'POST',
      url: '/v1/batch',
      payload: { commands: [{ op: 'atp', sku: 'm-sku' }] },
    });
    const response = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    const text = response.body;
    expect(text).toMatch(
      /stockd_http_request_duration_seconds_count\{method="PUT",route="\/v1\/stock\/:sku\/:location",status="200"\} 1/,
    );
    expect(text).toMatch(
      /stockd_http_request_duration_seconds_count\{method="GET",route="\/v1\/stock\/:sku",status="404"\} 1/,
    );
    expect(text).toMatch(/stockd_rejections_total\{code="STOCK_NOT_FOUND"\} 1/);
    expect(text).toMatch(/stockd_batch_commands_count 1/);
    expect(text).toMatch(/stockd_shard_mailbox_depth\{shard="1"\} 0/);
    expect(text).toMatch(/stockd_shard_ready\{shard="0"\} 1/);
    expect(text).toMatch(/stockd_shard_wal_appends\{shard="\d"\} [1-9]/);
    expect(text).toMatch(/stockd_shard_wal_last_append_seconds\{shard="0"\}/);
    // The append histogram counts every append of each shard, in cumulative buckets.
    for (const shard of ['0', '1']) {
      const appends = Number(
        new RegExp(`stockd_shard_wal_appends\\{shard="${shard}"\\} (\\d+)`).exec(text)?.[1],
      );
      const count = Number(
        new RegExp(`stockd_shard_wal_append_seconds_count\\{shard="${shard}"\\} (\\d+)`).exec(text)?.[1],
      );
      expect(count, `shard ${shard}`).toBe(appends);
      const buckets = [
        ...text.matchAll(
          new RegExp(`stockd_shard_wal_append_seconds_bucket\\{le="([^"]+)",shard="${shard}"\\} (\\d+)`, 'g'),
        ),
      ];
      expect(buckets.map((m) => m[1])).toEqual([...latencyBoundsMs.map((ms) => String(ms / 1000)), '+Inf']);
      const cumulative = buckets.map((m) => Number(m[2]));
      expect(cumulative).toEqual([...cumulative].sort((a, b) => a - b));
      expect(cumulative.at(-1)).toBe(count);
    }
    expect(text).toMatch(/stockd_shard_wal_append_seconds_sum\{shard="0"\} [\d.e-]+/);
    expect(text).toMatch(/stockd_process_cpu_seconds_total/);
    await stopApi(api);
  });
});
