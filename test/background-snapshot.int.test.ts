/**
 * Snapshots built from the WAL on a background thread (src/engine/snapshotter.ts):
 * on demand and periodically by events, equal to the live state, used by recovery.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultLimits } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { digestOf, rebuild } from '../src/engine/replay.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
});

async function start(store: MemoryWalStore, shards: number, limits = defaultLimits): Promise<Engine> {
  const engine = await Engine.start({ store, shards, limits });
  engines.push(engine);
  return engine;
}

async function writeSome(engine: Engine, prefix: string, count: number): Promise<void> {
  const requests = [];
  for (let i = 0; i < count; i++) {
    requests.push({ type: 'set' as const, sku: `${prefix}-${i}`, location: 'dc-1', onHand: 10 + i });
    requests.push({
      type: 'reserve' as const,
      reservationId: `${prefix}-r${i}`,
      lines: [{ sku: `${prefix}-${i}`, qty: 2 }],
    });
  }
  for (const reply of await engine.executeMany(requests)) expect(reply.ok).toBe(true);
}

describe('a snapshot in the shard worker', () => {
  it('holds the shard only while it images: commands are answered while the store writes it', async () => {
    const store = new MemoryWalStore();
    const engine = await start(store, 1);
    await writeSome(engine, 'a', 20);
    const imaged = await store.lastSeq(0);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const write = store.writeSnapshot.bind(store);
    let writing = false;
    store.writeSnapshot = async (row) => {
      writing = true;
      await gate;
      return write(row);
    };
    const taking = engine.snapshotNow();
    await vi.waitUntil(() => writing);
    // The store has not finished the snapshot, and the shard serves meanwhile.
    await writeSome(engine, 'b', 5);
    expect(await store.lastSeq(0)).toBeGreaterThan(imaged);
    release();
    const [taken] = await taking;
    expect(taken!.seq).toBe(imaged);
    const { epoch } = (await store.readLayout())!;
    expect((await store.latestSnapshot(0, epoch))?.seq).toBe(imaged);
  });
});

describe('background snapshots', () => {
  it('on demand: one per shard at its last seq, equal to the live state, then used by recovery', async () => {
    const store = new MemoryWalStore();
    const engine = await start(store, 2);
    await writeSome(engine, 'a', 50);
    const taken = await engine.snapshotInBackground();
    expect(taken.map((t) => t.shard)).toEqual([0, 1]);
    for (const t of taken) expect(t.seq).toBe(await store.lastSeq(t.shard));
    const live = await engine.digest();
    await writeSome(engine, 'b', 5);
    const rebuilt = await rebuild(store);
    expect(rebuilt.positions.every((p) => p.fromSnapshot)).toBe(true);
    expect(digestOf(rebuilt.shards)).toBe(await engine.digest());
    expect(live).not.toBe(await engine.digest());

    const after = await engine.digest();
    await engine.stop();
    engines.length = 0;
    const restarted = await start(store, 2);
    expect(restarted.recovery.map((r) => r.snapshotsLoaded)).toEqual([1, 1]);
    expect(await restarted.digest()).toBe(after);
  });

  it('shows the job under way; an on-demand run holds the one slot, so no periodic one starts alongside', async () => {
    const store = new MemoryWalStore();
    const limits = { ...defaultLimits, snapshotEveryEvents: 20, snapshotCheckMs: 10 };
    const engine = await start(store, 1, limits);
    expect(engine.snapshots.running).toBeNull();
    // Hold each snapshot's write until released: the job stays under way meanwhile.
    let release: () => void = () => {};
    let open = false;
    let writing = false;
    const write = store.writeSnapshot.bind(store);
    store.writeSnapshot = async (row) => {
      writing = true;
      if (!open)
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      writing = false;
      return write(row);
    };
    try {
      await writeSome(engine, 'w', 20);
      // The periodic check starts one once 20 events were appended.
      await vi.waitUntil(() => writing, { timeout: 30_000 });
      expect(engine.snapshots.running).toMatchObject({ shard: 0 });
      expect(engine.snapshots.running!.startedAt).toBeLessThanOrEqual(Date.now());
      expect(engine.snapshots).toMatchObject({ started: 1, finished: 0 });
      release();
      await vi.waitUntil(() => engine.snapshots.taken.length === 1, { timeout: 30_000 });
      expect(engine.snapshots).toMatchObject({ running: null, started: 1, finished: 1 });
      // On demand (2 events: nothing due for the periodic check).
      await writeSome(engine, 'x', 1);
      const onDemand = engine.snapshotInBackground();
      await vi.waitUntil(() => writing, { timeout: 30_000 });
      expect(engine.snapshots.running).toMatchObject({ shard: 0 });
      // 20 more events make the periodic check due, but the on-demand job holds the one
      // slot: the check starts nothing, however many checks pass meanwhile.
      await writeSome(engine, 'y', 10);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(engine.snapshots).toMatchObject({ started: 2, finished: 1 });
      open = true;
      release();
      await onDemand;
      // Then the periodic one that was due may run; once it is done nothing runs.
      await vi.waitUntil(() => engine.snapshots.started === engine.snapshots.finished, { timeout: 30_000 });
      expect(engine.snapshots.running).toBeNull();
    } finally {
      // A failed expectation must not leave a snapshot waiting: stopping waits for it.
      open = true;
      release();
    }
  });

  it('periodically, once enough events were appended', async () => {
    const store = new MemoryWalStore();
    const limits = { ...defaultLimits, snapshotEveryEvents: 20, snapshotCheckMs: 10 };
    const engine = await start(store, 1, limits);
    expect(await store.latestSnapshot(0, 1)).toBeNull();
    await writeSome(engine, 'p', 20);
    for (let i = 0; i < 300 && engine.snapshots.taken.length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(engine.snapshots.lastError).toBeNull();
    expect(engine.snapshots.taken).toHaveLength(1);
    const snapshot = await store.latestSnapshot(0, 1);
    expect(snapshot?.seq).toBe(engine.snapshots.taken[0]!.seq);
  });
});
