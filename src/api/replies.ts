/**
 * The engine's replies as the contract's bodies. One function per shape, shared by the
 * single routes and /v1/batch, so a command answers the same either way.
 */
import type { ChannelView, Reply, ReservationView, StockView } from '../actors/types.js';

export interface StockBody {
  sku: string;
  location: string;
  onHand: number;
  reserved: number;
  safetyStock: number;
  available: number;
  version: number;
}

export function stockBody(view: StockView): StockBody {
  return {
    sku: view.sku,
    location: view.location,
    onHand: view.onHand,
    reserved: view.reserved,
    safetyStock: view.safetyStock,
    available: view.available,
    version: view.version,
  };
}

export function stockOfSkuBody(sku: string, views: readonly StockView[]) {
  let onHand = 0;
  let reserved = 0;
  let available = 0;
  const locations = views.map((view) => {
    onHand += view.onHand;
    reserved += view.reserved;
    available += view.available;
    return {
      location: view.location,
      onHand: view.onHand,
      reserved: view.reserved,
      safetyStock: view.safetyStock,
      available: view.available,
      version: view.version,
    };
  });
  return { sku, locations, totals: { onHand, reserved, available } };
}

export function channelBody(view: ChannelView) {
  return { channel: view.channel, locations: [...view.locations], buffer: view.buffer };
}

/** The body of POST /v1/reservations: what was held, where. */
export function reservationCreatedBody(view: ReservationView) {
  return {
    reservationId: view.reservationId,
    status: view.status,
    expiresAt: view.expiresAt,
    lines: view.lines.map((line) => ({ sku: line.sku, location: line.location, qty: line.qty })),
  };
}

/** The full view: GET, commit, release, extend. */
export function reservationBody(view: ReservationView) {
  return {
    reservationId: view.reservationId,
    orderId: view.orderId,
    channel: view.channel,
    status: view.status,
    createdAt: view.createdAt,
    expiresAt: view.expiresAt,
    lines: view.lines.map((line) => ({
      sku: line.sku,
      location: line.location,
      qty: line.qty,
      held: line.held,
      committed: line.committed,
    })),
  };
}

/** A reply of a kind the route did not ask for: an engine bug, answered 500 and logged. */
export function unexpectedReply(reply: Reply, wanted: string): Error {
  return new Error(`engine answered ${reply.ok ? reply.kind : reply.code} where ${wanted} was expected`);
}
