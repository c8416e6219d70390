/**
 * The id → slot index of a reservation table: open addressing over typed arrays.
 *
 * A shard looks up a reservation id for nearly every command (a new reserve looks for
 * the id first: that is its idempotency check), in a table of millions. A JavaScript Map
 * spends several cache misses on each: its bucket, the entries of the bucket's chain and,
 * for each, the key string's header, to compare hashes. Here an entry is two adjacent
 * 32-bit words — the id's full hash and its slot — so a miss costs one cache line, and a
 * hit one more to compare the id itself (the table's `matches`, against its stored bytes).
 * The arrays sit outside the JavaScript heap: the garbage collector never scans or copies
 * them.
 *
 *   hash(id) ─▶ low 8 bits pick a segment ─▶ the rest its home position
 *   segment: Int32Array [hash, slot + 1, hash, slot + 1, …]  (slot + 1 = 0: empty)
 *            linear probing, at most half full; a delete shifts its cluster back
 *            (no tombstones), so probe lengths stay short under churn
 *
 * Segments grow one at a time (doubling), so no insert rehashes more than 1/256 of the
 * index: at four million ids a growth copies 16,384 entries, well under a millisecond. A
 * segment does not shrink: the index keeps the size of its peak, as the columns do.
 *
 * The hash is FNV-1a over every UTF-16 unit of the id, seeded per index from
 * `Math.random` and finished with a mixer. The seed keeps chosen ids from piling into one
 * probe chain; nothing observable depends on it (the table iterates in its own order).
 */

const SEGMENT_BITS = 8;
const SEGMENT_COUNT = 1 << SEGMENT_BITS;
const SEGMENT_MASK = SEGMENT_COUNT - 1;
/** Entries per segment at first (a power of two). */
const INITIAL_CAPACITY = 16;
const NOT_FOUND = -1;

class Segment {
  /** [hash, slot + 1] per position; slot + 1 = 0 marks an empty position. */
  readonly entries: Int32Array;
  readonly mask: number;
  size = 0;

  constructor(readonly capacity: number) {
    this.entries = new Int32Array(capacity * 2);
    this.mask = capacity - 1;
  }
}

export class IdIndex {
  private readonly segments: Segment[] = Array.from(
    { length: SEGMENT_COUNT },
    () => new Segment(INITIAL_CAPACITY),
  );
  private readonly seed: number;
  private count = 0;

  /** `ids.matches(slot, id)`: whether the slot (one the index holds) stores `id`. */
  constructor(
    private readonly ids: { matches(slot: number, id: string): boolean },
    seed: number = (Math.random() * 0x1_0000_0000) | 0,
  ) {
    this.seed = seed;
  }

  get size(): number {
    return this.count;
  }

  hash(id: string): number {
    let h = this.seed ^ 0x811c9dc5;
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
    // FNV's low bits mix poorly; a finisher spreads every unit over the segment bits too.
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** The id's slot, or -1. */
  get(id: string): number {
    const h = this.hash(id);
    const segment = this.segments[h & SEGMENT_MASK]!;
    const i = this.positionOf(segment, h, id);
    return i === NOT_FOUND ? NOT_FOUND : segment.entries[2 * i + 1]! - 1;
  }

  /** Position in `segment` of the entry holding `id` (whose hash is `h`), or -1. */
  private positionOf(segment: Segment, h: number, id: string): number {
    const entries = segment.entries;
    const mask = segment.mask;
    for (let i = (h >>> SEGMENT_BITS) & mask; ; i = (i + 1) & mask) {
      const stored = entries[2 * i + 1]!;
      if (stored === 0) return NOT_FOUND;
      if (entries[2 * i] === h && this.ids.matches(stored - 1, id)) return i;
    }
  }

  /**
   * Adds `id` at `slot`; false (and nothing changes) when the index holds the id already.
   * `h` is `hash(id)`, which the caller keeps to delete the slot later (deleteSlot).
   */
  add(id: string, slot: number, h: number = this.hash(id)): boolean {
    const s = h & SEGMENT_MASK;
    let segment = this.segments[s]!;
    if ((segment.size + 1) * 2 > segment.capacity) segment = this.grow(s);
    const entries = segment.entries;
    const mask = segment.mask;
    let i = (h >>> SEGMENT_BITS) & mask;
    for (; ; i = (i + 1) & mask) {
      const stored = entries[2 * i + 1]!;
      if (stored === 0) break;
      if (entries[2 * i] === h && this.ids.matches(stored - 1, id)) return false;
    }
    entries[2 * i] = h;
    entries[2 * i + 1] = slot + 1;
    segment.size++;
    this.count++;
    return true;
  }

  /** Removes `id`; its slot, or -1 when the index does not hold it. */
  delete(id: string): number {
    const h = this.hash(id);
    const segment = this.segments[h & SEGMENT_MASK]!;
    const i = this.positionOf(segment, h, id);
    if (i === NOT_FOUND) return NOT_FOUND;
    const slot = segment.entries[2 * i + 1]! - 1;
    this.removeAt(segment, i);
    return slot;
  }

  /** Removes the entry of `slot`, whose id hashed to `h`; false when the index does not hold it. */
  deleteSlot(h: number, slot: number): boolean {
    const segment = this.segments[h & SEGMENT_MASK]!;
    const entries = segment.entries;
    const mask = segment.mask;
    for (let i = (h >>> SEGMENT_BITS) & mask; ; i = (i + 1) & mask) {
      const stored = entries[2 * i + 1]!;
      if (stored === 0) return false;
      if (stored === slot + 1) {
        this.removeAt(segment, i);
        return true;
      }
    }
  }

  private removeAt(segment: Segment, i: number): void {
    const entries = segment.entries;
    const mask = segment.mask;
    // Backward shift: move each later entry of the cluster into the hole when the hole
    // lies between its home and where it sits (cyclically), so every probe still finds it.
    let hole = i;
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const stored = entries[2 * j + 1]!;
      if (stored === 0) break;
      const home = (entries[2 * j]! >>> SEGMENT_BITS) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        entries[2 * hole] = entries[2 * j]!;
        entries[2 * hole + 1] = stored;
        hole = j;
      }
    }
    entries[2 * hole] = 0;
    entries[2 * hole + 1] = 0;
    segment.size--;
    this.count--;
  }

  /** Longest probe a lookup of a held id takes, over every segment (for tests and benchmarks). */
  longestProbe(): number {
    let longest = 0;
    for (const segment of this.segments) {
      const { entries, mask, capacity } = segment;
      for (let j = 0; j < capacity; j++) {
        if (entries[2 * j + 1] === 0) continue;
        const home = (entries[2 * j]! >>> SEGMENT_BITS) & mask;
        longest = Math.max(longest, ((j - home) & mask) + 1);
      }
    }
    return longest;
  }

  private grow(s: number): Segment {
    const old = this.segments[s]!;
    const segment = new Segment(old.capacity * 2);
    const from = old.entries;
    const to = segment.entries;
    const mask = segment.mask;
    for (let j = 0; j < old.capacity; j++) {
      const stored = from[2 * j + 1]!;
      if (stored === 0) continue;
      const h = from[2 * j]!;
      let i = (h >>> SEGMENT_BITS) & mask;
      while (to[2 * i + 1] !== 0) i = (i + 1) & mask;
      to[2 * i] = h;
      to[2 * i + 1] = stored;
    }
    segment.size = old.size;
    this.segments[s] = segment;
    return segment;
  }
}
