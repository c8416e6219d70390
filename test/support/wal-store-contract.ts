/**
 * The WalStore contract: one suite every store implementation must pass (Emmett's
 * eventStore features habit). Call it from a test file with a factory for fresh stores.
 */
import { describe, expect, it } from 'vitest';
import type { SnapshotRow, WalRow, WalStore } from '../../src/persistence/wal.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

function row(stream: number, seq: number, payload = bytes(seq, stream)): WalRow {
  return { stream, seq, epoch: 1, at: 1_000 + seq, eventCount: 1, payload };
}

export function walStoreContract(
  name: string,
  open: () => Promise<{ store: WalStore; close(): Promise<void> }>,
): void {
  describe(`WalStore contract: ${name}`, () => {
    const withStore = async (body: (store: WalStore) => Promise<void>): Promise<void> => {
      const { store, close } = await open();
      try {
        await body(store);
      } finally {
        await close();
      }
    };

    it('starts empty: no layout, empty streams, no snapshots', () =>
      withStore(async (store) => {
        expect(await store.readLayout()).toBeNull();
        expect(await store.lastSeq(0)).toBe(0);
        expect(await store.read(0, 0, 10)).toEqual([]);
        expect(await store.latestSnapshot(0, 1)).toBeNull();
      }));

    it('stores and replaces the layout', () =>
      withStore(async (store) => {
        await store.writeLayout({ shardCount: 2, partitionCount: 1024, epoch: 1 });
        await store.writeLayout({ shardCount: 3, partitionCount: 1024, epoch: 2 });
        expect(await store.readLayout()).toEqual({ shardCount: 3, partitionCount: 1024, epoch: 2 });
      }));

    it('appends rows in seq order per stream and reads them back from a position, in pages', () =>
      withStore(async (store) => {
        for (let seq = 1; seq <= 5; seq++) await store.append(row(0, seq));
        await store.append(row(1, 1));
        expect(await store.lastSeq(0)).toBe(5);
        expect(await store.lastSeq(1)).toBe(1);
        const page = await store.read(0, 2, 2);
        expect(page.map((r) => r.seq)).toEqual([3, 4]);
        expect(Array.from(page[0]!.payload)).toEqual([3, 0]);
        expect(page[0]).toMatchObject({ stream: 0, epoch: 1, at: 1_003, eventCount: 1 });
        expect((await store.read(0, 5, 10)).length).toBe(0);
      }));

    it('refuses a seq that is not the next one, and changes nothing', () =>
      withStore(async (store) => {
        await store.append(row(0, 1));
        await expect(store.append(row(0, 3))).rejects.toThrow(/expected seq 2/);
        await expect(store.append(row(0, 1))).rejects.toThrow(/expected seq 2/);
        expect(await store.lastSeq(0)).toBe(1);
      }));

    it('keeps what it stored even if the caller reuses its buffer', () =>
      withStore(async (store) => {
        const payload = bytes(7, 7, 7);
        await store.append(row(0, 1, payload));
        payload.fill(0);
        expect(Array.from((await store.read(0, 0, 1))[0]!.payload)).toEqual([7, 7, 7]);
      }));

    it('returns the newest snapshot of a shard in an epoch', () =>
      withStore(async (store) => {
        const snapshot = (shard: number, epoch: number, seq: number): SnapshotRow => ({
          shard,
          epoch,
          seq,
          at: seq,
          payload: bytes(seq),
          checksum: `c${seq}`,
        });
        await store.writeSnapshot(snapshot(0, 1, 3));
        await store.writeSnapshot(snapshot(0, 1, 8));
        await store.writeSnapshot(snapshot(1, 1, 5));
        await store.writeSnapshot(snapshot(0, 2, 9));
        expect(await store.latestSnapshot(0, 1)).toMatchObject({ seq: 8, checksum: 'c8' });
        expect(await store.latestSnapshot(1, 1)).toMatchObject({ seq: 5 });
        expect(await store.latestSnapshot(0, 2)).toMatchObject({ seq: 9 });
        expect(await store.latestSnapshot(1, 2)).toBeNull();
      }));
  });
}
