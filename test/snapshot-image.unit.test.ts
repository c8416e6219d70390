/**
 * The snapshot image: a shard's state written column-wise (format 2) and read back, and
 * images of format 1 (written by earlier versions, still in databases) read as before.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ShardCore } from '../src/actors/core.js';
import { stateDigest } from '../src/actors/digest.js';
import {
  imageOf,
  mergeImage,
  SnapshotFormatError,
  type StateImage,
  type StateImageV1,
} from '../src/actors/snapshot.js';
import { ShardState, type StockRecord } from '../src/actors/state.js';
import type { Request } from '../src/actors/types.js';
import { defaultLimits, type Limits } from '../src/config.js';
import { decode, encode } from '../src/persistence/codec.js';
import { imageV1Of } from './support/snapshot-v1.js';

const limits: Limits = { ...defaultLimits, reservationRetentionSeconds: 60, finishedReservationsMax: 50 };

/** Everything a snapshot must carry over, including what the digest leaves out. */
function picture(state: ShardState) {
  const table = state.reservations;
  const finished: Array<[string, number]> = [];
  state.finished.forEach((slot, generation, at) => {
    if (table.holdsFinished(slot, generation, at)) finished.push([table.idAt(slot), at]);
  });
  const stock: string[] = [];
  for (const first of state.stock.values())
    for (let r: StockRecord | null = first; r; r = r.next) stock.push(`${r.sku}@${r.location}`);
  return {
    digest: stateDigest([state]),
    stock,
    order: [...table.keys()],
    finished,
    nextExpiryAt: table.nextExpiryAt(),
    nextToExpire: table.nextToExpire(),
    held: state.heldCount,
    scheduled: table.scheduledExpiries,
    records: state.recordCount,
    adjustmentKeys: [...state.adjustmentKeys.keys()],
    channels: [...state.channels.values()],
  };
}

/** The image through the codec, as it is stored, merged into an empty state. */
function restored(image: StateImage | StateImageV1): ShardState {
  const state = new ShardState(limits);
  mergeImage(state, decode<StateImage | StateImageV1>(encode(image)));
  return state;
}

const start = 1_700_000_000_000;

/** A shard that has seen every kind of reservation outcome, channels and adjustments. */
function busyShard(): ShardCore {
  const core = new ShardCore(limits);
  const long = `réservation-${'x'.repeat(60)}`;
  const steps: Request[][] = [
    [
      { type: 'channel', channel: 'web', locations: ['WH1', 'WH2'], buffer: 1 },
      { type: 'set', sku: 'A', location: 'WH1', onHand: 100, sourceTs: 5 },
      { type: 'set', sku: 'A', location: 'WH2', onHand: 40, safetyStock: 3 },
      { type: 'set', sku: 'B', location: 'WH1', onHand: 7 },
      { type: 'adjust', sku: 'B', location: 'WH1', delta: 2, reason: 'recount', key: 'k-1' },
    ],
    [
      {
        type: 'reserve',
        reservationId: 'held-1',
        orderId: 'order-1',
        channel: 'web',
        ttlSeconds: 600,
        lines: [
          { sku: 'A', qty: 3 },
          { sku: 'B', qty: 1, location: 'WH1' },
        ],
      },
      { type: 'reserve', reservationId: 'split-1', strategy: 'split', lines: [{ sku: 'A', qty: 120 }] },
      { type: 'reserve', reservationId: long, lines: [{ sku: 'B', qty: 2, location: 'WH1' }] },
      { type: 'reserve', reservationId: 'expires-1', ttlSeconds: 1, lines: [{ sku: 'A', qty: 1 }] },
      { type: 'reserve', reservationId: 'committed-1', lines: [{ sku: 'A', qty: 2, location: 'WH2' }] },
      { type: 'reserve', reservationId: 'released-1', lines: [{ sku: 'B', qty: 1, location: 'WH1' }] },
    ],
    [
      { type: 'commit', reservationId: 'committed-1' },
      { type: 'release', reservationId: 'released-1' },
      { type: 'commit', reservationId: 'split-1', lines: [{ sku: 'A', location: 'WH1', qty: 10 }] },
      { type: 'extend', reservationId: 'held-1', ttlSeconds: 900 },
    ],
    [{ type: 'adjust', sku: 'A', location: 'WH2', delta: -1, reason: 'damage', key: 'k-2' }],
  ];
  steps.forEach((requests, i) => {
    const { replies } = core.process(requests, start + i * 2_000);
    for (const reply of replies) expect(reply.ok, JSON.stringify(reply)).toBe(true);
  });
  return core;
}

describe('snapshot image', () => {
  it('given a shard with held, committed, partly committed, released and expired reservations, when its image is stored and read back, then the state is the same', () => {
    const state = busyShard().state;
    const before = picture(state);
    expect(before.finished.map(([id]) => id)).toEqual(
      expect.arrayContaining(['expires-1', 'committed-1', 'released-1']),
    );
    expect(before.held).toBeGreaterThan(0);
    expect(picture(restored(imageOf(state)))).toEqual(before);
  });

  it('given a restored shard, when both go on with the same commands, then they answer and end the same', () => {
    const live = busyShard();
    const copy = new ShardCore(limits);
    mergeImage(copy.state, decode<StateImage>(encode(imageOf(live.state))));
    const next: Request[] = [
      { type: 'reserve', reservationId: 'after-1', channel: 'web', lines: [{ sku: 'A', qty: 5 }] },
      { type: 'commit', reservationId: 'held-1' },
      { type: 'reserve', reservationId: 'committed-1', lines: [{ sku: 'A', qty: 2, location: 'WH2' }] },
      { type: 'adjust', sku: 'B', location: 'WH1', delta: 2, reason: 'recount', key: 'k-1' },
      { type: 'atp', sku: 'A', channel: 'web' },
    ];
    // Later than the retention window too: both forget the same finished reservations.
    for (const now of [start + 10_000, start + 120_000]) {
      expect(copy.process(next, now).replies).toEqual(live.process(next, now).replies);
      expect(picture(copy.state)).toEqual(picture(live.state));
    }
  });

  it('given the format 1 image earlier versions wrote, when read, then it gives the same state as format 2', () => {
    const state = busyShard().state;
    expect(picture(restored(imageV1Of(state)))).toEqual(picture(state));
  });

  it('given a shard split by SKU into two (another shard count) and joined again, when its parts are imaged and merged, then the state is the same', () => {
    const state = busyShard().state;
    const key = (p: ReturnType<typeof picture>) => ({
      digest: p.digest,
      finished: [...p.finished].sort(),
      held: p.held,
      scheduled: p.scheduled,
      records: p.records,
    });
    const whole = key(picture(state));
    for (const write of [imageOf, imageV1Of] as Array<(s: ShardState) => StateImage | StateImageV1>) {
      const owners = [(sku: string) => sku === 'A', (sku: string) => sku !== 'A'];
      const parts = owners.map((owns) => {
        const part = new ShardState(limits, owns);
        mergeImage(part, decode<StateImage>(encode(write(state))));
        return part;
      });
      // held-1 has lines on A and on B: each part holds its own lines only.
      expect(parts.map((part) => part.reservations.get('held-1')?.lines.length)).toEqual([1, 1]);
      const joined = new ShardState(limits);
      for (const part of parts) mergeImage(joined, decode<StateImage>(encode(write(part))));
      expect(key(picture(joined))).toEqual(whole);
    }
  });

  it('given a held reservation whose line on one SKU a partial commit settled, when its image is read under an owner of that SKU only, then that part is committed, as replaying its events gives', () => {
    const history: Request[] = [
      { type: 'set', sku: 'A', location: 'WH1', onHand: 10 },
      { type: 'set', sku: 'B', location: 'WH1', onHand: 10 },
      {
        type: 'reserve',
        reservationId: 'r',
        lines: [
          { sku: 'A', qty: 2 },
          { sku: 'B', qty: 3 },
        ],
      },
      { type: 'commit', reservationId: 'r', lines: [{ sku: 'A' }] },
    ];
    const whole = new ShardCore(limits);
    const events = history.flatMap((request, i) => whole.process([request], start + i).events);
    expect(whole.state.reservations.get('r')!.status).toBe('held');
    const imagedAt = start + 60;
    for (const write of [imageOf, imageV1Of] as Array<(s: ShardState) => StateImage | StateImageV1>) {
      for (const sku of ['A', 'B']) {
        const owns = (s: string) => s === sku;
        // The reference: the same events replayed under the same owner.
        const replayed = new ShardCore(limits, owns);
        replayed.apply(events);
        const part = new ShardState(limits, owns);
        mergeImage(part, decode<StateImage>(encode(write(whole.state))), imagedAt);
        const r = part.reservations.get('r')!;
        expect(r.lines.map((line) => line.sku)).toEqual([sku]);
        expect(r.status).toBe(replayed.state.reservations.get('r')!.status);
        if (sku === 'A') {
          expect(r).toMatchObject({ status: 'committed', finishedAt: imagedAt });
          expect(picture(part).finished).toEqual([['r', imagedAt]]);
          expect(part.heldCount).toBe(0);
        } else {
          expect(r).toMatchObject({ status: 'held', finishedAt: 0 });
          expect(picture(part).finished).toEqual([]);
          expect(part.heldCount).toBe(1);
        }
      }
    }
  });

  it('given random histories, when imaged in either format and read back, then nothing is lost', () => {
    const skus = ['A', 'B', 'C'];
    const ids = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];
    const command: fc.Arbitrary<Request> = fc.oneof(
      fc.record({
        type: fc.constant('set' as const),
        sku: fc.constantFrom(...skus),
        location: fc.constantFrom('WH1', 'WH2'),
        onHand: fc.integer({ min: 0, max: 20 }),
      }),
      fc.record({
        type: fc.constant('adjust' as const),
        sku: fc.constantFrom(...skus),
        location: fc.constantFrom('WH1', 'WH2'),
        delta: fc.integer({ min: -3, max: 5 }),
        reason: fc.constant('test'),
        key: fc.constantFrom('k1', 'k2', 'k3'),
      }),
      fc.record({
        type: fc.constant('reserve' as const),
        reservationId: fc.constantFrom(...ids),
        ttlSeconds: fc.integer({ min: 1, max: 30 }),
        lines: fc.uniqueArray(
          fc.record({ sku: fc.constantFrom(...skus), qty: fc.integer({ min: 1, max: 4 }) }),
          { minLength: 1, maxLength: 3, selector: (line) => line.sku },
        ),
      }),
      fc.record({
        type: fc.constantFrom('commit' as const, 'release' as const),
        reservationId: fc.constantFrom(...ids),
      }),
      fc.record({
        type: fc.constant('extend' as const),
        reservationId: fc.constantFrom(...ids),
        ttlSeconds: fc.integer({ min: 1, max: 30 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(command, { maxLength: 6 }), fc.integer({ min: 0, max: 40_000 })), {
          maxLength: 12,
        }),
        (batches) => {
          const core = new ShardCore(limits);
          let now = start;
          for (const [requests, step] of batches) {
            now += step;
            core.process(requests, now);
          }
          const expected = picture(core.state);
          expect(picture(restored(imageOf(core.state)))).toEqual(expected);
          expect(picture(restored(imageV1Of(core.state)))).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('given an image of a format this version does not know, when read, then it is refused by name', () => {
    const image = { ...imageOf(busyShard().state), formatVersion: 3 };
    expect(() => mergeImage(new ShardState(limits), image as unknown as StateImage)).toThrow(
      SnapshotFormatError,
    );
    expect(() => mergeImage(new ShardState(limits), image as unknown as StateImage)).toThrow(/format 3/);
  });

  it('given an image whose columns disagree, when read, then the column is named and nothing is guessed', () => {
    const image = imageOf(busyShard().state);
    const headless = { ...image, stock: null } as unknown as StateImage;
    expect(() => mergeImage(new ShardState(limits), headless)).toThrow(/stock: expected an object/);
    const cut = {
      ...image,
      reservations: { ...image.reservations, expiresAt: image.reservations.expiresAt.subarray(8) },
    };
    expect(() => mergeImage(new ShardState(limits), cut)).toThrow(
      /reservations\.expiresAt: expected \d+ bytes/,
    );
    const lineRecord = new Int32Array(image.reservations.lineRecord.length / 4).fill(99);
    const dangling = {
      ...image,
      reservations: { ...image.reservations, lineRecord: new Uint8Array(lineRecord.buffer) },
    };
    expect(() => mergeImage(new ShardState(limits), dangling)).toThrow(/lineRecord\[0\] is 99/);
  });
});
