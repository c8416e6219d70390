import { MessageChannel } from 'node:worker_threads';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { exposeStore, remoteStore } from '../src/persistence/remote-store.js';
import { walStoreContract } from './support/wal-store-contract.js';

// Every store passes the same contract; the PostgreSQL and PGlite stores join this list.
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
