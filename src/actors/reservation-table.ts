/**
 * The reservations a shard keeps, held and finished, stored column-wise.
 *
 * A shard keeps every reservation it made for the retention window (a day by default), so
 * at tens of thousands of reservations a second it holds millions. As plain objects each
 * one was about eight heap objects (the reservation, its three timestamps boxed as heap
 * numbers, its lines array, a line object each, the id), all surviving the young
 * generation: V8's scavenger copied each of them twice, and the shard worker spent a
 * quarter of its time in GC. Here a reservation is a slot in typed arrays (outside the
 * JavaScript heap) and a line is a slot in a second set. Its id is kept as bytes in a
 * column too (ASCII ids up to 40 characters; others as strings), so a reservation adds
 * no heap object at all unless it has an order id. The strings a command arrives with
 * are only read, never kept: a decoded string can hold on to its whole message.
 *
 * Every structure here grows in bounded steps (chunked columns, see columns.ts; the id
 * index in segments, see id-index.ts), so no insert ever copies or rehashes the whole
 * table, and the table keeps the expiry timer of its held reservations itself
 * (expiry-heap.ts). It iterates in the order its reservations were added, through a list
 * over the slots, as a Map would.
 *
 * Readers get a `Reservation`: a short-lived handle onto one slot, with the fields as
 * getters and setters, so the decider, evolve and the queries read as they did. A handle
 * is valid until its reservation is deleted: do not keep one across a delete.
 */
import { invariant } from '../errors.js';
import {
  AsciiColumn,
  Float64Column,
  Int32Column,
  ownString,
  RefColumn,
  StringPool,
  Uint8Column,
} from './columns.js';
import { ExpiryHeap } from './expiry-heap.js';
import { IdIndex } from './id-index.js';
import { type ReservationMachineState, reservationStates } from './reservation-machine.js';
import type { StockRecord } from './state.js';
import type { EpochMs } from './types.js';

/** One line of a reservation, as handed to `add` / `appendLines`. */
export interface LineInit {
  /** The record the line holds units of; the line's SKU and location are the record's. */
  readonly record: StockRecord;
  readonly qty: number;
  readonly held: number;
  readonly committed: number;
}

/** The table column-wise (see ReservationTable.exportColumns); lines in reservation order. */
export interface ReservationColumns {
  readonly ids: string[];
  readonly orderIds: Array<string | null>;
  readonly channels: Array<string | null>;
  readonly bodyHash: Float64Array;
  readonly createdAt: Float64Array;
  readonly expiresAt: Float64Array;
  readonly finishedAt: Float64Array;
  readonly extensions: Int32Array;
  readonly status: Uint8Array;
  /** Lines per reservation; a reservation's lines follow the previous one's. */
  readonly lineCount: Int32Array;
  readonly lineRecord: Int32Array;
  readonly lineQty: Float64Array;
  readonly lineHeld: Float64Array;
  readonly lineCommitted: Float64Array;
  readonly positionOfSlot: Int32Array;
}

/** A reservation as handed to `add`. */
export interface ReservationInit {
  readonly id: string;
  readonly orderId: string | null;
  readonly channel: string | null;
  readonly bodyHash: number;
  readonly createdAt: EpochMs;
  readonly expiresAt: EpochMs;
  readonly status: ReservationMachineState;
  readonly finishedAt: EpochMs;
  readonly extensions: number;
  readonly lines: readonly LineInit[];
}

export interface ReservationLine {
  /** The record's own strings (`record.sku`, `record.location`). */
  readonly sku: string;
  readonly location: string;
  /** The record the line holds units of: commit, release and expiry need no lookup. */
  readonly record: StockRecord;
  readonly qty: number;
  /** Units still held (counted in the record's `reserved`). */
  held: number;
  committed: number;
}

export interface Reservation {
  readonly id: string;
  readonly orderId: string | null;
  readonly channel: string | null;
  readonly bodyHash: number;
  readonly createdAt: EpochMs;
  expiresAt: EpochMs;
  status: ReservationMachineState;
  /** This shard's lines only, in the order they were added; a fresh array on every read. */
  readonly lines: readonly ReservationLine[];
  /** How many lines `lines` would give, without building them. */
  readonly lineCount: number;
  /**
   * Writes each line's sku, location, qty, held and committed into `target` from `offset`
   * on, in the order of `lines`, without building the line handles (the reply tuple).
   */
  writeLineFields(target: unknown[], offset: number): void;
  /** When it left held (0 while held). */
  finishedAt: EpochMs;
  /** Extensions this part took: a part settled by a partial commit takes no more (see combineOutcomes). */
  extensions: number;
}

const NONE = -1;
const statusCodes = Object.fromEntries(reservationStates.map((s, i) => [s, i])) as Record<
  ReservationMachineState,
  number
>;
const HELD = statusCodes.held;

/**
 * Ids up to this many ASCII characters are stored as bytes in the table (UUIDs are 36);
 * longer ones, or ones with other characters, as strings on the heap.
 */
export const inlineIdLength = 40;

/** Channels named by reservations; beyond this many, a reservation keeps its own copy. */
const CHANNEL_NAMES_MAX = 4_096;

export class ReservationTable {
  // Reservation columns, indexed by slot.
  private readonly inlineIds = new AsciiColumn(inlineIdLength);
  /** Ids that do not fit `inlineIds`, by slot (rare). */
  private readonly longIds = new Map<number, string>();
  /** hash(id) per slot, to take a slot out of the index without its id string. */
  private readonly idHashes = new Int32Column();
  /** Bumped each time a slot is freed: a (slot, generation) pair names one reservation. */
  private readonly generations = new Int32Column();
  private readonly index = new IdIndex(this);
  /** One string per channel name, shared by every reservation that names it. */
  private readonly channelNames = new StringPool(CHANNEL_NAMES_MAX);
  /** @internal */ readonly orderIds = new RefColumn<string | null>(null);
  /** @internal */ readonly channelIds = new RefColumn<string | null>(null);
  /** @internal */ readonly bodyHashes = new Float64Column();
  /** @internal */ readonly createdAts = new Float64Column();
  /** The order reservations were added in (ranks equal expiries in the expiry heap). */
  private readonly addedRanks = new Float64Column();
  private added = 0;
  /** @internal */ readonly expiresAts = new Float64Column();
  /** @internal */ readonly finishedAts = new Float64Column();
  /** @internal */ readonly extensionCounts = new Int32Column();
  /** @internal */ readonly statuses = new Uint8Column();
  /** @internal */ readonly firstLines = new Int32Column();
  /** @internal */ readonly lastLines = new Int32Column();
  /** The order of adding: a list through the slots, oldest first. */
  private readonly newer = new Int32Column();
  private readonly older = new Int32Column();
  private oldest = NONE;
  private newest = NONE;
  private slotsUsed = 0;
  /** Freed slots, reused first (a stack). */
  private readonly freeSlots: number[] = [];
  // Line columns, indexed by line slot; a reservation's lines are a list through `lineNext`.
  /** @internal */ readonly lineRecords = new RefColumn<StockRecord | null>(null);
  /** @internal */ readonly lineQty = new Float64Column();
  /** @internal */ readonly lineHeld = new Float64Column();
  /** @internal */ readonly lineCommitted = new Float64Column();
  /** @internal */ readonly lineNext = new Int32Column();
  private linesUsed = 0;
  /** Head of the list of freed line slots (through `lineNext`). */
  private freeLine = NONE;
  /**
   * The expiry timer: every held reservation, at its expiresAt. Kept by the table itself
   * (add, the status and expiresAt setters, delete), so it cannot drift from the statuses.
   */
  private readonly expiries = new ExpiryHeap();
  /** The last id `get` found and its slot (cleared when that reservation is deleted). */
  private lastId: string | null = null;
  private lastSlot = NONE;

  get size(): number {
    return this.index.size;
  }

  has(id: string): boolean {
    return this.index.get(id) !== NONE;
  }

  /** @internal Whether `slot` (one in use) holds `id`: the index's comparison. */
  matches(slot: number, id: string): boolean {
    if (this.inlineIds.equals(slot, id)) return true;
    return this.longIds.size > 0 && this.longIds.get(slot) === id;
  }

  /** @internal The id stored at `slot` (a new string each call for an inline id). */
  idAt(slot: number): string {
    return this.inlineIds.get(slot) ?? this.longIds.get(slot)!;
  }

  /** The slot of a handle this table gave out. */
  slotOf(reservation: Reservation): number {
    return (reservation as ReservationHandle).slot;
  }

  /** The slot's generation: a freed slot's next occupant has another. */
  generationAt(slot: number): number {
    return this.generations.get(slot);
  }

  get(id: string): Reservation | undefined {
    // A command's decision and its event look the same reservation up one after the other.
    if (id === this.lastId) return new ReservationHandle(this, this.lastSlot);
    const slot = this.index.get(id);
    if (slot === NONE) return undefined;
    this.lastId = id;
    this.lastSlot = slot;
    return new ReservationHandle(this, slot);
  }

  /** Adds a reservation whose id the table does not hold (the caller has looked it up); returns its slot. */
  add(init: ReservationInit): number {
    const slot = this.takeSlot();
    const id = init.id;
    if (!this.inlineIds.set(slot, id)) this.longIds.set(slot, ownString(id));
    this.orderIds.set(slot, init.orderId === null ? null : ownString(init.orderId));
    this.channelIds.set(slot, init.channel === null ? null : this.channelNames.intern(init.channel));
    this.bodyHashes.set(slot, init.bodyHash);
    this.createdAts.set(slot, init.createdAt);
    this.addedRanks.set(slot, this.added++);
    this.expiresAts.set(slot, init.expiresAt);
    this.finishedAts.set(slot, init.finishedAt);
    this.extensionCounts.set(slot, init.extensions);
    const status = statusCodes[init.status];
    this.statuses.set(slot, status);
    this.firstLines.set(slot, NONE);
    this.lastLines.set(slot, NONE);
    this.appendLinesAt(slot, init.lines);
    // The index refuses an id it holds; undo the slot before failing loudly.
    const h = this.index.hash(id);
    if (!this.index.add(id, slot, h)) {
      this.releaseSlot(slot);
      invariant(false, () => `reservation ${id} added twice`);
    }
    this.idHashes.set(slot, h);
    if (status === HELD) this.expiries.schedule(slot, init.expiresAt, this.addedRanks.get(slot));
    this.newer.set(slot, NONE);
    this.older.set(slot, this.newest);
    if (this.newest === NONE) this.oldest = slot;
    else this.newer.set(this.newest, slot);
    this.newest = slot;
    return slot;
  }

  /** Adds lines after the reservation's own (a cut reservation completed, or parts merged). */
  appendLines(id: string, lines: readonly LineInit[]): void {
    const slot = this.index.get(id);
    invariant(slot !== NONE, () => `lines for unknown reservation ${id}`);
    this.appendLinesAt(slot, lines);
  }

  delete(id: string): boolean {
    const slot = this.index.delete(id);
    if (slot === NONE) return false;
    this.unlink(slot);
    return true;
  }

  /**
   * Deletes the reservation at `slot` if it is still the one a finished-queue entry named
   * (same generation) and still finished at `finishedAt`; false otherwise.
   */
  forgetFinished(slot: number, generation: number, finishedAt: EpochMs): boolean {
    if (!this.holdsFinished(slot, generation, finishedAt)) return false;
    if (!this.index.deleteSlot(this.idHashes.get(slot), slot)) return false;
    this.unlink(slot);
    return true;
  }

  /** Whether `slot` still holds the reservation a finished-queue entry named, finished at `finishedAt`. */
  holdsFinished(slot: number, generation: number, finishedAt: EpochMs): boolean {
    return (
      slot < this.slotsUsed &&
      this.generations.get(slot) === generation &&
      this.statuses.get(slot) !== HELD &&
      this.finishedAts.get(slot) === finishedAt
    );
  }

  /** Takes a slot the index no longer holds out of the order list and frees it. */
  private unlink(slot: number): void {
    if (slot === this.lastSlot) {
      this.lastId = null;
      this.lastSlot = NONE;
    }
    this.expiries.remove(slot);
    const newer = this.newer.get(slot);
    const older = this.older.get(slot);
    if (older === NONE) this.oldest = newer;
    else this.newer.set(older, newer);
    if (newer === NONE) this.newest = older;
    else this.older.set(newer, older);
    this.releaseSlot(slot);
  }

  /** Frees a slot the index no longer holds: its lines, its strings. */
  private releaseSlot(slot: number): void {
    let line = this.firstLines.get(slot);
    while (line !== NONE) {
      const next = this.lineNext.get(line);
      this.lineRecords.set(line, null);
      this.lineNext.set(line, this.freeLine);
      this.freeLine = line;
      line = next;
    }
    this.firstLines.set(slot, NONE);
    this.lastLines.set(slot, NONE);
    this.inlineIds.clear(slot);
    if (this.longIds.size > 0) this.longIds.delete(slot);
    this.generations.set(slot, this.generations.get(slot) + 1);
    this.orderIds.set(slot, null);
    this.channelIds.set(slot, null);
    this.freeSlots.push(slot);
  }

  /**
   * Ids in the order they were added (a deleted id that comes back goes last), as a Map
   * iterates: a state restored from a snapshot written in this order iterates in the
   * same order as the live one.
   */
  *keys(): IterableIterator<string> {
    for (let slot = this.oldest; slot !== NONE; slot = this.newer.get(slot)) yield this.idAt(slot);
  }

  /** Handles, in the order of `keys()`. */
  *values(): IterableIterator<Reservation> {
    for (let slot = this.oldest; slot !== NONE; slot = this.newer.get(slot))
      yield new ReservationHandle(this, slot);
  }

  /**
   * @internal The table column-wise, in the order of `keys()`, for a snapshot image
   * (snapshot.ts), without a handle or a line object per reservation. A line names its
   * record by `ordinal`; `status` holds indexes into `reservationStates`; `positionOfSlot`
   * maps a slot to its reservation's position in this order (-1: a free slot).
   */
  exportColumns(): ReservationColumns {
    const count = this.index.size;
    let lineTotal = 0;
    for (let slot = this.oldest; slot !== NONE; slot = this.newer.get(slot))
      lineTotal += this.lineCountAt(slot);
    const out: ReservationColumns = {
      ids: new Array<string>(count),
      orderIds: new Array<string | null>(count),
      channels: new Array<string | null>(count),
      bodyHash: new Float64Array(count),
      createdAt: new Float64Array(count),
      expiresAt: new Float64Array(count),
      finishedAt: new Float64Array(count),
      extensions: new Int32Array(count),
      status: new Uint8Array(count),
      lineCount: new Int32Array(count),
      lineRecord: new Int32Array(lineTotal),
      lineQty: new Float64Array(lineTotal),
      lineHeld: new Float64Array(lineTotal),
      lineCommitted: new Float64Array(lineTotal),
      positionOfSlot: new Int32Array(this.slotsUsed).fill(NONE),
    };
    let k = 0;
    let j = 0;
    for (let slot = this.oldest; slot !== NONE; slot = this.newer.get(slot), k++) {
      out.ids[k] = this.idAt(slot);
      out.orderIds[k] = this.orderIds.get(slot);
      out.channels[k] = this.channelIds.get(slot);
      out.bodyHash[k] = this.bodyHashes.get(slot);
      out.createdAt[k] = this.createdAts.get(slot);
      out.expiresAt[k] = this.expiresAts.get(slot);
      out.finishedAt[k] = this.finishedAts.get(slot);
      out.extensions[k] = this.extensionCounts.get(slot);
      out.status[k] = this.statuses.get(slot);
      const first = j;
      for (let line = this.firstLines.get(slot); line !== NONE; line = this.lineNext.get(line), j++) {
        out.lineRecord[j] = this.lineRecords.get(line)!.ordinal;
        out.lineQty[j] = this.lineQty.get(line);
        out.lineHeld[j] = this.lineHeld.get(line);
        out.lineCommitted[j] = this.lineCommitted.get(line);
      }
      out.lineCount[k] = j - first;
      out.positionOfSlot[slot] = k;
    }
    invariant(
      k === count && j === lineTotal,
      'reservation table export: the order list disagrees with the index',
    );
    return out;
  }

  /** Earliest expiry among held reservations; +Infinity when none is held. */
  nextExpiryAt(): EpochMs {
    return this.expiries.peekTime();
  }

  /** Id of the held reservation that expires first; undefined when none is held. */
  nextToExpire(): string | undefined {
    const slot = this.expiries.peekSlot();
    return slot === NONE ? undefined : this.idAt(slot);
  }

  /** Held reservations on the expiry timer (equals the held count). */
  get scheduledExpiries(): number {
    return this.expiries.size;
  }

  /** @internal */
  statusAt(slot: number): ReservationMachineState {
    return reservationStates[this.statuses.get(slot)]!;
  }

  /** @internal */
  setStatusAt(slot: number, status: ReservationMachineState): void {
    const code = statusCodes[status];
    const wasHeld = this.statuses.get(slot) === HELD;
    this.statuses.set(slot, code);
    if (code === HELD) {
      if (!wasHeld) this.expiries.schedule(slot, this.expiresAts.get(slot), this.addedRanks.get(slot));
    } else if (wasHeld) this.expiries.remove(slot);
  }

  /** @internal */
  setExpiresAtAt(slot: number, expiresAt: EpochMs): void {
    this.expiresAts.set(slot, expiresAt);
    if (this.statuses.get(slot) === HELD) this.expiries.schedule(slot, expiresAt, this.addedRanks.get(slot));
  }

  /** @internal */
  linesAt(slot: number): ReservationLine[] {
    const lines: ReservationLine[] = [];
    for (let line = this.firstLines.get(slot); line !== NONE; line = this.lineNext.get(line))
      lines.push(new LineHandle(this, line));
    return lines;
  }

  /** @internal */
  lineCountAt(slot: number): number {
    let count = 0;
    for (let line = this.firstLines.get(slot); line !== NONE; line = this.lineNext.get(line)) count++;
    return count;
  }

  /** @internal */
  writeLineFieldsAt(slot: number, target: unknown[], offset: number): void {
    let j = offset;
    for (let line = this.firstLines.get(slot); line !== NONE; line = this.lineNext.get(line)) {
      const record = this.lineRecords.get(line)!;
      target[j++] = record.sku;
      target[j++] = record.location;
      target[j++] = this.lineQty.get(line);
      target[j++] = this.lineHeld.get(line);
      target[j++] = this.lineCommitted.get(line);
    }
  }

  private appendLinesAt(slot: number, lines: readonly LineInit[]): void {
    for (const init of lines) {
      const line = this.takeLine();
      this.lineRecords.set(line, init.record);
      this.lineQty.set(line, init.qty);
      this.lineHeld.set(line, init.held);
      this.lineCommitted.set(line, init.committed);
      this.lineNext.set(line, NONE);
      const last = this.lastLines.get(slot);
      if (last === NONE) this.firstLines.set(slot, line);
      else this.lineNext.set(last, line);
      this.lastLines.set(slot, line);
    }
  }

  private takeSlot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    const slot = this.slotsUsed++;
    if (slot === this.statuses.capacity) {
      const size = slot + 1;
      this.inlineIds.ensure(size);
      this.idHashes.ensure(size);
      this.generations.ensure(size);
      this.orderIds.ensure(size);
      this.channelIds.ensure(size);
      this.bodyHashes.ensure(size);
      this.createdAts.ensure(size);
      this.addedRanks.ensure(size);
      this.expiresAts.ensure(size);
      this.finishedAts.ensure(size);
      this.extensionCounts.ensure(size);
      this.statuses.ensure(size);
      this.firstLines.ensure(size);
      this.lastLines.ensure(size);
      this.newer.ensure(size);
      this.older.ensure(size);
    }
    return slot;
  }

  private takeLine(): number {
    if (this.freeLine !== NONE) {
      const line = this.freeLine;
      this.freeLine = this.lineNext.get(line);
      return line;
    }
    const line = this.linesUsed++;
    if (line === this.lineNext.capacity) {
      const size = line + 1;
      this.lineRecords.ensure(size);
      this.lineQty.ensure(size);
      this.lineHeld.ensure(size);
      this.lineCommitted.ensure(size);
      this.lineNext.ensure(size);
    }
    return line;
  }
}

class ReservationHandle implements Reservation {
  constructor(
    private readonly table: ReservationTable,
    readonly slot: number,
  ) {}
  /** A new string each read for an inline id: where the caller has the id, it uses its own. */
  get id(): string {
    return this.table.idAt(this.slot);
  }
  get orderId(): string | null {
    return this.table.orderIds.get(this.slot);
  }
  get channel(): string | null {
    return this.table.channelIds.get(this.slot);
  }
  get bodyHash(): number {
    return this.table.bodyHashes.get(this.slot);
  }
  get createdAt(): EpochMs {
    return this.table.createdAts.get(this.slot);
  }
  get expiresAt(): EpochMs {
    return this.table.expiresAts.get(this.slot);
  }
  set expiresAt(value: EpochMs) {
    this.table.setExpiresAtAt(this.slot, value);
  }
  get finishedAt(): EpochMs {
    return this.table.finishedAts.get(this.slot);
  }
  set finishedAt(value: EpochMs) {
    this.table.finishedAts.set(this.slot, value);
  }
  get extensions(): number {
    return this.table.extensionCounts.get(this.slot);
  }
  set extensions(value: number) {
    this.table.extensionCounts.set(this.slot, value);
  }
  get status(): ReservationMachineState {
    return this.table.statusAt(this.slot);
  }
  set status(value: ReservationMachineState) {
    this.table.setStatusAt(this.slot, value);
  }
  get lines(): ReservationLine[] {
    return this.table.linesAt(this.slot);
  }
  get lineCount(): number {
    return this.table.lineCountAt(this.slot);
  }
  writeLineFields(target: unknown[], offset: number): void {
    this.table.writeLineFieldsAt(this.slot, target, offset);
  }
}

class LineHandle implements ReservationLine {
  constructor(
    private readonly table: ReservationTable,
    private readonly line: number,
  ) {}
  get record(): StockRecord {
    return this.table.lineRecords.get(this.line)!;
  }
  get sku(): string {
    return this.record.sku;
  }
  get location(): string {
    return this.record.location;
  }
  get qty(): number {
    return this.table.lineQty.get(this.line);
  }
  get held(): number {
    return this.table.lineHeld.get(this.line);
  }
  set held(value: number) {
    this.table.lineHeld.set(this.line, value);
  }
  get committed(): number {
    return this.table.lineCommitted.get(this.line);
  }
  set committed(value: number) {
    this.table.lineCommitted.set(this.line, value);
  }
}
