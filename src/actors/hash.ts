/**
 * Stable, fast, non-cryptographic hashes. They decide which partition owns a SKU and
 * whether a repeated request carries the same body, so they must never change: a change
 * would move SKUs between partitions of an existing database.
 */

/**
 * cyrb53 fed in pieces, without building the text: `hash53Pieces.start()`, then
 * `.add(piece)` / `.addChar(code)` in order, then `.finish()` equals `hash53(concatenation)`.
 * One module-level accumulator: callers must not interleave two hashes (nothing here is async).
 */
export const hash53Pieces = {
  h1: 0,
  h2: 0,
  start(seed = 0): void {
    this.h1 = 0xdeadbeef ^ seed;
    this.h2 = 0x41c6ce57 ^ seed;
  },
  addChar(ch: number): void {
    this.h1 = Math.imul(this.h1 ^ ch, 2654435761);
    this.h2 = Math.imul(this.h2 ^ ch, 1597334677);
  },
  add(text: string): void {
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    this.h1 = h1;
    this.h2 = h2;
  },
  finish(): number {
    let h1 = this.h1;
    let h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  },
};

/** cyrb53: a 53-bit string hash (public domain, bryc). Exact in a double. */
export function hash53(text: string, seed = 0): number {
  hash53Pieces.start(seed);
  hash53Pieces.add(text);
  return hash53Pieces.finish();
}

/** FNV-1a 32-bit, for partitioning (cheap and well spread on short keys). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The partition (hash slot) that owns a SKU. All locations of a SKU live in one partition. */
export function partitionOf(sku: string, partitionCount: number): number {
  return fnv1a32(sku) % partitionCount;
}

/** Which shard owns a partition, for a given shard count. */
export function shardOfPartition(partition: number, shardCount: number): number {
  return partition % shardCount;
}

export function shardOf(sku: string, partitionCount: number, shardCount: number): number {
  return shardOfPartition(partitionOf(sku, partitionCount), shardCount);
}
