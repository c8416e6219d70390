/**
 * The state one shard actor owns: stock records, reservations, channels, the adjustment
 * key window, the expiry timer and the finished-reservation window.
 *
 * Memory matters (target: <= 300 bytes per stock record at 1,000,000 records), so a
 * SKU's records form a singly linked list hanging off one Map entry keyed by SKU:
 * one Map entry and one key string per SKU, one small fixed-shape object per
 * (sku, location). All locations of a SKU share a partition, so a SKU never spans shards.
 */
import type { Limits } from '../config.js';
import { invariant } from '../errors.js';
import { chunkSize, ownString, StringPool } from './columns.js';
import { combineOutcomes } from './reservation-machine.js';
import { type Reservation, type ReservationInit, ReservationTable } from './reservation-table.js';
import type { ChannelView, EpochMs, StockView } from './types.js';

export class StockRecord {
  onHand = 0;
  reserved = 0;
  safetyStock = 0;
  /** Bumped by every change; compare-and-set target. 0 = never written. */
  version = 0;
  /** Last source timestamp seen (ms), 0 = none. */
  sourceTs = 0;
  next: StockRecord | null = null;
  /**
   * `sku` is the SKU's own key string, shared by its records and by every reservation line
   * that refers to them, so a held reservation keeps no copy of the strings its command
   * arrived with (fewer live objects: less memory, shorter GC).
   */
  constructor(
    readonly sku: string,
    readonly location: string,
    /**
     * The record's number in its shard: 0, 1, … in the order records were created (they are
     * never removed). A snapshot image lists records in this order, and a reservation line
     * names its record by it.
     */
    readonly ordinal: number,
  ) {}
}

export function availableOf(record: StockRecord): number {
  const free = record.onHand - record.reserved - record.safetyStock;
  return Math.max(free, 0);
}

export function viewOf(sku: string, record: StockRecord): StockView {
  return {
    sku,
    location: record.location,
    onHand: record.onHand,
    reserved: record.reserved,
    safetyStock: record.safetyStock,
    available: availableOf(record),
    version: record.version,
    sourceTs: record.sourceTs === 0 ? null : record.sourceTs,
  };
}

export type { LineInit, Reservation, ReservationInit, ReservationLine } from './reservation-table.js';

export interface AdjustmentKeyEntry {
  readonly sku: string;
  readonly location: string;
  readonly bodyHash: number;
  readonly at: EpochMs;
}

export interface Channel extends ChannelView {}

/**
 * FIFO of finished reservations, forgotten after the retention window or past the count
 * limit. An entry names a reservation by its table slot and the slot's generation (see
 * ReservationTable.generationAt), so the queue holds no strings; an entry whose slot has
 * been freed or reused since is stale and skipped. A queue of fixed-size chunks: pushing
 * and shifting never copy what is queued (a flat array compacted now and then would stall
 * the shard at a million entries).
 */
export class FinishedQueue {
  private slotChunks: Int32Array[] = [];
  private generationChunks: Int32Array[] = [];
  private timeChunks: Float64Array[] = [];
  /** Index of the oldest entry in the first chunk. */
  private head = 0;
  /** Entries used in the last chunk. */
  private tail = chunkSize;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(slot: number, generation: number, finishedAt: EpochMs): void {
    if (this.tail === chunkSize) {
      this.slotChunks.push(new Int32Array(chunkSize));
      this.generationChunks.push(new Int32Array(chunkSize));
      this.timeChunks.push(new Float64Array(chunkSize));
      this.tail = 0;
    }
    const last = this.slotChunks.length - 1;
    this.slotChunks[last]![this.tail] = slot;
    this.generationChunks[last]![this.tail] = generation;
    this.timeChunks[last]![this.tail] = finishedAt;
    this.tail++;
    this.count++;
  }

  /** Finish time of the oldest entry; +Infinity when empty. */
  oldestAt(): EpochMs {
    return this.count > 0 ? this.timeChunks[0]![this.head]! : Number.POSITIVE_INFINITY;
  }

  /** Slot of the oldest entry; call only when not empty. */
  oldestSlot(): number {
    return this.slotChunks[0]![this.head]!;
  }

  /** Generation of the oldest entry's slot; call only when not empty. */
  oldestGeneration(): number {
    return this.generationChunks[0]![this.head]!;
  }

  shift(): void {
    this.head++;
    this.count--;
    if (this.count === 0) {
      this.slotChunks = [];
      this.generationChunks = [];
      this.timeChunks = [];
      this.head = 0;
      this.tail = chunkSize;
    } else if (this.head === chunkSize) {
      this.slotChunks.shift();
      this.generationChunks.shift();
      this.timeChunks.shift();
      this.head = 0;
    }
  }

  sortByTime(): void {
    const entries = this.entries().sort((a, b) => a[2] - b[2]);
    this.slotChunks = [];
    this.generationChunks = [];
    this.timeChunks = [];
    this.head = 0;
    this.tail = chunkSize;
    this.count = 0;
    for (const [slot, generation, at] of entries) this.push(slot, generation, at);
  }

  /** Calls `visit` with each entry, oldest first. */
  forEach(visit: (slot: number, generation: number, at: EpochMs) => void): void {
    let chunk = 0;
    let i = this.head;
    for (let n = 0; n < this.count; n++) {
      if (i === chunkSize) {
        chunk++;
        i = 0;
      }
      visit(this.slotChunks[chunk]![i]!, this.generationChunks[chunk]![i]!, this.timeChunks[chunk]![i]!);
      i++;
    }
  }

  /** [slot, generation, finishedAt] of every entry, oldest first. */
  entries(): Array<[number, number, EpochMs]> {
    const out: Array<[number, number, EpochMs]> = [];
    this.forEach((slot, generation, at) => {
      out.push([slot, generation, at]);
    });
    return out;
  }
}

/** Distinct location names pooled per shard; beyond this, a record keeps its own copy. */
const LOCATION_NAMES_MAX = 65_536;

/** Which SKUs this state owns; used when recovering under a different shard count. */
export type OwnsSku = (sku: string) => boolean;
export const ownsEverything: OwnsSku = () => true;

export class ShardState {
  /** sku → first record of the SKU's location list. */
  readonly stock = new Map<string, StockRecord>();
  /** Held and finished reservations, column-wise (reservation-table.ts). */
  readonly reservations = new ReservationTable();
  readonly channels = new Map<string, Channel>();
  /** `${sku}\u0000${key}` → entry, in insertion (= time) order. */
  readonly adjustmentKeys = new Map<string, AdjustmentKeyEntry>();
  readonly finished = new FinishedQueue();
  recordCount = 0;
  /** Location names, shared by every record at the location. */
  private readonly locationNames = new StringPool(LOCATION_NAMES_MAX);
  /** Held reservations (status held), for stats. */
  heldCount = 0;
  /**
   * Set while the WAL of a layout with another shard count is replayed into this state
   * (recovery after a change of shard count, see evolve.ts settledPart); false otherwise.
   */
  replayingOtherLayout = false;

  constructor(
    readonly limits: Limits,
    readonly owns: OwnsSku = ownsEverything,
  ) {}

  record(sku: string, location: string): StockRecord | undefined {
    for (let r: StockRecord | null | undefined = this.stock.get(sku); r; r = r.next) {
      if (r.location === location) return r;
    }
    return undefined;
  }

  /**
   * Returns the record, creating it at the end of the SKU's list when missing. A new
   * record keeps a copy of the SKU of its own and the pooled location name, never the
   * strings it was given (a decoded string can hold on to its whole message).
   */
  recordOrCreate(sku: string, location: string): StockRecord {
    let r = this.stock.get(sku);
    if (r === undefined) {
      const created = new StockRecord(ownString(sku), this.locationNames.intern(location), this.recordCount);
      this.stock.set(created.sku, created);
      this.recordCount++;
      return created;
    }
    for (;;) {
      if (r.location === location) return r;
      if (r.next === null) break;
      r = r.next;
    }
    const created = new StockRecord(r.sku, this.locationNames.intern(location), this.recordCount);
    r.next = created;
    this.recordCount++;
    return created;
  }

  recordsOf(sku: string): StockRecord[] {
    const out: StockRecord[] = [];
    for (let r: StockRecord | null | undefined = this.stock.get(sku); r; r = r.next) out.push(r);
    return out;
  }

  /** Remembers a reservation (a held one goes on the table's expiry timer); returns its slot. */
  addReservation(reservation: ReservationInit): number {
    const slot = this.reservations.add(reservation);
    if (reservation.status === 'held') this.heldCount++;
    return slot;
  }

  /**
   * Merges two parts of one cross-shard reservation that end up on the same shard after a
   * change of shard count. Lines are disjoint (each SKU lived on one old shard). The merged
   * part reports what one shard holding every line would (combineOutcomes): held while a
   * part holds, else the status (and expiry) of the part that finished last.
   */
  mergeReservationPart(existing: Reservation, incoming: ReservationInit): void {
    this.reservations.appendLines(existing.id, incoming.lines);
    if (incoming.status === 'held' && existing.status !== 'held') this.heldCount++;
    const outcome = combineOutcomes(existing, incoming);
    existing.status = outcome.status;
    existing.finishedAt = outcome.finishedAt;
    existing.expiresAt = outcome.expiresAt;
    existing.extensions = outcome.extensions;
  }

  /** Sets a channel, keeping copies of its strings (see recordOrCreate). */
  upsertChannel(channel: string, locations: readonly string[], buffer: number): void {
    const name = ownString(channel);
    this.channels.set(name, {
      channel: name,
      locations: locations.map((location) => this.locationNames.intern(location)),
      buffer,
    });
  }

  sortAdjustmentKeys(): void {
    const entries = [...this.adjustmentKeys].sort((a, b) => a[1].at - b[1].at);
    this.adjustmentKeys.clear();
    for (const [key, entry] of entries) this.adjustmentKeys.set(key, entry);
  }

  /** Marks a reservation finished and queues it to be forgotten after the retention window. */
  finish(reservation: Reservation, at: EpochMs): void {
    invariant(reservation.status !== 'held', 'finish() of a held reservation');
    this.heldCount--;
    reservation.finishedAt = at;
    const slot = this.reservations.slotOf(reservation);
    this.finished.push(slot, this.reservations.generationAt(slot), at);
  }

  /** Forgets finished reservations and adjustment keys outside their windows (deterministic in `at`). */
  forgetOld(at: EpochMs): void {
    const limits = this.limits;
    const finishedHorizon = at - limits.reservationRetentionSeconds * 1000;
    // Runs after every event: the common case (nothing to forget) allocates nothing.
    const finished = this.finished;
    while (finished.size > 0) {
      const oldestAt = finished.oldestAt();
      if (oldestAt > finishedHorizon && finished.size <= limits.finishedReservationsMax) break;
      const slot = finished.oldestSlot();
      const generation = finished.oldestGeneration();
      finished.shift();
      // Only the finished incarnation goes: the slot may have been freed and reused since.
      this.reservations.forgetFinished(slot, generation, oldestAt);
    }
    const keyHorizon = at - limits.adjustmentKeyWindowSeconds * 1000;
    const keys = this.adjustmentKeys;
    while (keys.size > 0) {
      const first = keys.entries().next().value as [string, AdjustmentKeyEntry];
      if (first[1].at > keyHorizon && keys.size <= limits.adjustmentKeysMax) break;
      keys.delete(first[0]);
    }
  }
}
