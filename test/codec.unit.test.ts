import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { ShardCore } from '../src/actors/core.js';
import { imageOf, type StateImage } from '../src/actors/snapshot.js';
import type { DomainEvent, Request } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';
import { decodeReplies, decodeRequests, encodeReplies, encodeRequests } from '../src/engine/wire.js';
import {
  compressSnapshot,
  compressSnapshotAsync,
  decode,
  decodeEvents,
  decodeSnapshot,
  EventRowBuilder,
  encode,
  encodeEvents,
  encodeSnapshot,
  eventCodes,
  inflateSnapshot,
  isCompressedSnapshot,
  ownBytes,
} from '../src/persistence/codec.js';

const id = fc.string({ minLength: 1, maxLength: 12 });
const at = fc.integer({ min: 0, max: 2 ** 47 });
const int = fc.integer({ min: -(2 ** 40), max: 2 ** 40 });
const nat = fc.nat({ max: 2 ** 40 });
const hash = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const T0 = Date.UTC(2026, 0, 1);
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

  it('given events added in parts, when the row is taken, then it is byte for byte the events encoded at once', () => {
    fc.assert(
      fc.property(fc.array(fc.array(event, { maxLength: 12 }), { maxLength: 6 }), (parts) => {
        const row = new EventRowBuilder();
        for (const part of parts) row.add(part);
        const all = parts.flat();
        expect(row.count).toBe(all.length);
        const payload = row.take();
        expect(Buffer.from(payload).equals(Buffer.from(encodeEvents(all)))).toBe(true);
        expect(decodeEvents(payload)).toStrictEqual(structuredClone(all));
        // take() leaves the builder empty for the next row.
        expect(row.count).toBe(0);
        expect(decodeEvents(row.take())).toEqual([]);
      }),
    );
  });

  it('given parts that together cross the array header sizes, when joined, then the header grows with them', () => {
    const released = (i: number): DomainEvent => ({
      type: 'ReservationReleased',
      at: i,
      reservationId: `r${i}`,
    });
    // 15/16 is where the one-byte header ends, 65,535/65,536 the three-byte one.
    for (const total of [15, 16, 65_535, 65_536, 70_001]) {
      const all = Array.from({ length: total }, (_, i) => released(i));
      const row = new EventRowBuilder();
      for (let i = 0; i < total; i += 4_000) row.add(all.slice(i, i + 4_000));
      const payload = row.take();
      expect(Buffer.from(payload).equals(Buffer.from(encodeEvents(all))), `${total} events`).toBe(true);
    }
  });

  it("given an encoded view into the encoder's buffer, when owned, then it is a copy in a buffer of its own", () => {
    const view = encode([1, 'a', null]);
    const owned = ownBytes(view);
    expect(owned.byteOffset).toBe(0);
    expect(owned.buffer.byteLength).toBe(view.byteLength);
    expect([...owned]).toEqual([...view]);
    // Later encodes write into the encoder's buffer; a copy does not see them.
    const before = [...owned];
    view.fill(0);
    expect([...owned]).toEqual(before);
  });

  it('given requests and replies for a shard, when encoded, then each is in a buffer of its own, fit to transfer', () => {
    const requests: Request[] = [{ type: 'release', reservationId: 'r-1' }];
    for (const bytes of [
      encodeRequests(requests),
      encodeReplies([{ ok: true, kind: 'channels', channels: [] }]),
    ]) {
      expect(bytes.byteOffset).toBe(0);
      expect(bytes.buffer.byteLength).toBe(bytes.byteLength);
    }
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

  it('given bytes in shared memory (as the in-memory store keeps snapshots), when decoded, then they read as from their own buffer', () => {
    // Strings long and many enough for msgpackr's native string reader, which takes the
    // whole ArrayBuffer and crashed the process on a SharedArrayBuffer.
    const image = {
      formatVersion: 2,
      skus: Array.from({ length: 64 }, (_, i) => `sku-number-${i}`),
      note: 'x'.repeat(100),
    };
    const held: DomainEvent = {
      type: 'ReservationHeld',
      at: 1_700_000_000_000,
      reservationId: 'reservation-with-a-long-identifier',
      orderId: 'order-with-a-long-identifier',
      channel: 'storefront',
      bodyHash: 123,
      expiresAt: 1_700_000_060_000,
      lines: [{ sku: 'SKU-with-a-long-identifier', location: 'warehouse-one', qty: 2 }],
    };
    const shared = (bytes: Uint8Array): Uint8Array => {
      const out = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
      out.set(bytes);
      return out;
    };
    expect(decode(shared(encode(image)))).toEqual(image);
    const events = Array.from({ length: 20 }, () => held);
    expect(decodeEvents(shared(encodeEvents(events)))).toEqual(events);
  });

  it('given a corrupt tuple, when decoded, then it throws instead of inventing an event', () => {
    expect(() => decodeEvents(encode([[99, 1, 'x']]))).toThrow(/unknown event code 99/);
    expect(() => decodeEvents(encode([[7, 1]]))).toThrow(/has 2 fields, not 3/);
    expect(() => decodeEvents(encode([[5, 1, 'r', null, null, 1, 2, 'SKU', 'WH1']]))).toThrow(/corrupt/);
    expect(() => decodeEvents(encode({ not: 'events' }))).toThrow(/not an array/);
  });
});

describe('snapshot payloads', () => {
  /** The image of a shard with `skus` records and a reservation on each. */
  function imageOfShard(skus: number): StateImage {
    const core = new ShardCore(defaultLimits);
    const now = 1_700_000_000_000;
    core.process(
      Array.from({ length: skus }, (_, i) => ({
        type: 'set' as const,
        sku: `SKU-${i}`,
        location: 'WH1',
        onHand: 100 + i,
      })),
      now,
    );
    core.process(
      Array.from({ length: skus }, (_, i) => ({
        type: 'reserve' as const,
        reservationId: `r-${i}`,
        lines: [{ sku: `SKU-${i}`, qty: 1 + (i % 3) }],
      })),
      now,
    );
    return imageOf(core.state);
  }

  /** Byte columns come back as Buffers: compare what the images encode to. */
  const sameImage = (a: unknown, b: unknown): boolean =>
    Buffer.from(encode(a)).equals(Buffer.from(encode(b)));

  const ownBuffer = (bytes: Uint8Array): boolean =>
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;

  it('given an image, when encoded as a snapshot and decoded, then it comes back equal, compressed under a header', () => {
    const image = imageOfShard(2_000);
    const payload = encodeSnapshot(image);
    expect(isCompressedSnapshot(payload)).toBe(true);
    expect([...payload.subarray(0, 4)]).toEqual([0xc1, 0x53, 0x5a, 0x01]);
    expect(payload.byteLength).toBeLessThan(encode(image).byteLength / 2);
    expect(ownBuffer(payload)).toBe(true);
    expect(sameImage(decodeSnapshot(payload), image)).toBe(true);
  });

  it('given an encoded image, when compressed on the thread pool, then the payload is the one compressed here, in a buffer of its own', async () => {
    const packed = ownBytes(encode(imageOfShard(500)));
    const pooled = await compressSnapshotAsync(packed);
    expect(ownBuffer(pooled)).toBe(true);
    expect(Buffer.from(pooled).equals(Buffer.from(compressSnapshot(packed)))).toBe(true);
  });

  it('given a tiny image, when compressed, then the payload still has a buffer of its own (not a slice of a pool)', () => {
    const payload = encodeSnapshot({ formatVersion: 2 });
    expect(ownBuffer(payload)).toBe(true);
    expect(decodeSnapshot(payload)).toEqual({ formatVersion: 2 });
  });

  it('given a payload written before compression (a bare msgpack image), when decoded, then it reads unchanged', () => {
    const image = imageOfShard(300);
    const old = encode(image);
    expect(isCompressedSnapshot(old)).toBe(false);
    expect(inflateSnapshot(old)).toBe(old);
    expect(sameImage(decodeSnapshot(old), image)).toBe(true);
  });

  it('given a compressed payload in shared memory (as the in-memory store keeps it), when decoded, then it reads as from its own buffer', () => {
    const image = imageOfShard(300);
    const payload = encodeSnapshot(image);
    const shared = new Uint8Array(new SharedArrayBuffer(payload.byteLength));
    shared.set(payload);
    expect(sameImage(decodeSnapshot(shared), image)).toBe(true);
  });

  it('given a damaged compressed payload, when decoded, then it throws a corrupt-payload error', () => {
    const payload = encodeSnapshot(imageOfShard(300));
    const cut = payload.slice(0, payload.byteLength >> 1);
    expect(() => decodeSnapshot(cut)).toThrow(/corrupt snapshot payload/);
    const garbled = payload.slice();
    garbled.fill(0xff, 4, 64);
    expect(() => decodeSnapshot(garbled)).toThrow(/corrupt snapshot payload/);
  });

  it('given a payload in a compression format this version does not know, when decoded, then it is refused by name', () => {
    const later = encodeSnapshot(imageOfShard(10));
    later[3] = 2;
    expect(() => decodeSnapshot(later)).toThrow(
      /snapshot compression format 2 is not one this version reads/,
    );
  });
});

describe('engine ⇄ worker replies', () => {
  const sku = fc.constantFrom('A', 'B', 'C');
  const rid = fc.constantFrom('r1', 'r2', 'r3', 'r4');
  const command: fc.Arbitrary<Request> = fc.oneof(
    fc.record({
      type: fc.constant('reserve' as const),
      reservationId: rid,
      lines: fc.array(fc.record({ sku, qty: fc.integer({ min: 1, max: 4 }) }), {
        minLength: 1,
        maxLength: 3,
      }),
      orderId: fc.option(fc.constant('o-1'), { nil: undefined }),
    }),
    fc.record({ type: fc.constant('commit' as const), reservationId: rid }),
    fc.record({
      type: fc.constant('commit' as const),
      reservationId: rid,
      lines: fc.array(fc.record({ sku, qty: fc.integer({ min: 1, max: 2 }) }), {
        minLength: 1,
        maxLength: 2,
      }),
    }),
    fc.record({ type: fc.constant('release' as const), reservationId: rid }),
    fc.record({
      type: fc.constant('extend' as const),
      reservationId: rid,
      ttlSeconds: fc.integer({ min: 1, max: 5 }),
    }),
    fc.record({ type: fc.constant('get' as const), reservationId: rid }),
    fc.record({ type: fc.constant('atp' as const), sku }),
  );

  it('given any commands, when a worker sends its compact replies, then the engine reads the replies process() gives', () => {
    fc.assert(
      fc.property(fc.array(fc.array(command, { maxLength: 8 }), { maxLength: 6 }), (batches) => {
        const plain = new ShardCore(defaultLimits);
        const wire = new ShardCore(defaultLimits);
        const stock: Request[] = ['A', 'B', 'C'].map((s) => ({
          type: 'set',
          sku: s,
          location: 'W1',
          onHand: 6,
        }));
        plain.process(stock, T0);
        wire.process(stock, T0);
        batches.forEach((batch, i) => {
          const now = T0 + i * 2_000;
          const expected = plain.process(batch, now).replies;
          const sent = wire.processForWire(batch, now).replies;
          expect(decodeReplies(encodeReplies(sent))).toStrictEqual(structuredClone(expected));
        });
      }),
    );
  });

  it('sends reservation replies as tuples and other replies as they are', () => {
    const core = new ShardCore(defaultLimits);
    core.process([{ type: 'set', sku: 'A', location: 'W1', onHand: 5 }], T0);
    const { replies } = core.processForWire(
      [
        { type: 'reserve', reservationId: 'r1', lines: [{ sku: 'A', qty: 2 }] },
        { type: 'reserve', reservationId: 'r2', lines: [{ sku: 'A', qty: 9 }] },
      ],
      T0,
    );
    expect(replies[0]).toEqual([
      1,
      false,
      'r1',
      null,
      null,
      'held',
      T0,
      T0 + 900_000,
      0,
      0,
      'A',
      'W1',
      2,
      2,
      0,
    ]);
    expect(replies[1]).toMatchObject({ ok: false, code: 'INSUFFICIENT_STOCK' });
    expect(() => decodeReplies(encode([[1, false, 'r1']]))).toThrow(/malformed reply tuple/);
  });
});

describe('engine ⇄ worker requests', () => {
  // No -0: msgpack writes it as 0, objects and tuples alike.
  const text = fc.string({ maxLength: 6 });
  const anything = fc.oneof(
    text,
    fc.integer(),
    fc.constant(null),
    fc.constant(undefined),
    fc.constantFrom(1.5, -2.25),
  );
  const line = fc.oneof(
    fc.record({ sku: text, qty: fc.integer() }),
    fc.record({ sku: text, qty: fc.integer(), location: text }),
    fc.record({ sku: anything, qty: anything, location: anything }),
  );
  const request = fc.oneof(
    fc.record(
      {
        type: fc.constant('reserve'),
        reservationId: anything,
        orderId: anything,
        channel: anything,
        ttlSeconds: anything,
        strategy: anything,
        bodyHash: fc.option(fc.integer(), { nil: undefined }),
        lines: fc.oneof(fc.array(line, { maxLength: 4 }), fc.array(anything, { maxLength: 2 }), anything),
      },
      { requiredKeys: ['type', 'reservationId', 'lines'] },
    ),
    fc.record({ type: fc.constant('commit'), reservationId: anything }),
    fc.record(
      { type: fc.constant('commit'), reservationId: anything, lines: fc.array(line), check: fc.boolean() },
      { requiredKeys: ['type'] },
    ),
    fc.record({ type: fc.constantFrom('release', 'get', 'abort'), reservationId: anything }),
    fc.record({ type: fc.constant('extend'), reservationId: anything, ttlSeconds: anything }),
    fc.record({
      type: fc.constantFrom('set', 'atp', 'adjust'),
      sku: anything,
      location: anything,
      onHand: anything,
    }),
  ) as fc.Arbitrary<Request>;

  // Each request carries the fields of its type (a tuple keeps no others; the decider reads no others).
  it('given any requests, well-formed or not, when sent to a worker, then it reads the same fields and values', () => {
    fc.assert(
      fc.property(fc.array(request, { maxLength: 10 }), (requests) => {
        // toEqual: a field that is absent and one that is undefined read the same to the decider.
        expect(decodeRequests(encodeRequests(requests))).toEqual(structuredClone(requests));
      }),
    );
  });

  it('sends reserve, commit and release as tuples', () => {
    const requests: Request[] = [
      { type: 'reserve', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', qty: 2, location: 'W1' }] },
      { type: 'commit', reservationId: 'r1' },
      { type: 'release', reservationId: 'r1' },
      { type: 'commit', reservationId: 'r1', lines: [{ sku: 'A' }] },
    ];
    const sent = new Packr({ useRecords: false }).unpack(encodeRequests(requests));
    expect(sent.slice(0, 3)).toEqual([
      [1, 'r1', undefined, 'web', undefined, undefined, undefined, 'A', 2, 'W1'],
      [2, 'r1'],
      [3, 'r1'],
    ]);
    expect(Array.isArray(sent[3])).toBe(false);
    expect(Object.keys(decodeRequests(encodeRequests(requests))[0]!).sort()).toEqual(
      ['channel', 'lines', 'reservationId', 'type'].sort(),
    );
  });
});
