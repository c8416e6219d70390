/**
 * The WalStore contract: one suite every store implementation must pass (Emmett's
 * eventStore features habit). Call it from a test file with a factory for fresh stores.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checksumOf } from '../../src/persistence/codec.js';
import type { SnapshotRow, WalRow, WalStore } from '../../src/persistence/wal.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

function snapshot(
  shard: number,
  epoch: number,
  seq: number,
  payload = bytes(seq, shard, epoch),
): SnapshotRow {
  return { shard, epoch, seq, at: 1_000 + seq, payload, checksum: checksumOf(payload) };
}

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
        expect(await store.streams()).toEqual([]);
        expect(await store.latestSnapshot(0, 1)).toBeNull();
      }));

    it('lists the streams that hold rows, ascending, gaps and all; pruned ones keep their last row', () =>
      withStore(async (store) => {
        // Streams 5 and 1 written, 0 and 2..4 never (a layout's shard may own no SKU).
        for (let seq = 1; seq <= 3; seq++) await store.append(row(5, seq));
        await store.append(row(1, 1));
        await store.writeSnapshot(snapshot(3, 1, 7));
        expect(await store.streams()).toEqual([1, 5]);
        await store.prune(5, 2, 3);
        expect(await store.streams()).toEqual([1, 5]);
        expect((await store.read(5, 0, 10)).map((r) => r.seq)).toEqual([3]);
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
        await expect(store.append(row(0, 1))).rejects.toMatchObject({
          code: 'WAL_SEQUENCE',
          message: expect.stringMatching(/expected seq 2/),
        });
        await expect(store.append(row(1, 2))).rejects.toThrow(/expected seq 1/);
        expect(await store.lastSeq(0)).toBe(1);
        expect(await store.lastSeq(1)).toBe(0);
        expect((await store.read(0, 0, 10)).map((r) => r.seq)).toEqual([1]);
      }));

    it('keeps what it stored even if the caller reuses its buffer', () =>
      withStore(async (store) => {
        const payload = bytes(7, 7, 7);
        await store.append(row(0, 1, payload));
        payload.fill(0);
        expect(Array.from((await store.read(0, 0, 1))[0]!.payload)).toEqual([7, 7, 7]);
      }));

    it("leaves the caller's snapshot payload as it was (a store on another thread gets a copy)", () =>
      withStore(async (store) => {
        const written = snapshot(0, 1, 4);
        await store.writeSnapshot(written);
        expect(Array.from(written.payload)).toEqual([4, 0, 1]);
        expect(Array.from((await store.latestSnapshot(0, 1))!.payload)).toEqual([4, 0, 1]);
      }));

    it('returns the newest snapshot of a shard in an epoch', () =>
      withStore(async (store) => {
        await store.writeSnapshot(snapshot(0, 1, 3));
        await store.writeSnapshot(snapshot(0, 1, 8));
        await store.writeSnapshot(snapshot(1, 1, 5));
        await store.writeSnapshot(snapshot(0, 2, 9));
        const newest = await store.latestSnapshot(0, 1);
        expect(newest).toMatchObject({ shard: 0, epoch: 1, seq: 8, at: 1_008 });
        expect(Array.from(newest!.payload)).toEqual([8, 0, 1]);
        expect(newest!.checksum).toBe(checksumOf(bytes(8, 0, 1)));
        expect(await store.latestSnapshot(1, 1)).toMatchObject({ seq: 5 });
        expect(await store.latestSnapshot(0, 2)).toMatchObject({ seq: 9 });
        expect(await store.latestSnapshot(1, 2)).toBeNull();
      }));

    it('passes over a snapshot whose payload does not match its checksum', () =>
      withStore(async (store) => {
        await store.writeSnapshot(snapshot(0, 1, 3));
        // As a torn or corrupted write would leave it: the checksum of other bytes.
        await store.writeSnapshot({ ...snapshot(0, 1, 8), checksum: checksumOf(bytes(1, 2, 3)) });
        expect(await store.latestSnapshot(0, 1)).toMatchObject({ seq: 3 });
        await store.writeSnapshot({ ...snapshot(1, 1, 4), checksum: 'not a checksum' });
        expect(await store.latestSnapshot(1, 1)).toBeNull();
      }));

    it('replaces a snapshot written again at the same seq', () =>
      withStore(async (store) => {
        await store.writeSnapshot(snapshot(0, 1, 4, bytes(1)));
        await store.writeSnapshot(snapshot(0, 1, 4, bytes(2)));
        expect(Array.from((await store.latestSnapshot(0, 1))!.payload)).toEqual([2]);
      }));

    it('keeps binary payloads exactly, large ones included', () =>
      withStore(async (store) => {
        const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
        // Over a MiB, and not a whole number of them: a store may copy it in parts.
        const large = new Uint8Array(randomBytes(3 * 1024 * 1024 + 12_345));
        await store.append(row(0, 1, everyByte));
        await store.append(row(0, 2, large));
        await store.append(row(0, 3, new Uint8Array(0)));
        const [a, b, c] = await store.read(0, 0, 10);
        expect(Buffer.from(a!.payload).equals(Buffer.from(everyByte))).toBe(true);
        expect(Buffer.from(b!.payload).equals(Buffer.from(large))).toBe(true);
        expect(c!.payload.byteLength).toBe(0);
        await store.writeSnapshot(snapshot(0, 1, 2, large));
        expect(Buffer.from((await store.latestSnapshot(0, 1))!.payload).equals(Buffer.from(large))).toBe(
          true,
        );
      }));

    it('keeps times beyond 32 bits (milliseconds since 1970) exactly', () =>
      withStore(async (store) => {
        const at = 1_767_225_600_123;
        await store.append({ ...row(0, 1), at, eventCount: 65_536 });
        await store.writeSnapshot({ ...snapshot(0, 1, 1), at });
        expect(await store.read(0, 0, 1)).toMatchObject([{ at, eventCount: 65_536 }]);
        expect(await store.latestSnapshot(0, 1)).toMatchObject({ at });
      }));

    it('takes appends to many streams at once, each in order', () =>
      withStore(async (store) => {
        const streams = 6;
        const rowsPerStream = 15;
        await Promise.all(
          Array.from({ length: streams }, async (_, stream) => {
            for (let seq = 1; seq <= rowsPerStream; seq++) await store.append(row(stream, seq));
          }),
        );
        for (let stream = 0; stream < streams; stream++) {
          expect(await store.lastSeq(stream)).toBe(rowsPerStream);
          const rows = await store.read(stream, 0, 100);
          expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: rowsPerStream }, (_, i) => i + 1));
          expect(rows.every((r) => r.stream === stream)).toBe(true);
        }
      }));

    it('finds the newest snapshot at or before a seq, and lists snapshots oldest first', () =>
      withStore(async (store) => {
        await store.writeSnapshot(snapshot(0, 1, 10));
        await store.writeSnapshot(snapshot(0, 1, 20));
        await store.writeSnapshot(snapshot(0, 1, 30));
        await store.writeSnapshot(snapshot(0, 2, 25));
        await store.writeSnapshot(snapshot(1, 1, 15));
        expect((await store.snapshotAtOrBefore(0, 1, 25))?.seq).toBe(20);
        expect((await store.snapshotAtOrBefore(0, 1, 20))?.seq).toBe(20);
        expect((await store.snapshotAtOrBefore(0, 1, 9))?.seq ?? null).toBeNull();
        expect((await store.snapshotAtOrBefore(0, 2, 100))?.seq).toBe(25);
        expect(await store.listSnapshots(0, 1)).toEqual([
          { seq: 10, at: 1_010 },
          { seq: 20, at: 1_020 },
          { seq: 30, at: 1_030 },
        ]);
        expect(await store.listSnapshots(2, 1)).toEqual([]);
        // A damaged one is passed over here too.
        await store.writeSnapshot({ ...snapshot(0, 1, 22), checksum: checksumOf(bytes(9)) });
        expect((await store.snapshotAtOrBefore(0, 1, 25))?.seq).toBe(20);
      }));

    it('prunes rows and snapshots up to a seq (retention), never the last row; appends continue', () =>
      withStore(async (store) => {
        for (let seq = 1; seq <= 5; seq++) await store.append(row(0, seq));
        await store.append(row(1, 1));
        await store.writeSnapshot(snapshot(0, 1, 2));
        await store.writeSnapshot(snapshot(0, 1, 4));
        await store.writeSnapshot(snapshot(1, 1, 1));
        expect(await store.prune(0, 1, 4)).toEqual({ rows: 4, snapshots: 1 });
        expect((await store.read(0, 0, 10)).map((r) => r.seq)).toEqual([5]);
        expect((await store.read(0, 4, 10)).map((r) => r.seq)).toEqual([5]);
        expect(await store.lastSeq(0)).toBe(5);
        expect((await store.listSnapshots(0, 1)).map((s) => s.seq)).toEqual([4]);
        // Other streams are untouched.
        expect((await store.read(1, 0, 10)).map((r) => r.seq)).toEqual([1]);
        expect((await store.listSnapshots(1, 1)).map((s) => s.seq)).toEqual([1]);
        // The last row stays even when the prune reaches it, so the position survives.
        expect((await store.prune(0, 1, 99)).rows).toBe(0);
        expect(await store.lastSeq(0)).toBe(5);
        await store.append(row(0, 6));
        await expect(store.append(row(0, 6))).rejects.toMatchObject({ code: 'WAL_SEQUENCE' });
        expect((await store.read(0, 0, 10)).map((r) => r.seq)).toEqual([5, 6]);
      }));

    it('rejects every call once closed', () =>
      withStore(async (store) => {
        await store.append(row(0, 1));
        await store.close();
        await expect(store.append(row(0, 2))).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(store.read(0, 0, 10)).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(store.lastSeq(0)).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(store.streams()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        await expect(store.readLayout()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
        // Closing twice is harmless (the factory's cleanup closes again).
        await store.close();
      }));
  });
}
