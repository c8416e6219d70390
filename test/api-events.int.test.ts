/**
 * GET /v1/events against a real engine: pages in log order, cursors, and a cursor that
 * survives a restart with another shard count (a new layout epoch). The SSE tail is
 * tested over a real socket in api.e2e.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { json, problem, startApi, stopAll, stopApi, type TestApi } from './support/api.js';

afterAll(stopAll);

interface Page {
  events: Array<{
    shard: number;
    seq: number;
    index: number;
    epoch: number;
    type: string;
    [key: string]: unknown;
  }>;
  next: string;
}

async function page(api: TestApi, query: string): Promise<Page> {
  const response = await api.app.inject({ method: 'GET', url: `/v1/events${query}` });
  expect(response.statusCode, response.body).toBe(200);
  return json<Page>(response);
}

/** Every event from `after` to the end, in pages of `limit`. */
async function readAll(
  api: TestApi,
  after: string | null,
  limit: number,
): Promise<{ events: Page['events']; next: string }> {
  const events: Page['events'] = [];
  let cursor = after;
  for (;;) {
    const got = await page(
      api,
      `?limit=${limit}${cursor === null ? '' : `&after=${encodeURIComponent(cursor)}`}`,
    );
    cursor = got.next;
    if (got.events.length === 0) return { events, next: cursor };
    events.push(...got.events);
  }
}

const key = (e: Page['events'][number]) => `${e.shard}/${e.seq}/${e.index}`;

async function write(api: TestApi, tag: string, count: number): Promise<void> {
  const commands = Array.from({ length: count }, (_, i) => ({
    op: 'set',
    sku: `${tag}-${i}`,
    location: 'WH1',
    onHand: i + 1,
  }));
  const response = await api.app.inject({ method: 'POST', url: '/v1/batch', payload: { commands } });
  expect(response.statusCode).toBe(200);
}

describe('GET /v1/events', () => {
  it('pages through every committed event in log order, whatever the page size', async () => {
    const api = await startApi({ shards: 2 });
    await write(api, 'page', 25);
    await api.app.inject({ method: 'PUT', url: '/v1/channels/web', payload: { locations: ['WH1'] } });
    const all = await readAll(api, null, 1_000);
    // 25 stock sets and the channel on each shard.
    expect(all.events.filter((e) => e.type === 'StockSet')).toHaveLength(25);
    expect(all.events.filter((e) => e.type === 'ChannelUpserted')).toHaveLength(2);
    for (const limit of [1, 4, 7])
      expect((await readAll(api, null, limit)).events.map(key)).toEqual(all.events.map(key));
    // Exact order within each shard.
    for (const shard of [0, 1]) {
      const mine = all.events.filter((e) => e.shard === shard).map((e) => e.seq * 10_000 + e.index);
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
    // The last cursor is at the end, until something new is committed.
    expect((await page(api, `?after=${all.next}`)).events).toEqual([]);
    await write(api, 'later', 1);
    const later = await page(api, `?after=${all.next}`);
    expect(later.events.map((e) => e.sku)).toEqual(['later-0']);
    await stopApi(api);
  });

  it('`latest` starts at the current end; a bad cursor or limit is 400', async () => {
    const api = await startApi();
    await write(api, 'old', 3);
    const start = await page(api, '?after=latest');
    expect(start.events).toEqual([]);
    await write(api, 'new', 2);
    expect((await page(api, `?after=${start.next}`)).events.map((e) => e.sku)).toEqual(['new-0', 'new-1']);
    problem(await api.app.inject({ method: 'GET', url: '/v1/events?after=bogus' }), 400, 'INVALID_REQUEST');
    problem(await api.app.inject({ method: 'GET', url: '/v1/events?limit=0' }), 400, 'INVALID_REQUEST');
    problem(await api.app.inject({ method: 'GET', url: '/v1/events?limit=1001' }), 400, 'INVALID_REQUEST');
    problem(await api.app.inject({ method: 'GET', url: '/v1/events?limit=ten' }), 400, 'INVALID_REQUEST');
    await stopApi(api);
  });

  it('a cursor whose next events were removed by WAL retention is 410 CURSOR_EXPIRED', async () => {
    // One recent row kept in memory: older rows come from the store, where they are pruned.
    const api = await startApi({ limits: { feedRecentRowsMax: 1 } });
    await write(api, 'kept', 3);
    await write(api, 'kept2', 3);
    const first = await page(api, '?limit=1');
    const last = await api.memory.lastSeq(0);
    await api.memory.prune(0, api.engine.layout.epoch, last);
    problem(
      await api.app.inject({ method: 'GET', url: `/v1/events?after=${first.next}` }),
      410,
      'CURSOR_EXPIRED',
    );
    const sse = await api.app.inject({
      method: 'GET',
      url: '/v1/events',
      headers: { accept: 'text/event-stream', 'last-event-id': first.next },
    });
    problem(sse, 410, 'CURSOR_EXPIRED');
    // From the beginning: what is kept, the newest row.
    expect((await page(api, '')).events.map((e) => e.sku)).toEqual(['kept2-0', 'kept2-1', 'kept2-2']);
    await stopApi(api);
  });

  it('a cursor stays valid across a restart with another shard count: no event lost or repeated', async () => {
    const memory = new MemoryWalStore();
    const two = await startApi({ shards: 2, memory });
    await write(two, 'epoch1-a', 10);
    const middle = (await readAll(two, null, 1_000)).next;
    await write(two, 'epoch1-b', 10);
    await stopApi(two);

    const three = await startApi({ shards: 3, memory });
    await write(three, 'epoch2', 10);
    const everything = (await readAll(three, null, 1_000)).events;
    const before = everything.findIndex((e) => String(e.sku).startsWith('epoch1-b'));
    const resumed = (await readAll(three, middle, 3)).events;
    // Resuming at the old cursor yields exactly the events after it, in the same order.
    expect(resumed.map(key)).toEqual(everything.slice(before).map(key));
    expect(resumed.filter((e) => e.epoch === 1).map((e) => e.sku)).toHaveLength(10);
    // Every event of the old layout comes before any of the new one.
    const epochs = resumed.map((e) => e.epoch);
    expect(epochs).toEqual([...epochs].sort((a, b) => a - b));
    expect(new Set(resumed.filter((e) => e.epoch === 2).map((e) => e.shard)).size).toBeGreaterThan(1);
    await stopApi(three);
  });
});
