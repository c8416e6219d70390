/**
 * The router's reservation directory (src/engine/directory.ts) against the Map of records
 * it replaced: the same answers for every lookup, the same order of adding, the same
 * eviction, and a serial that tells an entry from its replacement.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AsciiColumn } from '../src/actors/columns.js';
import { inlineIdLength } from '../src/actors/reservation-table.js';
import { ReservationDirectory } from '../src/engine/directory.js';

interface ModelEntry {
  bodyHash: number;
  shards: readonly number[];
  addedAt: number;
  serial: number;
}

type Op =
  | { kind: 'set'; id: string; bodyHash: number; shards: number[]; addedAt: number }
  | { kind: 'delete'; id: string }
  | { kind: 'evict'; horizon: number };

const shardCount = 4;

// A small pool of ids, so operations meet the same ids again: short ASCII, exactly the
// inline length, longer than it, and non-ASCII (the last two are kept as strings).
const ids = [
  'a',
  'r-1',
  'r-2',
  'order-77',
  'x'.repeat(inlineIdLength),
  'y'.repeat(inlineIdLength + 1),
  'résa-1',
  '予約-2',
  '',
];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      id: fc.constantFrom(...ids),
      bodyHash: fc.integer({ min: 0, max: 2 ** 53 - 1 }),
      shards: fc.uniqueArray(fc.integer({ min: 0, max: shardCount - 1 }), { minLength: 1, maxLength: 3 }),
      addedAt: fc.integer({ min: 0, max: 100 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), id: fc.constantFrom(...ids) }), weight: 2 },
  {
    arbitrary: fc.record({ kind: fc.constant('evict' as const), horizon: fc.integer({ min: -1, max: 100 }) }),
    weight: 1,
  },
);

/** Applies the ops to a directory and to a Map, checking the directory against the Map after each. */
function check(ops: readonly Op[]): void {
  const directory = new ReservationDirectory(shardCount);
  const model = new Map<string, ModelEntry>();
  for (const op of ops) {
    if (op.kind === 'set') {
      const shards = [...op.shards].sort((a, b) => a - b);
      const serial = directory.set(op.id, op.bodyHash, shards, op.addedAt);
      const before = model.get(op.id);
      expect(serial).not.toBe(0);
      if (before !== undefined) expect(serial).not.toBe(before.serial);
      model.set(op.id, { bodyHash: op.bodyHash, shards, addedAt: op.addedAt, serial });
    } else if (op.kind === 'delete') {
      expect(directory.delete(op.id)).toBe(model.delete(op.id));
    } else {
      for (const [id, entry] of model) {
        if (entry.addedAt > op.horizon) break;
        model.delete(id);
      }
      directory.evictAddedBefore(op.horizon);
    }
    expect(directory.size).toBe(model.size);
    expect([...directory.ids()]).toEqual([...model.keys()]);
    for (const id of ids) {
      const entry = model.get(id);
      const slot = directory.find(id);
      if (entry === undefined) {
        expect(slot).toBe(-1);
        expect(directory.serialOf(id)).toBe(0);
        continue;
      }
      expect(slot).toBeGreaterThanOrEqual(0);
      expect(directory.bodyHashAt(slot)).toBe(entry.bodyHash);
      expect(directory.shardsAt(slot)).toEqual(entry.shards);
      expect(directory.serialAt(slot)).toBe(entry.serial);
      expect(directory.serialOf(id)).toBe(entry.serial);
    }
  }
}

describe('ReservationDirectory', () => {
  it('given entries, when looked up, then each answers its body hash and shards', () => {
    const directory = new ReservationDirectory(2);
    directory.set('r-1', 11, [1], 5);
    directory.set('r-2', 22, [0, 1], 6);
    expect(directory.bodyHashAt(directory.find('r-1'))).toBe(11);
    expect(directory.shardsAt(directory.find('r-1'))).toEqual([1]);
    expect(directory.shardsAt(directory.find('r-2'))).toEqual([0, 1]);
    expect(directory.find('r-3')).toBe(-1);
  });

  it('given an entry replaced, then it keeps its place in the order of adding and gets a new serial', () => {
    const directory = new ReservationDirectory(2);
    const first = directory.set('r-1', 1, [0], 1);
    directory.set('r-2', 2, [1], 2);
    const second = directory.set('r-1', 3, [1], 3);
    expect(second).not.toBe(first);
    expect([...directory.ids()]).toEqual(['r-1', 'r-2']);
    // r-1 was added at 3 now, so eviction up to 2 stops at it, as the Map's did.
    directory.evictAddedBefore(2);
    expect([...directory.ids()]).toEqual(['r-1', 'r-2']);
  });

  it('never gives a serial twice: an id deleted and entered again (in the freed slot) gets a new one', () => {
    const directory = new ReservationDirectory(2);
    const first = directory.set('r-1', 1, [0], 1);
    const slot = directory.find('r-1');
    expect(directory.delete('r-1')).toBe(true);
    expect(directory.serialOf('r-1')).toBe(0);
    const second = directory.set('r-1', 1, [0], 2);
    expect(directory.find('r-1')).toBe(slot);
    expect(second).not.toBe(first);
    directory.evictAddedBefore(2);
    const third = directory.set('r-1', 1, [0], 3);
    expect(new Set([first, second, third]).size).toBe(3);
  });

  it('keeps its own copy of a shards array and takes a shard number outside the layout', () => {
    const directory = new ReservationDirectory(2);
    const shards = [0, 1];
    directory.set('r-1', 1, shards, 1);
    shards.push(5);
    expect(directory.shardsAt(directory.find('r-1'))).toEqual([0, 1]);
    directory.set('r-2', 1, [7], 1);
    expect(directory.shardsAt(directory.find('r-2'))).toEqual([7]);
  });

  it('an id column entry without a string matches no id, not even one of 255 characters', () => {
    // Without a string an entry's length reads 255; its bytes are whatever the slot held before.
    const column = new AsciiColumn(inlineIdLength);
    column.ensure(8);
    for (let i = 0; i < 8; i++) column.set(i, 'y'.repeat(inlineIdLength));
    expect(column.set(0, 'z'.repeat(inlineIdLength + 1))).toBe(false);
    expect(column.equals(0, 'y'.repeat(255))).toBe(false);
  });

  it('given old entries, when evicted, then those added up to the horizon go, oldest first', () => {
    const directory = new ReservationDirectory(1);
    for (let i = 0; i < 10; i++) directory.set(`r-${i}`, i, [0], i * 10);
    directory.evictAddedBefore(45);
    expect([...directory.ids()]).toEqual(['r-5', 'r-6', 'r-7', 'r-8', 'r-9']);
    expect(directory.size).toBe(5);
  });

  it('reuses freed slots without mixing up ids, past one chunk of its columns', () => {
    const directory = new ReservationDirectory(3);
    for (let i = 0; i < 10_000; i++) directory.set(`r-${i}`, i, [i % 3], i);
    for (let i = 0; i < 10_000; i += 2) expect(directory.delete(`r-${i}`)).toBe(true);
    for (let i = 10_000; i < 15_000; i++) directory.set(`r-${i}`, i, [i % 3], i);
    expect(directory.size).toBe(10_000);
    for (let i = 0; i < 15_000; i++) {
      const slot = directory.find(`r-${i}`);
      if (i < 10_000 && i % 2 === 0) expect(slot).toBe(-1);
      else expect(directory.bodyHashAt(slot)).toBe(i);
    }
  });

  it('agrees with a Map of records on random operations (property)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => check(ops)),
      { numRuns: 500 },
    );
  });
});
