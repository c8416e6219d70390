/**
 * The router's reservation directory (engine.ts, with more than one shard): reservation
 * id → the body hash it was first accepted with and the shards that hold its parts. It
 * routes a commit, release, extend or get to the shards that hold the reservation (else
 * the router asks them all) and refuses an id reused with another body before any shard
 * sees it, whichever shards the new body's lines would land on.
 *
 * It remembers every reservation the shards remember — for the longest TTL plus the
 * retention window, so millions at a steady few thousand a second — in the main thread,
 * which also routes every request. As a Map of small objects each entry was four heap
 * objects (the Map's entry, the record, its shards array, the id string), all surviving
 * the young generation: at 130,000 commands/s over two shards the main thread promoted
 * about 30 MB/s for it and its scavenges grew to 5–13 ms. Here an entry is a slot in
 * typed-array columns outside the JavaScript heap, its id kept as bytes (ASCII ids up to
 * `inlineIdLength` characters; others as strings), looked up through an IdIndex; an
 * entry on one shard (nearly all) shares that shard's frozen one-element array.
 *
 * Entries keep the order they were added in (a list through the slots), as a Map would:
 * `evictAddedBefore` removes from the oldest and stops at the first one added later than
 * the horizon. Replacing an id's entry keeps its place in that order and gives it a new
 * `serial`, so a caller can tell whether the entry it saw is still the one there.
 */
import { AsciiColumn, Float64Column, Int32Column, ownString } from '../actors/columns.js';
import { IdIndex } from '../actors/id-index.js';
import { inlineIdLength } from '../actors/reservation-table.js';

const NONE = -1;
/** `homes` value of an entry whose parts are on several shards (see `spread`). */
const SEVERAL = -2;

export class ReservationDirectory {
  private readonly inlineIds = new AsciiColumn(inlineIdLength);
  /** Ids that do not fit `inlineIds`, by slot. */
  private readonly longIds = new Map<number, string>();
  private readonly idHashes = new Int32Column();
  private readonly index = new IdIndex(this);
  private readonly bodyHashes = new Float64Column();
  private readonly addedAts = new Float64Column();
  private readonly serials = new Float64Column();
  /** The one shard holding the entry, or SEVERAL. */
  private readonly homes = new Int32Column();
  /** Shards of the entries on several shards, by slot. */
  private readonly spread = new Map<number, readonly number[]>();
  private readonly singles: ReadonlyArray<readonly number[]> = [];
  /** The order of adding: a list through the slots, oldest first. */
  private readonly newer = new Int32Column();
  private readonly older = new Int32Column();
  private oldest = NONE;
  private newest = NONE;
  private slotsUsed = 0;
  private readonly freeSlots: number[] = [];
  private nextSerial = 1;

  /** @param shardCount shards of the layout (their one-element arrays are made up front). */
  constructor(shardCount: number) {
    this.singles = Array.from({ length: shardCount }, (_, shard) => Object.freeze([shard]));
  }

  get size(): number {
    return this.index.size;
  }

  /** The slot holding `id`'s entry, or -1. A slot is valid until that entry is deleted. */
  find(id: string): number {
    return this.index.get(id);
  }

  bodyHashAt(slot: number): number {
    return this.bodyHashes.get(slot);
  }

  /** The shards holding the entry's parts, ascending (do not modify). */
  shardsAt(slot: number): readonly number[] {
    const home = this.homes.get(slot);
    return home === SEVERAL ? this.spread.get(slot)! : this.singles[home]!;
  }

  /** Names this entry of the slot: it changes when the entry is replaced or deleted. */
  serialAt(slot: number): number {
    return this.serials.get(slot);
  }

  /** `id`'s entry's serial, or 0 when the directory has none. */
  serialOf(id: string): number {
    const slot = this.index.get(id);
    return slot === NONE ? 0 : this.serials.get(slot);
  }

  /** @internal Whether `slot` (one in use) holds `id`: the index's comparison. */
  matches(slot: number, id: string): boolean {
    if (this.inlineIds.equals(slot, id)) return true;
    return this.longIds.size > 0 && this.longIds.get(slot) === id;
  }

  /**
   * Enters `id` (or replaces its entry, keeping its place in the order of adding); returns
   * the entry's serial. `shards`: ascending, at least one.
   */
  set(id: string, bodyHash: number, shards: readonly number[], addedAt: number): number {
    let slot = this.index.get(id);
    if (slot === NONE) {
      const h = this.index.hash(id);
      slot = this.takeSlot();
      if (!this.inlineIds.set(slot, id)) this.longIds.set(slot, ownString(id));
      this.index.add(id, slot, h);
      this.idHashes.set(slot, h);
      this.newer.set(slot, NONE);
      this.older.set(slot, this.newest);
      if (this.newest === NONE) this.oldest = slot;
      else this.newer.set(this.newest, slot);
      this.newest = slot;
    }
    this.bodyHashes.set(slot, bodyHash);
    this.addedAts.set(slot, addedAt);
    if (shards.length === 1 && shards[0]! >= 0 && shards[0]! < this.singles.length) {
      this.homes.set(slot, shards[0]!);
      this.spread.delete(slot);
    } else {
      this.homes.set(slot, SEVERAL);
      this.spread.set(slot, Object.freeze([...shards]));
    }
    const serial = this.nextSerial++;
    this.serials.set(slot, serial);
    return serial;
  }

  delete(id: string): boolean {
    const slot = this.index.get(id);
    if (slot === NONE) return false;
    this.deleteSlot(slot);
    return true;
  }

  /** Deletes entries from the oldest added, up to the first one added after `horizon`. */
  evictAddedBefore(horizon: number): void {
    while (this.oldest !== NONE && this.addedAts.get(this.oldest) <= horizon) this.deleteSlot(this.oldest);
  }

  /** Ids in the order they were added (tests). */
  *ids(): IterableIterator<string> {
    for (let slot = this.oldest; slot !== NONE; slot = this.newer.get(slot)) yield this.idAt(slot);
  }

  private idAt(slot: number): string {
    return this.inlineIds.get(slot) ?? this.longIds.get(slot)!;
  }

  private deleteSlot(slot: number): void {
    this.index.deleteSlot(this.idHashes.get(slot), slot);
    const newer = this.newer.get(slot);
    const older = this.older.get(slot);
    if (older === NONE) this.oldest = newer;
    else this.newer.set(older, newer);
    if (newer === NONE) this.newest = older;
    else this.older.set(newer, older);
    this.inlineIds.clear(slot);
    if (this.longIds.size > 0) this.longIds.delete(slot);
    if (this.spread.size > 0) this.spread.delete(slot);
    this.freeSlots.push(slot);
  }

  private takeSlot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    const slot = this.slotsUsed++;
    if (slot === this.homes.capacity) {
      const size = slot + 1;
      this.inlineIds.ensure(size);
      this.idHashes.ensure(size);
      this.bodyHashes.ensure(size);
      this.addedAts.ensure(size);
      this.serials.ensure(size);
      this.homes.ensure(size);
      this.newer.ensure(size);
      this.older.ensure(size);
    }
    return slot;
  }
}
