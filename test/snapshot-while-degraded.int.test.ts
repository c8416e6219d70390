import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

// Regression (found by the simulation): after a failed WAL append the shard's state still
// holds the failed group until it has re-read the WAL; a snapshot taken then would image
// events the WAL never got. The worker must refuse to snapshot unless it is ready.
describe('snapshot while degraded', () => {
  let engine: Engine | undefined;
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });

  it('refuses a snapshot until the shard has recovered, and the failed write is absent afterwards', async () => {
    const store = new MemoryWalStore();
    engine = await Engine.start({ store, shards: 1 });
    await engine.execute({ type: 'set', sku: 'A', location: 'L', onHand: 5 });
    store.failNextAppends(1);
    const failed = await engine.execute({ type: 'set', sku: 'A', location: 'L', onHand: 99 });
    expect(failed).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
    await expect(engine.snapshotNow()).rejects.toThrow(/no snapshot/);
    // The worker retries recovery on its own; once ready it serves the durable state only.
    let stock = await engine.execute({ type: 'stock', sku: 'A' });
    for (let i = 0; i < 200 && !stock.ok; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      stock = await engine.execute({ type: 'stock', sku: 'A' });
    }
    expect(stock).toMatchObject({ ok: true, locations: [{ onHand: 5 }] });
    const [snapshot] = await engine.snapshotNow();
    expect(snapshot!.seq).toBe(1);
  });
});
