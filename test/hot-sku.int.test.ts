/**
 * One hot SKU under thousands of concurrent reservations, on a two-shard engine with real
 * worker threads: the shard that owns the SKU serialises every request in its mailbox,
 * so exactly the stock is reserved, never a unit more, and settling the reservations
 * (half committed, half released) adds up exactly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Reply, Request, Reserve, StockView } from '../src/actors/types.js';
import { ManualClock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

const requestCount = 5_000;
const hotStock = 1_000;

let engine: Engine | null = null;

afterEach(async () => {
  await engine?.stop();
  engine = null;
});

async function startEngine(): Promise<Engine> {
  engine = await Engine.start({ store: new MemoryWalStore(), shards: 2, clock: new ManualClock() });
  return engine;
}

/** A SKU name owned by `shard`. */
function skuOnShard(e: Engine, shard: number, prefix: string): string {
  for (let i = 0; ; i++) if (e.shardOfSku(`${prefix}-${i}`) === shard) return `${prefix}-${i}`;
}

async function execute(e: Engine, request: Request): Promise<Reply> {
  const reply = await e.execute(request);
  if (!reply.ok) throw new Error(`${JSON.stringify(request)} was refused: ${reply.code} ${reply.detail}`);
  return reply;
}

/** Totals of a SKU over its locations. */
async function totalsOf(
  e: Engine,
  sku: string,
): Promise<{ onHand: number; reserved: number; available: number }> {
  const reply = await execute(e, { type: 'stock', sku });
  if (!reply.ok || reply.kind !== 'stockList') throw new Error('expected a stock list');
  const sum = (pick: (view: StockView) => number) => reply.locations.reduce((total, v) => total + pick(v), 0);
  return {
    onHand: sum((v) => v.onHand),
    reserved: sum((v) => v.reserved),
    available: sum((v) => v.available),
  };
}

function codeCounts(replies: readonly Reply[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const reply of replies) {
    const code = reply.ok ? 'ok' : reply.code;
    counts[code] = (counts[code] ?? 0) + 1;
  }
  return counts;
}

async function expectNoViolations(e: Engine): Promise<void> {
  expect((await e.inspect()).flatMap((shard) => shard.violations)).toEqual([]);
}

/** Commits the first `commitCount` reservations and releases the rest, all at once. */
async function settle(e: Engine, ids: readonly string[], commitCount = ids.length / 2): Promise<void> {
  const replies = await Promise.all(
    ids.map((reservationId, i) =>
      e.execute(i < commitCount ? { type: 'commit', reservationId } : { type: 'release', reservationId }),
    ),
  );
  expect(codeCounts(replies)).toEqual({ ok: ids.length });
  replies.forEach((reply, i) => {
    expect(reply).toMatchObject({ reservation: { status: i < commitCount ? 'committed' : 'released' } });
  });
}

describe('a hot SKU with 1,000 units and 5,000 concurrent reservations', () => {
  it('Promise.all of execute(): exactly 1,000 units reserved; commit half, release half', async () => {
    const e = await startEngine();
    const hot = skuOnShard(e, 1, 'hot');
    // Two locations, so 'split' and 'priority' both have a choice to make.
    await execute(e, { type: 'set', sku: hot, location: 'dc-east', onHand: 600 });
    await execute(e, { type: 'set', sku: hot, location: 'dc-west', onHand: 400 });

    const requests: Reserve[] = Array.from({ length: requestCount }, (_, i) => ({
      type: 'reserve',
      reservationId: `hot-${i}`,
      strategy: i % 2 === 0 ? 'priority' : 'split',
      lines: [{ sku: hot, qty: 1 }],
    }));
    const replies = await Promise.all(requests.map((request) => e.execute(request)));
    expect(codeCounts(replies)).toEqual({ ok: hotStock, INSUFFICIENT_STOCK: requestCount - hotStock });
    expect(await totalsOf(e, hot)).toEqual({ onHand: hotStock, reserved: hotStock, available: 0 });
    await expectNoViolations(e);

    const accepted = requests.filter((_, i) => replies[i]!.ok).map((r) => r.reservationId);
    await settle(e, accepted);
    expect(await totalsOf(e, hot)).toEqual({ onHand: 500, reserved: 0, available: 500 });
    await expectNoViolations(e);
  });

  it('one executeMany(): exactly 1,000 units reserved (mixed quantities); settling adds up', async () => {
    const e = await startEngine();
    const hot = skuOnShard(e, 0, 'hot');
    await execute(e, { type: 'set', sku: hot, location: 'dc-1', onHand: hotStock });

    // Quantities 1..3: whatever is accepted, the sum never exceeds the stock, and the
    // single units at the end fill it exactly.
    const requests: Reserve[] = Array.from({ length: requestCount }, (_, i) => ({
      type: 'reserve',
      reservationId: `many-${i}`,
      lines: [{ sku: hot, qty: i < requestCount - 1_000 ? 1 + (i % 3) : 1 }],
    }));
    const replies = await e.executeMany(requests);
    const units = requests.reduce((sum, r, i) => sum + (replies[i]!.ok ? r.lines[0]!.qty : 0), 0);
    expect(units).toBe(hotStock);
    expect(Object.keys(codeCounts(replies)).sort()).toEqual(['INSUFFICIENT_STOCK', 'ok']);
    expect(await totalsOf(e, hot)).toEqual({ onHand: hotStock, reserved: hotStock, available: 0 });

    const accepted = requests.filter((_, i) => replies[i]!.ok);
    const commitCount = Math.floor(accepted.length / 2);
    const committedUnits = accepted.slice(0, commitCount).reduce((sum, r) => sum + r.lines[0]!.qty, 0);
    await settle(
      e,
      accepted.map((r) => r.reservationId),
      commitCount,
    );
    expect(await totalsOf(e, hot)).toEqual({
      onHand: hotStock - committedUnits,
      reserved: 0,
      available: hotStock - committedUnits,
    });
    await expectNoViolations(e);
  });

  it('cross-shard bundles (hot SKU + a plentiful SKU on the other shard): all or nothing under contention', async () => {
    const e = await startEngine();
    const hot = skuOnShard(e, 0, 'hot');
    const cold = skuOnShard(e, 1, 'cold');
    await execute(e, { type: 'set', sku: hot, location: 'dc-1', onHand: hotStock });
    await execute(e, { type: 'set', sku: cold, location: 'dc-1', onHand: 10 * requestCount });

    const requests: Reserve[] = Array.from({ length: requestCount }, (_, i) => ({
      type: 'reserve',
      reservationId: `bundle-${i}`,
      lines: [
        { sku: hot, qty: 1 },
        { sku: cold, qty: 2 },
      ],
    }));
    const replies = await Promise.all(requests.map((request) => e.execute(request)));
    expect(codeCounts(replies)).toEqual({ ok: hotStock, INSUFFICIENT_STOCK: requestCount - hotStock });
    // Every refused bundle's cold part was aborted: exactly the accepted bundles hold cold units.
    expect(await totalsOf(e, hot)).toEqual({ onHand: hotStock, reserved: hotStock, available: 0 });
    expect(await totalsOf(e, cold)).toMatchObject({ reserved: 2 * hotStock });
    await expectNoViolations(e);

    const accepted = requests.filter((_, i) => replies[i]!.ok).map((r) => r.reservationId);
    await settle(e, accepted);
    expect(await totalsOf(e, hot)).toEqual({ onHand: 500, reserved: 0, available: 500 });
    expect(await totalsOf(e, cold)).toEqual({
      onHand: 10 * requestCount - 1_000,
      reserved: 0,
      available: 10 * requestCount - 1_000,
    });
    await expectNoViolations(e);
  });
});
