import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { exposeStore, remoteStore } from '../src/persistence/remote-store.js';
import { walStoreContract } from './support/wal-store-contract.js';

// Every store passes the same contract; the PostgreSQL and PGlite stores run it in
// test/pg-store.int.test.ts and test/pglite-store.int.test.ts (they need a server or a thread).
walStoreContract('in-memory', async () => ({ store: new MemoryWalStore(), close: async () => {} }));

// The same store reached from another thread's side of a MessagePort, as shard workers do.
walStoreContract('in-memory through the store bridge', async () => {
  const channel = new MessageChannel();
  exposeStore(new MemoryWalStore(), channel.port1);
  const store = remoteStore(channel.port2);
  return {
    store,
    close: async () => {
      await store.close();
      channel.port1.close();
    },
  };
});

describe('store bridge', () => {
  it('keeps the code of a store error across the thread boundary', async () => {
    const channel = new MessageChannel();
    exposeStore(new MemoryWalStore(), channel.port1);
    const store = remoteStore(channel.port2);
    const row = { stream: 0, seq: 5, epoch: 1, at: 1, eventCount: 1, payload: Uint8Array.of(1) };
    await expect(store.append(row)).rejects.toMatchObject({ code: 'WAL_SEQUENCE', name: 'WalSequenceError' });
    await store.close();
    channel.port1.close();
  });

  it('rejects calls in flight when the serving side goes away, instead of waiting forever', async () => {
    const channel = new MessageChannel();
    const stuck = new MemoryWalStore();
    // An append that never completes, as on a store whose thread is wedged or gone.
    stuck.append = () => new Promise<void>(() => {});
    exposeStore(stuck, channel.port1);
    const store = remoteStore(channel.port2);
    const append = store.append({
      stream: 0,
      seq: 1,
      epoch: 1,
      at: 1,
      eventCount: 1,
      payload: Uint8Array.of(1),
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    channel.port1.close();
    await expect(append).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(store.lastSeq(0)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await store.close();
  });

  it('answers concurrent calls each to its own caller, whatever order they complete in', async () => {
    const channel = new MessageChannel();
    const slow = new MemoryWalStore();
    slow.lastSeq = (stream: number) =>
      new Promise<number>((resolve) => setTimeout(() => resolve(stream * 10), (stream * 7919) % 13));
    exposeStore(slow, channel.port1);
    const store = remoteStore(channel.port2);
    const streams = Array.from({ length: 200 }, (_, i) => i);
    expect(await Promise.all(streams.map((stream) => store.lastSeq(stream)))).toEqual(
      streams.map((stream) => stream * 10),
    );
    await store.close();
    channel.port1.close();
  });

  it('serves only store methods, and a closed client refuses calls', async () => {
    const channel = new MessageChannel();
    exposeStore(new MemoryWalStore(), channel.port1);
    const answer = new Promise((resolve) => channel.port2.once('message', resolve));
    channel.port2.postMessage({ id: 1, method: 'close', args: [] });
    expect(await answer).toMatchObject({
      id: 1,
      ok: false,
      error: { message: 'close is not a store method' },
    });
    const store = remoteStore(channel.port2);
    await store.close();
    await expect(store.lastSeq(0)).rejects.toMatchObject({ code: 'STORE_CLOSED' });
    channel.port1.close();
  });
});
