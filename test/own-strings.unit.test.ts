/**
 * A string cut from a bigger one (as a MessagePack decoder cuts the strings of a message
 * from one string of the whole message) keeps the bigger one alive. The shard state keeps
 * what it needs for days (ids, SKUs, locations, keys), so it must keep copies of its own,
 * never the strings a command or an image arrived in. These tests measure the heap.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ownString } from '../src/actors/columns.js';
import { ShardCore } from '../src/actors/core.js';
import { imageOf, mergeImage } from '../src/actors/snapshot.js';
import { ShardState } from '../src/actors/state.js';
import type { Request } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const parents = 30;
const parentBytes = 1024 * 1024;

/** `parents` strings of `parentBytes` each (30 MB), and `cut(i, text)`: `text` as a slice of parent i. */
function slicer(): { cut: (i: number, text: string) => string; drop: () => void } {
  let bigs: string[] | null = Array.from({ length: parents }, (_, i) =>
    `${String(i).padStart(8, '0')}`.repeat(parentBytes / 8),
  );
  return {
    cut: (i, text) => {
      // A fresh big string that ends with `text`, then the slice: the slice points into it.
      const big = bigs![i]! + text;
      return big.slice(big.length - text.length);
    },
    drop: () => {
      bigs = null;
    },
  };
}

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Heap growth (bytes) while `keep` holds what `build` made from sliced strings. */
function retained(build: (cut: (i: number, text: string) => string) => unknown): number {
  const before = heapAfterGc();
  const { cut, drop } = slicer();
  const keep = build(cut);
  drop();
  const after = heapAfterGc();
  expect(keep).toBeDefined();
  return after - before;
}

const mb = 1024 * 1024;

describe('strings the state keeps are its own', () => {
  it('given slices of big strings, when kept as they are, then the big strings stay (the test can see it)', () => {
    const kept = retained((cut) =>
      Array.from({ length: parents }, (_, i) => cut(i, `order-${i}-0123456789`)),
    );
    expect(kept).toBeGreaterThan(10 * mb);
  });

  it('given slices of big strings, when copied with ownString, then the big strings go', () => {
    const kept = retained((cut) =>
      Array.from({ length: parents }, (_, i) => ownString(cut(i, `order-${i}-0123456789`))),
    );
    expect(kept).toBeLessThan(2 * mb);
    expect(ownString('order-1-0123456789')).toBe('order-1-0123456789');
  });

  it('given commands whose strings are slices, when a shard applies them, then it keeps none of the big strings', () => {
    const kept = retained((cut) => {
      const core = new ShardCore(defaultLimits);
      const requests: Request[] = [
        { type: 'channel', channel: cut(0, 'web-storefront-eu'), locations: [cut(1, 'warehouse-berlin-01')] },
      ];
      for (let i = 2; i < parents; i += 4) {
        const sku = cut(i, `SKU-LONG-NAME-${i}`);
        requests.push({ type: 'set', sku, location: cut(i + 1, 'warehouse-berlin-01'), onHand: 100 });
        requests.push({
          type: 'adjust',
          sku: cut(i + 2, `SKU-LONG-NAME-${i}`),
          location: 'warehouse-berlin-01',
          delta: 1,
          reason: 'recount',
          key: cut(i + 3, `adjustment-key-${i}-0123456789`),
        });
      }
      for (let i = 2; i < parents; i += 4) {
        requests.push({
          type: 'reserve',
          reservationId: cut(i, `reservation-${i}-0123456789`),
          orderId: cut(i + 1, `order-${i}-0123456789`),
          channel: cut(i + 2, 'web-storefront-eu'),
          lines: [{ sku: cut(i + 3, `SKU-LONG-NAME-${i}`), qty: 1 }],
        });
      }
      // A long id and a non-ASCII one, which the table keeps as strings.
      requests.push({
        type: 'reserve',
        reservationId: cut(0, `${'x'.repeat(60)}-long`),
        lines: [{ sku: 'SKU-LONG-NAME-2', qty: 1 }],
      });
      requests.push({
        type: 'reserve',
        reservationId: cut(1, 'réservation-1'),
        lines: [{ sku: 'SKU-LONG-NAME-2', qty: 1 }],
      });
      const { replies } = core.process(requests, 1_000);
      for (const reply of replies) expect(reply.ok, JSON.stringify(reply)).toBe(true);
      return core;
    });
    expect(kept).toBeLessThan(2 * mb);
  });

  it('given a snapshot image whose strings are slices, when merged into a state, then it keeps none of the big strings', () => {
    const core = new ShardCore(defaultLimits);
    core.process(
      [
        { type: 'channel', channel: 'web-storefront-eu', locations: ['warehouse-berlin-01'] },
        { type: 'set', sku: 'SKU-LONG-NAME-1', location: 'warehouse-berlin-01', onHand: 100 },
        {
          type: 'adjust',
          sku: 'SKU-LONG-NAME-1',
          location: 'warehouse-berlin-01',
          delta: 1,
          reason: 'recount',
          key: 'adjustment-key-0123456789',
        },
        {
          type: 'reserve',
          reservationId: 'reservation-0123456789',
          orderId: 'order-0123456789',
          channel: 'web-storefront-eu',
          lines: [{ sku: 'SKU-LONG-NAME-1', qty: 1 }],
        },
        { type: 'release', reservationId: 'reservation-0123456789' },
      ],
      1_000,
    );
    const image = imageOf(core.state);
    let n = 0;
    // Every string of the image, re-made as a slice of a big string.
    const sliceAll = (value: unknown, cut: (i: number, text: string) => string): unknown => {
      if (typeof value === 'string') return cut(n++ % parents, value);
      if (ArrayBuffer.isView(value)) return value;
      if (Array.isArray(value)) return value.map((v) => sliceAll(v, cut));
      if (value !== null && typeof value === 'object')
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, sliceAll(v, cut)]));
      return value;
    };
    const kept = retained((cut) => {
      const state = new ShardState(defaultLimits);
      mergeImage(state, sliceAll(image, cut) as typeof image);
      expect(state.reservations.size).toBe(1);
      expect(state.adjustmentKeys.size).toBe(1);
      expect(state.finished.size).toBe(1);
      return state;
    });
    expect(n).toBeGreaterThan(8);
    expect(kept).toBeLessThan(2 * mb);
  });
});
