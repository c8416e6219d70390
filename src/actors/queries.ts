/** Read-side answers and the replies of accepted commands, computed from the state. Pure. */
import { type Rejection, reject } from '../errors.js';
import { candidateLocations, type Decision, skuAtp } from './decide.js';
import { availableOf, type Reservation, type ShardState, viewOf } from './state.js';
import type { Command, EpochMs, Query, Reply, ReservationLineView, ReservationView } from './types.js';
import { isValidId } from './validate.js';

export function reservationView(reservation: Reservation): ReservationView {
  return {
    reservationId: reservation.id,
    orderId: reservation.orderId,
    channel: reservation.channel,
    status: reservation.status === 'aborted' ? 'released' : reservation.status,
    createdAt: reservation.createdAt,
    expiresAt: reservation.expiresAt,
    finishedAt: reservation.finishedAt,
    extensions: reservation.extensions,
    lines: reservation.lines.map((line) => ({
      sku: line.sku,
      location: line.location,
      qty: line.qty,
      held: line.held,
      committed: line.committed,
    })),
  };
}

/**
 * A reservation reply in the compact form a shard worker sends it (a flat array; it packs
 * about three times faster than the nested objects, and is built without them):
 *
 *   [1, replayed, reservationId, orderId, channel, status, createdAt, expiresAt,
 *    finishedAt, extensions, (sku, location, qty, held, committed)…]
 *
 * `replyOfTuple` turns it back into the Reply that `replyTo` would have given.
 */
export type ReservationReplyTuple = readonly unknown[] & { readonly __tuple: 'reservation-reply' };

const TUPLE_RESERVATION = 1;
const TUPLE_HEAD = 10;
const TUPLE_LINE = 5;

/** `id` is the reservation's id as the command gave it (the table would have to rebuild its string). */
export function reservationReplyTuple(
  reservation: Reservation,
  id: string,
  replayed: boolean,
): ReservationReplyTuple {
  const t: unknown[] = new Array(TUPLE_HEAD + TUPLE_LINE * reservation.lineCount);
  t[0] = TUPLE_RESERVATION;
  t[1] = replayed;
  t[2] = id;
  t[3] = reservation.orderId;
  t[4] = reservation.channel;
  t[5] = reservation.status === 'aborted' ? 'released' : reservation.status;
  t[6] = reservation.createdAt;
  t[7] = reservation.expiresAt;
  t[8] = reservation.finishedAt;
  t[9] = reservation.extensions;
  reservation.writeLineFields(t, TUPLE_HEAD);
  return t as unknown as ReservationReplyTuple;
}

// biome-ignore lint/suspicious/noExplicitAny: a tuple written by reservationReplyTuple, checked by its length
export function replyOfTuple(t: any[]): Reply {
  if (t[0] !== TUPLE_RESERVATION || t.length < TUPLE_HEAD || (t.length - TUPLE_HEAD) % TUPLE_LINE !== 0)
    throw new Error(`malformed reply tuple (${t.length} fields, kind ${t[0]})`);
  const lines: ReservationLineView[] = new Array((t.length - TUPLE_HEAD) / TUPLE_LINE);
  for (let i = 0, j = TUPLE_HEAD; i < lines.length; i++, j += TUPLE_LINE)
    lines[i] = { sku: t[j], location: t[j + 1], qty: t[j + 2], held: t[j + 3], committed: t[j + 4] };
  const reservation: ReservationView = {
    reservationId: t[2],
    orderId: t[3],
    channel: t[4],
    status: t[5],
    createdAt: t[6],
    expiresAt: t[7],
    finishedAt: t[8],
    extensions: t[9],
    lines,
  };
  return { ok: true, kind: 'reservation', reservation, replayed: t[1] };
}

export function answer(state: ShardState, query: Query, _now: EpochMs): Reply {
  const limits = state.limits;
  switch (query.type) {
    case 'stock': {
      if (!isValidId(query.sku, limits)) return reject('INVALID_REQUEST', 'sku must be 1..128 bytes');
      const records = state.recordsOf(query.sku);
      if (records.length === 0) return reject('STOCK_NOT_FOUND', `no stock recorded for ${query.sku}`);
      return {
        ok: true,
        kind: 'stockList',
        sku: query.sku,
        locations: records.map((r) => viewOf(query.sku, r)),
      };
    }
    case 'atp':
      return atp(state, query.sku, query.channel, query.location);
    case 'get': {
      if (!isValidId(query.reservationId, limits))
        return reject('INVALID_REQUEST', 'reservationId must be 1..128 bytes');
      const reservation = state.reservations.get(query.reservationId);
      if (reservation === undefined)
        return reject('RESERVATION_NOT_FOUND', `no reservation ${query.reservationId}`);
      return { ok: true, kind: 'reservation', reservation: reservationView(reservation), replayed: false };
    }
    case 'channels':
      return {
        ok: true,
        kind: 'channels',
        channels: [...state.channels.values()].map((c) => ({
          channel: c.channel,
          locations: c.locations,
          buffer: c.buffer,
        })),
      };
    default: {
      const unknown: never = query;
      return reject('INVALID_REQUEST', `unknown query ${JSON.stringify(unknown)}`);
    }
  }
}

function atp(state: ShardState, sku: string, channelId?: string, location?: string): Reply | Rejection {
  const limits = state.limits;
  if (!isValidId(sku, limits)) return reject('INVALID_REQUEST', 'sku must be 1..128 bytes');
  if (location !== undefined && !isValidId(location, limits)) {
    return reject('INVALID_REQUEST', 'location must be 1..128 bytes');
  }
  const channel = channelId === undefined ? undefined : state.channels.get(channelId);
  if (channelId !== undefined && channel === undefined) {
    return reject('UNKNOWN_CHANNEL', `channel ${channelId} is not configured`);
  }
  const byLocation: Record<string, number> = {};
  if (location !== undefined) {
    if (channel !== undefined && !channel.locations.includes(location)) {
      return reject('LOCATION_NOT_IN_CHANNEL', `location ${location} is not in channel ${channelId}`);
    }
    const record = state.record(sku, location);
    const available = record === undefined ? 0 : availableOf(record);
    byLocation[location] = available;
    return { ok: true, kind: 'atp', sku, available, byLocation };
  }
  for (const loc of candidateLocations(state, sku, channel)) {
    const record = state.record(sku, loc);
    byLocation[loc] = record === undefined ? 0 : availableOf(record);
  }
  return { ok: true, kind: 'atp', sku, available: skuAtp(state, sku, channel), byLocation };
}

/**
 * The reply to a command whose decision's events have already been evolved into `state`.
 * With `compact`, a reservation's reply is its tuple (reservationReplyTuple).
 */
export function replyTo(state: ShardState, command: Command, decision: Decision): Reply;
export function replyTo(
  state: ShardState,
  command: Command,
  decision: Decision,
  compact: boolean,
): Reply | ReservationReplyTuple;
export function replyTo(
  state: ShardState,
  command: Command,
  decision: Decision,
  compact = false,
): Reply | ReservationReplyTuple {
  if (decision.rejection !== null) return decision.rejection;
  switch (command.type) {
    case 'set':
    case 'adjust':
    case 'safety': {
      const record = state.record(command.sku, command.location)!;
      return command.type === 'adjust'
        ? { ok: true, kind: 'stock', record: viewOf(command.sku, record), duplicate: decision.replayed }
        : { ok: true, kind: 'stock', record: viewOf(command.sku, record) };
    }
    case 'channel': {
      const channel = state.channels.get(command.channel)!;
      return { ok: true, kind: 'channel', channel: { ...channel } };
    }
    case 'reserve':
    case 'commit':
    case 'release':
    case 'extend':
    case 'abort':
    case 'expire': {
      const reservation = state.reservations.get(command.reservationId);
      if (reservation === undefined) {
        // Aborted (forgotten at once) or never here: the part is gone.
        return reject('RESERVATION_NOT_FOUND', `no reservation ${command.reservationId}`);
      }
      if (compact) return reservationReplyTuple(reservation, command.reservationId, decision.replayed);
      return {
        ok: true,
        kind: 'reservation',
        reservation: reservationView(reservation),
        replayed: decision.replayed,
      };
    }
    default: {
      const unknown: never = command;
      return reject('INVALID_REQUEST', `unknown command ${JSON.stringify(unknown)}`);
    }
  }
}
