/**
 * State ⇄ plain data, for snapshots. Pure.
 *
 * The image is column-wise: one array per field, numbers as packed little-endian bytes
 * (Float64, Int32, Uint8). A snapshot of a shard holding a million reservations is then
 * a few dozen large values to build, encode, decode and collect instead of a million
 * small arrays, and the background snapshot thread, which builds one from the WAL every
 * `snapshotEveryEvents`, spends its time on the replay rather than on the image.
 *
 * Format 2 (written now):
 *
 *   stock         skus[i], locations[i]; onHand, reserved, safetyStock, version,
 *                 sourceTs: Float64 bytes; one per record, in the order records were
 *                 created (StockRecord.ordinal)
 *   reservations  ids[k], orderIds[k], channels[k]; bodyHash, createdAt, expiresAt,
 *                 finishedAt: Float64; extensions, lineCount: Int32; status: Uint8
 *                 (imageStatuses); the lines of every reservation one after another:
 *                 lineRecord (Int32, a record's index in stock), lineQty, lineHeld,
 *                 lineCommitted (Float64)
 *   finished      reservation (Int32, an index in reservations), at (Float64): the
 *                 finished window, oldest first
 *   channels, adjustmentKeys   as in format 1
 *
 * Format 1 (read only): parallel arrays for stock, one array per reservation and per
 * finished entry. `mergeImage` reads both.
 */
import { invariant } from '../errors.js';
import { ownString } from './columns.js';
import { type ReservationMachineState, reservationStates } from './reservation-machine.js';
import type { LineInit, Reservation, ReservationInit, ShardState, StockRecord } from './state.js';

export const snapshotFormatVersion = 2;

/** Status codes of format 2. Stable: written to the database, never renumbered. */
export const imageStatuses = ['held', 'committed', 'released', 'expired', 'aborted'] as const;

type ChannelImage = [string, string[], number];
type AdjustmentKeyImage = [string, string, string, number, number];

export interface StateImage {
  readonly formatVersion: 2;
  readonly stock: {
    readonly skus: string[];
    readonly locations: string[];
    readonly onHand: Uint8Array;
    readonly reserved: Uint8Array;
    readonly safetyStock: Uint8Array;
    readonly version: Uint8Array;
    readonly sourceTs: Uint8Array;
  };
  readonly reservations: {
    readonly ids: string[];
    readonly orderIds: Array<string | null>;
    readonly channels: Array<string | null>;
    readonly bodyHash: Uint8Array;
    readonly createdAt: Uint8Array;
    readonly expiresAt: Uint8Array;
    readonly finishedAt: Uint8Array;
    readonly extensions: Uint8Array;
    readonly status: Uint8Array;
    readonly lineCount: Uint8Array;
    readonly lineRecord: Uint8Array;
    readonly lineQty: Uint8Array;
    readonly lineHeld: Uint8Array;
    readonly lineCommitted: Uint8Array;
  };
  readonly finished: { readonly reservation: Uint8Array; readonly at: Uint8Array };
  readonly channels: ChannelImage[];
  readonly adjustmentKeys: AdjustmentKeyImage[];
}

/** Format 1, written before format 2; still read. */
export interface StateImageV1 {
  readonly formatVersion: 1;
  readonly skus: string[];
  readonly locations: string[];
  readonly onHand: number[];
  readonly reserved: number[];
  readonly safetyStock: number[];
  readonly version: number[];
  readonly sourceTs: number[];
  /** [id, orderId, channel, bodyHash, createdAt, expiresAt, status, finishedAt, [sku, location, qty, held, committed]...] */
  readonly reservations: unknown[][];
  /** Extensions each reservation of `reservations` took (absent in the earliest images: 0). */
  readonly extensions?: number[];
  readonly channels: ChannelImage[];
  readonly adjustmentKeys: AdjustmentKeyImage[];
  readonly finished: Array<[string, number]>;
}

export function imageOf(state: ShardState): StateImage {
  // Records in the order they were created (their ordinals), which a state restored from the
  // image repeats: its SKUs and each SKU's records then iterate in the same order too.
  const records = state.recordCount;
  const byOrdinal = new Array<StockRecord>(records);
  for (const first of state.stock.values()) {
    for (let r: StockRecord | null = first; r; r = r.next) {
      const ordinal = r.ordinal;
      invariant(
        ordinal < records && byOrdinal[ordinal] === undefined,
        () => `record ordinal ${ordinal} out of place`,
      );
      byOrdinal[ordinal] = r;
    }
  }
  const skus = new Array<string>(records);
  const locations = new Array<string>(records);
  const onHand = new Float64Array(records);
  const reserved = new Float64Array(records);
  const safetyStock = new Float64Array(records);
  const version = new Float64Array(records);
  const sourceTs = new Float64Array(records);
  for (let i = 0; i < records; i++) {
    const r = byOrdinal[i];
    invariant(r !== undefined, () => `no record has ordinal ${i} of ${records}`);
    skus[i] = r.sku;
    locations[i] = r.location;
    onHand[i] = r.onHand;
    reserved[i] = r.reserved;
    safetyStock[i] = r.safetyStock;
    version[i] = r.version;
    sourceTs[i] = r.sourceTs;
  }
  const table = state.reservations;
  const columns = table.exportColumns();
  const status = columns.status;
  for (let k = 0; k < status.length; k++) status[k] = imageStatusOfState[status[k]!]!;
  const finishedReservation: number[] = [];
  const finishedAt: number[] = [];
  state.finished.forEach((slot, generation, at) => {
    if (!table.holdsFinished(slot, generation, at)) return;
    finishedReservation.push(columns.positionOfSlot[slot]!);
    finishedAt.push(at);
  });
  const adjustmentKeys: AdjustmentKeyImage[] = [];
  for (const [compound, entry] of state.adjustmentKeys) {
    const key = compound.slice(entry.sku.length + 1);
    adjustmentKeys.push([entry.sku, key, entry.location, entry.bodyHash, entry.at]);
  }
  return {
    formatVersion: snapshotFormatVersion,
    stock: {
      skus,
      locations,
      onHand: bytesOf(onHand),
      reserved: bytesOf(reserved),
      safetyStock: bytesOf(safetyStock),
      version: bytesOf(version),
      sourceTs: bytesOf(sourceTs),
    },
    reservations: {
      ids: columns.ids,
      orderIds: columns.orderIds,
      channels: columns.channels,
      bodyHash: bytesOf(columns.bodyHash),
      createdAt: bytesOf(columns.createdAt),
      expiresAt: bytesOf(columns.expiresAt),
      finishedAt: bytesOf(columns.finishedAt),
      extensions: bytesOf(columns.extensions),
      status,
      lineCount: bytesOf(columns.lineCount),
      lineRecord: bytesOf(columns.lineRecord),
      lineQty: bytesOf(columns.lineQty),
      lineHeld: bytesOf(columns.lineHeld),
      lineCommitted: bytesOf(columns.lineCommitted),
    },
    finished: {
      reservation: bytesOf(Int32Array.from(finishedReservation)),
      at: bytesOf(Float64Array.from(finishedAt)),
    },
    channels: [...state.channels.values()].map((c) => [c.channel, [...c.locations], c.buffer]),
    adjustmentKeys,
  };
}

/**
 * Adds an image's owned content to a state (several images merge when the shard count changed).
 *
 * When the state owns only some lines of a held reservation (a snapshot loaded under another
 * shard count), the part it keeps is what replaying the reservation's events under the same
 * filter gives: held while one of its lines is, and committed once partial commits settled
 * all of them — as evolve commits a part that a commit leaves nothing held. The image does
 * not say when that commit happened; `settledAt`, the image's time (a moment at or after
 * it), stands for it, so the part stays in the finished window at least as long as it
 * would have. Without it, the reservation's creation time does.
 */
export function mergeImage(state: ShardState, image: StateImage | StateImageV1, settledAt?: number): void {
  const version = (image as { formatVersion?: unknown }).formatVersion;
  if (version === 2) mergeImageV2(state, image as StateImage, settledAt);
  else if (version === 1) mergeImageV1(state, image as StateImageV1, settledAt);
  else
    throw new SnapshotFormatError(
      `snapshot image format ${String(version)} is not one this version reads (1, ${snapshotFormatVersion})`,
    );
}

/** An image this code cannot read: a newer format, or one that contradicts itself. */
export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
}

/**
 * A part cut from a held reservation whose lines are all settled: committed at `settledAt`
 * (see mergeImage). Any other reservation is returned as it is.
 */
function asPart(reservation: ReservationInit, cut: boolean, settledAt: number | undefined): ReservationInit {
  if (!cut || reservation.status !== 'held' || reservation.lines.some((line) => line.held > 0))
    return reservation;
  return { ...reservation, status: 'committed', finishedAt: settledAt ?? reservation.createdAt };
}

/** Puts the parts asPart committed into the finished window, if they are still finished then. */
function finishParts(state: ShardState, settled: readonly Reservation[]): void {
  if (settled.length === 0) return;
  const table = state.reservations;
  for (const reservation of settled) {
    const slot = table.slotOf(reservation);
    const generation = table.generationAt(slot);
    if (table.holdsFinished(slot, generation, reservation.finishedAt))
      state.finished.push(slot, generation, reservation.finishedAt);
  }
  state.finished.sortByTime();
}

function mergeImageV2(state: ShardState, image: StateImage, settledAt: number | undefined): void {
  const owns = state.owns;
  const stock = objectOf(image.stock, 'stock');
  const n = lengthOf(stock.skus, 'stock.skus');
  lengthOf(stock.locations, 'stock.locations', n);
  const onHand = float64s(stock.onHand, n, 'stock.onHand');
  const reserved = float64s(stock.reserved, n, 'stock.reserved');
  const safetyStock = float64s(stock.safetyStock, n, 'stock.safetyStock');
  const version = float64s(stock.version, n, 'stock.version');
  const sourceTs = float64s(stock.sourceTs, n, 'stock.sourceTs');
  const records = new Array<StockRecord | null>(n);
  for (let i = 0; i < n; i++) {
    const sku = stock.skus[i]!;
    if (!owns(sku)) {
      records[i] = null;
      continue;
    }
    const record = state.recordOrCreate(sku, stock.locations[i]!);
    record.onHand = onHand[i]!;
    record.reserved = reserved[i]!;
    record.safetyStock = safetyStock[i]!;
    record.version = version[i]!;
    record.sourceTs = sourceTs[i]!;
    records[i] = record;
  }
  const r = objectOf(image.reservations, 'reservations');
  const m = lengthOf(r.ids, 'reservations.ids');
  lengthOf(r.orderIds, 'reservations.orderIds', m);
  lengthOf(r.channels, 'reservations.channels', m);
  const bodyHash = float64s(r.bodyHash, m, 'reservations.bodyHash');
  const createdAt = float64s(r.createdAt, m, 'reservations.createdAt');
  const expiresAt = float64s(r.expiresAt, m, 'reservations.expiresAt');
  const finishedAt = float64s(r.finishedAt, m, 'reservations.finishedAt');
  const extensions = int32s(r.extensions, m, 'reservations.extensions');
  const status = uint8s(r.status, m, 'reservations.status');
  const lineCount = int32s(r.lineCount, m, 'reservations.lineCount');
  let lineTotal = 0;
  for (let k = 0; k < m; k++) lineTotal += lineCount[k]!;
  const lineRecord = int32s(r.lineRecord, lineTotal, 'reservations.lineRecord');
  const lineQty = float64s(r.lineQty, lineTotal, 'reservations.lineQty');
  const lineHeld = float64s(r.lineHeld, lineTotal, 'reservations.lineHeld');
  const lineCommitted = float64s(r.lineCommitted, lineTotal, 'reservations.lineCommitted');
  /** The slot each reservation of the image has in the state (-1: none of its lines is owned). */
  const slots = new Int32Array(m).fill(-1);
  // Into an empty state nothing needs looking up: an image holds each id once.
  const empty = state.reservations.size === 0;
  const settled: Reservation[] = [];
  let j = 0;
  for (let k = 0; k < m; k++) {
    const lines: LineInit[] = [];
    let cut = false;
    for (const end = j + lineCount[k]!; j < end; j++) {
      const index = lineRecord[j]!;
      if (!(index >= 0 && index < n))
        throw new SnapshotFormatError(`reservations.lineRecord[${j}] is ${index}`);
      const record = records[index];
      if (record === null) {
        cut = true;
        continue;
      }
      lines.push({ record: record!, qty: lineQty[j]!, held: lineHeld[j]!, committed: lineCommitted[j]! });
    }
    if (lines.length === 0) continue;
    const whole: ReservationInit = {
      id: r.ids[k]!,
      orderId: r.orderIds[k] ?? null,
      channel: r.channels[k] ?? null,
      bodyHash: bodyHash[k]!,
      createdAt: createdAt[k]!,
      expiresAt: expiresAt[k]!,
      status: statusOfImage(status[k]!),
      finishedAt: finishedAt[k]!,
      extensions: extensions[k]!,
      lines,
    };
    const reservation = asPart(whole, cut, settledAt);
    const existing = empty ? undefined : state.reservations.get(reservation.id);
    if (existing === undefined) slots[k] = state.addReservation(reservation);
    else {
      state.mergeReservationPart(existing, reservation);
      slots[k] = state.reservations.slotOf(existing);
    }
    if (reservation !== whole) settled.push(state.reservations.get(reservation.id)!);
  }
  const finished = objectOf(image.finished, 'finished');
  mergeChannelsAndKeys(state, image.channels, image.adjustmentKeys, () => {
    const finishedCount = Math.floor((finished.reservation?.length ?? 0) / 4);
    const which = int32s(finished.reservation, finishedCount, 'finished.reservation');
    const at = float64s(finished.at, finishedCount, 'finished.at');
    const table = state.reservations;
    for (let e = 0; e < finishedCount; e++) {
      const k = which[e]!;
      if (!(k >= 0 && k < m)) throw new SnapshotFormatError(`finished.reservation[${e}] is ${k}`);
      const slot = slots[k]!;
      if (slot < 0) continue;
      const generation = table.generationAt(slot);
      if (table.holdsFinished(slot, generation, at[e]!)) state.finished.push(slot, generation, at[e]!);
    }
    finishParts(state, settled);
  });
}

function mergeImageV1(state: ShardState, image: StateImageV1, settledAt: number | undefined): void {
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
  const settled: Reservation[] = [];
  for (const [k, row] of image.reservations.entries()) {
    const lines: LineInit[] = [];
    let cut = false;
    for (let i = 8; i < row.length; i += 5) {
      const sku = row[i] as string;
      if (!owns(sku)) {
        cut = true;
        continue;
      }
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
    const whole: ReservationInit = {
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
    const reservation = asPart(whole, cut, settledAt);
    const existing = state.reservations.get(reservation.id);
    if (existing === undefined) state.addReservation(reservation);
    else state.mergeReservationPart(existing, reservation);
    if (reservation !== whole) settled.push(state.reservations.get(reservation.id)!);
  }
  mergeChannelsAndKeys(state, image.channels, image.adjustmentKeys, () => {
    for (const [id, at] of image.finished) {
      const reservation = state.reservations.get(id);
      if (reservation !== undefined && reservation.status !== 'held' && reservation.finishedAt === at) {
        const slot = state.reservations.slotOf(reservation);
        state.finished.push(slot, state.reservations.generationAt(slot), at);
      }
    }
    finishParts(state, settled);
  });
}

/** What both formats share: channels, the adjustment-key window, then `restoreFinished`. */
function mergeChannelsAndKeys(
  state: ShardState,
  channels: readonly ChannelImage[],
  adjustmentKeys: readonly AdjustmentKeyImage[],
  restoreFinished: () => void,
): void {
  const owns = state.owns;
  // Strings decoded from the image are slices of it: the state keeps copies (see ownString).
  for (const [channel, locations, buffer] of channels) state.upsertChannel(channel, locations, buffer);
  const keysBefore = state.adjustmentKeys.size;
  for (const [sku, key, location, bodyHash, at] of adjustmentKeys) {
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
  restoreFinished();
  // Windows are forgotten oldest first, so a merge of several images must restore time order.
  if (keysBefore > 0) state.sortAdjustmentKeys();
  if (finishedBefore > 0) state.finished.sortByTime();
}

/* ------------------------------------------------------------------ packed numbers */

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Image status code of each state status (by its index in reservationStates). */
const imageStatusOfState = Uint8Array.from(reservationStates, (s) => {
  const code = (imageStatuses as readonly string[]).indexOf(s);
  if (code < 0) throw new Error(`reservation status ${s} has no snapshot image code`);
  return code;
});

function statusOfImage(code: number): ReservationMachineState {
  const status = imageStatuses[code];
  if (status === undefined) throw new SnapshotFormatError(`reservation status code ${code} is unknown`);
  return status;
}

/** The values as little-endian bytes (a view of them on a little-endian host). */
function bytesOf(values: Float64Array | Int32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  if (values instanceof Float64Array)
    for (let i = 0; i < values.length; i++) view.setFloat64(i * 8, values[i]!, true);
  else for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i]!, true);
  return out;
}

const float64s = (bytes: unknown, count: number, field: string): Float64Array =>
  unpacked(new Float64Array(count), bytes, field, (view, at) => view.getFloat64(at, true));

const int32s = (bytes: unknown, count: number, field: string): Int32Array =>
  unpacked(new Int32Array(count), bytes, field, (view, at) => view.getInt32(at, true));

/** Fills `out` from little-endian bytes (a plain copy on a little-endian host). */
function unpacked<T extends Float64Array | Int32Array>(
  out: T,
  bytes: unknown,
  field: string,
  read: (view: DataView, at: number) => number,
): T {
  const width = out.BYTES_PER_ELEMENT;
  const source = packed(bytes, out.length * width, field);
  if (littleEndian) new Uint8Array(out.buffer).set(source);
  else {
    const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = read(view, i * width);
  }
  return out;
}

function uint8s(bytes: unknown, count: number, field: string): Uint8Array {
  return packed(bytes, count, field);
}

function packed(bytes: unknown, length: number, field: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    const found = bytes instanceof Uint8Array ? `${bytes.length} bytes` : typeof bytes;
    throw new SnapshotFormatError(`snapshot image ${field}: expected ${length} bytes, found ${found}`);
  }
  return bytes;
}

function objectOf<T>(value: T, field: string): T {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new SnapshotFormatError(`snapshot image ${field}: expected an object`);
  return value;
}

function lengthOf(values: unknown, field: string, expected?: number): number {
  if (!Array.isArray(values) || (expected !== undefined && values.length !== expected)) {
    throw new SnapshotFormatError(
      `snapshot image ${field}: expected an array${expected === undefined ? '' : ` of ${expected}`}`,
    );
  }
  return values.length;
}
