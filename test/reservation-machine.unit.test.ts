import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import {
  combineOutcomes,
  initialReservationState,
  isTerminal,
  machineNextState,
  type PartOutcome,
  reservationEvents,
  reservationMachine,
  reservationStates,
  reservationTransitions,
} from '../src/actors/reservation-machine.js';
import { shardLifecycleMachine } from '../src/actors/shard-lifecycle.js';

describe('reservation lifecycle', () => {
  it('the hot-path table agrees with the xstate machine for every state and event', () => {
    for (const state of reservationStates) {
      for (const event of reservationEvents) {
        expect(reservationTransitions[state][event], `${state} + ${event}`).toBe(
          machineNextState(state, event),
        );
      }
    }
  });

  it('agrees with a live actor driven from the initial state', () => {
    for (const event of reservationEvents) {
      const actor = createActor(reservationMachine).start();
      actor.send({ type: event });
      expect(actor.getSnapshot().value).toBe(reservationTransitions.held[event] ?? 'held');
      actor.stop();
    }
  });

  it('starts held, and terminal states never revert', () => {
    expect(initialReservationState).toBe('held');
    expect(isTerminal('held')).toBe(false);
    for (const state of ['committed', 'released', 'expired', 'aborted'] as const) {
      expect(isTerminal(state), state).toBe(true);
      for (const event of reservationEvents) expect(reservationTransitions[state][event]).toBeNull();
    }
  });

  it('held accepts every event, partial commits and extensions stay held', () => {
    expect(reservationTransitions.held).toEqual({
      COMMIT: 'committed',
      COMMIT_PARTIAL: 'held',
      EXTEND: 'held',
      RELEASE: 'released',
      EXPIRE: 'expired',
      ABORT: 'aborted',
    });
  });
});

describe('combineOutcomes: the parts of a cross-shard reservation as one shard would report them', () => {
  const part = (
    status: PartOutcome['status'],
    finishedAt = 0,
    expiresAt = 600_000,
    extensions = 0,
  ): PartOutcome => ({ status, finishedAt, expiresAt, extensions });

  it('is a part still holding while any part holds, the later expiry of two', () => {
    expect(combineOutcomes(part('committed', 5), part('held'))).toEqual(part('held'));
    expect(combineOutcomes(part('held'), part('released', 9))).toEqual(part('held'));
    expect(combineOutcomes(part('held', 0, 30_000), part('held', 0, 90_000))).toEqual(
      part('held', 0, 90_000),
    );
  });

  it('an extension after a partial commit: the expiry of the part still holding, even when shorter', () => {
    expect(combineOutcomes(part('committed', 1_000, 600_000), part('held', 0, 30_000))).toEqual(
      part('held', 0, 30_000),
    );
  });

  it('takes the part that finished last: a line committed, then the rest released, reads released', () => {
    expect(combineOutcomes(part('committed', 1_000), part('released', 2_000))).toEqual(
      part('released', 2_000),
    );
    expect(combineOutcomes(part('expired', 3_000), part('committed', 1_000))).toEqual(part('expired', 3_000));
    expect(combineOutcomes(part('committed', 1_000), part('committed', 2_000))).toEqual(
      part('committed', 2_000),
    );
  });

  it('committed in the same millisecond: the part that took more extensions settled later', () => {
    // A line committed, then an extension (to the part still holding), then the rest committed.
    expect(combineOutcomes(part('committed', 7, 600_000, 0), part('committed', 7, 30_000, 1))).toEqual(
      part('committed', 7, 30_000, 1),
    );
  });

  it('in the same millisecond, released or expired come after committed, released after expired', () => {
    expect(combineOutcomes(part('released', 7), part('committed', 7)).status).toBe('released');
    expect(combineOutcomes(part('committed', 7), part('expired', 7)).status).toBe('expired');
    expect(combineOutcomes(part('expired', 7), part('released', 7)).status).toBe('released');
  });

  it('does not depend on the order of the parts (any shard count, any merge order)', () => {
    const outcome = fc.oneof(
      fc.record({
        status: fc.constant('held' as const),
        finishedAt: fc.constant(0),
        expiresAt: fc.integer({ min: 1, max: 5 }),
        extensions: fc.integer({ min: 0, max: 2 }),
      }),
      fc.record({
        status: fc.constantFrom('committed', 'released', 'expired', 'aborted' as const),
        finishedAt: fc.integer({ min: 1, max: 5 }),
        expiresAt: fc.integer({ min: 1, max: 5 }),
        extensions: fc.integer({ min: 0, max: 2 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(outcome, { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (parts: PartOutcome[], seed) => {
          const shuffled = [...parts].sort((a, b) => (hashOf(a, seed) - hashOf(b, seed)) | 0);
          const left = parts.reduce((a, b) => combineOutcomes(a, b));
          const right = shuffled.reduceRight((a, b) => combineOutcomes(b, a));
          expect(right).toEqual(left);
          const held = parts.filter((p) => p.status === 'held');
          if (held.length > 0) {
            expect(left.status).toBe('held');
            const most = Math.max(...held.map((p) => p.extensions));
            expect(left.extensions).toBe(most);
            expect(left.expiresAt).toBe(
              Math.max(...held.filter((p) => p.extensions === most).map((p) => p.expiresAt)),
            );
          } else expect(left.finishedAt).toBe(Math.max(...parts.map((p) => p.finishedAt)));
        },
      ),
    );
  });
});

function hashOf(outcome: PartOutcome, seed: number): number {
  return Math.imul(
    outcome.finishedAt * 31 + outcome.expiresAt * 7 + outcome.extensions * 3 + outcome.status.length + seed,
    2654435761,
  );
}

describe('shard lifecycle', () => {
  it('recovers, degrades on WAL failure, retries and stops', () => {
    const actor = createActor(shardLifecycleMachine).start();
    expect(actor.getSnapshot().value).toBe('recovering');
    actor.send({ type: 'RECOVERED' });
    expect(actor.getSnapshot().value).toBe('ready');
    actor.send({ type: 'WAL_FAILED', error: 'connection lost' });
    expect(actor.getSnapshot().value).toBe('degraded');
    expect(actor.getSnapshot().context).toMatchObject({ failures: 1, lastError: 'connection lost' });
    actor.send({ type: 'RECOVERED' }); // not allowed from degraded: must go through RETRY
    expect(actor.getSnapshot().value).toBe('degraded');
    actor.send({ type: 'RETRY' });
    expect(actor.getSnapshot().value).toBe('recovering');
    actor.send({ type: 'RECOVERED' });
    actor.send({ type: 'STOP' });
    expect(actor.getSnapshot().value).toBe('stopping');
    actor.send({ type: 'STOPPED' });
    expect(actor.getSnapshot().status).toBe('done');
  });

  it('a fenced shard stays fenced until it stops: no retry, no recovery', () => {
    for (const before of ['recovering', 'ready', 'degraded'] as const) {
      const actor = createActor(shardLifecycleMachine).start();
      if (before !== 'recovering') actor.send({ type: 'RECOVERED' });
      if (before === 'degraded') actor.send({ type: 'WAL_FAILED', error: 'connection lost' });
      expect(actor.getSnapshot().value).toBe(before);
      actor.send({ type: 'FENCED', error: 'writer epoch 3 > 2' });
      expect(actor.getSnapshot().value).toBe('fenced');
      expect(actor.getSnapshot().context.lastError).toBe('writer epoch 3 > 2');
      for (const type of ['RETRY', 'RECOVERED'] as const) {
        actor.send({ type });
        expect(actor.getSnapshot().value).toBe('fenced');
      }
      actor.send({ type: 'WAL_FAILED', error: 'later failure' });
      expect(actor.getSnapshot().value).toBe('fenced');
      actor.send({ type: 'STOP' });
      expect(actor.getSnapshot().value).toBe('stopping');
    }
  });
});
