/**
 * ShardCore: one shard's single-writer actor logic, with no IO and no threads.
 *
 * The worker thread (src/engine/shard-worker.ts) and the deterministic simulation
 * (bench/simulation.ts) both drive this same class: hand it a batch of requests
 * and the batch's time; it expires what is due, decides each request in order, evolves
 * the state after each decision (so later requests see earlier effects), and returns the
 * events to make durable plus one reply per request. The caller must not release the
 * replies before the events are durable; if the append fails, the caller throws the
 * state away and recovers it from the WAL, because the state already includes the batch.
 */
import type { Limits } from '../config.js';
import { invariant } from '../errors.js';
import { decide } from './decide.js';
import { evolve } from './evolve.js';
import { answer, type ReservationReplyTuple, replyTo } from './queries.js';
import { type OwnsSku, ownsEverything, ShardState } from './state.js';
import type { DomainEvent, EpochMs, Reply, Request } from './types.js';
import { isQuery } from './types.js';

export interface BatchResult<R = Reply> {
  readonly events: DomainEvent[];
  readonly replies: R[];
  /** How many of `events` the expiry timer produced (not tied to a request). */
  readonly expiredCount: number;
}

/** A reply as a shard worker sends it: a reservation's reply in its compact form. */
export type WireReply = Reply | ReservationReplyTuple;

export class ShardCore {
  state: ShardState;

  constructor(
    readonly limits: Limits,
    readonly owns: OwnsSku = ownsEverything,
  ) {
    this.state = new ShardState(limits, owns);
  }

  process(requests: readonly Request[], now: EpochMs): BatchResult {
    return this.run(requests, now, false) as BatchResult;
  }

  /** As `process`, with reservation replies as tuples (reservationReplyTuple), as the worker sends them. */
  processForWire(requests: readonly Request[], now: EpochMs): BatchResult<WireReply> {
    return this.run(requests, now, true);
  }

  private run(requests: readonly Request[], now: EpochMs, compact: boolean): BatchResult<WireReply> {
    const state = this.state;
    const events: DomainEvent[] = [];
    const expiredCount = this.expireDue(now, events);
    const replies: WireReply[] = new Array(requests.length);
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i]!;
      if (isQuery(request)) {
        replies[i] = answer(state, request, now);
        continue;
      }
      const decision = decide(state, request, now);
      for (const event of decision.events) {
        evolve(state, event);
        events.push(event);
      }
      replies[i] = replyTo(state, request, decision, compact);
    }
    return { events, replies, expiredCount };
  }

  /** Expires held reservations whose time has come, at most expiriesPerBatchMax per call. */
  expireDue(now: EpochMs, events: DomainEvent[]): number {
    const state = this.state;
    let count = 0;
    const table = state.reservations;
    while (count < this.limits.expiriesPerBatchMax && table.nextExpiryAt() <= now) {
      const id = table.nextToExpire()!;
      const decision = decide(state, { type: 'expire', reservationId: id }, now);
      // The timer holds exactly the held reservations at their expiry, and the expiry
      // event takes this one off it: anything else would loop here for ever.
      invariant(decision.events.length > 0, () => `reservation ${id} is due but did not expire`);
      for (const event of decision.events) {
        evolve(state, event);
        events.push(event);
        count++;
      }
    }
    return count;
  }

  /** Applies already-durable events (recovery). */
  apply(events: readonly DomainEvent[]): void {
    const state = this.state;
    for (const event of events) evolve(state, event);
  }

  nextExpiryAt(): EpochMs {
    return this.state.reservations.nextExpiryAt();
  }
}
