/**
 * Growable columns stored in fixed-size chunks.
 *
 * A shard's reservation table grows to millions of entries over its retention window. A
 * column held in one typed array (or one JavaScript array) grows by allocating a bigger
 * one and copying: at a million entries that copy, for every column, stalls the shard's
 * mailbox for tens of milliseconds, in the middle of serving. Here a column is a list of
 * chunks of `chunkSize` entries; growing adds a chunk and never moves what is there, so
 * the cost of an insert does not depend on how many entries the column holds.
 *
 * One class per element kind keeps every access site monomorphic (V8 inlines `get`/`set`).
 */

const CHUNK_BITS = 12;
/** Entries per chunk (4,096: 32 KiB for a Float64 column). */
export const chunkSize = 1 << CHUNK_BITS;
const MASK = chunkSize - 1;

export class Float64Column {
  private readonly chunks: Float64Array[] = [];
  capacity = 0;

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }

  /** Makes indexes below `size` valid. */
  ensure(size: number): void {
    while (this.capacity < size) {
      this.chunks.push(new Float64Array(chunkSize));
      this.capacity += chunkSize;
    }
  }
}

export class Int32Column {
  private readonly chunks: Int32Array[] = [];
  capacity = 0;

  /** New entries read as `initial`. */
  constructor(private readonly initial = 0) {}

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }

  ensure(size: number): void {
    while (this.capacity < size) {
      const chunk = new Int32Array(chunkSize);
      if (this.initial !== 0) chunk.fill(this.initial);
      this.chunks.push(chunk);
      this.capacity += chunkSize;
    }
  }
}

export class Uint8Column {
  private readonly chunks: Uint8Array[] = [];
  capacity = 0;

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: number): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }

  ensure(size: number): void {
    while (this.capacity < size) {
      this.chunks.push(new Uint8Array(chunkSize));
      this.capacity += chunkSize;
    }
  }
}

/** References (strings, records); empty entries hold `empty`. */
export class RefColumn<T> {
  private readonly chunks: T[][] = [];
  capacity = 0;

  constructor(private readonly empty: T) {}

  get(i: number): T {
    return this.chunks[i >>> CHUNK_BITS]![i & MASK]!;
  }

  set(i: number, value: T): void {
    this.chunks[i >>> CHUNK_BITS]![i & MASK] = value;
  }

  ensure(size: number): void {
    while (this.capacity < size) {
      this.chunks.push(new Array<T>(chunkSize).fill(this.empty));
      this.capacity += chunkSize;
    }
  }
}
