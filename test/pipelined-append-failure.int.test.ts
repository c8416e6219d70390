/**
 * The shard worker decides group N+1 while group N's append is in flight. When N's append
 * fails, the state holds both groups, neither durable: both must be answered UNAVAILABLE,
 * and after recovery neither may be visible. Acknowledged commands must all be present.
 */
import { afterEach, expect, it } from 'vitest';
import type { Request } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.stop();
  engine = undefined;
});

it('a failed append fails the group decided behind it too; acknowledged commands survive, the rest are absent', async () => {
  const store = new MemoryWalStore();
  // Tiny batches, several in flight: the worker's inbox holds many groups at once.
  const limits = { ...defaultLimits, batchCommandsMax: 4, inflightBatchesMax: 8, walBatchEventsMax: 4_104 };
  engine = await Engine.start({ store, shards: 1, limits });
  await engine.execute({ type: 'set', sku: 'sku', location: 'dc-1', onHand: 1_000 });

  const waves: Request[][] = Array.from({ length: 6 }, (_, w) =>
    Array.from({ length: 4 }, (_, i) => ({
      type: 'adjust',
      sku: 'sku',
      location: 'dc-1',
      delta: 1,
      reason: 'receipt',
      key: `k-${w}-${i}`,
    })),
  );
  store.failNextAppends(1);
  const replies = (await Promise.all(waves.map((wave) => engine!.executeMany(wave)))).flat();
  const failed = replies.filter((r) => !r.ok);
  expect(failed.length).toBeGreaterThan(0);
  for (const reply of failed) expect(reply).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
  const acknowledged = replies.filter((r) => r.ok).length;

  await engine.whenReady();
  // onHand counts exactly the acknowledged adjustments: none of the failed ones leaked in.
  const stock = await engine.execute({ type: 'stock', sku: 'sku' });
  expect(stock).toMatchObject({ ok: true, locations: [{ onHand: 1_000 + acknowledged }] });
  expect(store.totals().events).toBe(1 + acknowledged);
  for (const shard of await engine.inspect()) expect(shard.violations).toEqual([]);

  // Retrying everything applies each failed adjustment once and recognises the others.
  const retried = (await Promise.all(waves.map((wave) => engine!.executeMany(wave)))).flat();
  expect(retried.every((r) => r.ok)).toBe(true);
  const after = await engine.execute({ type: 'stock', sku: 'sku' });
  expect(after).toMatchObject({ ok: true, locations: [{ onHand: 1_024 }] });
});
