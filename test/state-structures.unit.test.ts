import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkSize, Float64Column, Int32Column, RefColumn } from '../src/actors/columns.js';
import { ExpiryHeap } from '../src/actors/expiry-heap.js';
import { FinishedQueue } from '../src/actors/state.js';

describe('chunked columns', () => {
  it('given indexes across several chunks, then each reads back what was written and new entries read as empty', () => {
    const f = new Float64Column();
    const i = new Int32Column(-1);
    const r = new RefColumn<string | null>(null);
    const size = 2 * chunkSize + 17;
    f.ensure(size);
    i.ensure(size);
    r.ensure(size);
    expect(f.capacity).toBeGreaterThanOrEqual(size);
    expect(i.get(size - 1)).toBe(-1);
    expect(r.get(chunkSize)).toBeNull();
    for (let n = 0; n < size; n += 7) {
      f.set(n, n + 0.5);
      i.set(n, n);
      r.set(n, `s${n}`);
    }
    for (let n = 0; n < size; n++) {
      expect(f.get(n)).toBe(n % 7 === 0 ? n + 0.5 : 0);
      expect(i.get(n)).toBe(n % 7 === 0 ? n : -1);
      expect(r.get(n)).toBe(n % 7 === 0 ? `s${n}` : null);
    }
  });
});

type HeapOp =
  | { kind: 'schedule'; slot: number; time: number }
  | { kind: 'remove'; slot: number }
  | { kind: 'pop' };

const heapOp: fc.Arbitrary<HeapOp> = fc.oneof(
  fc.record({
    kind: fc.constant('schedule' as const),
    slot: fc.nat({ max: 60 }),
    time: fc.integer({ min: 0, max: 40 }),
  }),
  fc.record({ kind: fc.constant('remove' as const), slot: fc.nat({ max: 60 }) }),
  fc.record({ kind: fc.constant('pop' as const) }),
);

describe('ExpiryHeap', () => {
  it('given any schedules, moves and removals, then it yields exactly the scheduled slots, earliest first', () => {
    fc.assert(
      fc.property(fc.array(heapOp, { maxLength: 400 }), (ops) => {
        const heap = new ExpiryHeap();
        const model = new Map<number, number>();
        const earliest = (): number => Math.min(...model.values());
        for (const op of ops) {
          if (op.kind === 'schedule') {
            heap.schedule(op.slot, op.time, op.slot);
            model.set(op.slot, op.time);
          } else if (op.kind === 'remove') {
            heap.remove(op.slot);
            model.delete(op.slot);
          } else if (model.size > 0) {
            const slot = heap.peekSlot();
            expect(model.get(slot)).toBe(earliest());
            // Among equal times the lowest rank (here the slot itself) comes first.
            const first = Math.min(...[...model].filter(([, time]) => time === earliest()).map(([s]) => s));
            expect(slot).toBe(first);
            heap.remove(slot);
            model.delete(slot);
          } else {
            expect(heap.peekSlot()).toBe(-1);
          }
          expect(heap.size).toBe(model.size);
          expect(heap.peekTime()).toBe(model.size > 0 ? earliest() : Number.POSITIVE_INFINITY);
        }
        for (let slot = 0; slot <= 60; slot++) expect(heap.has(slot)).toBe(model.has(slot));
      }),
    );
  });

  it('given more entries than a chunk, then it still drains in time order', () => {
    const heap = new ExpiryHeap();
    const n = 3 * chunkSize;
    for (let slot = 0; slot < n; slot++) heap.schedule(slot, (slot * 7919) % n, slot);
    for (let slot = 0; slot < n; slot += 3) heap.remove(slot);
    let previous = -1;
    let drained = 0;
    while (heap.size > 0) {
      const time = heap.peekTime();
      expect(time).toBeGreaterThanOrEqual(previous);
      previous = time;
      heap.remove(heap.peekSlot());
      drained++;
    }
    expect(drained).toBe(n - Math.ceil(n / 3));
  });
});

describe('FinishedQueue', () => {
  it('given pushes and shifts across chunk boundaries, then it is the FIFO an array would be', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.nat({ max: 3 * chunkSize }), fc.constant(-1)), { maxLength: 12 }),
        (steps) => {
          const queue = new FinishedQueue();
          const model: Array<[number, number, number]> = [];
          let head = 0;
          let next = 0;
          for (const step of steps) {
            // n >= 0: push n entries; -1: shift half of what is queued (rounded up).
            if (step >= 0) {
              for (let k = 0; k < step; k++) {
                queue.push(next % 1_000, next % 7, next);
                model.push([next % 1_000, next % 7, next]);
                next++;
              }
            } else {
              const n = Math.ceil((model.length - head) / 2);
              for (let k = 0; k < n; k++) {
                const oldest = [queue.oldestSlot(), queue.oldestGeneration(), queue.oldestAt()];
                const expected = model[head]!;
                if (oldest.some((value, k) => value !== expected[k])) expect(oldest).toEqual(expected);
                queue.shift();
                head++;
              }
            }
            expect(queue.size).toBe(model.length - head);
          }
          expect(queue.entries()).toEqual(model.slice(head));
          expect(queue.oldestAt()).toBe(head < model.length ? model[head]![2] : Number.POSITIVE_INFINITY);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('given entries out of time order, when sorted, then they come out oldest first', () => {
    const queue = new FinishedQueue();
    const times = Array.from({ length: chunkSize + 10 }, (_, i) => (i * 31) % (chunkSize + 10));
    for (const t of times) queue.push(t, t + 1, t);
    queue.sortByTime();
    expect(queue.entries().map(([, , t]) => t)).toEqual([...times].sort((a, b) => a - b));
    expect(queue.entries()[0]).toEqual([0, 1, 0]);
  });
});
