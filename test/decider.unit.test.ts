/**
 * The decider, command by command, as given/when/then specifications (Emmett style):
 * given past events, when a command arrives at a time, then these events (or this
 * rejection, or an idempotent replay). Every accepted or rejected decision is evolved and
 * the full invariants are checked (test/support/decider-spec.ts).
 */
import { describe, expect, it } from 'vitest';
import { ShardCore } from '../src/actors/core.js';
import { adjustmentBodyHash, reserveBodyHash } from '../src/actors/decide.js';
import { invariantViolations } from '../src/actors/invariants.js';
import type {
  Allocation,
  ChannelUpsertedEvent,
  CommittedLine,
  DomainEvent,
  LineRequest,
  ReservationAbortedEvent,
  ReservationCommittedEvent,
  ReservationExpiredEvent,
  ReservationExtendedEvent,
  ReservationHeldEvent,
  ReservationReleasedEvent,
  Reserve,
  SafetyStockSetEvent,
  StockAdjustedEvent,
  StockSetEvent,
} from '../src/actors/types.js';
import { defaultLimits, type Limits } from '../src/config.js';
import { given, stateFrom } from './support/decider-spec.js';

/* ------------------------------------------------------------------------- builders */

const T0 = 1_700_000_000_000;
const SECOND = 1_000;
const ttlDefaultMs = defaultLimits.ttlSecondsDefault * SECOND;

function stockSet(
  sku: string,
  location: string,
  onHand: number,
  o: { at?: number; safetyStock?: number; sourceTs?: number } = {},
): StockSetEvent {
  return {
    type: 'StockSet',
    at: o.at ?? T0,
    sku,
    location,
    onHand,
    safetyStock: o.safetyStock ?? 0,
    sourceTs: o.sourceTs ?? 0,
  };
}

function adjusted(
  sku: string,
  location: string,
  delta: number,
  key: string,
  o: { at?: number; reason?: string } = {},
): StockAdjustedEvent {
  const reason = o.reason ?? 'recount';
  return {
    type: 'StockAdjusted',
    at: o.at ?? T0,
    sku,
    location,
    delta,
    reason,
    key,
    bodyHash: adjustmentBodyHash({ sku, location, delta, reason }),
  };
}

function safetySet(sku: string, location: string, safetyStock: number, at = T0): SafetyStockSetEvent {
  return { type: 'SafetyStockSet', at, sku, location, safetyStock };
}

function channelUpserted(channel: string, locations: string[], buffer = 0, at = T0): ChannelUpsertedEvent {
  return { type: 'ChannelUpserted', at, channel, locations, buffer };
}

const line = (sku: string, qty: number, location?: string): LineRequest =>
  location === undefined ? { sku, qty } : { sku, qty, location };

const alloc = (sku: string, location: string, qty: number): Allocation => ({ sku, location, qty });

function reserve(
  reservationId: string,
  lines: LineRequest[],
  extra: Partial<Omit<Reserve, 'type'>> = {},
): Reserve {
  return { type: 'reserve', reservationId, lines, ...extra };
}

/** The event a successful `cmd` decided at `at` produces, given the allocations. */
function heldFor(cmd: Reserve, lines: Allocation[], at = T0): ReservationHeldEvent {
  return {
    type: 'ReservationHeld',
    at,
    reservationId: cmd.reservationId,
    orderId: cmd.orderId ?? null,
    channel: cmd.channel ?? null,
    bodyHash: cmd.bodyHash ?? reserveBodyHash(cmd),
    expiresAt: at + (cmd.ttlSeconds ?? defaultLimits.ttlSecondsDefault) * SECOND,
    lines,
  };
}

/** A hold of exactly these allocations, as if reserved with explicit locations. */
function held(
  id: string,
  lines: Allocation[],
  o: { at?: number; ttlSeconds?: number } = {},
): ReservationHeldEvent {
  const cmd = reserve(
    id,
    lines.map((l) => line(l.sku, l.qty, l.location)),
    o.ttlSeconds === undefined ? {} : { ttlSeconds: o.ttlSeconds },
  );
  return heldFor(cmd, lines, o.at ?? T0);
}

const committed = (reservationId: string, lines: CommittedLine[], at = T0): ReservationCommittedEvent => ({
  type: 'ReservationCommitted',
  at,
  reservationId,
  lines,
});
const cline = (
  sku: string,
  location: string,
  qty: number,
  released: number,
  onHandDecrease: number,
): CommittedLine => ({ sku, location, qty, released, onHandDecrease });
const releasedEv = (reservationId: string, at = T0): ReservationReleasedEvent => ({
  type: 'ReservationReleased',
  at,
  reservationId,
});
const expiredEv = (reservationId: string, at = T0): ReservationExpiredEvent => ({
  type: 'ReservationExpired',
  at,
  reservationId,
});
const extendedEv = (reservationId: string, expiresAt: number, at = T0): ReservationExtendedEvent => ({
  type: 'ReservationExtended',
  at,
  reservationId,
  expiresAt,
});
const abortedEv = (reservationId: string, at = T0): ReservationAbortedEvent => ({
  type: 'ReservationAborted',
  at,
  reservationId,
});

/* ------------------------------------------------------------------------------ set */

describe('set', () => {
  it('creates a record', () => {
    const { state } = given([])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 10 }, T0)
      .then([stockSet('A', 'W1', 10)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, reserved: 0, safetyStock: 0, version: 1 });
  });

  it('replaces onHand of an existing record and bumps its version', () => {
    const { state } = given([stockSet('A', 'W1', 10)])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 4 }, T0 + 1)
      .then([stockSet('A', 'W1', 4, { at: T0 + 1 })]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 4, version: 2 });
  });

  it('ifVersion matching the record applies', () => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 7, ifVersion: 1 }, T0)
      .then([stockSet('A', 'W1', 7)]);
  });

  it('ifVersion not matching the record is VERSION_CONFLICT with the current version', () => {
    given([stockSet('A', 'W1', 10), adjusted('A', 'W1', 1, 'k1')])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 7, ifVersion: 1 }, T0)
      .thenRejects('VERSION_CONFLICT', { currentVersion: 2 });
  });

  it('ifVersion 0 creates a record that does not exist yet', () => {
    given([])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 3, ifVersion: 0 }, T0)
      .then([stockSet('A', 'W1', 3)]);
  });

  it('ifVersion 0 on an existing record is VERSION_CONFLICT', () => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 3, ifVersion: 0 }, T0)
      .thenRejects('VERSION_CONFLICT', { currentVersion: 1 });
  });

  it('a reservation bumps the version that ifVersion compares against', () => {
    given([stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 2)])])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 3, ifVersion: 1 }, T0)
      .thenRejects('VERSION_CONFLICT', { currentVersion: 2 });
  });

  it('a sourceTs older than the last one is STALE_UPDATE and nothing changes', () => {
    const { state } = given([stockSet('A', 'W1', 10, { sourceTs: 2_000 })])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 1, sourceTs: 1_999 }, T0)
      .thenRejects('STALE_UPDATE');
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, sourceTs: 2_000, version: 1 });
  });

  it('a sourceTs equal to the last one is accepted', () => {
    given([stockSet('A', 'W1', 10, { sourceTs: 2_000 })])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 1, sourceTs: 2_000 }, T0)
      .then([stockSet('A', 'W1', 1, { sourceTs: 2_000 })]);
  });

  it('a newer sourceTs is accepted and remembered', () => {
    const { state } = given([stockSet('A', 'W1', 10, { sourceTs: 2_000 })])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 1, sourceTs: 3_000 }, T0)
      .then([stockSet('A', 'W1', 1, { sourceTs: 3_000 })]);
    expect(state.record('A', 'W1')!.sourceTs).toBe(3_000);
  });

  it('a set without sourceTs keeps the last sourceTs', () => {
    given([stockSet('A', 'W1', 10, { sourceTs: 2_000 })])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 1 }, T0)
      .then([stockSet('A', 'W1', 1, { sourceTs: 2_000 })]);
  });

  it('keeps the safety stock when the command omits it', () => {
    given([stockSet('A', 'W1', 10, { safetyStock: 3 })])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 20 }, T0)
      .then([stockSet('A', 'W1', 20, { safetyStock: 3 })]);
  });

  it('replaces the safety stock when the command gives it', () => {
    given([stockSet('A', 'W1', 10, { safetyStock: 3 })])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 20, safetyStock: 0 }, T0)
      .then([stockSet('A', 'W1', 20, { safetyStock: 0 })]);
  });

  it('may set onHand below what is reserved (available floors at 0)', () => {
    const { state } = given([stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 6)])])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 2 }, T0)
      .then([stockSet('A', 'W1', 2)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 2, reserved: 6 });
  });

  it('accepts onHand 0 and onHand = quantityMax', () => {
    given([])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 0 }, T0)
      .then([stockSet('A', 'W1', 0)]);
    given([])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: defaultLimits.quantityMax }, T0)
      .then([stockSet('A', 'W1', defaultLimits.quantityMax)]);
  });

  it.each([
    ['negative', -1],
    ['fractional', 1.5],
    ['above quantityMax', defaultLimits.quantityMax + 1],
    ['NaN', Number.NaN],
  ])('onHand %s is INVALID_QUANTITY', (_name, onHand) => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it('an invalid safetyStock is INVALID_QUANTITY', () => {
    given([])
      .when({ type: 'set', sku: 'A', location: 'W1', onHand: 1, safetyStock: -1 }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it.each([
    ['empty sku', { sku: '', location: 'W1' }],
    ['empty location', { sku: 'A', location: '' }],
    ['sku over idBytesMax', { sku: 'x'.repeat(defaultLimits.idBytesMax + 1), location: 'W1' }],
    ['negative ifVersion', { sku: 'A', location: 'W1', ifVersion: -1 }],
    ['fractional ifVersion', { sku: 'A', location: 'W1', ifVersion: 0.5 }],
    ['negative sourceTs', { sku: 'A', location: 'W1', sourceTs: -1 }],
  ])('%s is INVALID_REQUEST', (_name, fields) => {
    given([])
      .when({ type: 'set', onHand: 1, ...fields }, T0)
      .thenRejects('INVALID_REQUEST');
  });
});

/* --------------------------------------------------------------------------- adjust */

describe('adjust', () => {
  const window = defaultLimits.adjustmentKeyWindowSeconds * SECOND;

  it('applies a delta', () => {
    const { state } = given([stockSet('A', 'W1', 10)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: 5, reason: 'recount', key: 'k1' }, T0 + 1)
      .then([adjusted('A', 'W1', 5, 'k1', { at: T0 + 1 })]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 15, version: 2 });
  });

  it('creates the record on a positive delta when there is none', () => {
    const { state } = given([])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: 2, reason: 'found', key: 'k1' }, T0)
      .then([adjusted('A', 'W1', 2, 'k1', { reason: 'found' })]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 2, version: 1 });
  });

  it('the same key with the same body is replayed', () => {
    const { state } = given([stockSet('A', 'W1', 10), adjusted('A', 'W1', 5, 'k1')])
      .when(
        { type: 'adjust', sku: 'A', location: 'W1', delta: 5, reason: 'recount', key: 'k1' },
        T0 + 60 * SECOND,
      )
      .thenReplays();
    expect(state.record('A', 'W1')!.onHand).toBe(15);
  });

  it('a replay is answered even if the delta could no longer be applied', () => {
    given([stockSet('A', 'W1', 10), adjusted('A', 'W1', -10, 'k1'), stockSet('A', 'W1', 0)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: -10, reason: 'recount', key: 'k1' }, T0)
      .thenReplays();
  });

  it.each([
    ['delta', { delta: 6, reason: 'recount', location: 'W1' }],
    ['reason', { delta: 5, reason: 'damaged', location: 'W1' }],
    ['location', { delta: 5, reason: 'recount', location: 'W2' }],
  ])('the same key with a different %s is IDEMPOTENCY_KEY_REUSED', (_name, body) => {
    given([stockSet('A', 'W1', 10), stockSet('A', 'W2', 10), adjusted('A', 'W1', 5, 'k1')])
      .when({ type: 'adjust', sku: 'A', key: 'k1', ...body }, T0 + SECOND)
      .thenRejects('IDEMPOTENCY_KEY_REUSED');
  });

  it('keys are per SKU: the same key on another SKU is a new adjustment', () => {
    given([stockSet('A', 'W1', 10), stockSet('B', 'W1', 10), adjusted('A', 'W1', 5, 'k1')])
      .when({ type: 'adjust', sku: 'B', location: 'W1', delta: 5, reason: 'recount', key: 'k1' }, T0)
      .then([adjusted('B', 'W1', 5, 'k1')]);
  });

  it('a key is still remembered just inside the window', () => {
    given([stockSet('A', 'W1', 10), adjusted('A', 'W1', 5, 'k1')])
      .when(
        { type: 'adjust', sku: 'A', location: 'W1', delta: 1, reason: 'recount', key: 'k1' },
        T0 + window - 1,
      )
      .thenRejects('IDEMPOTENCY_KEY_REUSED');
  });

  it('a key outside adjustmentKeyWindowSeconds is forgotten: a different body is applied', () => {
    given([stockSet('A', 'W1', 10), adjusted('A', 'W1', 5, 'k1')])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: 1, reason: 'recount', key: 'k1' }, T0 + window)
      .then([adjusted('A', 'W1', 1, 'k1', { at: T0 + window })]);
  });

  it('a key outside the window is forgotten: the same body is applied again, not replayed', () => {
    const { state } = given([stockSet('A', 'W1', 10), adjusted('A', 'W1', 5, 'k1')])
      .when(
        { type: 'adjust', sku: 'A', location: 'W1', delta: 5, reason: 'recount', key: 'k1' },
        T0 + window + 1,
      )
      .then([adjusted('A', 'W1', 5, 'k1', { at: T0 + window + 1 })]);
    expect(state.record('A', 'W1')!.onHand).toBe(20);
  });

  it('later events drop keys that left the window from the state', () => {
    const state = stateFrom([
      stockSet('A', 'W1', 10),
      adjusted('A', 'W1', 5, 'k1'),
      stockSet('A', 'W1', 10, { at: T0 + window }),
    ]);
    expect(state.adjustmentKeys.size).toBe(0);
  });

  it('at most adjustmentKeysMax keys are remembered (oldest forgotten first)', () => {
    const limits: Limits = { ...defaultLimits, adjustmentKeysMax: 1 };
    given([stockSet('A', 'W1', 10), adjusted('A', 'W1', 5, 'k1'), adjusted('A', 'W1', 1, 'k2')], { limits })
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: 7, reason: 'recount', key: 'k1' }, T0)
      .then([adjusted('A', 'W1', 7, 'k1')]);
  });

  it('a delta that takes onHand below zero is ADJUSTMENT_BELOW_ZERO', () => {
    given([stockSet('A', 'W1', 3)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: -4, reason: 'shrink', key: 'k1' }, T0)
      .thenRejects('ADJUSTMENT_BELOW_ZERO');
  });

  it('a negative delta on a missing record is ADJUSTMENT_BELOW_ZERO', () => {
    given([])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: -1, reason: 'shrink', key: 'k1' }, T0)
      .thenRejects('ADJUSTMENT_BELOW_ZERO');
  });

  it('a delta that takes onHand exactly to zero is applied', () => {
    const { state } = given([stockSet('A', 'W1', 3)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: -3, reason: 'shrink', key: 'k1' }, T0)
      .then([adjusted('A', 'W1', -3, 'k1', { reason: 'shrink' })]);
    expect(state.record('A', 'W1')!.onHand).toBe(0);
  });

  it.each([
    ['0', 0],
    ['fractional', 1.5],
    ['above quantityMax', defaultLimits.quantityMax + 1],
    ['below -quantityMax', -defaultLimits.quantityMax - 1],
  ])('delta %s is INVALID_QUANTITY', (_name, delta) => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta, reason: 'recount', key: 'k1' }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it('a delta that takes onHand above quantityMax is INVALID_QUANTITY', () => {
    given([stockSet('A', 'W1', defaultLimits.quantityMax)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: 1, reason: 'recount', key: 'k1' }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it.each([
    ['empty key', { key: '', reason: 'recount' }],
    ['reason over 256 characters', { key: 'k1', reason: 'r'.repeat(257) }],
  ])('%s is INVALID_REQUEST', (_name, fields) => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'adjust', sku: 'A', location: 'W1', delta: 1, ...fields }, T0)
      .thenRejects('INVALID_REQUEST');
  });
});

/* ----------------------------------------------------------------------- safety stock */

describe('safety', () => {
  it('sets the safety stock, which lowers available', () => {
    const { state } = given([stockSet('A', 'W1', 10)])
      .when({ type: 'safety', sku: 'A', location: 'W1', safetyStock: 4 }, T0)
      .then([safetySet('A', 'W1', 4)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, safetyStock: 4, version: 2 });
  });

  it('ifVersion matching the record applies', () => {
    given([stockSet('A', 'W1', 10), safetySet('A', 'W1', 1)])
      .when({ type: 'safety', sku: 'A', location: 'W1', safetyStock: 4, ifVersion: 2 }, T0)
      .then([safetySet('A', 'W1', 4)]);
  });

  it('ifVersion not matching the record is VERSION_CONFLICT', () => {
    given([stockSet('A', 'W1', 10), safetySet('A', 'W1', 1)])
      .when({ type: 'safety', sku: 'A', location: 'W1', safetyStock: 4, ifVersion: 1 }, T0)
      .thenRejects('VERSION_CONFLICT', { currentVersion: 2 });
  });

  it('ifVersion 0 creates the record when missing', () => {
    const { state } = given([])
      .when({ type: 'safety', sku: 'A', location: 'W1', safetyStock: 4, ifVersion: 0 }, T0)
      .then([safetySet('A', 'W1', 4)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 0, safetyStock: 4, version: 1 });
  });

  it.each([-1, 2.5, defaultLimits.quantityMax + 1])('safetyStock %s is INVALID_QUANTITY', (safetyStock) => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'safety', sku: 'A', location: 'W1', safetyStock }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it('an invalid ifVersion or sku is INVALID_REQUEST', () => {
    given([stockSet('A', 'W1', 10)])
      .when({ type: 'safety', sku: 'A', location: 'W1', safetyStock: 1, ifVersion: -2 }, T0)
      .thenRejects('INVALID_REQUEST');
    given([])
      .when({ type: 'safety', sku: '', location: 'W1', safetyStock: 1 }, T0)
      .thenRejects('INVALID_REQUEST');
  });
});

/* -------------------------------------------------------------------------- channels */

describe('channel', () => {
  it('upserts a channel with buffer 0 by default', () => {
    const { state } = given([])
      .when({ type: 'channel', channel: 'web', locations: ['W1', 'W2'] }, T0)
      .then([channelUpserted('web', ['W1', 'W2'])]);
    expect(state.channels.get('web')).toEqual({ channel: 'web', locations: ['W1', 'W2'], buffer: 0 });
  });

  it('replaces an existing channel', () => {
    const { state } = given([channelUpserted('web', ['W1', 'W2'])])
      .when({ type: 'channel', channel: 'web', locations: ['W2'], buffer: 5 }, T0)
      .then([channelUpserted('web', ['W2'], 5)]);
    expect(state.channels.get('web')).toEqual({ channel: 'web', locations: ['W2'], buffer: 5 });
  });

  it('accepts exactly channelLocationsMax locations', () => {
    const locations = Array.from({ length: defaultLimits.channelLocationsMax }, (_, i) => `L${i}`);
    given([])
      .when({ type: 'channel', channel: 'web', locations }, T0)
      .then([channelUpserted('web', locations)]);
  });

  it('duplicate locations are INVALID_REQUEST', () => {
    given([])
      .when({ type: 'channel', channel: 'web', locations: ['W1', 'W2', 'W1'] }, T0)
      .thenRejects('INVALID_REQUEST');
  });

  it('no locations is INVALID_REQUEST', () => {
    given([]).when({ type: 'channel', channel: 'web', locations: [] }, T0).thenRejects('INVALID_REQUEST');
  });

  it('an empty channel id or location id is INVALID_REQUEST', () => {
    given([])
      .when({ type: 'channel', channel: '', locations: ['W1'] }, T0)
      .thenRejects('INVALID_REQUEST');
    given([])
      .when({ type: 'channel', channel: 'web', locations: ['W1', ''] }, T0)
      .thenRejects('INVALID_REQUEST');
  });

  it('more than channelLocationsMax locations is LIMIT_EXCEEDED', () => {
    const locations = Array.from({ length: defaultLimits.channelLocationsMax + 1 }, (_, i) => `L${i}`);
    given([]).when({ type: 'channel', channel: 'web', locations }, T0).thenRejects('LIMIT_EXCEEDED');
  });

  it('a new channel past channelsMax is LIMIT_EXCEEDED; updating an existing one is fine', () => {
    const limits: Limits = { ...defaultLimits, channelsMax: 1 };
    given([channelUpserted('web', ['W1'])], { limits })
      .when({ type: 'channel', channel: 'store', locations: ['W1'] }, T0)
      .thenRejects('LIMIT_EXCEEDED');
    given([channelUpserted('web', ['W1'])], { limits })
      .when({ type: 'channel', channel: 'web', locations: ['W2'] }, T0)
      .then([channelUpserted('web', ['W2'])]);
  });

  it.each([-1, 0.5])('buffer %s is INVALID_QUANTITY', (buffer) => {
    given([])
      .when({ type: 'channel', channel: 'web', locations: ['W1'], buffer }, T0)
      .thenRejects('INVALID_QUANTITY');
  });
});

/* --------------------------------------------------------------------------- reserve */

describe('reserve', () => {
  it('holds a single line at the only location', () => {
    const cmd = reserve('r1', [line('A', 3)]);
    const { state } = given([stockSet('A', 'W1', 10)])
      .when(cmd, T0 + 5)
      .then([heldFor(cmd, [alloc('A', 'W1', 3)], T0 + 5)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, reserved: 3, version: 2 });
    expect(state.reservations.get('r1')).toMatchObject({ status: 'held', expiresAt: T0 + 5 + ttlDefaultMs });
  });

  it('carries orderId, channel and ttlSeconds into the event', () => {
    const cmd = reserve('r1', [line('A', 3)], { orderId: 'o-7', channel: 'web', ttlSeconds: 60 });
    const [event] = given([stockSet('A', 'W1', 10), channelUpserted('web', ['W1'])])
      .when(cmd, T0)
      .then([heldFor(cmd, [alloc('A', 'W1', 3)])]).decision.events;
    expect(event).toMatchObject({ orderId: 'o-7', channel: 'web', expiresAt: T0 + 60 * SECOND });
  });

  describe('channel ATP with buffer', () => {
    const stock = [stockSet('A', 'W1', 10), stockSet('A', 'W9', 100), channelUpserted('web', ['W1'], 2)];

    it('reserving exactly the channel ATP is accepted', () => {
      const cmd = reserve('r1', [line('A', 8)], { channel: 'web' });
      given(stock)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 8)])]);
    });

    it('one more than the channel ATP is INSUFFICIENT_STOCK with the shortage', () => {
      given(stock)
        .when(reserve('r1', [line('A', 9)], { channel: 'web' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 9, available: 8 }] });
    });

    it('the buffer applies to the sum over the channel locations (split)', () => {
      const events = [stockSet('A', 'W1', 5), stockSet('A', 'W2', 4), stockSet('A', 'W9', 100)];
      const channel = channelUpserted('web', ['W1', 'W2'], 2);
      const ok = reserve('r1', [line('A', 7)], { channel: 'web', strategy: 'split' });
      given([...events, channel])
        .when(ok, T0)
        .then([heldFor(ok, [alloc('A', 'W1', 5), alloc('A', 'W2', 2)])]);
      given([...events, channel])
        .when(reserve('r1', [line('A', 8)], { channel: 'web', strategy: 'split' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 8, available: 7 }] });
    });

    it('a buffer larger than the stock floors ATP at 0', () => {
      given([stockSet('A', 'W1', 3), channelUpserted('web', ['W1'], 5)])
        .when(reserve('r1', [line('A', 1)], { channel: 'web' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 1, available: 0 }] });
    });
  });

  describe('bundles: lines on one SKU are summed', () => {
    it('two lines that fit together are held (merged per location)', () => {
      const cmd = reserve('r1', [line('A', 6), line('A', 4)]);
      const { state } = given([stockSet('A', 'W1', 10)])
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 10)])]);
      expect(state.record('A', 'W1')!.reserved).toBe(10);
    });

    it('two lines that each fit but not together are INSUFFICIENT_STOCK (no oversell)', () => {
      given([stockSet('A', 'W1', 10)])
        .when(reserve('r1', [line('A', 6), line('A', 5)]), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 11, available: 10 }] });
    });

    it('a bundle on one SKU in a channel cannot go past the buffer', () => {
      given([stockSet('A', 'W1', 10), stockSet('A', 'W2', 10), channelUpserted('web', ['W1', 'W2'], 5)])
        .when(reserve('r1', [line('A', 8), line('A', 8)], { channel: 'web' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 16, available: 15 }] });
    });

    it('split bundles fill locations in order across lines', () => {
      const cmd = reserve('r1', [line('A', 6), line('A', 6)], { strategy: 'split' });
      given([stockSet('A', 'W1', 8), stockSet('A', 'W2', 8)])
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 8), alloc('A', 'W2', 4)])]);
    });

    it('an explicit-location line and a free line of one SKU share the stock', () => {
      const cmd = reserve('r1', [line('A', 5, 'W1'), line('A', 5)]);
      given([stockSet('A', 'W1', 5), stockSet('A', 'W2', 5)])
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 5), alloc('A', 'W2', 5)])]);
    });

    it('reservationLinesMax lines of one SKU are accepted', () => {
      const lines = Array.from({ length: defaultLimits.reservationLinesMax }, () => line('A', 1));
      const cmd = reserve('r1', lines);
      given([stockSet('A', 'W1', 100)])
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 100)])]);
    });
  });

  describe('multi-SKU: all or nothing', () => {
    it('holds every SKU when all fit', () => {
      const cmd = reserve('r1', [line('A', 5), line('B', 1)]);
      given([stockSet('A', 'W1', 10), stockSet('B', 'W2', 1)])
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 5), alloc('B', 'W2', 1)])]);
    });

    it('one SKU short holds nothing', () => {
      const { state } = given([stockSet('A', 'W1', 10), stockSet('B', 'W1', 1)])
        .when(reserve('r1', [line('A', 5), line('B', 2)]), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'B', requested: 2, available: 1 }] });
      expect(state.record('A', 'W1')!.reserved).toBe(0);
      expect(state.reservations.has('r1')).toBe(false);
    });

    it('lists a shortage per short SKU, and an unknown SKU has 0 available', () => {
      const { decision } = given([stockSet('A', 'W1', 1)])
        .when(reserve('r1', [line('A', 2), line('Z', 1)]), T0)
        .thenRejects('INSUFFICIENT_STOCK');
      expect(decision.rejection?.shortages).toEqual([
        { sku: 'A', requested: 2, available: 1 },
        { sku: 'Z', requested: 1, available: 0 },
      ]);
    });
  });

  describe('sourcing strategies', () => {
    // Channel priority order W1, W2, W3 with 3, 8 and 5 available.
    const stock = [
      stockSet('A', 'W1', 3),
      stockSet('A', 'W2', 8),
      stockSet('A', 'W3', 5),
      channelUpserted('web', ['W1', 'W2', 'W3']),
    ];

    it('priority (the default) takes the first location that can fill the line', () => {
      const small = reserve('r1', [line('A', 2)], { channel: 'web' });
      given(stock)
        .when(small, T0)
        .then([heldFor(small, [alloc('A', 'W1', 2)])]);
      const large = reserve('r1', [line('A', 4)], { channel: 'web', strategy: 'priority' });
      given(stock)
        .when(large, T0)
        .then([heldFor(large, [alloc('A', 'W2', 4)])]);
    });

    it('priority never splits a line: no single location can fill it → INSUFFICIENT_STOCK', () => {
      given(stock)
        .when(reserve('r1', [line('A', 9)], { channel: 'web', strategy: 'priority' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 9, available: 16 }] });
    });

    it('most_available takes the location with the most available', () => {
      const cmd = reserve('r1', [line('A', 2)], { channel: 'web', strategy: 'most_available' });
      given(stock)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W2', 2)])]);
    });

    it('most_available re-evaluates after each line of a bundle', () => {
      const cmd = reserve('r1', [line('A', 4), line('A', 4)], { channel: 'web', strategy: 'most_available' });
      // After the first line W2 has 4 left and W3 has 5: the second goes to W3.
      given(stock)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W2', 4), alloc('A', 'W3', 4)])]);
    });

    it('split fills from the locations in priority order', () => {
      const cmd = reserve('r1', [line('A', 12)], { channel: 'web', strategy: 'split' });
      given(stock)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 3), alloc('A', 'W2', 8), alloc('A', 'W3', 1)])]);
    });

    it('split of more than the total is INSUFFICIENT_STOCK', () => {
      given(stock)
        .when(reserve('r1', [line('A', 17)], { channel: 'web', strategy: 'split' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 17, available: 16 }] });
    });

    it('without a channel the candidates are all the SKU’s locations sorted by name', () => {
      // Created in the order W3, W1, W2: priority still tries W1 first.
      const events = [stockSet('A', 'W3', 5), stockSet('A', 'W1', 3), stockSet('A', 'W2', 8)];
      const cmd = reserve('r1', [line('A', 2)]);
      given(events)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 2)])]);
      const split = reserve('r1', [line('A', 12)], { strategy: 'split' });
      given(events)
        .when(split, T0)
        .then([heldFor(split, [alloc('A', 'W1', 3), alloc('A', 'W2', 8), alloc('A', 'W3', 1)])]);
    });

    it('without a channel there is no buffer: the whole SKU is available', () => {
      const cmd = reserve('r1', [line('A', 16)], { strategy: 'split' });
      given(stock)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W1', 3), alloc('A', 'W2', 8), alloc('A', 'W3', 5)])]);
    });
  });

  describe('explicit locations', () => {
    const stock = [stockSet('A', 'W1', 3), stockSet('A', 'W2', 8), channelUpserted('web', ['W1', 'W2'])];

    it('an explicit location is used whatever the strategy would pick', () => {
      const cmd = reserve('r1', [line('A', 2, 'W2')], { channel: 'web' });
      given(stock)
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W2', 2)])]);
    });

    it('an explicit location without enough is INSUFFICIENT_STOCK, with what that location has', () => {
      given(stock)
        .when(reserve('r1', [line('A', 4, 'W1')], { channel: 'web' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 4, available: 3 }] });
      // Two lines naming the same location are summed against it (the general allocator).
      given(stock)
        .when(reserve('r1', [line('A', 2, 'W1'), line('A', 2, 'W1')], { channel: 'web' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 4, available: 3 }] });
      // Lines of one SKU at different locations: the SKU's ATP is what it could give.
      given(stock)
        .when(reserve('r1', [line('A', 4, 'W1'), line('A', 1, 'W2')], { channel: 'web' }), T0)
        .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 5, available: 11 }] });
    });

    it('a location not in the channel is LOCATION_NOT_IN_CHANNEL', () => {
      given([...stock, stockSet('A', 'W9', 50)])
        .when(reserve('r1', [line('A', 1, 'W9')], { channel: 'web' }), T0)
        .thenRejects('LOCATION_NOT_IN_CHANNEL');
    });

    it('a location not in the channel is LOCATION_NOT_IN_CHANNEL even when the channel is short', () => {
      // The request is malformed whatever the stock: its answer should not depend on the stock level.
      given([stockSet('A', 'W1', 0), stockSet('A', 'W9', 50), channelUpserted('web', ['W1'])])
        .when(reserve('r1', [line('A', 1, 'W9')], { channel: 'web' }), T0)
        .thenRejects('LOCATION_NOT_IN_CHANNEL');
    });

    it('without a channel, any location of the SKU may be named', () => {
      const cmd = reserve('r1', [line('A', 1, 'W9')]);
      given([...stock, stockSet('A', 'W9', 50)])
        .when(cmd, T0)
        .then([heldFor(cmd, [alloc('A', 'W9', 1)])]);
    });
  });

  it('an unknown channel is UNKNOWN_CHANNEL', () => {
    given([stockSet('A', 'W1', 10)])
      .when(reserve('r1', [line('A', 1)], { channel: 'nope' }), T0)
      .thenRejects('UNKNOWN_CHANNEL');
  });

  it('safety stock reduces what can be reserved', () => {
    const ok = reserve('r1', [line('A', 6)]);
    given([stockSet('A', 'W1', 10, { safetyStock: 4 })])
      .when(ok, T0)
      .then([heldFor(ok, [alloc('A', 'W1', 6)])]);
    given([stockSet('A', 'W1', 10), safetySet('A', 'W1', 4)])
      .when(reserve('r1', [line('A', 7)]), T0)
      .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 7, available: 6 }] });
  });

  it('stock held by other reservations is not available', () => {
    given([stockSet('A', 'W1', 10), held('r0', [alloc('A', 'W1', 4)])])
      .when(reserve('r1', [line('A', 7)]), T0)
      .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'A', requested: 7, available: 6 }] });
  });

  it('stock released by a reservation is available again', () => {
    const cmd = reserve('r1', [line('A', 10)]);
    given([stockSet('A', 'W1', 10), held('r0', [alloc('A', 'W1', 4)]), releasedEv('r0')])
      .when(cmd, T0)
      .then([heldFor(cmd, [alloc('A', 'W1', 10)])]);
  });

  describe('idempotency', () => {
    const cmd = reserve('r1', [line('A', 3)], { orderId: 'o1' });
    const history = [stockSet('A', 'W1', 10), heldFor(cmd, [alloc('A', 'W1', 3)])];

    it('repeating the same reserve is replayed', () => {
      const { state } = given(history)
        .when(cmd, T0 + SECOND)
        .thenReplays();
      expect(state.record('A', 'W1')!.reserved).toBe(3);
    });

    it('repeating it after the reservation finished is still replayed', () => {
      given([...history, releasedEv('r1', T0 + SECOND)])
        .when(cmd, T0 + 2 * SECOND)
        .thenReplays();
    });

    it('the same id with a different body is IDEMPOTENCY_KEY_REUSED', () => {
      given(history)
        .when(reserve('r1', [line('A', 4)], { orderId: 'o1' }), T0)
        .thenRejects('IDEMPOTENCY_KEY_REUSED');
      given(history)
        .when(reserve('r1', [line('A', 3)], { orderId: 'o2' }), T0)
        .thenRejects('IDEMPOTENCY_KEY_REUSED');
    });

    describe('a reservation a crash cut in half (parts now on one shard after a change of shard count)', () => {
      const whole = reserve('r9', [line('A', 2), line('B', 1)], { orderId: 'o9' });
      // Only A's part was held before the crash; B's shard never got its part.
      const cut = { ...heldFor(whole, [alloc('A', 'W1', 2)]), bodyHash: reserveBodyHash(whole) };
      const stock = [stockSet('A', 'W1', 10), stockSet('B', 'W1', 10)];

      it('the retry holds the missing lines, keeps the expiry, and replays', () => {
        const { state } = given([...stock, cut])
          .when(whole, T0 + 5 * SECOND)
          .thenReplaysWith([{ ...cut, at: T0 + 5 * SECOND, lines: [alloc('B', 'W1', 1)] }]);
        expect(state.reservations.get('r9')).toMatchObject({
          status: 'held',
          expiresAt: cut.expiresAt,
          lines: [
            { sku: 'A', qty: 2, held: 2 },
            { sku: 'B', qty: 1, held: 1 },
          ],
        });
        expect(state.record('B', 'W1')).toMatchObject({ reserved: 1 });
      });

      it('a retry without the stock for the missing lines is INSUFFICIENT_STOCK and aborts the part held so far', () => {
        // Refused for good, the client will not retry: A's units must not stay held until expiry.
        const { state } = given([stockSet('A', 'W1', 10), stockSet('B', 'W1', 0), cut])
          .when(whole, T0 + SECOND)
          .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'B', requested: 1, available: 0 }] }, [
            { type: 'ReservationAborted', at: T0 + SECOND, reservationId: 'r9' },
          ]);
        expect(state.reservations.has('r9')).toBe(false);
        expect(state.record('A', 'W1')).toMatchObject({ reserved: 0 });
      });

      it('a refused retry leaves a part alone once one of its lines was committed', () => {
        const three = reserve('r8', [line('A', 2), line('C', 1), line('B', 1)]);
        const cutOfThree = {
          ...heldFor(three, [alloc('A', 'W1', 2), alloc('C', 'W1', 1)]),
          bodyHash: reserveBodyHash(three),
        };
        const { state } = given([
          stockSet('A', 'W1', 10),
          stockSet('B', 'W1', 0),
          stockSet('C', 'W1', 10),
          cutOfThree,
          committed('r8', [cline('A', 'W1', 2, 0, 2)], T0 + SECOND),
        ])
          .when(three, T0 + 2 * SECOND)
          .thenRejects('INSUFFICIENT_STOCK', { shortages: [{ sku: 'B', requested: 1, available: 0 }] });
        expect(state.reservations.get('r8')).toMatchObject({ status: 'held' });
        expect(state.record('C', 'W1')).toMatchObject({ reserved: 1 });
      });

      it('once finished it is only replayed: a settled reservation never holds again', () => {
        given([...stock, cut, releasedEv('r9', T0 + SECOND)])
          .when(whole, T0 + 2 * SECOND)
          .thenReplays();
      });
    });

    it('a given bodyHash (a cross-shard part) is what is compared', () => {
      const part = reserve('r1', [line('A', 3)], { bodyHash: 42 });
      given([stockSet('A', 'W1', 10), heldFor(part, [alloc('A', 'W1', 3)])])
        .when(part, T0)
        .thenReplays();
      given([stockSet('A', 'W1', 10), heldFor(part, [alloc('A', 'W1', 3)])])
        .when({ ...part, bodyHash: 43 }, T0)
        .thenRejects('IDEMPOTENCY_KEY_REUSED');
    });
  });

  it.each([
    ['0', 0],
    ['above ttlSecondsMax', defaultLimits.ttlSecondsMax + 1],
    ['fractional', 1.5],
  ])('ttlSeconds %s is INVALID_TTL', (_name, ttlSeconds) => {
    given([stockSet('A', 'W1', 10)])
      .when(reserve('r1', [line('A', 1)], { ttlSeconds }), T0)
      .thenRejects('INVALID_TTL');
  });

  it('more than reservationLinesMax lines is LIMIT_EXCEEDED', () => {
    const lines = Array.from({ length: defaultLimits.reservationLinesMax + 1 }, () => line('A', 1));
    given([stockSet('A', 'W1', 1_000)])
      .when(reserve('r1', lines), T0)
      .thenRejects('LIMIT_EXCEEDED');
  });

  it.each([
    ['0', 0],
    ['negative', -1],
    ['fractional', 0.5],
    ['above quantityMax', defaultLimits.quantityMax + 1],
  ])('qty %s is INVALID_QUANTITY', (_name, qty) => {
    given([stockSet('A', 'W1', 10)])
      .when(reserve('r1', [line('A', 1), line('B', qty)]), T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it.each([
    ['empty reservationId', reserve('', [line('A', 1)])],
    ['no lines', reserve('r1', [])],
    ['empty sku', reserve('r1', [line('', 1)])],
    ['empty location', reserve('r1', [line('A', 1, '')])],
    ['empty orderId', reserve('r1', [line('A', 1)], { orderId: '' })],
    ['unknown strategy', reserve('r1', [line('A', 1)], { strategy: 'cheapest' as never })],
  ])('%s is INVALID_REQUEST', (_name, cmd) => {
    given([stockSet('A', 'W1', 10)])
      .when(cmd, T0)
      .thenRejects('INVALID_REQUEST');
  });
});

/* ---------------------------------------------------------------------------- commit */

describe('commit', () => {
  const base = [stockSet('A', 'W1', 10), stockSet('B', 'W2', 5)];
  const r1 = held('r1', [alloc('A', 'W1', 3), alloc('B', 'W2', 2)]);

  it('commits every held line: onHand and reserved fall', () => {
    const { state } = given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1' }, T0 + SECOND)
      .then([committed('r1', [cline('A', 'W1', 3, 0, 3), cline('B', 'W2', 2, 0, 2)], T0 + SECOND)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 7, reserved: 0 });
    expect(state.record('B', 'W2')).toMatchObject({ onHand: 3, reserved: 0 });
    expect(state.reservations.get('r1')).toMatchObject({ status: 'committed' });
    expect(state.heldCount).toBe(0);
  });

  it('commits one line: the other stays held and the reservation stays held', () => {
    const { state } = given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A' }] }, T0)
      .then([committed('r1', [cline('A', 'W1', 3, 0, 3)])]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 7, reserved: 0 });
    expect(state.record('B', 'W2')).toMatchObject({ onHand: 5, reserved: 2 });
    const reservation = state.reservations.get('r1')!;
    expect(reservation.status).toBe('held');
    expect(reservation.lines.map((l) => [l.held, l.committed])).toEqual([
      [0, 3],
      [2, 0],
    ]);
  });

  it('committing the remaining lines after a partial commit finishes it', () => {
    const { state } = given([...base, r1, committed('r1', [cline('A', 'W1', 3, 0, 3)])])
      .when({ type: 'commit', reservationId: 'r1' }, T0)
      .then([committed('r1', [cline('B', 'W2', 2, 0, 2)])]);
    expect(state.reservations.get('r1')!.status).toBe('committed');
  });

  it('a line named with its location commits only that line', () => {
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'B', location: 'W2' }] }, T0)
      .then([committed('r1', [cline('B', 'W2', 2, 0, 2)])]);
  });

  it('a qty smaller than held ships that many and releases the rest', () => {
    const { state } = given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A', qty: 1 }] }, T0)
      .then([committed('r1', [cline('A', 'W1', 1, 2, 1)])]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 9, reserved: 0 });
    expect(state.reservations.get('r1')!.lines[0]).toMatchObject({ qty: 3, held: 0, committed: 1 });
    expect(state.reservations.get('r1')!.status).toBe('held');
  });

  it('a qty over a SKU split across locations fills the lines in order', () => {
    const split = held('r2', [alloc('A', 'W1', 5), alloc('A', 'W2', 5)]);
    const { state } = given([stockSet('A', 'W1', 5), stockSet('A', 'W2', 5), split])
      .when({ type: 'commit', reservationId: 'r2', lines: [{ sku: 'A', qty: 7 }] }, T0)
      .then([committed('r2', [cline('A', 'W1', 5, 0, 5), cline('A', 'W2', 2, 3, 2)])]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 0, reserved: 0 });
    expect(state.record('A', 'W2')).toMatchObject({ onHand: 3, reserved: 0 });
    expect(state.reservations.get('r2')!.status).toBe('committed');
  });

  it('a commit check decides like the commit but changes nothing', () => {
    const { state } = given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A', qty: 1 }], check: true }, T0)
      .then([]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, reserved: 3 });
    expect(state.reservations.get('r1')!.lines[0]).toMatchObject({ held: 3, committed: 0 });
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A', qty: 4 }], check: true }, T0)
      .thenRejects('INVALID_QUANTITY');
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'Z' }], check: true }, T0)
      .thenRejects('INVALID_REQUEST', { detail: 'reservation r1 has no line Z' });
  });

  it('a repeated commit is replayed', () => {
    given([...base, r1, committed('r1', [cline('A', 'W1', 3, 0, 3), cline('B', 'W2', 2, 0, 2)])])
      .when({ type: 'commit', reservationId: 'r1' }, T0)
      .thenReplays();
  });

  it('repeating a partial commit of a settled line is replayed', () => {
    given([...base, r1, committed('r1', [cline('A', 'W1', 3, 0, 3)])])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A' }] }, T0)
      .thenReplays();
  });

  it('commit after release is RESERVATION_NOT_HELD', () => {
    given([...base, r1, releasedEv('r1')])
      .when({ type: 'commit', reservationId: 'r1' }, T0)
      .thenRejects('RESERVATION_NOT_HELD');
  });

  it('commit after expiry is RESERVATION_NOT_HELD', () => {
    given([...base, r1, expiredEv('r1', T0 + ttlDefaultMs)])
      .when({ type: 'commit', reservationId: 'r1' }, T0 + ttlDefaultMs + 1)
      .thenRejects('RESERVATION_NOT_HELD');
  });

  it('commit of an unknown id is RESERVATION_NOT_FOUND', () => {
    given(base).when({ type: 'commit', reservationId: 'nope' }, T0).thenRejects('RESERVATION_NOT_FOUND');
  });

  it('commit of an empty id is INVALID_REQUEST', () => {
    given(base).when({ type: 'commit', reservationId: '' }, T0).thenRejects('INVALID_REQUEST');
  });

  it.each([
    ['at', 0],
    ['after', 1],
  ])('commit %s expiresAt expires the reservation and is RESERVATION_NOT_HELD', (_name, late) => {
    const now = T0 + ttlDefaultMs + late;
    const { state } = given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1' }, now)
      .thenRejects('RESERVATION_NOT_HELD', {}, [expiredEv('r1', now)]);
    expect(state.reservations.get('r1')!.status).toBe('expired');
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, reserved: 0 });
  });

  it('commit just before expiresAt is accepted', () => {
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1' }, T0 + ttlDefaultMs - 1)
      .then([committed('r1', [cline('A', 'W1', 3, 0, 3), cline('B', 'W2', 2, 0, 2)], T0 + ttlDefaultMs - 1)]);
  });

  it('when onHand was set below the held qty, onHandDecrease clamps so onHand stays >= 0', () => {
    const { state } = given([
      stockSet('A', 'W1', 10),
      held('r1', [alloc('A', 'W1', 5)]),
      stockSet('A', 'W1', 3),
    ])
      .when({ type: 'commit', reservationId: 'r1' }, T0)
      .then([committed('r1', [cline('A', 'W1', 5, 0, 3)])]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 0, reserved: 0 });
  });

  it('a qty above what is held is INVALID_QUANTITY', () => {
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A', qty: 4 }] }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it.each([-1, 1.5])('a qty of %s is INVALID_QUANTITY', (qty) => {
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A', qty }] }, T0)
      .thenRejects('INVALID_QUANTITY');
  });

  it('a SKU the reservation does not hold is INVALID_REQUEST', () => {
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'C' }] }, T0)
      .thenRejects('INVALID_REQUEST');
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A', location: 'W2' }] }, T0)
      .thenRejects('INVALID_REQUEST');
  });

  it('a line named twice is INVALID_REQUEST', () => {
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A' }, { sku: 'A' }] }, T0)
      .thenRejects('INVALID_REQUEST');
  });

  it('a line named twice, once by SKU and once by SKU and location, is INVALID_REQUEST', () => {
    // Both entries match line 0: committing it twice in one event breaks evolve's invariant.
    given([...base, r1])
      .when({ type: 'commit', reservationId: 'r1', lines: [{ sku: 'A' }, { sku: 'A', location: 'W1' }] }, T0)
      .thenRejects('INVALID_REQUEST');
  });
});

/* --------------------------------------------------------------------------- release */

describe('release', () => {
  const base = [stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 4)])];

  it('releases a held reservation: its stock is available again', () => {
    const { state } = given(base)
      .when({ type: 'release', reservationId: 'r1' }, T0 + SECOND)
      .then([releasedEv('r1', T0 + SECOND)]);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, reserved: 0 });
    expect(state.reservations.get('r1')).toMatchObject({ status: 'released', finishedAt: T0 + SECOND });
  });

  it('releases what is left held after a partial commit', () => {
    const r2 = held('r2', [alloc('A', 'W1', 2), alloc('B', 'W1', 2)]);
    const { state } = given([
      ...base,
      stockSet('B', 'W1', 2),
      r2,
      committed('r2', [cline('A', 'W1', 2, 0, 2)]),
    ])
      .when({ type: 'release', reservationId: 'r2' }, T0)
      .then([releasedEv('r2')]);
    expect(state.record('B', 'W1')).toMatchObject({ onHand: 2, reserved: 0 });
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 8, reserved: 4 });
  });

  it('a repeated release is replayed', () => {
    given([...base, releasedEv('r1')])
      .when({ type: 'release', reservationId: 'r1' }, T0)
      .thenReplays();
  });

  it('release of a committed or expired reservation is RESERVATION_NOT_HELD', () => {
    given([...base, committed('r1', [cline('A', 'W1', 4, 0, 4)])])
      .when({ type: 'release', reservationId: 'r1' }, T0)
      .thenRejects('RESERVATION_NOT_HELD');
    given([...base, expiredEv('r1')])
      .when({ type: 'release', reservationId: 'r1' }, T0)
      .thenRejects('RESERVATION_NOT_HELD');
  });

  it('release of a due reservation expires it and is RESERVATION_NOT_HELD', () => {
    const now = T0 + ttlDefaultMs;
    given(base)
      .when({ type: 'release', reservationId: 'r1' }, now)
      .thenRejects('RESERVATION_NOT_HELD', {}, [expiredEv('r1', now)]);
  });

  it('release of an unknown id is RESERVATION_NOT_FOUND', () => {
    given(base).when({ type: 'release', reservationId: 'nope' }, T0).thenRejects('RESERVATION_NOT_FOUND');
  });
});

/* ---------------------------------------------------------------------------- extend */

describe('extend', () => {
  const base = [stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 4)])];

  it('sets expiresAt to now + ttlSeconds', () => {
    const now = T0 + 10 * SECOND;
    const { state } = given(base)
      .when({ type: 'extend', reservationId: 'r1', ttlSeconds: 3_600 }, now)
      .then([extendedEv('r1', now + 3_600 * SECOND, now)]);
    expect(state.reservations.get('r1')).toMatchObject({ status: 'held', expiresAt: now + 3_600 * SECOND });
  });

  it('may also shorten the hold', () => {
    given(base)
      .when({ type: 'extend', reservationId: 'r1', ttlSeconds: 1 }, T0)
      .then([extendedEv('r1', T0 + SECOND)]);
  });

  it('extend of a released or committed reservation is RESERVATION_NOT_HELD', () => {
    given([...base, releasedEv('r1')])
      .when({ type: 'extend', reservationId: 'r1', ttlSeconds: 60 }, T0)
      .thenRejects('RESERVATION_NOT_HELD');
    given([...base, committed('r1', [cline('A', 'W1', 4, 0, 4)])])
      .when({ type: 'extend', reservationId: 'r1', ttlSeconds: 60 }, T0)
      .thenRejects('RESERVATION_NOT_HELD');
  });

  it('extend of a due reservation expires it and is RESERVATION_NOT_HELD', () => {
    const now = T0 + ttlDefaultMs;
    given(base)
      .when({ type: 'extend', reservationId: 'r1', ttlSeconds: 60 }, now)
      .thenRejects('RESERVATION_NOT_HELD', {}, [expiredEv('r1', now)]);
  });

  it('extend of an unknown id is RESERVATION_NOT_FOUND', () => {
    given(base)
      .when({ type: 'extend', reservationId: 'nope', ttlSeconds: 60 }, T0)
      .thenRejects('RESERVATION_NOT_FOUND');
  });

  it.each([0, defaultLimits.ttlSecondsMax + 1, 2.5])('ttlSeconds %s is INVALID_TTL', (ttlSeconds) => {
    given(base).when({ type: 'extend', reservationId: 'r1', ttlSeconds }, T0).thenRejects('INVALID_TTL');
  });
});

/* ----------------------------------------------------------------------------- abort */

describe('abort', () => {
  const base = [stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 4)])];

  it('aborts a held part and forgets it', () => {
    const { state } = given(base)
      .when({ type: 'abort', reservationId: 'r1' }, T0)
      .then([abortedEv('r1')]);
    expect(state.reservations.has('r1')).toBe(false);
    expect(state.record('A', 'W1')).toMatchObject({ onHand: 10, reserved: 0 });
    expect(state.heldCount).toBe(0);
  });

  it('a retry with the same id after an abort is evaluated afresh', () => {
    const retry = reserve('r1', [line('A', 9)]);
    given([...base, abortedEv('r1')])
      .when(retry, T0 + SECOND)
      .then([heldFor(retry, [alloc('A', 'W1', 9)], T0 + SECOND)]);
  });

  it('abort of an id that was never held here is replayed', () => {
    given(base).when({ type: 'abort', reservationId: 'nope' }, T0).thenReplays();
  });

  it('abort of a committed reservation is RESERVATION_NOT_HELD', () => {
    given([...base, committed('r1', [cline('A', 'W1', 4, 0, 4)])])
      .when({ type: 'abort', reservationId: 'r1' }, T0)
      .thenRejects('RESERVATION_NOT_HELD');
  });
});

/* ---------------------------------------------------------------------------- expire */

describe('expire', () => {
  const base = [stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 4)], { ttlSeconds: 60 })];
  const due = T0 + 60 * SECOND;

  it('expires a reservation that is due', () => {
    const { state } = given(base)
      .when({ type: 'expire', reservationId: 'r1' }, due)
      .then([expiredEv('r1', due)]);
    expect(state.reservations.get('r1')!.status).toBe('expired');
    expect(state.record('A', 'W1')!.reserved).toBe(0);
  });

  it('a reservation not yet due is left alone (replayed, no events)', () => {
    given(base)
      .when({ type: 'expire', reservationId: 'r1' }, due - 1)
      .thenReplays();
  });

  it('a stale timer entry after an extend is replayed', () => {
    given([...base, extendedEv('r1', due + 60 * SECOND)])
      .when({ type: 'expire', reservationId: 'r1' }, due)
      .thenReplays();
  });

  it.each([
    ['released', releasedEv('r1')],
    ['committed', committed('r1', [cline('A', 'W1', 4, 0, 4)])],
    ['aborted (forgotten)', abortedEv('r1')],
  ])('a %s reservation is replayed', (_name, finish) => {
    given([...base, finish])
      .when({ type: 'expire', reservationId: 'r1' }, due)
      .thenReplays();
  });

  it('an unknown id is replayed', () => {
    given(base).when({ type: 'expire', reservationId: 'nope' }, due).thenReplays();
  });
});

/* ------------------------------------------------------------------------- retention */

describe('retention of finished reservations', () => {
  const limits: Limits = { ...defaultLimits, reservationRetentionSeconds: 10 };
  const base = [stockSet('A', 'W1', 10), held('r1', [alloc('A', 'W1', 4)]), releasedEv('r1', T0 + SECOND)];

  it('a finished reservation is remembered inside the retention window', () => {
    const { state } = given([...base, stockSet('A', 'W1', 10, { at: T0 + 11 * SECOND - 1 })], { limits })
      .when({ type: 'release', reservationId: 'r1' }, T0 + 11 * SECOND - 1)
      .thenReplays();
    expect(state.reservations.has('r1')).toBe(true);
  });

  it('is forgotten once reservationRetentionSeconds have passed since it finished', () => {
    const later = T0 + 11 * SECOND;
    const spec = given([...base, stockSet('A', 'W1', 10, { at: later })], { limits });
    expect(spec.state.reservations.has('r1')).toBe(false);
    spec.when({ type: 'release', reservationId: 'r1' }, later).thenRejects('RESERVATION_NOT_FOUND');
  });

  it('a forgotten id can be reserved again with a new body', () => {
    const later = T0 + 11 * SECOND;
    const again = reserve('r1', [line('A', 10)]);
    given([...base, stockSet('A', 'W1', 10, { at: later })], { limits })
      .when(again, later)
      .then([heldFor(again, [alloc('A', 'W1', 10)], later)]);
  });

  it('a held reservation is never forgotten, however old', () => {
    const state = stateFrom(
      [
        stockSet('A', 'W1', 10),
        held('r1', [alloc('A', 'W1', 4)]),
        stockSet('A', 'W1', 10, { at: T0 + 100 * SECOND }),
      ],
      { limits },
    );
    expect(state.reservations.get('r1')?.status).toBe('held');
    expect(invariantViolations(state)).toEqual([]);
  });

  it('an id reused after an abort is not forgotten with the aborted incarnation', () => {
    const state = stateFrom(
      [
        stockSet('A', 'W1', 10),
        held('r1', [alloc('A', 'W1', 4)]),
        abortedEv('r1', T0 + SECOND),
        held('r1', [alloc('A', 'W1', 5)], { at: T0 + 2 * SECOND }),
        releasedEv('r1', T0 + 3 * SECOND),
        stockSet('A', 'W1', 10, { at: T0 + 11 * SECOND }),
      ],
      { limits },
    );
    expect(state.reservations.get('r1')).toMatchObject({ status: 'released', finishedAt: T0 + 3 * SECOND });
    expect(invariantViolations(state)).toEqual([]);
  });

  it('past finishedReservationsMax the oldest finished reservation is forgotten', () => {
    const few: Limits = { ...defaultLimits, finishedReservationsMax: 1 };
    const state = stateFrom(
      [
        stockSet('A', 'W1', 10),
        held('r1', [alloc('A', 'W1', 1)]),
        held('r2', [alloc('A', 'W1', 1)]),
        releasedEv('r1'),
        releasedEv('r2'),
      ],
      { limits: few },
    );
    expect([...state.reservations.keys()]).toEqual(['r2']);
  });
});

/* ------------------------------------------------------------------------- ShardCore */

describe('ShardCore.process', () => {
  it('decides a batch in order: each command sees the effects of the ones before it', () => {
    const core = new ShardCore(defaultLimits);
    const first = reserve('r1', [line('A', 3)]);
    const result = core.process(
      [
        { type: 'set', sku: 'A', location: 'W1', onHand: 5 },
        first,
        reserve('r2', [line('A', 3)]),
        { type: 'commit', reservationId: 'r1' },
        { type: 'stock', sku: 'A' },
      ],
      T0,
    );
    expect(result.expiredCount).toBe(0);
    expect(result.events).toEqual([
      stockSet('A', 'W1', 5),
      heldFor(first, [alloc('A', 'W1', 3)]),
      committed('r1', [cline('A', 'W1', 3, 0, 3)]),
    ]);
    expect(result.replies[0]).toMatchObject({ ok: true, kind: 'stock', record: { onHand: 5, version: 1 } });
    expect(result.replies[1]).toMatchObject({ ok: true, kind: 'reservation', replayed: false });
    expect(result.replies[2]).toMatchObject({
      ok: false,
      code: 'INSUFFICIENT_STOCK',
      shortages: [{ sku: 'A', requested: 3, available: 2 }],
    });
    expect(result.replies[3]).toMatchObject({ ok: true, reservation: { status: 'committed' } });
    expect(result.replies[4]).toMatchObject({
      ok: true,
      kind: 'stockList',
      locations: [{ location: 'W1', onHand: 2, reserved: 0, available: 2 }],
    });
    expect(invariantViolations(core.state)).toEqual([]);
  });

  it('expires due reservations at the start of a batch, before its commands', () => {
    const core = new ShardCore(defaultLimits);
    const r1 = reserve('r1', [line('A', 5)], { ttlSeconds: 10 });
    core.process([{ type: 'set', sku: 'A', location: 'W1', onHand: 5 }, r1], T0);
    expect(core.nextExpiryAt()).toBe(T0 + 10 * SECOND);

    const r2 = reserve('r2', [line('A', 5)]);
    const now = T0 + 10 * SECOND;
    const result = core.process([r2, { type: 'get', reservationId: 'r1' }], now);
    expect(result.expiredCount).toBe(1);
    expect(result.events).toEqual([expiredEv('r1', now), heldFor(r2, [alloc('A', 'W1', 5)], now)]);
    expect(result.replies[0]).toMatchObject({
      ok: true,
      kind: 'reservation',
      reservation: { status: 'held' },
    });
    expect(result.replies[1]).toMatchObject({
      ok: true,
      reservation: { reservationId: 'r1', status: 'expired' },
    });
    expect(invariantViolations(core.state)).toEqual([]);
  });

  it('does not expire what is not due, and skips timer entries made stale by an extend', () => {
    const core = new ShardCore(defaultLimits);
    core.process(
      [
        { type: 'set', sku: 'A', location: 'W1', onHand: 5 },
        reserve('r1', [line('A', 5)], { ttlSeconds: 10 }),
      ],
      T0,
    );
    const early = core.process([{ type: 'extend', reservationId: 'r1', ttlSeconds: 60 }], T0 + 9 * SECOND);
    expect(early.expiredCount).toBe(0);
    const stale = core.process([], T0 + 10 * SECOND);
    expect(stale).toEqual({ events: [], replies: [], expiredCount: 0 });
    const due = core.process([], T0 + 69 * SECOND);
    expect(due.events).toEqual([expiredEv('r1', T0 + 69 * SECOND)]);
    expect(invariantViolations(core.state)).toEqual([]);
  });

  it('replays of commands in a batch are answered as replays', () => {
    const core = new ShardCore(defaultLimits);
    const cmd = reserve('r1', [line('A', 1)]);
    const result = core.process([{ type: 'set', sku: 'A', location: 'W1', onHand: 5 }, cmd, cmd], T0);
    expect(result.events).toHaveLength(2);
    expect(result.replies[1]).toMatchObject({ ok: true, replayed: false });
    expect(result.replies[2]).toMatchObject({ ok: true, replayed: true });
  });
});

/* ------------------------------------------------------------------- spec self-check */

describe('the given/when/then helper', () => {
  it('given evolves the events in order', () => {
    const events: DomainEvent[] = [stockSet('A', 'W1', 10), adjusted('A', 'W1', -4, 'k1')];
    expect(given(events).state.record('A', 'W1')).toMatchObject({ onHand: 6, version: 2 });
  });
});
