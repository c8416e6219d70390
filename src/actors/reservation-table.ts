/**
 * The reservations a shard keeps, held and finished, stored column-wise.
 *
 * A shard keeps every reservation it made for the retention window (a day by default), so
 * at tens of thousands of reservations a second it holds millions. As plain objects each
 * one was about eight heap objects (the reservation, its three timestamps boxed as heap
 * numbers, its lines array, a line object each, the id), all surviving the young
 * generation: V8's scavenger copied each of them twice, and the shard worker spent a
 * quarter of its time in GC. Here a reservation is a slot in typed arrays (outside the
 * JavaScript heap) and a line is a slot in a second set; the only heap object a
 * reservation adds is its id string (and its order id and channel strings, when given).
 *
 * Readers get a `Reservation`: a short-lived handle onto one slot, with the fields as
 * getters and setters, so the decider, evolve and the queries read as they did. A handle
 * is valid until its reservation is deleted: do not keep one across a delete.
 */
import { invariant } from '../errors.js';
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
  /** When it left held (0 while held). */
  finishedAt: EpochMs;
  /** Extensions this part took: a part settled by a partial commit takes no more (see combineOutcomes). */
  extensions: number;
}

const NONE = -1;
const statusCode = new Map<ReservationMachineState, number>(reservationStates.map((s, i) => [s, i]));

function grown<T extends Float64Array | Int32Array | Uint8Array>(array: T, capacity: number): T {
  const bigger = new (array.constructor as new (n: number) => T)(capacity);
  bigger.set(array);
  return bigger;
}

export class ReservationTable {
  private readonly slots = new Map<string, number>();
  // Reservation columns, indexed by slot.
  /** @internal */ ids: string[] = [];
  /** @internal */ orderIds: Array<string | null> = [];
  /** @internal */ channelIds: Array<string | null> = [];
  /** @internal */ bodyHashes = new Float64Array(0);
  /** @internal */ createdAts = new Float64Array(0);
  /** @internal */ expiresAts = new Float64Array(0);
  /** @internal */ finishedAts = new Float64Array(0);
  /** @internal */ extensionCounts = new Int32Array(0);
  /** @internal */ statuses = new Uint8Array(0);
  /** @internal */ firstLines = new Int32Array(0);
  /** @internal */ lastLines = new Int32Array(0);
  private slotCapacity = 0;
  private slotsUsed = 0;
  /** Freed slots, reused first (a stack). */
  private freeSlots: number[] = [];
  // Line columns, indexed by line slot; a reservation's lines are a list through `lineNext`.
  /** @internal */ lineRecords: Array<StockRecord | null> = [];
  /** @internal */ lineQty = new Float64Array(0);
  /** @internal */ lineHeld = new Float64Array(0);
  /** @internal */ lineCommitted = new Float64Array(0);
  /** @internal */ lineNext = new Int32Array(0);
  private lineCapacity = 0;
  private linesUsed = 0;
  /** Head of the list of freed line slots (through `lineNext`). */
  private freeLine = NONE;

  get size(): number {
    return this.slots.size;
  }

  has(id: string): boolean {
    return this.slots.has(id);
  }

  get(id: string): Reservation | undefined {
    const slot = this.slots.get(id);
    return slot === undefined ? undefined : new ReservationHandle(this, slot);
  }

  /** Adds a reservation whose id the table does not hold (the caller has looked it up). */
  add(init: ReservationInit): void {
    const slot = this.takeSlot();
    this.ids[slot] = init.id;
    this.orderIds[slot] = init.orderId;
    this.channelIds[slot] = init.channel;
    this.bodyHashes[slot] = init.bodyHash;
    this.createdAts[slot] = init.createdAt;
    this.expiresAts[slot] = init.expiresAt;
    this.finishedAts[slot] = init.finishedAt;
    this.extensionCounts[slot] = init.extensions;
    this.statuses[slot] = statusCode.get(init.status)!;
    this.firstLines[slot] = NONE;
    this.lastLines[slot] = NONE;
    this.appendLinesAt(slot, init.lines);
    // Checked after the fact, to spare the hot path a second lookup of the id.
    const size = this.slots.size;
    this.slots.set(init.id, slot);
    invariant(this.slots.size === size + 1, () => `reservation ${init.id} added twice`);
  }

  /** Adds lines after the reservation's own (a cut reservation completed, or parts merged). */
  appendLines(id: string, lines: readonly LineInit[]): void {
    const slot = this.slots.get(id);
    invariant(slot !== undefined, () => `lines for unknown reservation ${id}`);
    this.appendLinesAt(slot, lines);
  }

  delete(id: string): boolean {
    const slot = this.slots.get(id);
    if (slot === undefined) return false;
    this.slots.delete(id);
    let line = this.firstLines[slot]!;
    while (line !== NONE) {
      const next = this.lineNext[line]!;
      this.lineRecords[line] = null;
      this.lineNext[line] = this.freeLine;
      this.freeLine = line;
      line = next;
    }
    this.ids[slot] = '';
    this.orderIds[slot] = null;
    this.channelIds[slot] = null;
    this.freeSlots.push(slot);
    return true;
  }

  /** Ids in the order they were added. */
  keys(): IterableIterator<string> {
    return this.slots.keys();
  }

  /** Handles in the order the reservations were added. */
  *values(): IterableIterator<Reservation> {
    for (const slot of this.slots.values()) yield new ReservationHandle(this, slot);
  }

  /** @internal */
  statusAt(slot: number): ReservationMachineState {
    return reservationStates[this.statuses[slot]!]!;
  }

  /** @internal */
  setStatusAt(slot: number, status: ReservationMachineState): void {
    this.statuses[slot] = statusCode.get(status)!;
  }

  /** @internal */
  linesAt(slot: number): ReservationLine[] {
    const lines: ReservationLine[] = [];
    for (let line = this.firstLines[slot]!; line !== NONE; line = this.lineNext[line]!)
      lines.push(new LineHandle(this, line));
    return lines;
  }

  private appendLinesAt(slot: number, lines: readonly LineInit[]): void {
    for (const init of lines) {
      const line = this.takeLine();
      this.lineRecords[line] = init.record;
      this.lineQty[line] = init.qty;
      this.lineHeld[line] = init.held;
      this.lineCommitted[line] = init.committed;
      this.lineNext[line] = NONE;
      const last = this.lastLines[slot]!;
      if (last === NONE) this.firstLines[slot] = line;
      else this.lineNext[last] = line;
      this.lastLines[slot] = line;
    }
  }

  private takeSlot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.slotsUsed === this.slotCapacity) {
      const capacity = Math.max(1024, this.slotCapacity * 2);
      this.bodyHashes = grown(this.bodyHashes, capacity);
      this.createdAts = grown(this.createdAts, capacity);
      this.expiresAts = grown(this.expiresAts, capacity);
      this.finishedAts = grown(this.finishedAts, capacity);
      this.extensionCounts = grown(this.extensionCounts, capacity);
      this.statuses = grown(this.statuses, capacity);
      this.firstLines = grown(this.firstLines, capacity);
      this.lastLines = grown(this.lastLines, capacity);
      this.slotCapacity = capacity;
    }
    return this.slotsUsed++;
  }

  private takeLine(): number {
    if (this.freeLine !== NONE) {
      const line = this.freeLine;
      this.freeLine = this.lineNext[line]!;
      return line;
    }
    if (this.linesUsed === this.lineCapacity) {
      const capacity = Math.max(1024, this.lineCapacity * 2);
      this.lineQty = grown(this.lineQty, capacity);
      this.lineHeld = grown(this.lineHeld, capacity);
      this.lineCommitted = grown(this.lineCommitted, capacity);
      this.lineNext = grown(this.lineNext, capacity);
      this.lineCapacity = capacity;
    }
    return this.linesUsed++;
  }
}

class ReservationHandle implements Reservation {
  constructor(
    private readonly table: ReservationTable,
    private readonly slot: number,
  ) {}
  get id(): string {
    return this.table.ids[this.slot]!;
  }
  get orderId(): string | null {
    return this.table.orderIds[this.slot]!;
  }
  get channel(): string | null {
    return this.table.channelIds[this.slot]!;
  }
  get bodyHash(): number {
    return this.table.bodyHashes[this.slot]!;
  }
  get createdAt(): EpochMs {
    return this.table.createdAts[this.slot]!;
  }
  get expiresAt(): EpochMs {
    return this.table.expiresAts[this.slot]!;
  }
  set expiresAt(value: EpochMs) {
    this.table.expiresAts[this.slot] = value;
  }
  get finishedAt(): EpochMs {
    return this.table.finishedAts[this.slot]!;
  }
  set finishedAt(value: EpochMs) {
    this.table.finishedAts[this.slot] = value;
  }
  get extensions(): number {
    return this.table.extensionCounts[this.slot]!;
  }
  set extensions(value: number) {
    this.table.extensionCounts[this.slot] = value;
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
}

class LineHandle implements ReservationLine {
  constructor(
    private readonly table: ReservationTable,
    private readonly line: number,
  ) {}
  get record(): StockRecord {
    return this.table.lineRecords[this.line]!;
  }
  get sku(): string {
    return this.record.sku;
  }
  get location(): string {
    return this.record.location;
  }
  get qty(): number {
    return this.table.lineQty[this.line]!;
  }
  get held(): number {
    return this.table.lineHeld[this.line]!;
  }
  set held(value: number) {
    this.table.lineHeld[this.line] = value;
  }
  get committed(): number {
    return this.table.lineCommitted[this.line]!;
  }
  set committed(value: number) {
    this.table.lineCommitted[this.line] = value;
  }
}
