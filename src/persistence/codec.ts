/**
 * Byte encodings: WAL payloads, snapshots and the engine ⇄ worker batches, all msgpackr;
 * snapshots are compressed as well (deflate, `encodeSnapshot`).
 *
 * `useRecords` makes msgpackr write each object shape once per message and then only
 * values, which is both smaller and faster for the thousands of same-shaped commands in a
 * batch. Structures are never shared between messages, so every payload decodes on its
 * own, years later, with no side table.
 *
 * WAL payloads go one step further: each event is written as a tuple (a msgpack array
 * whose first element is the event's type code, then its fields in a fixed order), which
 * packs about twice as fast as a record and is a third smaller. `decodeEvents` also reads
 * the first format, an array of event objects, so logs written before the change replay
 * unchanged. docs/persistence.md lists the tuples.
 */
import { createHash } from 'node:crypto';
import { deflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import type { Allocation, CommittedLine, DomainEvent } from '../actors/types.js';

const packr = new Packr({ useRecords: true, moreTypes: false, bundleStrings: false });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * The bytes in a buffer of their own. The encoder returns a view into its reusable buffer
 * (a Buffer, whose slice() is another view): transferring that view to another thread
 * would hand the whole buffer over, bytes of other messages included, and cloning it
 * would copy all of it.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/**
 * Bytes the decoder can read. msgpackr's native string reader (msgpackr-extract, when it
 * loads) takes the view's ArrayBuffer and brings the whole process down when that is shared
 * memory, as the in-memory store's payloads (WAL rows and snapshots) are; those are read
 * from a copy.
 */
function readable(bytes: Uint8Array): Uint8Array {
  return bytes.buffer instanceof SharedArrayBuffer ? new Uint8Array(bytes) : bytes;
}

export function decode<T>(bytes: Uint8Array): T {
  return packr.unpack(readable(bytes)) as T;
}

/**
 * Snapshot payloads: a 4-byte header — 0xc1, a byte msgpack never uses, then `S`, `Z` and
 * the format 1 — and the msgpack image compressed with raw deflate at level 1. A payload
 * without the header is an uncompressed msgpack image, as written before (still read).
 *
 * An image of a million records is ~58 MB of msgpack and ~10 MB compressed (~0.4 s of
 * deflate on the background snapshot's low-priority thread). The database writes every byte
 * of a snapshot to its own log before the commit returns, in the same log the shards'
 * appends flush, so a smaller image is what keeps those appends fast while it is written
 * (bench/README.md, "Snapshots against the acknowledgement's tail").
 */
const snapshotHeader = Uint8Array.of(0xc1, 0x53, 0x5a, 0x01);
// 1 MiB chunks: with zlib's default 16 KiB, an asynchronous compression of 10 MB is ~600
// thread-pool round trips through the calling thread's event loop, and an inflate collects
// as many pieces before it joins them.
const snapshotDeflate = { level: 1, chunkSize: 1 << 20 } as const;
const snapshotInflate = { chunkSize: 1 << 20 } as const;

function withHeader(compressed: Uint8Array): Uint8Array {
  // Bytes of their own (transferable): a Buffer from a concat may be a slice of a pool.
  const payload = new Uint8Array(snapshotHeader.length + compressed.length);
  payload.set(snapshotHeader, 0);
  payload.set(compressed, snapshotHeader.length);
  return payload;
}

/** A snapshot payload from an encoded image, compressed on this thread. */
export function compressSnapshot(packed: Uint8Array): Uint8Array {
  return withHeader(deflateRawSync(packed, snapshotDeflate));
}

/** `compressSnapshot` on libuv's thread pool: the calling thread goes on serving meanwhile. */
export function compressSnapshotAsync(packed: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    deflateRaw(packed, snapshotDeflate, (error, compressed) =>
      error ? reject(error) : resolve(withHeader(compressed)),
    );
  });
}

/** A snapshot payload of `image`: encoded and compressed on this thread. */
export function encodeSnapshot(image: unknown): Uint8Array {
  return compressSnapshot(encode(image));
}

/**
 * Whether a snapshot payload is compressed (else it is a msgpack image as written before).
 * Throws on a compression format this version does not know (a later version's).
 */
export function isCompressedSnapshot(payload: Uint8Array): boolean {
  if (
    payload.length < snapshotHeader.length ||
    payload[0] !== snapshotHeader[0] ||
    payload[1] !== snapshotHeader[1] ||
    payload[2] !== snapshotHeader[2]
  ) {
    return false;
  }
  if (payload[3] !== snapshotHeader[3]) {
    throw new Error(
      `snapshot compression format ${payload[3]} is not one this version reads (it reads ${snapshotHeader[3]}): written by a later version?`,
    );
  }
  return true;
}

/** The encoded image in a snapshot payload: inflated, or the payload itself when uncompressed. */
export function inflateSnapshot(payload: Uint8Array): Uint8Array {
  if (!isCompressedSnapshot(payload)) return payload;
  try {
    // zlib reads shared memory as it is (the in-memory store's payloads): no copy needed.
    return inflateRawSync(payload.subarray(snapshotHeader.length), snapshotInflate);
  } catch (error) {
    throw new Error(`corrupt snapshot payload: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The image in a snapshot payload, compressed or not. */
export function decodeSnapshot<T>(payload: Uint8Array): T {
  return decode<T>(inflateSnapshot(payload));
}

/** Type codes of the event tuples. Stable: written to the log, never renumbered. */
export const eventCodes = {
  StockSet: 1,
  StockAdjusted: 2,
  SafetyStockSet: 3,
  ChannelUpserted: 4,
  ReservationHeld: 5,
  ReservationCommitted: 6,
  ReservationReleased: 7,
  ReservationExpired: 8,
  ReservationExtended: 9,
  ReservationAborted: 10,
} as const satisfies Record<DomainEvent['type'], number>;

type Tuple = unknown[];

/** One event as its tuple; lines are flattened onto the end. */
function eventTuple(event: DomainEvent): Tuple {
  switch (event.type) {
    case 'StockSet':
      return [
        eventCodes.StockSet,
        event.at,
        event.sku,
        event.location,
        event.onHand,
        event.safetyStock,
        event.sourceTs,
      ];
    case 'StockAdjusted':
      return [
        eventCodes.StockAdjusted,
        event.at,
        event.sku,
        event.location,
        event.delta,
        event.reason,
        event.key,
        event.bodyHash,
      ];
    case 'SafetyStockSet':
      return [eventCodes.SafetyStockSet, event.at, event.sku, event.location, event.safetyStock];
    case 'ChannelUpserted':
      return [eventCodes.ChannelUpserted, event.at, event.channel, event.locations, event.buffer];
    case 'ReservationHeld': {
      // Sized up front: pushing the lines onto a literal would reallocate it.
      const lines = event.lines;
      const t: Tuple = new Array(7 + 3 * lines.length);
      t[0] = eventCodes.ReservationHeld;
      t[1] = event.at;
      t[2] = event.reservationId;
      t[3] = event.orderId;
      t[4] = event.channel;
      t[5] = event.bodyHash;
      t[6] = event.expiresAt;
      let j = 7;
      for (const line of lines) {
        t[j++] = line.sku;
        t[j++] = line.location;
        t[j++] = line.qty;
      }
      return t;
    }
    case 'ReservationCommitted': {
      const lines = event.lines;
      const t: Tuple = new Array(3 + 5 * lines.length);
      t[0] = eventCodes.ReservationCommitted;
      t[1] = event.at;
      t[2] = event.reservationId;
      let j = 3;
      for (const line of lines) {
        t[j++] = line.sku;
        t[j++] = line.location;
        t[j++] = line.qty;
        t[j++] = line.released;
        t[j++] = line.onHandDecrease;
      }
      return t;
    }
    case 'ReservationReleased':
      return [eventCodes.ReservationReleased, event.at, event.reservationId];
    case 'ReservationExpired':
      return [eventCodes.ReservationExpired, event.at, event.reservationId];
    case 'ReservationExtended':
      return [eventCodes.ReservationExtended, event.at, event.reservationId, event.expiresAt];
    case 'ReservationAborted':
      return [eventCodes.ReservationAborted, event.at, event.reservationId];
    default: {
      const unknown: never = event;
      throw new Error(`no tuple for event ${JSON.stringify(unknown)}`);
    }
  }
}

/** The event a tuple stands for, with its fields in the order decide() writes them. */
// biome-ignore lint/suspicious/noExplicitAny: the tuple's fields are checked by its length and code
function eventOfTuple(t: any[]): DomainEvent {
  switch (t[0]) {
    case eventCodes.StockSet:
      fields(t, 7);
      return {
        type: 'StockSet',
        at: t[1],
        sku: t[2],
        location: t[3],
        onHand: t[4],
        safetyStock: t[5],
        sourceTs: t[6],
      };
    case eventCodes.StockAdjusted:
      fields(t, 8);
      return {
        type: 'StockAdjusted',
        at: t[1],
        sku: t[2],
        location: t[3],
        delta: t[4],
        reason: t[5],
        key: t[6],
        bodyHash: t[7],
      };
    case eventCodes.SafetyStockSet:
      fields(t, 5);
      return { type: 'SafetyStockSet', at: t[1], sku: t[2], location: t[3], safetyStock: t[4] };
    case eventCodes.ChannelUpserted:
      fields(t, 5);
      return { type: 'ChannelUpserted', at: t[1], channel: t[2], locations: t[3], buffer: t[4] };
    case eventCodes.ReservationHeld: {
      const lines: Allocation[] = new Array(lineCount(t, 7, 3));
      for (let i = 0, j = 7; i < lines.length; i++, j += 3)
        lines[i] = { sku: t[j], location: t[j + 1], qty: t[j + 2] };
      return {
        type: 'ReservationHeld',
        at: t[1],
        reservationId: t[2],
        orderId: t[3],
        channel: t[4],
        bodyHash: t[5],
        expiresAt: t[6],
        lines,
      };
    }
    case eventCodes.ReservationCommitted: {
      const lines: CommittedLine[] = new Array(lineCount(t, 3, 5));
      for (let i = 0, j = 3; i < lines.length; i++, j += 5)
        lines[i] = {
          sku: t[j],
          location: t[j + 1],
          qty: t[j + 2],
          released: t[j + 3],
          onHandDecrease: t[j + 4],
        };
      return { type: 'ReservationCommitted', at: t[1], reservationId: t[2], lines };
    }
    case eventCodes.ReservationReleased:
      fields(t, 3);
      return { type: 'ReservationReleased', at: t[1], reservationId: t[2] };
    case eventCodes.ReservationExpired:
      fields(t, 3);
      return { type: 'ReservationExpired', at: t[1], reservationId: t[2] };
    case eventCodes.ReservationExtended:
      fields(t, 4);
      return { type: 'ReservationExtended', at: t[1], reservationId: t[2], expiresAt: t[3] };
    case eventCodes.ReservationAborted:
      fields(t, 3);
      return { type: 'ReservationAborted', at: t[1], reservationId: t[2] };
    default:
      throw new Error(`corrupt WAL payload: unknown event code ${JSON.stringify(t[0])}`);
  }
}

function fields(t: Tuple, count: number): void {
  if (t.length !== count)
    throw new Error(`corrupt WAL payload: event ${t[0]} has ${t.length} fields, not ${count}`);
}

function lineCount(t: Tuple, head: number, width: number): number {
  const rest = t.length - head;
  if (rest < 0 || rest % width !== 0)
    throw new Error(`corrupt WAL payload: event ${t[0]} has ${t.length} fields`);
  return rest / width;
}

export function encodeEvents(events: readonly DomainEvent[]): Uint8Array {
  const tuples: Tuple[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) tuples[i] = eventTuple(events[i]!);
  return packr.pack(tuples);
}

/**
 * A WAL row's payload built from parts encoded at different times, as a shard worker does:
 * it encodes each batch's events once the batch is decided, so the event objects die
 * young, and joins the parts when the row is written. The result is byte for byte what
 * `encodeEvents` gives for all the events at once (one msgpack array of tuples): each part
 * is an array of self-contained values (tuples of numbers, strings, nil and arrays; no
 * records, no bundled strings), so the parts' elements can follow one new header.
 */
export class EventRowBuilder {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  /** Events added so far. */
  count = 0;

  add(events: readonly DomainEvent[]): void {
    if (events.length === 0) return;
    const part = encodeEvents(events);
    const skip = arrayHeaderLength(part);
    this.parts.push(ownBytes(part.subarray(skip)));
    this.bytes += part.length - skip;
    this.count += events.length;
  }

  /** The row's payload, in a buffer of its own; the builder is empty again afterwards. */
  take(): Uint8Array {
    const n = this.count;
    const head = n < 16 ? 1 : n < 0x10000 ? 3 : 5;
    const out = new Uint8Array(head + this.bytes);
    if (head === 1) out[0] = 0x90 | n;
    else if (head === 3) {
      out[0] = 0xdc;
      out[1] = n >>> 8;
      out[2] = n & 0xff;
    } else {
      out[0] = 0xdd;
      new DataView(out.buffer).setUint32(1, n);
    }
    let at = head;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    this.parts = [];
    this.bytes = 0;
    this.count = 0;
    return out;
  }
}

/** Bytes of the msgpack array header at the start of `bytes`. */
function arrayHeaderLength(bytes: Uint8Array): number {
  const first = bytes[0]!;
  if ((first & 0xf0) === 0x90) return 1;
  if (first === 0xdc) return 3;
  if (first === 0xdd) return 5;
  throw new Error(`expected a msgpack array, found type byte 0x${first.toString(16)}`);
}

/** Reads both payload formats: tuples, and the event objects of logs written before them. */
export function decodeEvents(bytes: Uint8Array): DomainEvent[] {
  const items = packr.unpack(readable(bytes)) as unknown;
  if (!Array.isArray(items)) throw new Error('corrupt WAL payload: not an array of events');
  const events: DomainEvent[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    events[i] = Array.isArray(item) ? eventOfTuple(item) : (item as DomainEvent);
  }
  return events;
}

export function checksumOf(bytes: Uint8Array): string {
  const checksum = checksumInParts();
  checksum.update(bytes);
  return checksum.digest();
}

/** `checksumOf` taken a part at a time: `update` with each part in order, then `digest`. */
export function checksumInParts(): { update(part: Uint8Array): void; digest(): string } {
  const hash = createHash('sha256');
  return {
    update: (part) => {
      hash.update(part);
    },
    digest: () => hash.digest('hex'),
  };
}
