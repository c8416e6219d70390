import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdIndex } from '../src/actors/id-index.js';

/** The table's side: ids by slot, with freed slots reused as the table does. */
class Slots {
  readonly ids: string[] = [];
  private readonly free: number[] = [];
  matches(slot: number, id: string): boolean {
    return this.ids[slot] === id;
  }
  take(id: string): number {
    const slot = this.free.pop() ?? this.ids.length;
    this.ids[slot] = id;
    return slot;
  }
  release(slot: number): void {
    this.ids[slot] = '';
    this.free.push(slot);
  }
}

type Op = { kind: 'add' | 'delete' | 'get'; id: string };

/** Applies the ops to an index and to a Map, checking every answer against the Map's. */
function check(ops: readonly Op[], seed: number): IdIndex {
  const slots = new Slots();
  const index = new IdIndex(slots, seed);
  const model = new Map<string, number>();
  for (const { kind, id } of ops) {
    if (kind === 'add') {
      const slot = slots.take(id);
      const added = index.add(id, slot);
      expect(added).toBe(!model.has(id));
      if (added) model.set(id, slot);
      else slots.release(slot);
    } else if (kind === 'delete') {
      const slot = index.delete(id);
      expect(slot).toBe(model.get(id) ?? -1);
      if (model.delete(id)) slots.release(slot);
    } else {
      expect(index.get(id)).toBe(model.get(id) ?? -1);
    }
  }
  expect(index.size).toBe(model.size);
  for (const [id, slot] of model) expect(index.get(id)).toBe(slot);
  return index;
}

describe('IdIndex', () => {
  it('given any adds, deletes and lookups over a few thousand ids, then it answers as a Map does', () => {
    // 4,000 ids over 256 segments: segments grow to 32–64 positions, so clusters, wrapping
    // probes and back-shifting deletes all happen.
    const id = fc.integer({ min: 0, max: 3_999 }).map((n) => `order-${n}`);
    const op = fc.record({
      kind: fc.constantFrom('add' as const, 'add' as const, 'delete' as const, 'get' as const),
      id,
    });
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 3_000, maxLength: 12_000, size: 'max' }),
        fc.integer(),
        (ops, seed) => {
          check(ops, seed);
        },
      ),
      { numRuns: 25 },
    );
    // About a second here; the default 5 s ran out on a heavily loaded machine.
  }, 30_000);

  it('given every id added, then every other deleted, then all added back, then it answers as a Map does', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `r-${i}`);
    const ops: Op[] = [
      ...ids.map((id) => ({ kind: 'add' as const, id })),
      ...ids.filter((_, i) => i % 2 === 0).map((id) => ({ kind: 'delete' as const, id })),
      ...ids.map((id) => ({ kind: 'get' as const, id })),
      ...ids.map((id) => ({ kind: 'add' as const, id })),
    ];
    const index = check(ops, 7);
    expect(index.size).toBe(ids.length);
  });

  it('given ids that differ only at their start or only in their middle, then probes stay short', () => {
    const slots = new Slots();
    const index = new IdIndex(slots, 1);
    for (let i = 0; i < 50_000; i++) {
      const id = i % 2 === 0 ? `${i}-suffix-shared-by-every-id` : `prefix-${i}-shared-suffix`;
      expect(index.add(id, slots.take(id))).toBe(true);
    }
    // At most half full: linear probing's expected longest probe is logarithmic in the size.
    expect(index.longestProbe()).toBeLessThan(64);
  });

  it('given the same ids, then different seeds find the same slots', () => {
    const a = new Slots();
    const b = new Slots();
    const x = new IdIndex(a, 1);
    const y = new IdIndex(b, 2);
    for (let i = 0; i < 1_000; i++) {
      const id = `id-${i}`;
      x.add(id, a.take(id));
      y.add(id, b.take(id));
    }
    expect(x.hash('id-1')).not.toBe(y.hash('id-1'));
    for (let i = 0; i < 1_000; i++) expect(x.get(`id-${i}`)).toBe(y.get(`id-${i}`));
  });
});
