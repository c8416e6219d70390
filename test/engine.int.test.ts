/**
 * Integration tests of the engine with real shard worker threads and a MemoryWalStore:
 * cross-shard all-or-nothing, worker crashes, overload, expiry on the engine's tick and
 * WAL append failures. The last block holds regressions: each test pins down a bug these
 * tests once found, stating the correct behaviour.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Reply, Request, ReservationView, Reserve, StockView } from '../src/actors/types.js';
import { encodeMsgpack } from '../src/api/msgpack.js';
import { defaultLimits, type Limits } from '../src/config.js';
import { ManualClock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

/* ---------------------------------------------------------------------------- helpers */

const engines: Engine[] = [];

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
});

interface StartOptions {
  readonly shards: number;
  readonly store?: MemoryWalStore;
  readonly clock?: ManualClock;
  readonly limits?: Limits;
  readonly onShardRestart?: (shard: number, error: unknown) => void;
}

async function start(options: StartOptions): Promise<Engine> {
  const engine = await Engine.start({
    store: options.store ?? new MemoryWalStore(),
    shards: options.shards,
    clock: options.clock ?? new ManualClock(),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.onShardRestart === undefined ? {} : { onShardRestart: options.onShardRestart }),
  });
  engines.push(engine);
  return engine;
}

/** `count` SKU names on each shard, in shard order: result[shard][i]. */
function skusByShard(engine: Engine, count: number): string[][] {
  const found: string[][] = Array.from({ length: engine.shardCount }, () => []);
  for (let i = 0; found.some((skus) => skus.length < count); i++) {
    const sku = `item-${i}`;
    const shard = engine.shardOfSku(sku);
    if (found[shard]!.length < count) found[shard]!.push(sku);
  }
  return found;
}

async function ok(engine: Engine, request: Request): Promise<Reply & { ok: true }> {
  const reply = await engine.execute(request);
  if (!reply.ok) throw new Error(`${JSON.stringify(request)} was refused: ${reply.code} ${reply.detail}`);
  return reply;
}

async function stockOf(engine: Engine, sku: string, location = 'dc-1'): Promise<StockView> {
  const reply = await ok(engine, { type: 'stock', sku });
  if (reply.kind !== 'stockList') throw new Error(`unexpected reply ${reply.kind}`);
  const view = reply.locations.find((l) => l.location === location);
  if (view === undefined) throw new Error(`no stock of ${sku} at ${location}`);
  return view;
}

/** The essential levels of a record (what a refusal must leave untouched). */
async function levelsOf(engine: Engine, sku: string, location = 'dc-1') {
  const { onHand, reserved, safetyStock, available } = await stockOf(engine, sku, location);
  return { onHand, reserved, safetyStock, available };
}

async function reservationOf(engine: Engine, reservationId: string): Promise<ReservationView | null> {
  const reply = await engine.execute({ type: 'get', reservationId });
  if (!reply.ok) {
    expect(reply.code).toBe('RESERVATION_NOT_FOUND');
    return null;
  }
  if (reply.kind !== 'reservation') throw new Error(`unexpected reply ${reply.kind}`);
  return reply.reservation;
}

async function expectNoViolations(engine: Engine): Promise<void> {
  const shards = await engine.inspect();
  expect(shards.flatMap((shard) => shard.violations)).toEqual([]);
}

const codeOf = (reply: Reply): string => (reply.ok ? 'ok' : reply.code);

function countCodes(replies: readonly Reply[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const reply of replies) counts[codeOf(reply)] = (counts[codeOf(reply)] ?? 0) + 1;
  return counts;
}

/** Units per SKU asked for by a reservation's lines. */
function unitsBySku(request: Reserve): Map<string, number> {
  const units = new Map<string, number>();
  for (const line of request.lines) units.set(line.sku, (units.get(line.sku) ?? 0) + line.qty);
  return units;
}

function heldBySku(view: ReservationView): Map<string, number> {
  const units = new Map<string, number>();
  for (const line of view.lines) units.set(line.sku, (units.get(line.sku) ?? 0) + line.held);
  return units;
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Two units of `a` and three of `b`: the cross-shard reservation of the partial-commit regressions. */
function twoSkuReserve(reservationId: string, a: string, b: string, ttlSeconds: number): Reserve {
  return {
    type: 'reserve',
    reservationId,
    ttlSeconds,
    lines: [
      { sku: a, qty: 2 },
      { sku: b, qty: 3 },
    ],
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/* ------------------------------------------------------------------ cross-shard */

describe('cross-shard reservations', () => {
  it('are all-or-nothing: a refusal on one shard leaves the other shard untouched', async () => {
    const engine = await start({ shards: 2 });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    expect(engine.shardOfSku(left)).not.toBe(engine.shardOfSku(right));
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 2 });
    const leftBefore = await levelsOf(engine, left);
    const rightBefore = await levelsOf(engine, right);

    // The right shard cannot serve 3: the left shard's part must not survive.
    const refused = await engine.execute({
      type: 'reserve',
      reservationId: 'r1',
      lines: [
        { sku: left, qty: 3 },
        { sku: right, qty: 3 },
      ],
    });
    expect(refused).toMatchObject({
      ok: false,
      code: 'INSUFFICIENT_STOCK',
      shortages: [{ sku: right, requested: 3, available: 2 }],
    });
    expect(await levelsOf(engine, left)).toEqual(leftBefore);
    expect(await levelsOf(engine, right)).toEqual(rightBefore);
    expect(await reservationOf(engine, 'r1')).toBeNull();
    expect(await ok(engine, { type: 'atp', sku: left })).toMatchObject({ available: 5 });

    // The left shard refuses this time (the right one could serve it).
    const refusedLeft = await engine.execute({
      type: 'reserve',
      reservationId: 'r2',
      lines: [
        { sku: left, qty: 6 },
        { sku: right, qty: 1 },
      ],
    });
    expect(refusedLeft).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
    expect(await levelsOf(engine, right)).toEqual(rightBefore);
    expect(await reservationOf(engine, 'r2')).toBeNull();

    // A refused id was never a reservation: it can be used again with another body.
    const held = await ok(engine, {
      type: 'reserve',
      reservationId: 'r1',
      lines: [
        { sku: left, qty: 5 },
        { sku: right, qty: 2 },
      ],
    });
    expect(held).toMatchObject({ kind: 'reservation', replayed: false, reservation: { status: 'held' } });
    expect(await levelsOf(engine, left)).toEqual({ onHand: 5, reserved: 5, safetyStock: 0, available: 0 });
    expect(await levelsOf(engine, right)).toEqual({ onHand: 2, reserved: 2, safetyStock: 0, available: 0 });
    await expectNoViolations(engine);
  });

  it('hold, replay, commit and release on every shard a reservation spans', async () => {
    const engine = await start({ shards: 3 });
    const [[a], [b], [c]] = skusByShard(engine, 1) as [[string], [string], [string]];
    for (const sku of [a, b, c]) await ok(engine, { type: 'set', sku, location: 'dc-1', onHand: 10 });
    const order: Reserve = {
      type: 'reserve',
      reservationId: 'order-1',
      lines: [
        { sku: a, qty: 1 },
        { sku: b, qty: 2 },
        { sku: c, qty: 3 },
      ],
    };
    const held = await ok(engine, order);
    expect(held.kind === 'reservation' && heldBySku(held.reservation)).toEqual(
      new Map([
        [a, 1],
        [b, 2],
        [c, 3],
      ]),
    );
    expect(await ok(engine, order)).toMatchObject({ replayed: true, reservation: { status: 'held' } });
    expect(await engine.execute({ ...order, lines: [{ sku: a, qty: 9 }] })).toMatchObject({
      ok: false,
      code: 'IDEMPOTENCY_KEY_REUSED',
    });

    const committed = await ok(engine, { type: 'commit', reservationId: 'order-1' });
    expect(committed).toMatchObject({ reservation: { status: 'committed' } });
    expect(await levelsOf(engine, a)).toMatchObject({ onHand: 9, reserved: 0 });
    expect(await levelsOf(engine, b)).toMatchObject({ onHand: 8, reserved: 0 });
    expect(await levelsOf(engine, c)).toMatchObject({ onHand: 7, reserved: 0 });

    await ok(engine, { ...order, reservationId: 'order-2' });
    expect(await ok(engine, { type: 'release', reservationId: 'order-2' })).toMatchObject({
      reservation: { status: 'released' },
    });
    for (const sku of [a, b, c]) expect(await levelsOf(engine, sku)).toMatchObject({ reserved: 0 });
    expect(await engine.execute({ type: 'commit', reservationId: 'order-2' })).toMatchObject({
      ok: false,
      code: 'RESERVATION_NOT_HELD',
    });
    await expectNoViolations(engine);
  });
});

/* ---------------------------------------------------------------------- crashes */

describe('a shard worker crash', () => {
  it('mid-traffic: acknowledged reservations survive, in-flight ones get ok or UNAVAILABLE, retries complete', async () => {
    const restarts: number[] = [];
    const engine = await start({ shards: 2, onShardRestart: (shard) => restarts.push(shard) });
    const skus = skusByShard(engine, 2).flat();
    const [s0a, s0b, s1a, s1b] = skus as [string, string, string, string];
    for (const sku of skus) await ok(engine, { type: 'set', sku, location: 'dc-1', onHand: 100_000 });

    // 20 waves of 30 reservations, one wave per turn of the event loop; shard 0 dies after wave 8.
    const requests: Reserve[] = [];
    const pending: Promise<Reply>[] = [];
    let crashed: Promise<void> | null = null;
    for (let wave = 0; wave < 20; wave++) {
      for (let i = 0; i < 30; i++) {
        const n = wave * 30 + i;
        const lines =
          n % 3 === 0
            ? [
                { sku: s0a, qty: 1 },
                { sku: s1a, qty: 2 },
              ]
            : n % 3 === 1
              ? [{ sku: n % 2 === 0 ? s0b : s0a, qty: 1 }]
              : [{ sku: n % 2 === 0 ? s1b : s1a, qty: 3 }];
        const request: Reserve = { type: 'reserve', reservationId: `c-${n}`, lines };
        requests.push(request);
        pending.push(engine.execute(request));
      }
      if (wave === 8) crashed = engine.crashShard(0);
      await nextTurn();
    }
    const replies = await Promise.all(pending);
    await crashed;
    await engine.whenReady();
    expect(restarts).toContain(0);

    // Never lost, never anything but ok or UNAVAILABLE (stock is plentiful).
    expect(replies).toHaveLength(requests.length);
    const counts = countCodes(replies);
    expect(Object.keys(counts).filter((code) => code !== 'ok' && code !== 'UNAVAILABLE')).toEqual([]);
    expect(counts.ok ?? 0).toBeGreaterThan(0);

    // Every acknowledged reservation is still there, whole.
    for (let i = 0; i < requests.length; i++) {
      if (!replies[i]!.ok) continue;
      const view = await reservationOf(engine, requests[i]!.reservationId);
      expect(view?.status, requests[i]!.reservationId).toBe('held');
      expect(heldBySku(view!)).toEqual(unitsBySku(requests[i]!));
    }
    await expectNoViolations(engine);

    // Retrying every request with the same id completes it, exactly once.
    const retries = await Promise.all(requests.map((request) => engine.execute(request)));
    expect(countCodes(retries)).toEqual({ ok: requests.length });
    for (let i = 0; i < requests.length; i++) {
      const retry = retries[i]!;
      if (replies[i]!.ok) expect(retry).toMatchObject({ replayed: true });
      expect(retry.ok && retry.kind === 'reservation' && heldBySku(retry.reservation)).toEqual(
        unitsBySku(requests[i]!),
      );
    }
    const expected = new Map<string, number>();
    for (const request of requests) {
      for (const [sku, units] of unitsBySku(request)) expected.set(sku, (expected.get(sku) ?? 0) + units);
    }
    for (const sku of skus) {
      expect(await levelsOf(engine, sku), sku).toMatchObject({
        onHand: 100_000,
        reserved: expected.get(sku),
      });
    }
    await expectNoViolations(engine);
  });

  it('a cross-shard reservation in flight during a crash completes when retried with the same id', async () => {
    const engine = await start({ shards: 2 });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 10 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 10 });
    const request: Reserve = {
      type: 'reserve',
      reservationId: 'in-flight',
      lines: [
        { sku: left, qty: 4 },
        { sku: right, qty: 6 },
      ],
    };
    const first = engine.execute(request);
    const crashed = engine.crashShard(engine.shardOfSku(left));
    expect(['ok', 'UNAVAILABLE']).toContain(codeOf(await first));
    await crashed;
    await engine.whenReady();

    const retry = await ok(engine, request);
    expect(retry.kind === 'reservation' && heldBySku(retry.reservation)).toEqual(unitsBySku(request));
    expect(await levelsOf(engine, left)).toMatchObject({ reserved: 4, available: 6 });
    expect(await levelsOf(engine, right)).toMatchObject({ reserved: 6, available: 4 });
    await ok(engine, { type: 'commit', reservationId: 'in-flight' });
    expect(await levelsOf(engine, left)).toEqual({ onHand: 6, reserved: 0, safetyStock: 0, available: 6 });
    expect(await levelsOf(engine, right)).toEqual({ onHand: 4, reserved: 0, safetyStock: 0, available: 4 });
    await expectNoViolations(engine);
  });
});

/* --------------------------------------------------------------------- overload */

describe('overload', () => {
  const tinyMailbox: Limits = {
    ...defaultLimits,
    mailboxDepthMax: 64,
    batchCommandsMax: 16,
    inflightBatchesMax: 2,
  };

  it('a flood through executeMany gets OVERLOADED at once and never reserves more than the stock', async () => {
    const engine = await start({ shards: 2, limits: tinyMailbox });
    const [[hot], [other]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: hot, location: 'dc-1', onHand: 100 });
    await ok(engine, { type: 'set', sku: other, location: 'dc-1', onHand: 100 });

    const flood: Request[] = Array.from({ length: 2_000 }, (_, i) => ({
      type: 'reserve',
      reservationId: `flood-${i}`,
      lines: [{ sku: i % 4 === 0 ? other : hot, qty: 1 }],
    }));
    const replies = await engine.executeMany(flood);
    const counts = countCodes(replies);
    expect(counts.OVERLOADED ?? 0).toBeGreaterThan(0);
    expect(
      Object.keys(counts).filter((c) => !['ok', 'OVERLOADED', 'INSUFFICIENT_STOCK'].includes(c)),
    ).toEqual([]);

    const accepted = (sku: string) =>
      flood.filter((r, i) => r.type === 'reserve' && r.lines[0]!.sku === sku && replies[i]!.ok).length;
    expect(accepted(hot)).toBeLessThanOrEqual(100);
    expect(accepted(other)).toBeLessThanOrEqual(100);
    expect((await levelsOf(engine, hot)).reserved).toBe(accepted(hot));
    expect((await levelsOf(engine, other)).reserved).toBe(accepted(other));

    // Once the flood has drained the mailbox admits requests again.
    await ok(engine, { type: 'stock', sku: hot });
    await expectNoViolations(engine);
  });

  it('several floods at once: every refused reservation left no trace', async () => {
    const engine = await start({ shards: 1, limits: tinyMailbox });
    await ok(engine, { type: 'set', sku: 'hot', location: 'dc-1', onHand: 50 });
    const floods = await Promise.all(
      Array.from({ length: 4 }, (_, f) =>
        engine.executeMany(
          Array.from({ length: 300 }, (_, i) => ({
            type: 'reserve' as const,
            reservationId: `f${f}-${i}`,
            lines: [{ sku: 'hot', qty: 1 + (i % 2) }],
          })),
        ),
      ),
    );
    const replies = floods.flat();
    expect(countCodes(replies).OVERLOADED ?? 0).toBeGreaterThan(0);
    const units = replies.reduce(
      (sum, reply) => sum + (reply.ok && reply.kind === 'reservation' ? reply.reservation.lines[0]!.qty : 0),
      0,
    );
    expect(units).toBeLessThanOrEqual(50);
    expect(await levelsOf(engine, 'hot')).toMatchObject({ onHand: 50, reserved: units });
    await expectNoViolations(engine);
  });
});

/* ----------------------------------------------------------------------- expiry */

describe('batching', () => {
  /** A store whose appends wait while `gate` is set, so a batch stays in flight. */
  class GatedStore extends MemoryWalStore {
    gate: Promise<void> | null = null;
    override async append(row: Parameters<MemoryWalStore['append']>[0]): Promise<void> {
      if (this.gate !== null) await this.gate;
      return super.append(row);
    }
  }

  /** Eleven reserves, the first alone, then ten a tick apart while the first is in flight. */
  async function batchesForTrickle(limits: Limits): Promise<number> {
    const store = new GatedStore();
    const engine = await start({ shards: 1, store, limits });
    await ok(engine, { type: 'set', sku: 'b-sku', location: 'dc-1', onHand: 100 });
    const before = (await engine.stats())[0]!.batches;
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const replies = [engine.execute(reserveOf('t0'))];
    for (let i = 1; i <= 10; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      replies.push(engine.execute(reserveOf(`t${i}`)));
    }
    // Let the worker take whatever was sent before the first append completes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    store.gate = null;
    open();
    for (const reply of await Promise.all(replies)) expect(reply.ok).toBe(true);
    return (await engine.stats())[0]!.batches - before;
  }

  const reserveOf = (reservationId: string): Reserve => ({
    type: 'reserve',
    reservationId,
    lines: [{ sku: 'b-sku', qty: 1, location: 'dc-1' }],
  });

  it('while a batch is in flight, a trickle of commands waits and goes as one batch (pipelineCommandsMin)', async () => {
    expect(await batchesForTrickle(defaultLimits)).toBe(2);
  });

  it('with pipelineCommandsMin 1, the same trickle goes in as many batches as may be in flight', async () => {
    // Fewer in flight than the trickle has commands, so the bound is what stops it.
    const limits = { ...defaultLimits, pipelineCommandsMin: 1, inflightBatchesMax: 4 };
    const batches = await batchesForTrickle(limits);
    expect(batches).toBeGreaterThanOrEqual(limits.inflightBatchesMax);
  });
});

describe('submitMany', () => {
  /** submitMany as a promise, with how often `done` ran by the time it settles. */
  function submitted(
    engine: Engine,
    requests: readonly Request[],
  ): Promise<{ replies: Reply[]; calls: number }> {
    return new Promise((resolve) => {
      let calls = 0;
      let first: Reply[] | null = null;
      engine.submitMany(requests, (replies) => {
        calls++;
        first ??= replies;
        // Wait a little: a second call would show up here.
        setTimeout(() => resolve({ replies: first!, calls }), 20);
      });
    });
  }

  it('gives every reply in request order once, across shards and the coordinated path', async () => {
    const engine = await start({ shards: 2 });
    const [left, right] = skusByShard(engine, 1) as [string[], string[]];
    await ok(engine, { type: 'set', sku: left[0]!, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right[0]!, location: 'dc-1', onHand: 5 });
    const requests: Request[] = [
      { type: 'reserve', reservationId: 'one-shard', lines: [{ sku: left[0]!, qty: 1 }] },
      { type: 'stock', sku: right[0]! },
      {
        type: 'reserve',
        reservationId: 'two-shards',
        lines: [
          { sku: left[0]!, qty: 2 },
          { sku: right[0]!, qty: 2 },
        ],
      },
      { type: 'reserve', reservationId: 'too-many', lines: [{ sku: right[0]!, qty: 50 }] },
      { type: 'release', reservationId: 'never-held' },
      { type: 'get', reservationId: 'one-shard' },
    ];
    const { replies, calls } = await submitted(engine, requests);
    expect(calls).toBe(1);
    expect(replies).toHaveLength(requests.length);
    const [oneShard, stock, twoShards, tooMany, unknown, got] = replies;
    expect(oneShard).toMatchObject({
      ok: true,
      kind: 'reservation',
      reservation: { reservationId: 'one-shard' },
    });
    expect(stock).toMatchObject({ ok: true, kind: 'stockList', sku: right[0] });
    expect(twoShards).toMatchObject({
      ok: true,
      kind: 'reservation',
      reservation: { reservationId: 'two-shards' },
    });
    expect((twoShards as { reservation: ReservationView }).reservation.lines).toHaveLength(2);
    expect(tooMany).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
    expect(unknown).toMatchObject({ ok: false, code: 'RESERVATION_NOT_FOUND' });
    // Mailbox order: the get follows the hold it asks about on its shard.
    expect(got).toMatchObject({ ok: true, kind: 'reservation', reservation: { status: 'held' } });
    expect(await engine.execute({ type: 'atp', sku: left[0]! })).toMatchObject({ available: 2 });
    // The same requests through executeMany, replayed: the same outcome per index.
    const again = await engine.executeMany(requests.slice(0, 3));
    expect(again.map((reply) => reply.ok && reply.kind)).toEqual(['reservation', 'stockList', 'reservation']);
  });

  it('with no requests, calls back at once with no replies', async () => {
    const engine = await start({ shards: 1 });
    let given: Reply[] | null = null;
    engine.submitMany([], (replies) => {
      given = replies;
    });
    expect(given).toEqual([]);
  });

  it('on a stopped engine, refuses every request UNAVAILABLE in one call', async () => {
    const engine = await start({ shards: 2 });
    await engine.stop();
    const { replies, calls } = await submitted(engine, [
      { type: 'stock', sku: 'a' },
      { type: 'release', reservationId: 'r' },
    ]);
    expect(calls).toBe(1);
    expect(replies.map((reply) => !reply.ok && reply.code)).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
  });
});

describe('expiry', () => {
  const fastTick: Limits = { ...defaultLimits, expiryTickMs: 10 };

  it("the engine's tick expires a reservation past its TTL and its stock is available again", async () => {
    const clock = new ManualClock();
    const engine = await start({ shards: 2, clock, limits: fastTick });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 5 });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'short',
      ttlSeconds: 1,
      lines: [{ sku: left, qty: 3 }],
    });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'short-x',
      ttlSeconds: 1,
      lines: [
        { sku: left, qty: 1 },
        { sku: right, qty: 2 },
      ],
    });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'long',
      ttlSeconds: 60,
      lines: [{ sku: right, qty: 1 }],
    });
    expect(await ok(engine, { type: 'atp', sku: left })).toMatchObject({ available: 1 });

    clock.advance(2_000);
    // No request is sent: only the idle tick (an empty batch carrying the time) can expire them.
    await waitFor('the tick to expire both short reservations', async () => {
      const stats = await engine.stats();
      return stats.reduce((sum, shard) => sum + shard.held, 0) === 1;
    });
    expect(await reservationOf(engine, 'short')).toMatchObject({ status: 'expired' });
    expect(await reservationOf(engine, 'short-x')).toMatchObject({ status: 'expired' });
    expect(await reservationOf(engine, 'long')).toMatchObject({ status: 'held' });
    expect(await levelsOf(engine, left)).toEqual({ onHand: 5, reserved: 0, safetyStock: 0, available: 5 });
    expect(await levelsOf(engine, right)).toEqual({ onHand: 5, reserved: 1, safetyStock: 0, available: 4 });
    expect(await engine.execute({ type: 'commit', reservationId: 'short' })).toMatchObject({
      ok: false,
      code: 'RESERVATION_NOT_HELD',
    });
    await expectNoViolations(engine);
  });

  it('extend moves the expiry; a commit after expiry is RESERVATION_NOT_HELD', async () => {
    const clock = new ManualClock();
    const engine = await start({ shards: 1, clock, limits: fastTick });
    await ok(engine, { type: 'set', sku: 'sku', location: 'dc-1', onHand: 4 });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'kept',
      ttlSeconds: 1,
      lines: [{ sku: 'sku', qty: 1 }],
    });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'lost',
      ttlSeconds: 1,
      lines: [{ sku: 'sku', qty: 2 }],
    });
    await ok(engine, { type: 'extend', reservationId: 'kept', ttlSeconds: 30 });
    clock.advance(2_000);
    expect(await engine.execute({ type: 'commit', reservationId: 'lost' })).toMatchObject({
      ok: false,
      code: 'RESERVATION_NOT_HELD',
    });
    expect(await ok(engine, { type: 'commit', reservationId: 'kept' })).toMatchObject({
      reservation: { status: 'committed' },
    });
    expect(await levelsOf(engine, 'sku')).toEqual({ onHand: 3, reserved: 0, safetyStock: 0, available: 3 });
    clock.advance(60_000);
    await waitFor('a few ticks', async () => (await engine.stats())[0]!.batches > 10);
    expect(await reservationOf(engine, 'kept')).toMatchObject({ status: 'committed' });
    await expectNoViolations(engine);
  });
});

/* ------------------------------------------------------------------ WAL failures */

describe('a WAL append failure', () => {
  it('answers UNAVAILABLE for the batch; the shard recovers, the batch is wholly absent, a retry succeeds', async () => {
    const store = new MemoryWalStore();
    const engine = await start({ shards: 1, store });
    await ok(engine, { type: 'set', sku: 'sku', location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'reserve', reservationId: 'before', lines: [{ sku: 'sku', qty: 1 }] });

    const batch: Request[] = [
      { type: 'reserve', reservationId: 'r1', lines: [{ sku: 'sku', qty: 2 }] },
      { type: 'adjust', sku: 'sku', location: 'dc-1', delta: 3, reason: 'receipt', key: 'k1' },
      { type: 'reserve', reservationId: 'r2', lines: [{ sku: 'sku', qty: 1 }] },
    ];
    store.failNextAppends(1);
    expect((await engine.executeMany(batch)).map(codeOf)).toEqual([
      'UNAVAILABLE',
      'UNAVAILABLE',
      'UNAVAILABLE',
    ]);

    await engine.whenReady();
    // Poll rather than rely on whenReady(), so this test does not depend on that fix (see the regressions below).
    await waitFor(
      'the shard to serve again',
      async () => (await engine.execute({ type: 'stock', sku: 'sku' })).ok,
    );

    // All or nothing: the failed batch is wholly absent (the in-memory store wrote nothing).
    expect(await reservationOf(engine, 'r1')).toBeNull();
    expect(await reservationOf(engine, 'r2')).toBeNull();
    expect(await reservationOf(engine, 'before')).toMatchObject({ status: 'held' });
    expect(await levelsOf(engine, 'sku')).toEqual({ onHand: 5, reserved: 1, safetyStock: 0, available: 4 });
    await expectNoViolations(engine);

    // Retrying the batch applies it once.
    const retried = await engine.executeMany(batch);
    expect(retried.map(codeOf)).toEqual(['ok', 'ok', 'ok']);
    expect(retried[1]).toMatchObject({ duplicate: false });
    expect(await levelsOf(engine, 'sku')).toEqual({ onHand: 8, reserved: 4, safetyStock: 0, available: 4 });
    const repeated = await engine.executeMany(batch);
    expect(repeated.map((r) => r.ok && r.kind === 'reservation' && r.replayed)).toEqual([true, false, true]);
    expect(repeated[1]).toMatchObject({ ok: true, duplicate: true });
    await expectNoViolations(engine);
  });

  it('a failed append on one shard leaves the other shard serving', async () => {
    const store = new MemoryWalStore();
    const engine = await start({ shards: 2, store });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 5 });
    store.failNextAppends(1);
    const failed = await engine.execute({
      type: 'adjust',
      sku: left,
      location: 'dc-1',
      delta: 1,
      reason: 'x',
      key: 'a',
    });
    expect(failed).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
    await ok(engine, { type: 'adjust', sku: right, location: 'dc-1', delta: 1, reason: 'x', key: 'b' });
    await waitFor(
      'the failed shard to serve again',
      async () => (await engine.execute({ type: 'stock', sku: left })).ok,
    );
    expect((await levelsOf(engine, left)).onHand).toBe(5);
    expect((await levelsOf(engine, right)).onHand).toBe(6);
    await ok(engine, { type: 'adjust', sku: left, location: 'dc-1', delta: 1, reason: 'x', key: 'a' });
    expect((await levelsOf(engine, left)).onHand).toBe(6);
    await expectNoViolations(engine);
  });
});

/* ------------------------------------------------------------------- regressions */

describe('a fenced shard (another process became the writer)', () => {
  it('answers UNAVAILABLE for good, says so once, and never retries', async () => {
    const store = new MemoryWalStore();
    const fenced: Array<[number, string]> = [];
    const engine = await Engine.start({
      store,
      shards: 2,
      clock: new ManualClock(),
      onShardFenced: (shard, detail) => fenced.push([shard, detail]),
    });
    engines.push(engine);
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 5 });
    store.fence('pid 4242 on host elsewhere');
    // Given: a write on each shard meets the fence.
    const first = await engine.execute({ type: 'set', sku: left, location: 'dc-1', onHand: 9 });
    expect(first).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
    const leftShard = engine.shardOfSku(left);
    await waitFor('the shard to report it is fenced', async () => fenced.length === 1);
    expect(fenced[0]).toEqual([leftShard, expect.stringContaining('pid 4242 on host elsewhere')]);
    expect(engine.shards[leftShard]!.phase).toBe('fenced');
    // Then: it refuses at once, with the reason, reads included (its state may be stale).
    const again = await engine.execute({ type: 'stock', sku: left });
    expect(again).toMatchObject({
      ok: false,
      code: 'UNAVAILABLE',
      detail: expect.stringContaining('fenced'),
    });
    expect((await engine.stats())[leftShard]).toMatchObject({ lifecycle: 'fenced', appendFailures: 1 });
    // No retry loop: a degraded shard would have re-read its WAL and be ready again by now.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await engine.stats())[leftShard]).toMatchObject({ lifecycle: 'fenced', appendFailures: 1 });
    // The other shard learns it at its own next append; the value written before stands.
    expect(await engine.execute({ type: 'set', sku: right, location: 'dc-1', onHand: 9 })).toMatchObject({
      ok: false,
      code: 'UNAVAILABLE',
    });
    await waitFor('both shards to be fenced', async () => fenced.length === 2);
    expect(store.totals().events).toBe(2);
    await engine.stop();
  });
});

describe('regressions', () => {
  it('whenReady() waits until a shard degraded by a WAL append failure serves again', async () => {
    // ShardHandle.phase stays 'ready' while the worker's lifecycle is 'degraded', so
    // whenReady() resolves at once and the next request is UNAVAILABLE ("shard 0 is degraded").
    const store = new MemoryWalStore();
    const engine = await start({ shards: 1, store });
    await ok(engine, { type: 'set', sku: 'sku', location: 'dc-1', onHand: 5 });
    store.failNextAppends(1);
    expect(
      await engine.execute({ type: 'adjust', sku: 'sku', location: 'dc-1', delta: 1, reason: 'x', key: 'k' }),
    ).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
    await engine.whenReady();
    expect(codeOf(await engine.execute({ type: 'stock', sku: 'sku' }))).toBe('ok');
  });

  it('engine.digest() is the same after a restart with another shard count (cross-shard reservation)', async () => {
    // Engine.digest() concatenates each shard's canonical lines, and a reservation spanning
    // shards has one 'R' line per part; after a restart with another shard count the parts
    // are merged into one line (or split differently), so the digest differs for the same state.
    const store = new MemoryWalStore();
    const clock = new ManualClock();
    const engine = await start({ shards: 2, store, clock });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 5 });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'span',
      lines: [
        { sku: left, qty: 1 },
        { sku: right, qty: 1 },
      ],
    });
    const before = await engine.digest();
    await engine.stop();
    const restarted = await start({ shards: 1, store, clock });
    expect(await restarted.digest()).toBe(before);
  });

  it('a cross-shard reservation answers as one shard would after a partial commit settled a part', async () => {
    // The parts of a reservation on several shards were merged by a fixed rank (committed
    // before released), and a part whose lines a partial commit had all committed refused
    // the release or extension of the others. So "commit the line on shard A, then release
    // the rest" answered 409 RESERVATION_NOT_HELD (yet released the rest) and then read
    // "committed", where one shard answers 200 and reads "released"; engine.digest()
    // differed between shard counts, before and after a restart.
    const clock = new ManualClock();
    const stores = { one: new MemoryWalStore(), two: new MemoryWalStore() };
    const engines = {
      one: await start({ shards: 1, store: stores.one, clock }),
      two: await start({ shards: 2, store: stores.two, clock }),
    };
    const [[a, besideA], [b]] = skusByShard(engines.two, 2) as [[string, string], [string]];
    const both = async (request: Request) => {
      const [one, two] = await Promise.all([engines.one.execute(request), engines.two.execute(request)]);
      return { one, two };
    };
    const same = async (request: Request) => {
      const { one, two } = await both(request);
      expect({ request, reply: summary(two) }).toEqual({ request, reply: summary(one) });
      return one;
    };
    const summary = (reply: Reply) =>
      reply.ok
        ? reply.kind === 'reservation'
          ? {
              status: reply.reservation.status,
              replayed: reply.replayed,
              expiresAt: reply.reservation.expiresAt,
              lines: heldBySku(reply.reservation),
            }
          : reply.kind
        : reply.code;
    for (const sku of [a, b]) await same({ type: 'set', sku, location: 'dc-1', onHand: 50 });
    const hold = (reservationId: string, ttlSeconds = 600) =>
      same(twoSkuReserve(reservationId, a, b, ttlSeconds));
    const commitLine = (reservationId: string, sku: string) =>
      same({ type: 'commit', reservationId, lines: [{ sku }] });

    await hold('then-released');
    await commitLine('then-released', a);
    // A SKU the reservation lacks, on the shard of the settled part: "no such line", not "replayed".
    expect(
      await same({ type: 'commit', reservationId: 'then-released', lines: [{ sku: besideA }] }),
    ).toMatchObject({
      code: 'INVALID_REQUEST',
    });
    clock.advance(1_000);
    expect(await same({ type: 'release', reservationId: 'then-released' })).toMatchObject({
      ok: true,
      reservation: { status: 'released' },
    });
    expect(await same({ type: 'release', reservationId: 'then-released' })).toMatchObject({ replayed: true });
    await hold('released-same-ms');
    await commitLine('released-same-ms', b);
    await same({ type: 'release', reservationId: 'released-same-ms' });
    await hold('then-extended', 60);
    await commitLine('then-extended', b);
    expect(await same({ type: 'extend', reservationId: 'then-extended', ttlSeconds: 120 })).toMatchObject({
      ok: true,
      reservation: { status: 'held' },
    });
    // An extension after a partial commit may shorten the TTL: the settled part's expiry is not the answer.
    await hold('extended-shorter');
    await commitLine('extended-shorter', a);
    expect(await same({ type: 'extend', reservationId: 'extended-shorter', ttlSeconds: 30 })).toMatchObject({
      ok: true,
      reservation: { status: 'held' },
    });
    await hold('then-expired', 60);
    await commitLine('then-expired', a);
    await hold('committed-in-two', 60);
    await commitLine('committed-in-two', a);
    clock.advance(1_000);
    await commitLine('committed-in-two', b);
    await same({ type: 'release', reservationId: 'committed-in-two' });
    clock.advance(90_000); // past then-expired's and extended-shorter's TTL, not then-extended's
    for (const engine of [engines.one, engines.two])
      await waitFor(
        'the tick to expire then-expired and extended-shorter',
        async () => (await engine.stats()).reduce((sum, shard) => sum + shard.held, 0) === 1,
      );
    const expected: Record<string, string> = {
      'then-released': 'released',
      'released-same-ms': 'released',
      'then-extended': 'held',
      'extended-shorter': 'expired',
      'then-expired': 'expired',
      'committed-in-two': 'committed',
    };
    const statuses = async (engine: Engine) => {
      const found: Record<string, string> = {};
      for (const id of Object.keys(expected)) {
        const view = await reservationOf(engine, id);
        found[id] = `${view?.status} until ${view?.expiresAt}`;
      }
      return found;
    };
    const one = await statuses(engines.one);
    for (const [id, status] of Object.entries(expected))
      expect(one[id]).toMatch(new RegExp(`^${status} until \\d+$`));
    expect(await statuses(engines.two)).toEqual(one);
    const digest = await engines.one.digest();
    expect(await engines.two.digest()).toBe(digest);

    // The same state after a restart into the other shard count, both ways.
    await Promise.all([engines.one.stop(), engines.two.stop()]);
    const oneAsTwo = await start({ shards: 2, store: stores.one, clock });
    const twoAsOne = await start({ shards: 1, store: stores.two, clock });
    for (const engine of [oneAsTwo, twoAsOne]) {
      expect(await statuses(engine)).toEqual(one);
      expect(await engine.digest()).toBe(digest);
    }
  });

  it('recovers with more shards after a partial commit settled every line a new part gets', async () => {
    // Recovery into another shard count replays each old stream filtered to the SKUs a new
    // shard owns, so one reservation's lines split into parts. A partial commit that settled
    // all of one new part's lines made that part committed, and the release, extension,
    // expiry or further commit of the other lines that followed then failed the lifecycle
    // invariant ("RELEASE not allowed from committed"): the shard never recovered.
    const store = new MemoryWalStore();
    const clock = new ManualClock();
    const wide = await start({ shards: 2, store, clock });
    const [[a], [b]] = skusByShard(wide, 1) as [[string], [string]];
    await wide.stop();
    engines.splice(engines.indexOf(wide), 1);
    const one = await start({ shards: 1, store, clock });
    for (const sku of [a, b]) await ok(one, { type: 'set', sku, location: 'dc-1', onHand: 20 });
    const hold = (reservationId: string, ttlSeconds = 600) =>
      ok(one, twoSkuReserve(reservationId, a, b, ttlSeconds));
    const commit = (reservationId: string, sku: string) =>
      ok(one, { type: 'commit', reservationId, lines: [{ sku }] });
    await hold('then-released');
    await commit('then-released', a);
    await ok(one, { type: 'release', reservationId: 'then-released' });
    await hold('then-extended', 60);
    await commit('then-extended', b);
    await ok(one, { type: 'extend', reservationId: 'then-extended', ttlSeconds: 120 });
    await hold('then-expired', 60);
    await commit('then-expired', a);
    await hold('then-committed');
    await commit('then-committed', b);
    await commit('then-committed', a);
    clock.advance(150_000); // past then-expired's TTL (then-extended's too)
    await waitFor('the tick to expire what is due', async () => (await one.stats())[0]!.held === 0);
    const levels = { a: await levelsOf(one, a), b: await levelsOf(one, b) };
    expect(levels.a).toMatchObject({ onHand: 14, reserved: 0 });
    expect(levels.b).toMatchObject({ onHand: 14, reserved: 0 });
    await one.stop();
    engines.splice(engines.indexOf(one), 1);

    const two = await start({ shards: 2, store, clock });
    expect({ a: await levelsOf(two, a), b: await levelsOf(two, b) }).toEqual(levels);
    for (const { violations } of await two.inspect()) expect(violations).toEqual([]);
    const view = await ok(two, { type: 'get', reservationId: 'then-committed' });
    expect(view).toMatchObject({ reservation: { status: 'committed' } });
  });

  it('a cross-shard partial commit is all or nothing: one bad line commits nothing on any part', async () => {
    // Router.partialCommit sent each part its lines at once: a part whose lines were fine
    // committed while another refused, and a SKU on a shard without a part was answered
    // RESERVATION_NOT_FOUND by that shard instead of "no such line".
    const engine = await start({ shards: 3 });
    const [[a], [b], [c]] = skusByShard(engine, 1) as [[string], [string], [string]];
    for (const sku of [a, b, c]) await ok(engine, { type: 'set', sku, location: 'dc-1', onHand: 10 });
    await ok(engine, {
      type: 'reserve',
      reservationId: 'two-parts',
      lines: [
        { sku: a, qty: 3 },
        { sku: b, qty: 2 },
      ],
    });
    const untouched = async (): Promise<void> => {
      expect(await stockOf(engine, a)).toMatchObject({ onHand: 10, reserved: 3 });
      expect(await stockOf(engine, b)).toMatchObject({ onHand: 10, reserved: 2 });
      const view = await ok(engine, { type: 'get', reservationId: 'two-parts' });
      expect(view).toMatchObject({ reservation: { status: 'held' } });
    };
    const commit = (lines: Array<{ sku: string; qty?: number }>) =>
      engine.execute({ type: 'commit', reservationId: 'two-parts', lines });
    // When: one part's line is fine, the other's asks for more than it holds.
    expect(
      await commit([
        { sku: a, qty: 1 },
        { sku: b, qty: 5 },
      ]),
    ).toMatchObject({
      ok: false,
      code: 'INVALID_QUANTITY',
    });
    await untouched();
    // When: a line names a SKU on the third shard, which holds no part.
    expect(await commit([{ sku: a, qty: 1 }, { sku: c }])).toMatchObject({
      ok: false,
      code: 'INVALID_REQUEST',
      detail: expect.stringContaining(`has no line ${c}`),
    });
    expect(await commit([{ sku: c }])).toMatchObject({ ok: false, code: 'INVALID_REQUEST' });
    await untouched();
    // Then a good commit of both parts settles both.
    const done = await ok(engine, {
      type: 'commit',
      reservationId: 'two-parts',
      lines: [{ sku: a, qty: 1 }, { sku: b }],
    });
    expect(done).toMatchObject({ reservation: { status: 'committed' } });
    expect(await stockOf(engine, a)).toMatchObject({ onHand: 9, reserved: 0 });
    expect(await stockOf(engine, b)).toMatchObject({ onHand: 8, reserved: 0 });
    await expectNoViolations(engine);
  });

  it('a refused cross-shard reservation reports the same rejection code as on one shard', async () => {
    // One shard validates the whole request before looking at stock (INVALID_QUANTITY);
    // with two shards, Router.reserveAcrossShards/combineFailures prefer another part's
    // INSUFFICIENT_STOCK, and otherwise answer the lowest shard's code.
    const twoShards = await start({ shards: 2 });
    const [[left], [right]] = skusByShard(twoShards, 1) as [[string], [string]];
    const outcomes: string[][] = [];
    for (const engine of [await start({ shards: 1 }), twoShards]) {
      await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 0 });
      await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 5 });
      await ok(engine, { type: 'channel', channel: 'web', locations: ['dc-1'] });
      const requests: Reserve[] = [
        // right has an invalid line, left has no stock.
        {
          type: 'reserve',
          reservationId: 'a',
          lines: [
            { sku: left, qty: 1 },
            { sku: right, qty: 0 },
          ],
        },
        // left has an invalid line, right would be fine; the channel does not exist.
        {
          type: 'reserve',
          reservationId: 'b',
          channel: 'nope',
          lines: [
            { sku: left, qty: 0 },
            { sku: right, qty: 1 },
          ],
        },
      ];
      outcomes.push((await Promise.all(requests.map((r) => engine.execute(r)))).map(codeOf));
    }
    expect(outcomes[0]).toEqual(['INVALID_QUANTITY', 'INVALID_QUANTITY']);
    expect(outcomes[1]).toEqual(outcomes[0]);
  });

  it('executeMany() refuses a second body for one reservation id even when the bodies go to different shards', async () => {
    // Router.reserveOnOneShard checks the idempotency directory, but the directory is only
    // updated when a reply arrives, and the reservation goes straight to the shard's
    // mailbox without the per-id serialisation that execute() uses: both bodies are held,
    // the directory keeps the last one, and the other part is orphaned (get/release do not
    // see it; its units stay reserved until expiry).
    const engine = await start({ shards: 2 });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 5 });
    const replies = await engine.executeMany([
      { type: 'reserve', reservationId: 'dup', lines: [{ sku: left, qty: 1 }] },
      { type: 'reserve', reservationId: 'dup', lines: [{ sku: right, qty: 2 }] },
    ]);
    expect(replies.map(codeOf)).toEqual(['ok', 'IDEMPOTENCY_KEY_REUSED']);
    await ok(engine, { type: 'release', reservationId: 'dup' });
    expect((await levelsOf(engine, left)).reserved + (await levelsOf(engine, right)).reserved).toBe(0);
  });

  it('the compensating abort of a refused cross-shard reservation is not dropped when a mailbox is full', async () => {
    // Router.reserveAcrossShards sends `abort` through the same bounded mailbox as client
    // traffic and ignores its reply: when the mailbox is full the abort is answered
    // OVERLOADED and dropped, so a part stays held (until expiry) although the client was
    // told the reservation failed.
    const limits: Limits = {
      ...defaultLimits,
      mailboxDepthMax: 64,
      batchCommandsMax: 16,
      inflightBatchesMax: 2,
    };
    const engine = await start({ shards: 2, limits });
    const [[left], [right]] = skusByShard(engine, 1) as [[string], [string]];
    await ok(engine, { type: 'set', sku: left, location: 'dc-1', onHand: 100 });
    await ok(engine, { type: 'set', sku: right, location: 'dc-1', onHand: 100 });
    const queries = (sku: string, n: number): Request[] =>
      Array.from({ length: n }, () => ({ type: 'stock', sku }));

    const fillLeft = engine.executeMany(queries(left, limits.mailboxDepthMax)); // left's part: OVERLOADED
    const reserve = engine.execute({
      type: 'reserve',
      reservationId: 'x',
      lines: [
        { sku: left, qty: 1 },
        { sku: right, qty: 1 },
      ],
    });
    for (let i = 0; i < 3; i++) await Promise.resolve(); // the parts are in the mailboxes now
    // Right's part is held; when its batch replies, refill right's mailbox before the abort arrives.
    const refills: Promise<unknown>[] = [];
    const probe = engine.execute({ type: 'stock', sku: right }).then(() => {
      refills.push(engine.executeMany(queries(right, limits.mailboxDepthMax)));
    });
    const fillRight = engine.executeMany(queries(right, limits.mailboxDepthMax - 2));

    expect(codeOf(await reserve)).toBe('OVERLOADED');
    await Promise.all([fillLeft, probe, fillRight]);
    await Promise.all(refills);
    expect(await reservationOf(engine, 'x')).toBeNull();
    expect((await levelsOf(engine, right)).reserved).toBe(0);
  });

  it('sending a batch to a shard leaves what the encoder returned earlier on this thread intact', async () => {
    // The encoder hands out views into one shared buffer; a batch once transferred that
    // buffer to the worker and so emptied, for one, a msgpack /v1/batch body still waiting
    // for its socket.
    const engine = await start({ shards: 1 });
    const body = encodeMsgpack({ results: [{ ok: true, reservationId: 'r-1' }] });
    const before = Buffer.from(body);
    await ok(engine, { type: 'set', sku: 'A', location: 'dc-1', onHand: 5 });
    await ok(engine, { type: 'set', sku: 'B', location: 'dc-1', onHand: 5 });
    expect(body.length).toBe(before.length);
    expect(Buffer.compare(body, before)).toBe(0);
  });
});
