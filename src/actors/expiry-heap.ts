/**
 * The expiry timer of a shard: a min-heap of (expiresAt, reservation slot) holding exactly
 * the held reservations, each once, at its current expiry.
 *
 * Equal expiries are ordered by a rank the caller gives with each slot (the reservation
 * table: the order reservations were added in). The heap's order is then a function of
 * its entries alone, not of the history of moves that built it, so a state restored from
 * a snapshot (which adds its reservations in that same order) expires them in the same
 * order as the state that was imaged.
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
  private readonly ranks = new Float64Column();
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

  /**
   * Schedules the slot at `time`, or moves it there when it is scheduled already; `rank`
   * orders it among entries of the same time (lower first).
   */
  schedule(slot: number, time: EpochMs, rank: number): void {
    if (slot >= this.positions.capacity) this.positions.ensure(slot + 1);
    const at = this.positions.get(slot);
    if (at === NONE) {
      const i = this.count++;
      if (i >= this.times.capacity) {
        this.times.ensure(i + 1);
        this.ranks.ensure(i + 1);
        this.slots.ensure(i + 1);
      }
      this.siftUp(i, slot, time, rank);
      return;
    }
    if (this.before(time, rank, at)) this.siftUp(at, slot, time, rank);
    else this.siftDown(at, slot, time, rank);
  }

  /** True when (time, rank) comes before the entry at heap index i. */
  private before(time: EpochMs, rank: number, i: number): boolean {
    return precedes(time, rank, this.times.get(i), this.ranks.get(i));
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
    const movedRank = this.ranks.get(last);
    if (at > 0 && this.before(movedTime, movedRank, (at - 1) >> 1))
      this.siftUp(at, movedSlot, movedTime, movedRank);
    else this.siftDown(at, movedSlot, movedTime, movedRank);
  }

  /** Places (slot, time, rank) at index i or above it. */
  private siftUp(i: number, slot: number, time: EpochMs, rank: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(time, rank, parent)) break;
      this.place(i, this.slots.get(parent), this.times.get(parent), this.ranks.get(parent));
      i = parent;
    }
    this.place(i, slot, time, rank);
  }

  /** Places (slot, time, rank) at index i or below it. */
  private siftDown(i: number, slot: number, time: EpochMs, rank: number): void {
    const n = this.count;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child =
        right < n && this.before(this.times.get(right), this.ranks.get(right), left) ? right : left;
      if (!precedes(this.times.get(child), this.ranks.get(child), time, rank)) break;
      this.place(i, this.slots.get(child), this.times.get(child), this.ranks.get(child));
      i = child;
    }
    this.place(i, slot, time, rank);
  }

  private place(i: number, slot: number, time: EpochMs, rank: number): void {
    this.times.set(i, time);
    this.ranks.set(i, rank);
    this.slots.set(i, slot);
    this.positions.set(slot, i);
  }
}

/** (time, rank) order: earlier first, then lower rank. */
function precedes(time: EpochMs, rank: number, otherTime: EpochMs, otherRank: number): boolean {
  return time < otherTime || (time === otherTime && rank < otherRank);
}
