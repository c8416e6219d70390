/**
 * The engine on the durable stores: state written with 2 shards — reservations held,
 * committed and released, some across shards, a snapshot midway — comes back the same
 * after a restart with 1 shard and with 3 shards, on PostgreSQL and on PGlite.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Reply, Request } from '../src/actors/types.js';
import { ManualClock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import { type DurableStore, openStore } from '../src/persistence/open-store.js';
import { dropSchema, findPostgres, testDatabaseUrl, testSchemaName } from './support/services.js';

const postgres = await findPostgres();
const schema = testSchemaName();
const pgliteDir = await mkdtemp(join(tmpdir(), 'stockd-engine-'));

afterAll(async () => {
  if (postgres.available) await dropSchema(schema);
  await rm(pgliteDir, { recursive: true, force: true });
});

const stores = [
  {
    name: 'PostgreSQL',
    run: postgres.available,
    open: () => openStore({ databaseUrl: testDatabaseUrl, schema }),
  },
  { name: 'PGlite', run: true, open: () => openStore({ dataDir: pgliteDir }) },
];

async function ok(engine: Engine, request: Request): Promise<Reply> {
  const reply = await engine.execute(request);
  if (!reply.ok) throw new Error(`${JSON.stringify(request)} was refused: ${reply.code} ${reply.detail}`);
  return reply;
}

/** Opens the store, runs the engine with `shards`, and always stops and closes both. */
async function withEngine<T>(
  open: () => Promise<DurableStore>,
  shards: number,
  clock: ManualClock,
  body: (engine: Engine, store: DurableStore) => Promise<T>,
): Promise<T> {
  const store = await open();
  try {
    const engine = await Engine.start({ store, shards, clock });
    try {
      return await body(engine, store);
    } finally {
      await engine.stop();
    }
  } finally {
    await store.close();
  }
}

for (const { name, run, open } of stores) {
  const label = run ? '' : ` (skipped: ${postgres.name} unreachable)`;
  describe.runIf(run)(`engine on ${name}${label}`, () => {
    it('keeps its state across restarts with 2, 1 and 3 shards', async () => {
      const clock = new ManualClock();
      const skus = Array.from({ length: 12 }, (_, i) => `SKU-${i}`);

      // 1. Two shards: stock, reservations on one and across shards, a snapshot, more writes.
      const { digest, seqs } = await withEngine(open, 2, clock, async (engine, store) => {
        await ok(engine, { type: 'channel', channel: 'web', locations: ['WH1', 'WH2'], buffer: 1 });
        const sets = skus.flatMap((sku, i): Request[] => [
          { type: 'set', sku, location: 'WH1', onHand: 10 + i },
          { type: 'set', sku, location: 'WH2', onHand: 5 },
        ]);
        for (const reply of await engine.executeMany(sets)) expect(reply.ok).toBe(true);
        for (let i = 0; i < 8; i++) {
          await ok(engine, {
            type: 'reserve',
            reservationId: `order-${i}`,
            channel: 'web',
            ttlSeconds: 900,
            // Three SKUs per order: with two shards most orders span both.
            lines: [0, 1, 2].map((k) => ({ sku: skus[(i + k * 5) % skus.length]!, qty: 1 + k })),
          });
        }
        const snapshots = await engine.snapshotNow();
        expect(snapshots.every((s) => s.seq > 0)).toBe(true);
        await ok(engine, { type: 'commit', reservationId: 'order-1' });
        await ok(engine, { type: 'release', reservationId: 'order-2' });
        await ok(engine, {
          type: 'adjust',
          sku: skus[3]!,
          location: 'WH1',
          delta: -2,
          reason: 'cycle count',
          key: 'count-7',
        });
        clock.advance(1_000);
        const stats = await engine.stats();
        expect(stats.every((s) => s.appendFailures === 0)).toBe(true);
        return {
          digest: await engine.digest(),
          seqs: await Promise.all([0, 1].map((stream) => store.lastSeq(stream))),
        };
      });
      // Every acknowledged group is a row in the store.
      expect(seqs.every((seq) => seq > 1)).toBe(true);

      // 2. One shard, then three: the same state, rebuilt from the store each time.
      for (const shards of [1, 3]) {
        await withEngine(open, shards, clock, async (engine, store) => {
          expect(await engine.digest()).toBe(digest);
          expect(await store.readLayout()).toMatchObject({ shardCount: shards });
          const violations = (await engine.inspect()).flatMap((shard) => shard.violations);
          expect(violations).toEqual([]);
        });
      }

      // 3. Still writable after all that, and the writes land on the 3-shard layout.
      await withEngine(open, 3, clock, async (engine) => {
        const reply = await ok(engine, { type: 'commit', reservationId: 'order-3' });
        expect(reply).toMatchObject({ kind: 'reservation', reservation: { status: 'committed' } });
        expect(await engine.digest()).not.toBe(digest);
      });
    });
  });
}
