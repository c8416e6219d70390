/**
 * The replay library (src/engine/replay.ts) over a real engine's WAL: rebuild as of a seq
 * or a time, verify (and catch corruption), export, SKU history.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { shardOf } from '../src/actors/hash.js';
import type { StateImage } from '../src/actors/snapshot.js';
import type { Request } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';
import { ManualClock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import { digestOf, exportLines, history, ReplayRangeError, rebuild, verify } from '../src/engine/replay.js';
import { checksumOf, decodeSnapshot, encodeSnapshot } from '../src/persistence/codec.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import type { SnapshotRow, WalRow, WalStore } from '../src/persistence/wal.js';

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
});

async function startEngine(store: WalStore, shards: number, clock: ManualClock): Promise<Engine> {
  const engine = await Engine.start({ store, shards, clock });
  engines.push(engine);
  return engine;
}

async function run(engine: Engine, request: Request): Promise<void> {
  const reply = await engine.execute(request);
  if (!reply.ok) throw new Error(`${request.type} refused: ${reply.code} ${reply.detail}`);
}

/** A small history on two shards: stock, a channel, reservations held, shipped, released. */
async function scenario(shards = 2): Promise<{ store: MemoryWalStore; engine: Engine; clock: ManualClock }> {
  const store = new MemoryWalStore();
  const clock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
  const engine = await startEngine(store, shards, clock);
  await run(engine, { type: 'channel', channel: 'web', locations: ['dc-1', 'dc-2'] });
  for (const sku of ['A', 'B', 'C', 'D']) {
    await run(engine, { type: 'set', sku, location: 'dc-1', onHand: 10 });
    await run(engine, { type: 'set', sku, location: 'dc-2', onHand: 5 });
  }
  clock.advance(60_000);
  await run(engine, { type: 'reserve', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', qty: 3 }] });
  await run(engine, {
    type: 'reserve',
    reservationId: 'r2',
    lines: [
      { sku: 'A', qty: 1, location: 'dc-2' },
      { sku: 'B', qty: 2, location: 'dc-1' },
    ],
  });
  clock.advance(60_000);
  await run(engine, { type: 'commit', reservationId: 'r1' });
  await run(engine, { type: 'adjust', sku: 'A', location: 'dc-1', delta: 4, reason: 'receipt', key: 'po-1' });
  clock.advance(60_000);
  await run(engine, { type: 'release', reservationId: 'r2' });
  await run(engine, { type: 'reserve', reservationId: 'r3', lines: [{ sku: 'C', qty: 2 }] });
  return { store, engine, clock };
}

describe('rebuild', () => {
  it('as of now equals the live engine, from the start of the log or from a snapshot', async () => {
    const { store, engine } = await scenario();
    const live = await engine.digest();
    const fromLog = await rebuild(store);
    expect(digestOf(fromLog.shards)).toBe(live);
    expect(fromLog.positions.every((p) => !p.fromSnapshot)).toBe(true);

    await engine.snapshotNow();
    await run(engine, {
      type: 'adjust',
      sku: 'D',
      location: 'dc-1',
      delta: -1,
      reason: 'damaged',
      key: 'd-1',
    });
    const fromSnapshot = await rebuild(store);
    expect(fromSnapshot.positions.every((p) => p.fromSnapshot)).toBe(true);
    expect(digestOf(fromSnapshot.shards)).toBe(await engine.digest());
  });

  it('as of a time gives the state the engine had then', async () => {
    const store = new MemoryWalStore();
    const clock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
    const engine = await startEngine(store, 2, clock);
    await run(engine, { type: 'set', sku: 'A', location: 'dc-1', onHand: 10 });
    await run(engine, { type: 'reserve', reservationId: 'r1', lines: [{ sku: 'A', qty: 3 }] });
    const then = clock.now();
    const digestThen = await engine.digest();
    clock.advance(1_000);
    await run(engine, { type: 'commit', reservationId: 'r1' });
    await run(engine, { type: 'set', sku: 'B', location: 'dc-1', onHand: 1 });

    expect(digestOf((await rebuild(store, { toTime: then })).shards)).toBe(digestThen);
    expect(digestOf((await rebuild(store, { toTime: then - 1 })).shards)).not.toBe(digestThen);
    expect(digestOf((await rebuild(store)).shards)).toBe(await engine.digest());
  });

  it('as of a seq stops every stream (or the chosen one) there', async () => {
    const store = new MemoryWalStore();
    const clock = new ManualClock(Date.parse('2026-11-20T10:00:00Z'));
    const engine = await startEngine(store, 1, clock);
    await run(engine, { type: 'set', sku: 'A', location: 'dc-1', onHand: 10 }); // seq 1
    const afterFirst = await engine.digest();
    await run(engine, { type: 'adjust', sku: 'A', location: 'dc-1', delta: 5, reason: 'x', key: 'k' }); // seq 2
    const rebuilt = await rebuild(store, { toSeq: 1 });
    expect(rebuilt.positions[0]).toMatchObject({ seq: 1 });
    expect(digestOf(rebuilt.shards)).toBe(afterFirst);
    expect(digestOf((await rebuild(store, { toSeq: new Map([[0, 1]]) })).shards)).toBe(afterFirst);
    expect(digestOf((await rebuild(store, { toSeq: new Map([[3, 1]]) })).shards)).toBe(await engine.digest());
  });

  it('refuses a target before the earliest point it can rebuild (after a change of shard count)', async () => {
    const { store, engine, clock } = await scenario(2);
    const early = clock.now() - 120_000;
    await engine.stop();
    engines.length = 0;
    const restarted = await startEngine(store, 3, clock); // epoch 2 begins with snapshots
    await run(restarted, { type: 'adjust', sku: 'A', location: 'dc-1', delta: 1, reason: 'x', key: 'after' });
    await expect(rebuild(store, { toTime: early })).rejects.toBeInstanceOf(ReplayRangeError);
    expect(digestOf((await rebuild(store)).shards)).toBe(await restarted.digest());
  });
});

describe('verify', () => {
  it('passes on a healthy database, snapshots included', async () => {
    const { store, engine } = await scenario();
    await engine.snapshotNow();
    const report = await verify(store);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.digest).toBe(await engine.digest());
    expect(report.snapshots.map((s) => [s.checksumOk, s.agreesWithWal])).toEqual([
      [true, true],
      [true, true],
    ]);
  });

  it('finds a row that does not decode, a row that lies about its count, a bad snapshot and a lying snapshot', async () => {
    const { store, engine } = await scenario(1);
    await engine.snapshotNow();
    await engine.stop();
    engines.length = 0;
    const rows = await store.read(0, 0, 1_000);
    const snapshot = (await store.latestSnapshot(0, 1))!;
    const tampered = new TamperedStore(store);
    tampered.rows.set(2, { ...rows[1]!, payload: Uint8Array.from([0xc1, 0xc1, 0xc1]) });
    tampered.rows.set(3, { ...rows[2]!, eventCount: rows[2]!.eventCount + 1 });
    let report = await verify(tampered);
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/seq 2: payload does not decode/);
    expect(report.problems.join('\n')).toMatch(/seq 3: declares \d+ events, holds \d+/);

    const badChecksum = new TamperedStore(store);
    badChecksum.snapshot = { ...snapshot, checksum: '00'.repeat(32) };
    report = await verify(badChecksum);
    expect(report.problems.join('\n')).toMatch(/fails its checksum/);

    // A snapshot whose checksum is right but whose content is not what the WAL says.
    const lying = new TamperedStore(store);
    const image = decodeSnapshot<StateImage>(snapshot.payload);
    const onHand = new Float64Array(image.stock.skus.length).fill(999);
    const payload = encodeSnapshot({
      ...image,
      stock: { ...image.stock, onHand: new Uint8Array(onHand.buffer) },
    });
    lying.snapshot = { ...snapshot, payload, checksum: checksumOf(payload) };
    report = await verify(lying);
    expect(report.problems.join('\n')).toMatch(/differs from the WAL/);
  });
});

describe('verify after a change of shard count', () => {
  it('checks the rows of a stream the smaller layout retired, and says it is retired', async () => {
    const { store, engine, clock } = await scenario(3);
    const retired = await store.read(2, 0, 1_000);
    expect(retired.length).toBeGreaterThan(0);
    await engine.stop();
    engines.length = 0;
    const narrow = await startEngine(store, 2, clock);
    await narrow.stop();
    engines.length = 0;
    const healthy = await verify(store);
    expect(healthy.problems).toEqual([]);
    expect(healthy.streams.map((s) => s.stream)).toEqual([0, 1, 2]);
    expect(healthy.notes.join('\n')).toMatch(/stream 2 is retired \(the layout has 2 shards\)/);

    const tampered = new TamperedStore(store, 2);
    const last = retired.at(-1)!;
    tampered.rows.set(last.seq, { ...last, payload: Uint8Array.from([0xc1, 0xc1, 0xc1]) });
    const report = await verify(tampered);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      expect.stringMatching(`^stream 2 seq ${last.seq}: payload does not decode`),
    ]);
  });
});

describe('export and history', () => {
  it('exports every stock record, each open reservation once (whole), and channels', async () => {
    const { store } = await scenario(2);
    const lines = [...exportLines(await rebuild(store))].map((line) => JSON.parse(line));
    expect(lines.filter((l) => l.type === 'stock')).toHaveLength(8);
    expect(lines.filter((l) => l.type === 'channel')).toEqual([
      { type: 'channel', channel: 'web', locations: ['dc-1', 'dc-2'], buffer: 0 },
    ]);
    const open = lines.filter((l) => l.type === 'reservation');
    expect(open.map((r) => r.reservationId)).toEqual(['r3']);
    expect(lines.find((l) => l.type === 'stock' && l.sku === 'A' && l.location === 'dc-1')).toMatchObject({
      onHand: 11,
      reserved: 0,
      available: 11,
    });
  });

  it('tells every event that touched a SKU, with time and cause, releases of its holders included', async () => {
    const { store } = await scenario(2);
    const entries = [];
    for await (const entry of history(store, 'A')) entries.push(entry);
    expect(entries.map((e) => `${e.event}${e.location ? `@${e.location}` : ''}`)).toEqual([
      'StockSet@dc-1',
      'StockSet@dc-2',
      'ReservationHeld@dc-1',
      'ReservationHeld@dc-2',
      'ReservationCommitted@dc-1',
      'StockAdjusted@dc-1',
      'ReservationReleased',
    ]);
    expect(entries[5]!.cause).toBe('adjusted by +4 (reason "receipt", key "po-1")');
    expect(entries[6]!.cause).toMatch(/reservation r2 released/);
    expect(entries[0]!.at).toBe('2026-11-20T10:00:00.000Z');
    const none = [];
    for await (const entry of history(store, 'nope')) none.push(entry);
    expect(none).toEqual([]);
  });
});

/** A read view of a store with some rows or the snapshot replaced: corruption on demand. */
class TamperedStore implements WalStore {
  /** Replacement rows of `stream`, by seq. */
  readonly rows = new Map<number, WalRow>();
  snapshot: SnapshotRow | null = null;
  constructor(
    private readonly inner: WalStore,
    private readonly stream = 0,
  ) {}
  readLayout = () => this.inner.readLayout();
  writeLayout = () => Promise.reject(new Error('read-only'));
  append = () => Promise.reject(new Error('read-only'));
  async read(stream: number, afterSeq: number, limit: number): Promise<WalRow[]> {
    const rows = await this.inner.read(stream, afterSeq, limit);
    return rows.map((row) => (stream === this.stream ? (this.rows.get(row.seq) ?? row) : row));
  }
  lastSeq = (stream: number) => this.inner.lastSeq(stream);
  streams = () => this.inner.streams();
  writeSnapshot = () => Promise.reject(new Error('read-only'));
  async latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null> {
    return shard === 0 && this.snapshot !== null ? this.snapshot : this.inner.latestSnapshot(shard, epoch);
  }
  snapshotAtOrBefore = (shard: number, epoch: number, seq: number) =>
    this.inner.snapshotAtOrBefore(shard, epoch, seq);
  listSnapshots = (shard: number, epoch: number) => this.inner.listSnapshots(shard, epoch);
  prune = () => Promise.reject(new Error('read-only'));
  close = () => Promise.resolve();
}

describe('retention', () => {
  it('removes what is older than the window once a snapshot older than it exists; the replay tool says where it can start', async () => {
    const store = new MemoryWalStore();
    const clock = new ManualClock(Date.parse('2026-11-20T00:00:00Z'));
    const hour = 3_600_000;
    const limits = { ...defaultLimits, walRetentionMs: 3 * hour };
    const engine = await Engine.start({ store, shards: 1, clock, limits });
    engines.push(engine);
    const step = async (n: number): Promise<void> => {
      await run(engine, { type: 'set', sku: 'A', location: 'dc-1', onHand: 100 + n });
      await run(engine, { type: 'adjust', sku: 'A', location: 'dc-1', delta: 1, reason: 'x', key: `k${n}` });
    };
    await step(1);
    const digestAt0000 = await engine.digest();
    const [first] = await engine.snapshotInBackground(); // at 00:00, seq 2
    clock.advance(2 * hour);
    await step(2);
    const digestAt0200 = await engine.digest();
    const at0200 = clock.now();
    await engine.snapshotInBackground(); // at 02:00, seq 4: nothing is older than 3 h yet
    expect((await store.read(0, 0, 100))[0]!.seq).toBe(1);
    clock.advance(2 * hour);
    await step(3);
    await engine.snapshotInBackground(); // at 04:00: the 00:00 snapshot is the newest older than 3 h
    const rows = await store.read(0, 0, 100);
    expect(rows[0]!.seq).toBe(first!.seq + 1);
    expect((await store.listSnapshots(0, 1)).map((s) => s.seq)[0]).toBe(first!.seq);

    // As of 01:00: the 00:00 snapshot; as of 02:00 the one taken then; as of 03:00 that
    // one plus nothing newer (the next rows came at 04:00).
    const at0100 = await rebuild(store, { toTime: at0200 - hour });
    expect(at0100.positions[0]).toMatchObject({ fromSnapshot: true, fromSeq: first!.seq, seq: first!.seq });
    expect(digestOf(at0100.shards)).toBe(digestAt0000);
    expect(digestOf((await rebuild(store, { toTime: at0200 })).shards)).toBe(digestAt0200);
    expect(digestOf((await rebuild(store, { toTime: at0200 + hour })).shards)).toBe(digestAt0200);
    // By seq, through the rows the window kept: seq 3 comes from the seq-2 snapshot and one row.
    const bySeq = await rebuild(store, { toSeq: first!.seq + 1 });
    expect(bySeq.positions[0]).toMatchObject({ fromSeq: first!.seq, seq: first!.seq + 1 });
    // Before the 00:00 snapshot nothing can be rebuilt any more, and the tool says so.
    await expect(rebuild(store, { toTime: Date.parse('2026-11-19T23:00:00Z') })).rejects.toThrow(
      /earliest point this database can rebuild, seq 2 \(2026-11-20T00:00:00.000Z\)/,
    );
    expect(digestOf((await rebuild(store)).shards)).toBe(await engine.digest());
    expect((await verify(store)).ok).toBe(true);
  });

  it('removes the streams an earlier layout with more shards left, once they are older than the window', async () => {
    const store = new MemoryWalStore();
    const clock = new ManualClock(Date.parse('2026-11-20T00:00:00Z'));
    const hour = 3_600_000;
    const limits = { ...defaultLimits, walRetentionMs: 3 * hour };
    const skus = Array.from({ length: 12 }, (_, i) => `S${i}`);
    const wide = await Engine.start({ store, shards: 3, clock, limits });
    engines.push(wide);
    for (const sku of skus) {
      await run(wide, { type: 'set', sku, location: 'dc-1', onHand: 10 });
      await run(wide, { type: 'adjust', sku, location: 'dc-1', delta: 1, reason: 'x', key: sku });
    }
    await wide.snapshotInBackground();
    const onStream2 = skus.filter((sku) => shardOf(sku, defaultLimits.partitionCount, 3) === 2);
    expect(onStream2.length).toBeGreaterThan(0);
    const retiredRows = (await store.read(2, 0, 1_000)).length;
    expect(retiredRows).toBeGreaterThan(1);
    await wide.stop();
    engines.splice(engines.indexOf(wide), 1);

    // Two shards from now on: stream 2 is retired, nothing of the new epoch reads it.
    const narrow = await Engine.start({ store, shards: 2, clock, limits });
    engines.push(narrow);
    const digest = await narrow.digest();
    expect(await store.streams()).toEqual([0, 1, 2]);
    clock.advance(2 * hour);
    await run(narrow, {
      type: 'adjust',
      sku: onStream2[0]!,
      location: 'dc-1',
      delta: 5,
      reason: 'x',
      key: 'later',
    });
    await narrow.snapshotInBackground(); // 02:00: stream 2 is younger than the window, kept
    expect((await store.read(2, 0, 1_000)).length).toBe(retiredRows);
    expect((await store.listSnapshots(2, 1)).length).toBe(1);

    clock.advance(2 * hour);
    await narrow.snapshotInBackground(); // 04:00: its last row is older than 3 h
    const kept = await store.read(2, 0, 1_000);
    expect(kept.map((r) => r.seq)).toEqual([retiredRows]); // the position stays
    expect(await store.listSnapshots(2, 1)).toEqual([]);
    expect(await store.streams()).toEqual([0, 1, 2]);

    // Nothing the current layout needs went: a restart and the replay tool agree.
    const after = await narrow.digest();
    expect(after).not.toBe(digest); // the adjustment at 02:00
    expect(digestOf((await rebuild(store)).shards)).toBe(after);
    expect((await verify(store)).ok).toBe(true);
    await narrow.stop();
    engines.splice(engines.indexOf(narrow), 1);
    const again = await Engine.start({ store, shards: 2, clock, limits });
    engines.push(again);
    expect(await again.digest()).toBe(after);
    // Growing back to three shards writes stream 2 again, after the position it kept.
    await again.stop();
    engines.splice(engines.indexOf(again), 1);
    const regrown = await Engine.start({ store, shards: 3, clock, limits });
    engines.push(regrown);
    expect(await regrown.digest()).toBe(after);
    await run(regrown, {
      type: 'adjust',
      sku: onStream2[0]!,
      location: 'dc-1',
      delta: 1,
      reason: 'x',
      key: 'regrown',
    });
    expect((await store.read(2, 0, 1_000)).map((r) => r.seq)).toEqual([retiredRows, retiredRows + 1]);
  });
});
