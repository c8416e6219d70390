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
import { chunkSize } from './columns.js';
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
 * limit. A queue of fixed-size chunks: pushing and shifting never copy what is queued
 * (a flat array compacted now and then would stall the shard at a million entries).
 */
export class FinishedQueue {
  private idChunks: string[][] = [];
  private timeChunks: Float64Array[] = [];
  /** Index of the oldest entry in the first chunk. */
  private head = 0;
  /** Entries used in the last chunk. */
  private tail = chunkSize;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(id: string, finishedAt: EpochMs): void {
    if (this.tail === chunkSize) {
      this.idChunks.push(new Array<string>(chunkSize).fill(''));
      this.timeChunks.push(new Float64Array(chunkSize));
      this.tail = 0;
    }
    const last = this.idChunks.length - 1;
    this.idChunks[last]![this.tail] = id;
    this.timeChunks[last]![this.tail] = finishedAt;
    this.tail++;
    this.count++;
  }

  /** Finish time of the oldest entry; +Infinity when empty. */
  oldestAt(): EpochMs {
    return this.count > 0 ? this.timeChunks[0]![this.head]! : Number.POSITIVE_INFINITY;
  }

  /** Id of the oldest entry; call only when not empty. */
  oldestId(): string {
    return this.idChunks[0]![this.head]!;
  }

  shift(): void {
    this.idChunks[0]![this.head] = '';
    this.head++;
    this.count--;
    if (this.count === 0) {
      this.idChunks = [];
      this.timeChunks = [];
      this.head = 0;
      this.tail = chunkSize;
    } else if (this.head === chunkSize) {
      this.idChunks.shift();
      this.timeChunks.shift();
      this.head = 0;
    }
  }

  sortByTime(): void {
    const entries = this.entries().sort((a, b) => a[1] - b[1]);
    this.idChunks = [];
    this.timeChunks = [];
    this.head = 0;
    this.tail = chunkSize;
    this.count = 0;
    for (const [id, at] of entries) this.push(id, at);
  }

  entries(): Array<[string, EpochMs]> {
    const out: Array<[string, EpochMs]> = [];
    let chunk = 0;
    let i = this.head;
    for (let n = 0; n < this.count; n++) {
      if (i === chunkSize) {
        chunk++;
        i = 0;
      }
      out.push([this.idChunks[chunk]![i]!, this.timeChunks[chunk]![i]!]);
      i++;
    }
    return out;
  }
}

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

  /** Returns the record, creating it at the end of the SKU's list when missing. */
  recordOrCreate(sku: string, location: string): StockRecord {
    let r = this.stock.get(sku);
    if (r === undefined) {
      const created = new StockRecord(sku, location);
      this.stock.set(sku, created);
      this.recordCount++;
      return created;
    }
    for (;;) {
      if (r.location === location) return r;
      if (r.next === null) break;
      r = r.next;
    }
    const created = new StockRecord(r.sku, location);
    r.next = created;
    this.recordCount++;
    return created;
  }

  recordsOf(sku: string): StockRecord[] {
    const out: StockRecord[] = [];
    for (let r: StockRecord | null | undefined = this.stock.get(sku); r; r = r.next) out.push(r);
    return out;
  }

  /** Remembers a reservation (a held one goes on the table's expiry timer). */
  addReservation(reservation: ReservationInit): void {
    this.reservations.add(reservation);
    if (reservation.status === 'held') this.heldCount++;
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
    this.finished.push(reservation.id, at);
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
      const oldestId = finished.oldestId();
      finished.shift();
      const reservation = this.reservations.get(oldestId);
      // The id may have been reused after an abort; only drop the finished incarnation.
      if (reservation !== undefined && reservation.status !== 'held' && reservation.finishedAt === oldestAt) {
        this.reservations.delete(oldestId);
      }
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
