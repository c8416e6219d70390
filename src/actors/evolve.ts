/**
 * evolve(state, event): applies one event. Deterministic: the same events in the same
 * order give the same state, whatever the clock says (time comes from `event.at`).
 *
 * When a shard recovers under a different shard count it reads events written by other
 * layouts; `state.owns` filters them to the SKUs it now owns, line by line.
 *
 * For speed the state is mutated in place (the actor is the only writer); it is returned
 * so the signature reads as the fold it is.
 */
import { invariant } from '../errors.js';
import { ownString } from './columns.js';
import { reservationTransitions } from './reservation-machine.js';
import type { LineInit, Reservation, ShardState } from './state.js';
import type { DomainEvent } from './types.js';

export function evolve(state: ShardState, event: DomainEvent): ShardState {
  switch (event.type) {
    case 'StockSet': {
      if (!state.owns(event.sku)) break;
      const record = state.recordOrCreate(event.sku, event.location);
      record.onHand = event.onHand;
      record.safetyStock = event.safetyStock;
      record.sourceTs = event.sourceTs;
      record.version++;
      break;
    }
    case 'StockAdjusted': {
      if (!state.owns(event.sku)) break;
      const record = state.recordOrCreate(event.sku, event.location);
      record.onHand += event.delta;
      record.version++;
      invariant(record.onHand >= 0, () => `onHand < 0 on ${event.sku}@${event.location}`);
      // The window keeps the record's strings and a copy of the key, not the event's.
      state.adjustmentKeys.set(ownString(`${record.sku}\u0000${event.key}`), {
        sku: record.sku,
        location: record.location,
        bodyHash: event.bodyHash,
        at: event.at,
      });
      break;
    }
    case 'SafetyStockSet': {
      if (!state.owns(event.sku)) break;
      const record = state.recordOrCreate(event.sku, event.location);
      record.safetyStock = event.safetyStock;
      record.version++;
      break;
    }
    case 'ChannelUpserted':
      state.upsertChannel(event.channel, event.locations, event.buffer);
      break;
    case 'ReservationHeld': {
      const lines: LineInit[] = [];
      for (const line of event.lines) {
        if (!state.owns(line.sku)) continue;
        const record = state.recordOrCreate(line.sku, line.location);
        record.reserved += line.qty;
        record.version++;
        // The line keeps the record, and so the record's strings, not the event's: see StockRecord.sku.
        lines.push({ record, qty: line.qty, held: line.qty, committed: 0 });
      }
      if (lines.length === 0) break;
      const existing = state.reservations.get(event.reservationId);
      if (existing !== undefined) {
        // Completing a reservation cut by a crash (see completeCutReservation in decide.ts):
        // the same body, still held, lines it did not hold before.
        invariant(
          existing.status === 'held' &&
            existing.bodyHash === event.bodyHash &&
            lines.every((line) => !existing.lines.some((l) => l.sku === line.record.sku)),
          () => `reservation ${event.reservationId} held twice`,
        );
        state.reservations.appendLines(event.reservationId, lines);
        break;
      }
      state.addReservation({
        id: event.reservationId,
        orderId: event.orderId,
        channel: event.channel,
        bodyHash: event.bodyHash,
        createdAt: event.at,
        expiresAt: event.expiresAt,
        status: 'held',
        lines,
        finishedAt: 0,
        extensions: 0,
      });
      break;
    }
    case 'ReservationCommitted': {
      const reservation = state.reservations.get(event.reservationId);
      if (reservation === undefined) break; // not ours (recovering under another layout)
      let settled = 0;
      // Read once: each read of `lines` builds the array afresh (reservation-table.ts).
      const lines = reservation.lines;
      for (const change of event.lines) {
        if (!state.owns(change.sku)) continue;
        settled++;
        const line = lines.find((l) => l.sku === change.sku && l.location === change.location);
        invariant(
          line !== undefined,
          () => `commit of unknown line ${change.sku}@${change.location} of ${event.reservationId}`,
        );
        invariant(
          change.qty + change.released === line.held,
          () => `commit of ${event.reservationId} line ${change.sku} does not settle it`,
        );
        const record = line.record;
        record.reserved -= line.held;
        record.onHand -= change.onHandDecrease;
        record.version++;
        line.held = 0;
        line.committed += change.qty;
        invariant(
          record.reserved >= 0 && record.onHand >= 0,
          () => `negative stock on ${line.sku}@${line.location}`,
        );
      }
      // A commit of none of this part's lines concerns another part (see settledPart).
      if (settled === 0) break;
      const stillHeld = lines.some((line) => line.held > 0);
      transitionTo(state, reservation, stillHeld ? 'COMMIT_PARTIAL' : 'COMMIT', event.at);
      break;
    }
    case 'ReservationReleased':
    case 'ReservationExpired':
    case 'ReservationAborted': {
      const reservation = state.reservations.get(event.reservationId);
      if (reservation === undefined || settledPart(state, reservation)) break;
      releaseHeld(reservation);
      const machineEvent =
        event.type === 'ReservationReleased'
          ? 'RELEASE'
          : event.type === 'ReservationExpired'
            ? 'EXPIRE'
            : 'ABORT';
      transitionTo(state, reservation, machineEvent, event.at);
      if (event.type === 'ReservationAborted') {
        // An aborted part never counted: forget it now, so a retry with the same id starts afresh.
        state.reservations.delete(event.reservationId);
      }
      break;
    }
    case 'ReservationExtended': {
      const reservation = state.reservations.get(event.reservationId);
      if (reservation === undefined || settledPart(state, reservation)) break;
      transitionTo(state, reservation, 'EXTEND', event.at);
      reservation.expiresAt = event.expiresAt;
      reservation.extensions++;
      break;
    }
    default: {
      const unknown: never = event;
      throw new Error(`unknown event ${JSON.stringify(unknown)}`);
    }
  }
  state.forgetOld(event.at);
  return state;
}

/**
 * Recovering under another shard count splits a reservation's lines by their new owners.
 * A partial commit that settled every line of one new part leaves that part committed
 * while the reservation (on its old shard) was still held: the release, expiry or extension
 * of its other lines that followed concerns the other parts only. Outside such a recovery a
 * committed reservation never gets those events (decide refuses them), so there the
 * invariant in transitionTo still catches any that would be a bug.
 */
function settledPart(state: ShardState, reservation: Reservation): boolean {
  return reservation.status === 'committed' && state.replayingOtherLayout;
}

function releaseHeld(reservation: Reservation): void {
  for (const line of reservation.lines) {
    if (line.held === 0) continue;
    const record = line.record;
    record.reserved -= line.held;
    record.version++;
    line.held = 0;
    invariant(record.reserved >= 0, () => `reserved < 0 on ${line.sku}@${line.location}`);
  }
}

function transitionTo(
  state: ShardState,
  reservation: Reservation,
  machineEvent: 'COMMIT' | 'COMMIT_PARTIAL' | 'RELEASE' | 'EXPIRE' | 'EXTEND' | 'ABORT',
  at: number,
): void {
  const next = reservationTransitions[reservation.status][machineEvent];
  invariant(
    next !== null,
    () => `${machineEvent} not allowed from ${reservation.status} (${reservation.id})`,
  );
  const wasHeld = reservation.status === 'held';
  reservation.status = next;
  if (!wasHeld || next === 'held') return;
  // An aborted part is forgotten at once, so it never enters the finished window.
  if (next === 'aborted') state.heldCount--;
  else state.finish(reservation, at);
}
