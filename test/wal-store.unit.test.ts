import { randomBytes } from 'node:crypto';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { checksumOf } from '../src/persistence/codec.js';
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

const snapshotOf = (seq: number, payload: Uint8Array) => ({
  shard: 0,
  epoch: 1,
  seq,
  at: seq,
  payload,
  checksum: checksumOf(payload),
});

describe('in-memory store', () => {
  it('copies and checks a large snapshot a part per turn: its thread keeps serving, and readers see the previous snapshot until the new one is whole', async () => {
    const store = new MemoryWalStore();
    await store.writeSnapshot(snapshotOf(1, Uint8Array.of(1)));
    const large = new Uint8Array(randomBytes(16 * 1024 * 1024));
    let turns = 0;
    let counting = true;
    const count = (): void => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    const writing = store.writeSnapshot(snapshotOf(2, large));
    expect((await store.latestSnapshot(0, 1))?.seq).toBe(1);
    // Written while the large one is still being copied: it keeps its place after it.
    const small = store.writeSnapshot(snapshotOf(3, Uint8Array.of(3)));
    await Promise.all([writing, small]);
    counting = false;
    expect(turns).toBeGreaterThan(8);
    expect((await store.latestSnapshot(0, 1))?.seq).toBe(3);
    const stored = await store.snapshotAtOrBefore(0, 1, 2);
    expect(stored?.seq).toBe(2);
    expect(Buffer.from(stored!.payload).equals(Buffer.from(large))).toBe(true);
  });

  it('does not list a snapshot until it is whole, so retention never counts on one still being copied', async () => {
    const store = new MemoryWalStore();
    await store.writeSnapshot(snapshotOf(1, Uint8Array.of(1)));
    const writing = store.writeSnapshot(snapshotOf(2, new Uint8Array(randomBytes(4 * 1024 * 1024))));
    expect((await store.listSnapshots(0, 1)).map((s) => s.seq)).toEqual([1]);
    await writing;
    expect((await store.listSnapshots(0, 1)).map((s) => s.seq)).toEqual([1, 2]);
  });

  it('keeps nothing of a snapshot whose write failed: closed meanwhile, or its buffer taken away', async () => {
    const closing = new MemoryWalStore();
    const cut = closing.writeSnapshot(snapshotOf(2, new Uint8Array(4 * 1024 * 1024)));
    await closing.close();
    await expect(cut).rejects.toMatchObject({ code: 'STORE_CLOSED' });

    const store = new MemoryWalStore();
    const payload = new Uint8Array(4 * 1024 * 1024);
    const torn = store.writeSnapshot(snapshotOf(2, payload));
    // Transferring a buffer detaches it, as a caller that moves its bytes to a worker would.
    structuredClone(payload.buffer, { transfer: [payload.buffer] });
    await expect(torn).rejects.toThrow();
    expect(await store.listSnapshots(0, 1)).toEqual([]);
    await store.writeSnapshot(snapshotOf(3, Uint8Array.of(3)));
    expect((await store.listSnapshots(0, 1)).map((s) => s.seq)).toEqual([3]);
  });

  it('passes over a large snapshot whose checksum is not that of its bytes', async () => {
    const store = new MemoryWalStore();
    const large = new Uint8Array(randomBytes(5 * 1024 * 1024 + 1));
    await store.writeSnapshot(snapshotOf(1, Uint8Array.of(1)));
    const torn = large.slice();
    torn[torn.length - 1]! ^= 1;
    await store.writeSnapshot({ ...snapshotOf(2, torn), checksum: checksumOf(large) });
    expect((await store.latestSnapshot(0, 1))?.seq).toBe(1);
    expect((await store.snapshotAtOrBefore(0, 1, 5))?.seq).toBe(1);
  });
});

describe('store bridge', () => {
  it("hands the reader on the port's other side the in-memory store's payloads, not copies of them", async () => {
    const channel = new MessageChannel();
    const hosted = new MemoryWalStore();
    exposeStore(hosted, channel.port1);
    const store = remoteStore(channel.port2);
    const payload = new Uint8Array(randomBytes(2 * 1024 * 1024));
    await store.writeSnapshot(snapshotOf(4, payload));
    const read = await store.latestSnapshot(0, 1);
    expect(Buffer.from(read!.payload).equals(Buffer.from(payload))).toBe(true);
    // The same memory: a change to the stored bytes shows in what the reader holds.
    (await hosted.latestSnapshot(0, 1))!.payload[0]! ^= 0xff;
    expect(read!.payload[0]).toBe(payload[0]! ^ 0xff);
    await store.append({ stream: 0, seq: 1, epoch: 1, at: 1, eventCount: 1, payload: Uint8Array.of(1, 2) });
    const [row] = await store.read(0, 0, 10);
    (await hosted.read(0, 0, 1))[0]!.payload[0] = 9;
    expect(Array.from(row!.payload)).toEqual([9, 2]);
    await store.close();
    channel.port1.close();
  });

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
