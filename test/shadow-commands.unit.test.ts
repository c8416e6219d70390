/**
 * Shadow traffic's pure half (bench/shadow.ts): merging the streams by event time and
 * turning events back into the commands that caused them.
 */
import { describe, expect, it } from 'vitest';
import {
  commandsFromEvents,
  commitLinesOf,
  mergeStreams,
  type SourcedEvent,
  startsAtBeginning,
} from '../bench/shadow.js';
import type { DomainEvent } from '../src/actors/types.js';

const on = (stream: number, event: DomainEvent, seq = 1): SourcedEvent => ({ event, stream, seq });
const held = (id: string, at: number, lines: Array<[string, string, number]>): DomainEvent => ({
  type: 'ReservationHeld',
  at,
  reservationId: id,
  orderId: null,
  channel: null,
  bodyHash: 1,
  expiresAt: at + 60_000,
  lines: lines.map(([sku, location, qty]) => ({ sku, location, qty })),
});
const set = (sku: string, at: number): DomainEvent => ({
  type: 'StockSet',
  at,
  sku,
  location: 'L',
  onHand: 5,
  safetyStock: 0,
  sourceTs: 0,
});

describe('mergeStreams', () => {
  it('orders by event time and keeps each stream’s own order where its clock stepped back', () => {
    const s0 = [on(0, set('a', 10)), on(0, set('b', 30)), on(0, set('c', 25))];
    const s1 = [on(1, set('x', 20)), on(1, set('y', 40))];
    const merged = mergeStreams([s0, s1]).map((e) => (e.event as { sku: string }).sku);
    expect(merged).toEqual(['a', 'x', 'b', 'c', 'y']);
    expect(mergeStreams([[], s1, []])).toHaveLength(2);
  });
});

describe('commandsFromEvents', () => {
  it('merges the parts of a cross-shard hold into one reserve, sent when the last part was held', () => {
    const events = mergeStreams([
      [on(0, held('r', 100, [['a', 'L1', 1]])), on(0, set('a', 101))],
      [on(1, held('r', 103, [['b', 'L2', 2]]))],
    ]);
    const { commands, skipped } = commandsFromEvents(events);
    expect(commands.map((c) => c.request.type)).toEqual(['set', 'reserve']);
    expect(commands[1]).toEqual({
      at: 103,
      stamp: 103,
      request: {
        type: 'reserve',
        reservationId: 'r',
        ttlSeconds: 60,
        lines: [
          { sku: 'a', qty: 1, location: 'L1' },
          { sku: 'b', qty: 2, location: 'L2' },
        ],
      },
    });
    expect(skipped).toEqual({ 'ReservationHeld part merged into its cross-shard reserve': 1 });
  });

  it('skips expiries, aborts, and the holds of a reservation aborted in the range', () => {
    const { commands, skipped } = commandsFromEvents([
      on(0, held('gone', 100, [['a', 'L', 1]])),
      on(0, { type: 'ReservationAborted', at: 101, reservationId: 'gone' }),
      on(0, { type: 'ReservationExpired', at: 102, reservationId: 'other' }),
    ]);
    expect(commands).toEqual([]);
    expect(skipped).toEqual({
      'ReservationHeld of a reservation aborted in the range (never acknowledged)': 1,
      'ReservationAborted (engine-internal: a shard refused a part)': 1,
      'ReservationExpired (the engine expires on its own clock)': 1,
    });
  });

  it('sends a channel once although every shard keeps a copy, and again when it changes', () => {
    const channel = (at: number, buffer: number): DomainEvent => ({
      type: 'ChannelUpserted',
      at,
      channel: 'web',
      locations: ['L1'],
      buffer,
    });
    const events = mergeStreams([
      [on(0, channel(10, 0)), on(0, channel(20, 3))],
      [on(1, channel(11, 0)), on(1, channel(21, 3))],
    ]);
    const { commands } = commandsFromEvents(events);
    expect(commands.map((c) => c.request)).toEqual([
      { type: 'channel', channel: 'web', locations: ['L1'], buffer: 0 },
      { type: 'channel', channel: 'web', locations: ['L1'], buffer: 3 },
    ]);
  });

  it('stamps a cross-shard extension with its latest part, so the reservation expires as it did', () => {
    const extended = (at: number): DomainEvent => ({
      type: 'ReservationExtended',
      at,
      reservationId: 'r',
      expiresAt: at + 120_000,
    });
    const { commands } = commandsFromEvents(mergeStreams([[on(0, extended(50))], [on(1, extended(52))]]));
    expect(commands).toEqual([
      { at: 50, stamp: 52, request: { type: 'extend', reservationId: 'r', ttlSeconds: 120 } },
    ]);
  });
});

describe('commitLinesOf', () => {
  it('names lines by SKU and location, and a SKU alone where a line of it shipped nothing', () => {
    expect(
      commitLinesOf([
        { sku: 'a', location: 'L1', qty: 2 },
        { sku: 'b', location: 'L1', qty: 3 },
        { sku: 'b', location: 'L2', qty: 0 },
      ]),
    ).toEqual([
      { sku: 'a', location: 'L1', qty: 2 },
      { sku: 'b', qty: 3 },
    ]);
  });
});

describe('startsAtBeginning', () => {
  it('is true only for a range from seq 1 of every stream and no start time', () => {
    expect(startsAtBeginning({}, 2)).toBe(true);
    expect(startsAtBeginning({ fromSeq: 1, toSeq: 9 }, 2)).toBe(true);
    expect(startsAtBeginning({ fromSeq: new Map([[1, 5]]) }, 2)).toBe(false);
    expect(startsAtBeginning({ fromTime: 0 }, 2)).toBe(false);
  });
});
