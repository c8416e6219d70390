/**
 * The expiry timer of a shard: a min-heap of (expiresAt, reservation slot) holding exactly
 * the held reservations, each once, at its current expiry.
 *
 * Each slot knows its position in the heap, so a reservation that leaves `held` (commit,
 * release, expiry, abort) is taken out at once and an extension moves its entry, both in
 * O(log n). A heap with lazy deletion would keep an entry (and the id string it names)
 * for every reservation ever held until its original TTL ran out: at tens of thousands
 * of reservations a second, committed within seconds but held for fifteen minutes, that
 * is tens of millions of dead entries. Columns are chunked (columns.ts), so growing the
 * heap never copies it.
 */
import { Float64Column, Int32Column } from './columns.js';
import type { EpochMs } from './types.js';

const NONE = -1;

export class ExpiryHeap {
  private readonly times = new Float64Column();
  private readonly slots = new Int32Column();
  /** Heap index of each slot; NONE when the slot is not scheduled. */
  private readonly positions = new Int32Column(NONE);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Earliest expiry; +Infinity when nothing is scheduled. */
  peekTime(): EpochMs {
    return this.count > 0 ? this.times.get(0) : Number.POSITIVE_INFINITY;
  }

  /** Slot of the earliest expiry; NONE (-1) when nothing is scheduled. */
  peekSlot(): number {
    return this.count > 0 ? this.slots.get(0) : NONE;
  }

  has(slot: number): boolean {
    return slot < this.positions.capacity && this.positions.get(slot) !== NONE;
  }

  /** Schedules the slot at `time`, or moves it there when it is scheduled already. */
  schedule(slot: number, time: EpochMs): void {
    if (slot >= this.positions.capacity) this.positions.ensure(slot + 1);
    const at = this.positions.get(slot);
    if (at === NONE) {
      const i = this.count++;
      if (i >= this.times.capacity) {
        this.times.ensure(i + 1);
        this.slots.ensure(i + 1);
      }
      this.siftUp(i, slot, time);
      return;
    }
    if (time < this.times.get(at)) this.siftUp(at, slot, time);
    else this.siftDown(at, slot, time);
  }

  /** Takes the slot out of the heap (nothing happens when it is not scheduled). */
  remove(slot: number): void {
    if (!this.has(slot)) return;
    const at = this.positions.get(slot);
    this.positions.set(slot, NONE);
    const last = --this.count;
    if (at === last) return;
    const movedSlot = this.slots.get(last);
    const movedTime = this.times.get(last);
    if (at > 0 && movedTime < this.times.get((at - 1) >> 1)) this.siftUp(at, movedSlot, movedTime);
    else this.siftDown(at, movedSlot, movedTime);
  }

  /** Places (slot, time) at index i or above it. */
  private siftUp(i: number, slot: number, time: EpochMs): void {
    const times = this.times;
    const slots = this.slots;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentTime = times.get(parent);
      if (parentTime <= time) break;
      this.place(i, slots.get(parent), parentTime);
      i = parent;
    }
    this.place(i, slot, time);
  }

  /** Places (slot, time) at index i or below it. */
  private siftDown(i: number, slot: number, time: EpochMs): void {
    const times = this.times;
    const n = this.count;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && times.get(right) < times.get(left) ? right : left;
      const childTime = times.get(child);
      if (childTime >= time) break;
      this.place(i, this.slots.get(child), childTime);
      i = child;
    }
    this.place(i, slot, time);
  }

  private place(i: number, slot: number, time: EpochMs): void {
    this.times.set(i, time);
    this.slots.set(i, slot);
    this.positions.set(slot, i);
  }
}
