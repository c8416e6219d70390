/**
 * The change feed without an engine: cursors, the merge order across streams, pages that
 * end inside a row, and the wake-up of a waiting tail with and without notifications.
 */
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../src/actors/types.js';
import {
  ChangeFeed,
  type Cursor,
  decodeCursor,
  encodeCursor,
  type FeedEvent,
  NotifyingStore,
} from '../src/api/events.js';
import { encodeEvents } from '../src/persistence/codec.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import type { WalRow } from '../src/persistence/wal.js';

function released(id: string, at: number): DomainEvent {
  return { type: 'ReservationReleased', at, reservationId: id };
}

function row(stream: number, seq: number, epoch: number, at: number, ids: string[]): WalRow {
  const events = ids.map((id) => released(id, at));
  return { stream, seq, epoch, at, eventCount: events.length, payload: encodeEvents(events) };
}

const idOf = (event: FeedEvent): string => (event as unknown as { reservationId: string }).reservationId;

function feedOver(store: NotifyingStore, shardCount = 2): ChangeFeed {
  return new ChangeFeed(store, { shardCount, recentRowsMax: 4, readChunkRows: 2 });
}

async function drain(
  feed: ChangeFeed,
  from: Cursor,
  limit: number,
): Promise<{ ids: string[]; next: Cursor }> {
  const ids: string[] = [];
  let cursor = from;
  for (;;) {
    const page = await feed.page(cursor, limit);
    cursor = page.next;
    if (page.events.length === 0) return { ids, next: cursor };
    for (const event of page.events) ids.push(idOf(event));
  }
}

describe('cursors', () => {
  it('round-trip and refuse anything they did not write', () => {
    const cursor = new Map([
      [1, { seq: 7, skip: 2 }],
      [0, { seq: 12, skip: 0 }],
    ]);
    const text = encodeCursor(cursor);
    expect(text).toBe('c1.0-12-0_1-7-2');
    expect(decodeCursor(text)).toEqual(cursor);
    expect(decodeCursor('c1.')).toEqual(new Map());
    for (const bad of [
      '',
      'latest',
      'c2.0-1-0',
      'c1.0-1',
      'c1.0-1-0_0-2-0',
      'c1.x-1-0',
      'c1.0--1-0',
      'c1.99999-1-0',
    ]) {
      expect(decodeCursor(bad), bad).toBeNull();
    }
  });
});

describe('ChangeFeed.page', () => {
  it('merges streams by epoch, then time; exact within a stream; resumes mid-row without repeats', async () => {
    const memory = new MemoryWalStore();
    const store = new NotifyingStore(memory);
    // Stream 0: a (t=10), b c (t=30, one row); stream 1: d (t=20), e (t=40); epoch 2: f on stream 2 (t=5).
    await store.append(row(0, 1, 1, 10, ['a']));
    await store.append(row(1, 1, 1, 20, ['d']));
    await store.append(row(0, 2, 1, 30, ['b', 'c']));
    await store.append(row(1, 2, 1, 40, ['e']));
    await store.append(row(2, 1, 2, 5, ['f']));
    const feed = feedOver(store, 3);
    const all = await drain(feed, new Map(), 100);
    expect(all.ids).toEqual(['a', 'd', 'b', 'c', 'e', 'f']);
    for (const limit of [1, 2, 3]) expect((await drain(feed, new Map(), limit)).ids).toEqual(all.ids);
    // A page of one event ends inside the b-c row and the next page starts at c.
    const first = await feed.page(
      new Map([
        [0, { seq: 1, skip: 0 }],
        [1, { seq: 1, skip: 0 }],
        [2, { seq: 1, skip: 0 }],
      ]),
      1,
    );
    expect(first.events.map(idOf)).toEqual(['b']);
    expect(first.next.get(0)).toEqual({ seq: 1, skip: 1 });
    const second = await feed.page(first.next, 10);
    expect(second.events.map(idOf)).toEqual(['c', 'e']);
    feed.close();
  });

  it('finds the streams of an older, larger layout', async () => {
    const memory = new MemoryWalStore();
    await memory.append(row(5, 1, 1, 1, ['old']));
    const feed = feedOver(new NotifyingStore(memory), 2);
    expect(await feed.streams()).toEqual([0, 1, 5]);
    expect((await drain(feed, new Map(), 10)).ids).toEqual(['old']);
    // A position for a stream no layout wrote is ignored rather than read on every page.
    const page = await feed.page(new Map([[9, { seq: 4, skip: 0 }]]), 10);
    expect(page.events.map(idOf)).toEqual(['old']);
    expect([...page.next.keys()]).toEqual([0, 1, 5]);
    feed.close();
  });

  it('the latest cursor skips everything written so far', async () => {
    const store = new NotifyingStore(new MemoryWalStore());
    await store.append(row(0, 1, 1, 1, ['before']));
    const feed = feedOver(store);
    const latest = await feed.latest();
    expect((await feed.page(latest, 10)).events).toEqual([]);
    await store.append(row(0, 2, 1, 2, ['after']));
    expect((await drain(feed, latest, 10)).ids).toEqual(['after']);
    feed.close();
  });

  it('reads rows older than the recent window from the store', async () => {
    const store = new NotifyingStore(new MemoryWalStore());
    const feed = feedOver(store, 1);
    for (let seq = 1; seq <= 10; seq++) await store.append(row(0, seq, 1, seq, [`e${seq}`]));
    expect((await drain(feed, new Map(), 3)).ids).toEqual(Array.from({ length: 10 }, (_, i) => `e${i + 1}`));
    feed.close();
  });

  it('leaves out bodyHash, an internal detail, and places every event', async () => {
    const store = new NotifyingStore(new MemoryWalStore());
    const held: DomainEvent = {
      type: 'ReservationHeld',
      at: 7,
      reservationId: 'r',
      orderId: null,
      channel: null,
      bodyHash: 123,
      expiresAt: 9,
      lines: [],
    };
    await store.append({ stream: 0, seq: 1, epoch: 3, at: 7, eventCount: 1, payload: encodeEvents([held]) });
    const feed = feedOver(store, 1);
    const [event] = (await feed.page(new Map(), 1)).events;
    expect(event).toEqual({
      shard: 0,
      seq: 1,
      index: 0,
      epoch: 3,
      type: 'ReservationHeld',
      at: 7,
      reservationId: 'r',
      orderId: null,
      channel: null,
      expiresAt: 9,
      lines: [],
    });
    feed.close();
  });
});

describe('WAL retention', () => {
  it('a cursor whose next rows were pruned is refused; reading from the beginning starts at the oldest kept', async () => {
    const memory = new MemoryWalStore();
    const store = new NotifyingStore(memory);
    for (let seq = 1; seq <= 5; seq++) await store.append(row(0, seq, 1, seq, [`e${seq}`]));
    const feed = new ChangeFeed(store, {
      shardCount: 1,
      recentRowsMax: 2,
      readChunkRows: 2,
    });
    const early = await feed.page(new Map(), 2);
    expect(early.events.map(idOf)).toEqual(['e1', 'e2']);
    await memory.prune(0, 1, 4);
    await expect(feed.page(early.next, 10)).rejects.toMatchObject({
      code: 'CURSOR_EXPIRED',
      statusCode: 410,
    });
    const fresh = await drain(feed, new Map(), 10);
    expect(fresh.ids).toEqual(['e5']);
    // A cursor at or after the oldest kept row still resumes.
    await store.append(row(0, 6, 1, 6, ['e6']));
    expect((await drain(feed, fresh.next, 10)).ids).toEqual(['e6']);
    feed.close();
  });
});

describe('ChangeFeed.waitForAppend', () => {
  it('wakes on an append through the NotifyingStore, without polling', async () => {
    const store = new NotifyingStore(new MemoryWalStore());
    const feed = feedOver(store, 1);
    const version = feed.version;
    const woken = feed.waitForAppend(version, 10_000);
    await store.append(row(0, 1, 1, 1, ['x']));
    await woken;
    expect(feed.version).toBe(version + 1);
    feed.close();
  });

  it('times out and honours an abort signal', async () => {
    const feed = feedOver(new NotifyingStore(new MemoryWalStore()), 1);
    const started = Date.now();
    await feed.waitForAppend(feed.version, 30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    const abort = new AbortController();
    const waiting = feed.waitForAppend(feed.version, 10_000, abort.signal);
    abort.abort();
    await waiting;
    feed.close();
  });

  it('with a store whose workers append directly (linkForWorker), passes the link on and polls', async () => {
    const memory = new MemoryWalStore();
    let linked = 0;
    const direct = Object.assign(memory, {
      linkForWorker: async () => {
        linked++;
        return { link: null, transfer: [], release: () => undefined };
      },
    });
    const store = new NotifyingStore(direct);
    expect(store.seesEveryAppend).toBe(false);
    await (store as unknown as { linkForWorker(): Promise<unknown> }).linkForWorker();
    expect(linked).toBe(1);
    const feed = new ChangeFeed(store, { shardCount: 1, recentRowsMax: 4, pollMs: 20 });
    await feed.streams();
    let woken = false;
    const waiting = feed.waitForAppend(feed.version, 10_000).then(() => {
      woken = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(woken).toBe(false);
    // Behind the decorator's back, as a worker with its own connection would.
    await memory.append(row(0, 1, 1, 1, ['direct']));
    await waiting;
    expect((await drain(feed, new Map(), 10)).ids).toEqual(['direct']);
    feed.close();
  });

  it('with durable-append notices from the engine, tails wake on them and nothing polls', async () => {
    const memory = new MemoryWalStore();
    const direct = Object.assign(memory, {
      linkForWorker: async () => ({ link: null, transfer: [], release: () => undefined }),
    });
    const store = new NotifyingStore(direct);
    let lastSeqCalls = 0;
    const lastSeq = memory.lastSeq.bind(memory);
    memory.lastSeq = (stream: number) => {
      lastSeqCalls++;
      return lastSeq(stream);
    };
    const listeners = new Set<(stream: number, seq: number) => void>();
    const feed = new ChangeFeed(store, {
      shardCount: 1,
      recentRowsMax: 4,
      pollMs: 5,
      noticeIntervalMs: 50,
      notices: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    });
    await feed.streams();
    const probesBefore = lastSeqCalls;
    let woken = 0;
    const waiting = feed.waitForAppend(feed.version, 10_000).then(() => {
      woken++;
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(woken).toBe(0);
    expect(lastSeqCalls).toBe(probesBefore); // a poll every 5 ms would have probed by now
    // A worker appends on its own connection, then the engine reports the row durable.
    await memory.append(row(0, 1, 1, 1, ['noticed']));
    for (const listener of listeners) listener(0, 1);
    await waiting;
    expect(woken).toBe(1);
    expect((await drain(feed, new Map(), 10)).ids).toEqual(['noticed']);
    // Under load the notices are coalesced: a burst wakes the tails once more, not per row.
    const version = feed.version;
    for (let seq = 2; seq <= 20; seq++) for (const listener of listeners) listener(0, seq);
    expect(feed.version).toBe(version);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(feed.version).toBe(version + 1);
    feed.close();
    expect(listeners.size).toBe(0);
  });
});
