import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { DomainEvent, Reply } from '../src/actors/types.js';
import { decodeReplies, encodeReplies } from '../src/engine/wire.js';
import { reject } from '../src/errors.js';
import { decodeEvents, encode, encodeEvents, eventCodes } from '../src/persistence/codec.js';

const id = fc.string({ minLength: 1, maxLength: 12 });
const at = fc.integer({ min: 0, max: 2 ** 47 });
const int = fc.integer({ min: -(2 ** 40), max: 2 ** 40 });
const nat = fc.nat({ max: 2 ** 40 });
const hash = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const orNull = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });

const event: fc.Arbitrary<DomainEvent> = fc.oneof(
  fc.record({
    type: fc.constant('StockSet' as const),
    at,
    sku: id,
    location: id,
    onHand: nat,
    safetyStock: nat,
    sourceTs: nat,
  }),
  fc.record({
    type: fc.constant('StockAdjusted' as const),
    at,
    sku: id,
    location: id,
    delta: int,
    reason: fc.string(),
    key: id,
    bodyHash: hash,
  }),
  fc.record({ type: fc.constant('SafetyStockSet' as const), at, sku: id, location: id, safetyStock: nat }),
  fc.record({
    type: fc.constant('ChannelUpserted' as const),
    at,
    channel: id,
    locations: fc.array(id),
    buffer: nat,
  }),
  fc.record({
    type: fc.constant('ReservationHeld' as const),
    at,
    reservationId: id,
    orderId: orNull(id),
    channel: orNull(id),
    bodyHash: hash,
    expiresAt: at,
    lines: fc.array(fc.record({ sku: id, location: id, qty: nat }), { minLength: 1, maxLength: 5 }),
  }),
  fc.record({
    type: fc.constant('ReservationCommitted' as const),
    at,
    reservationId: id,
    lines: fc.array(fc.record({ sku: id, location: id, qty: nat, released: nat, onHandDecrease: nat }), {
      maxLength: 5,
    }),
  }),
  fc.record({ type: fc.constant('ReservationReleased' as const), at, reservationId: id }),
  fc.record({ type: fc.constant('ReservationExpired' as const), at, reservationId: id }),
  fc.record({ type: fc.constant('ReservationExtended' as const), at, reservationId: id, expiresAt: at }),
  fc.record({ type: fc.constant('ReservationAborted' as const), at, reservationId: id }),
);

describe('WAL payload codec', () => {
  it('given any events, when encoded and decoded, then they come back equal, fields in the same order', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 20 }), (events) => {
        const decoded = decodeEvents(encodeEvents(events));
        // structuredClone: plain objects, as fast-check may make null-prototype ones.
        expect(decoded).toStrictEqual(structuredClone(events));
        // Same key order as decide() writes (the event feed prints events as JSON).
        expect(JSON.stringify(decoded)).toBe(JSON.stringify(events));
      }),
    );
  });

  it('has a tuple code for every event type, each code once', () => {
    const codes = Object.values(eventCodes);
    expect(new Set(codes).size).toBe(codes.length);
    expect(Object.keys(eventCodes).sort()).toEqual(
      [
        'ChannelUpserted',
        'ReservationAborted',
        'ReservationCommitted',
        'ReservationExpired',
        'ReservationExtended',
        'ReservationHeld',
        'ReservationReleased',
        'SafetyStockSet',
        'StockAdjusted',
        'StockSet',
      ].sort(),
    );
  });

  it('given a payload in the first format (event objects), when decoded, then it reads unchanged', () => {
    // What encodeEvents wrote before tuples: the event objects, msgpackr records.
    const firstFormat = new Packr({ useRecords: true, moreTypes: false, bundleStrings: false });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 20 }), (events) => {
        expect(decodeEvents(firstFormat.pack(events))).toStrictEqual(structuredClone(events));
      }),
    );
  });

  it('writes tuples, smaller than the objects', () => {
    const held: DomainEvent = {
      type: 'ReservationHeld',
      at: 1_700_000_000_000,
      reservationId: 'r-1',
      orderId: null,
      channel: 'web',
      bodyHash: 123,
      expiresAt: 1_700_000_060_000,
      lines: [{ sku: 'SKU-1', location: 'WH1', qty: 2 }],
    };
    const tuples = encodeEvents([held, held]);
    expect(tuples.byteLength).toBeLessThan(encode([held, held]).byteLength);
    expect(new Packr({ useRecords: false }).unpack(tuples)[0]).toEqual([
      5,
      1_700_000_000_000,
      'r-1',
      null,
      'web',
      123,
      1_700_000_060_000,
      'SKU-1',
      'WH1',
      2,
    ]);
  });

  it('given a corrupt tuple, when decoded, then it throws instead of inventing an event', () => {
    expect(() => decodeEvents(encode([[99, 1, 'x']]))).toThrow(/unknown event code 99/);
    expect(() => decodeEvents(encode([[7, 1]]))).toThrow(/has 2 fields, not 3/);
    expect(() => decodeEvents(encode([[5, 1, 'r', null, null, 1, 2, 'SKU', 'WH1']]))).toThrow(/corrupt/);
    expect(() => decodeEvents(encode({ not: 'events' }))).toThrow(/not an array/);
  });
});

describe('engine ⇄ worker replies', () => {
  const view = fc.record({
    reservationId: id,
    orderId: orNull(id),
    channel: orNull(id),
    status: fc.constantFrom('held' as const, 'committed' as const, 'released' as const, 'expired' as const),
    createdAt: at,
    expiresAt: at,
    finishedAt: at,
    extensions: fc.nat({ max: 100 }),
    lines: fc.array(fc.record({ sku: id, location: id, qty: nat, held: nat, committed: nat }), {
      maxLength: 4,
    }),
  });
  const reply: fc.Arbitrary<Reply> = fc.oneof(
    fc.record({
      ok: fc.constant(true as const),
      kind: fc.constant('reservation' as const),
      reservation: view,
      replayed: fc.boolean(),
    }),
    fc.record({
      ok: fc.constant(true as const),
      kind: fc.constant('atp' as const),
      sku: id,
      available: nat,
      byLocation: fc.dictionary(id, nat),
    }),
    fc.constantFrom(
      reject('RESERVATION_NOT_HELD', 'r is committed', { reservationStatus: 'committed' }) as Reply,
      reject('INSUFFICIENT_STOCK', 'short', {
        shortages: [{ sku: 'A', requested: 2, available: 1 }],
      }) as Reply,
    ),
  );

  it('given any replies, when sent across, then they arrive equal and in order', () => {
    fc.assert(
      fc.property(fc.array(reply, { maxLength: 20 }), (replies) => {
        expect(decodeReplies(encodeReplies(replies))).toStrictEqual(structuredClone(replies));
      }),
    );
  });
});
