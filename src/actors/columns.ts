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

/** Length entry of an AsciiColumn slot that holds no string. */
const NO_STRING = 255;

/**
 * Short ASCII strings stored as bytes, `width` (at most 254) per entry, outside the
 * JavaScript heap: the garbage collector neither scans nor copies them. An entry holds a
 * string only when it is ASCII and at most `width` long (`set` says whether it could).
 */
export class AsciiColumn {
  private readonly chunks: Uint8Array[] = [];
  private readonly lengthChunks: Uint8Array[] = [];
  capacity = 0;

  constructor(readonly width: number) {
    if (width < 1 || width >= NO_STRING) throw new RangeError(`width must be 1..${NO_STRING - 1}`);
  }

  /** Stores `s` at `i` when it fits; otherwise leaves the entry empty and returns false. */
  set(i: number, s: string): boolean {
    const lengths = this.lengthChunks[i >>> CHUNK_BITS]!;
    const at = i & MASK;
    const length = s.length;
    if (length > this.width) {
      lengths[at] = NO_STRING;
      return false;
    }
    const bytes = this.chunks[i >>> CHUNK_BITS]!;
    const base = at * this.width;
    for (let k = 0; k < length; k++) {
      const unit = s.charCodeAt(k);
      if (unit > 0x7f) {
        lengths[at] = NO_STRING;
        return false;
      }
      bytes[base + k] = unit;
    }
    lengths[at] = length;
    return true;
  }

  /** True when the entry at `i` holds exactly `s`. */
  equals(i: number, s: string): boolean {
    const length = this.lengthChunks[i >>> CHUNK_BITS]![i & MASK]!;
    // An entry without a string has the length NO_STRING, which a 255-character `s` has too.
    if (length !== s.length || length === NO_STRING) return false;
    const bytes = this.chunks[i >>> CHUNK_BITS]!;
    const base = (i & MASK) * this.width;
    for (let k = 0; k < length; k++) if (bytes[base + k] !== s.charCodeAt(k)) return false;
    return true;
  }

  /** The string at `i` (a new string each call), or undefined when the entry holds none. */
  get(i: number): string | undefined {
    const length = this.lengthChunks[i >>> CHUNK_BITS]![i & MASK]!;
    if (length === NO_STRING) return undefined;
    const base = (i & MASK) * this.width;
    return String.fromCharCode.apply(
      null,
      this.chunks[i >>> CHUNK_BITS]!.subarray(base, base + length) as unknown as number[],
    );
  }

  clear(i: number): void {
    this.lengthChunks[i >>> CHUNK_BITS]![i & MASK] = NO_STRING;
  }

  ensure(size: number): void {
    while (this.capacity < size) {
      this.chunks.push(new Uint8Array(chunkSize * this.width));
      this.lengthChunks.push(new Uint8Array(chunkSize).fill(NO_STRING));
      this.capacity += chunkSize;
    }
  }
}

/**
 * A copy of `s` that shares no memory with the string it came from. A string cut from a
 * bigger one (as a MessagePack decoder cuts every string of a message from one string of
 * the whole message) keeps all of that bigger string alive for as long as it lives, which
 * for a reservation's order id is the retention window.
 */
export function ownString(s: string): string {
  // Slicing a concatenation first flattens it into a fresh string of its own.
  return ` ${s}`.slice(1);
}

/**
 * One string of its own per distinct value, for names that many entries repeat (channels,
 * locations): each entry then points at the pool's copy instead of keeping the decoded
 * string it arrived in. Past `max` distinct values, values get a copy of their own each.
 */
export class StringPool {
  private readonly strings = new Map<string, string>();

  constructor(private readonly max: number) {}

  intern(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    const own = ownString(s);
    if (this.strings.size < this.max) this.strings.set(own, own);
    return own;
  }
}
