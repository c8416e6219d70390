/**
 * State ⇄ plain data, for snapshots and for `stockd replay --export`. Pure.
 *
 * Records are flattened into parallel arrays (one array per field) rather than one
 * object per record: at 1,000,000 records that is a few large arrays instead of a
 * million small objects to allocate, encode and collect.
 */
import { ownString } from './columns.js';
import type { ReservationMachineState } from './reservation-machine.js';
import type { LineInit, ReservationInit, ShardState, StockRecord } from './state.js';

export const snapshotFormatVersion = 1;

export interface StateImage {
  readonly formatVersion: number;
  readonly skus: string[];
  readonly locations: string[];
  readonly onHand: number[];
  readonly reserved: number[];
  readonly safetyStock: number[];
  readonly version: number[];
  readonly sourceTs: number[];
  /** [id, orderId, channel, bodyHash, createdAt, expiresAt, status, finishedAt, [sku, location, qty, held, committed]...] */
  readonly reservations: unknown[][];
  /** Extensions each reservation of `reservations` took (absent in images written before it: 0). */
  readonly extensions?: number[];
  readonly channels: Array<[string, string[], number]>;
  readonly adjustmentKeys: Array<[string, string, string, number, number]>;
  readonly finished: Array<[string, number]>;
}

export function imageOf(state: ShardState): StateImage {
  const extensions: number[] = [];
  const image: StateImage = {
    formatVersion: snapshotFormatVersion,
    skus: [],
    locations: [],
    onHand: [],
    reserved: [],
    safetyStock: [],
    version: [],
    sourceTs: [],
    reservations: [],
    extensions,
    channels: [],
    adjustmentKeys: [],
    finished: state.finishedImage(),
  };
  for (const [sku, first] of state.stock) {
    for (let r: StockRecord | null = first; r; r = r.next) {
      image.skus.push(sku);
      image.locations.push(r.location);
      image.onHand.push(r.onHand);
      image.reserved.push(r.reserved);
      image.safetyStock.push(r.safetyStock);
      image.version.push(r.version);
      image.sourceTs.push(r.sourceTs);
    }
  }
  for (const r of state.reservations.values()) {
    const row: unknown[] = [
      r.id,
      r.orderId,
      r.channel,
      r.bodyHash,
      r.createdAt,
      r.expiresAt,
      r.status,
      r.finishedAt,
    ];
    for (const line of r.lines) row.push(line.sku, line.location, line.qty, line.held, line.committed);
    image.reservations.push(row);
    extensions.push(r.extensions);
  }
  for (const c of state.channels.values()) image.channels.push([c.channel, [...c.locations], c.buffer]);
  for (const [compound, entry] of state.adjustmentKeys) {
    const key = compound.slice(entry.sku.length + 1);
    image.adjustmentKeys.push([entry.sku, key, entry.location, entry.bodyHash, entry.at]);
  }
  return image;
}

/** Adds an image's owned content to a state (several images merge when the shard count changed). */
export function mergeImage(state: ShardState, image: StateImage): void {
  const owns = state.owns;
  for (let i = 0; i < image.skus.length; i++) {
    const sku = image.skus[i]!;
    if (!owns(sku)) continue;
    const record = state.recordOrCreate(sku, image.locations[i]!);
    record.onHand = image.onHand[i]!;
    record.reserved = image.reserved[i]!;
    record.safetyStock = image.safetyStock[i]!;
    record.version = image.version[i]!;
    record.sourceTs = image.sourceTs[i]!;
  }
  for (const [k, row] of image.reservations.entries()) {
    const lines: LineInit[] = [];
    for (let i = 8; i < row.length; i += 5) {
      const sku = row[i] as string;
      if (!owns(sku)) continue;
      const location = row[i + 1] as string;
      // The line's record is always in the image (records are never removed).
      const record = state.recordOrCreate(sku, location);
      lines.push({
        record,
        qty: row[i + 2] as number,
        held: row[i + 3] as number,
        committed: row[i + 4] as number,
      });
    }
    if (lines.length === 0) continue;
    const reservation: ReservationInit = {
      id: row[0] as string,
      orderId: row[1] as string | null,
      channel: row[2] as string | null,
      bodyHash: row[3] as number,
      createdAt: row[4] as number,
      expiresAt: row[5] as number,
      status: row[6] as ReservationMachineState,
      finishedAt: row[7] as number,
      extensions: image.extensions?.[k] ?? 0,
      lines,
    };
    const existing = state.reservations.get(reservation.id);
    if (existing === undefined) state.addReservation(reservation);
    else state.mergeReservationPart(existing, reservation);
  }
  // Strings decoded from the image are slices of it: the state keeps copies (see ownString).
  for (const [channel, locations, buffer] of image.channels) state.upsertChannel(channel, locations, buffer);
  const keysBefore = state.adjustmentKeys.size;
  for (const [sku, key, location, bodyHash, at] of image.adjustmentKeys) {
    if (!owns(sku)) continue;
    const record = state.recordOrCreate(sku, location);
    state.adjustmentKeys.set(ownString(`${record.sku}\u0000${key}`), {
      sku: record.sku,
      location: record.location,
      bodyHash,
      at,
    });
  }
  const finishedBefore = state.finished.size;
  for (const [id, at] of image.finished) {
    const reservation = state.reservations.get(id);
    if (reservation !== undefined && reservation.status !== 'held' && reservation.finishedAt === at) {
      const slot = state.reservations.slotOf(reservation);
      state.finished.push(slot, state.reservations.generationAt(slot), at);
    }
  }
  // Windows are forgotten oldest first, so a merge of several images must restore time order.
  if (keysBefore > 0) state.sortAdjustmentKeys();
  if (finishedBefore > 0) state.finished.sortByTime();
}
