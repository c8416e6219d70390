import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { exposeStore, remoteStore } from '../src/persistence/remote-store.js';
import { walStoreContract } from './support/wal-store-contract.js';

// Every store passes the same contract; the PostgreSQL and PGlite stores run it in
// test/pg-store.int.test.ts and test/pglite-store.int.test.ts (they need a server or a thread).
walStoreContract('in-memory', async () => ({ store: new MemoryWalStore(), close: async () => {} }));

// The same store reached from another thread's side of a MessagePort, as shard workers do.
walStoreContract('in-memory through the comlink bridge', async () => {
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

describe('comlink bridge', () => {
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
});
