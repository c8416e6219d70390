/**
 * A given/when/then DSL for the decider (Emmett's DeciderSpecification, adapted):
 *
 *   given(events).when(command, now).then(expectedEvents)
 *   given(events).when(command, now).thenRejects('INSUFFICIENT_STOCK', { shortages: [...] })
 *   given(events).when(command, now).thenReplays()
 *
 * `given` folds the events into a fresh ShardState with `evolve`; `when` runs `decide`
 * (and checks it left the state untouched: decide is pure); every `then*` evolves the
 * decision's events and checks the full invariants. Each `then*` returns the resulting
 * state and decision, so a test can look further at them.
 */
import { expect } from 'vitest';
import { type Decision, decide } from '../../src/actors/decide.js';
import { stateDigest } from '../../src/actors/digest.js';
import { evolve } from '../../src/actors/evolve.js';
import { invariantViolations } from '../../src/actors/invariants.js';
import { ShardState } from '../../src/actors/state.js';
import type { Command, DomainEvent, EpochMs } from '../../src/actors/types.js';
import { defaultLimits, type Limits } from '../../src/config.js';
import type { ErrorCode, Rejection } from '../../src/errors.js';

export interface GivenOptions {
  /** Limits of the state; defaultLimits when absent. */
  readonly limits?: Limits;
}

export interface Outcome {
  /** The state after the decision's events were evolved into it. */
  readonly state: ShardState;
  readonly decision: Decision;
}

export interface WhenSpec {
  /** The decision is accepted with exactly these events. */
  then(expectedEvents: DomainEvent[]): Outcome;
  /** The decision is a rejection with this code (and these fields); by default it emits no events. */
  thenRejects(code: ErrorCode, partial?: Partial<Rejection>, expectedEvents?: DomainEvent[]): Outcome;
  /** The command repeated one already applied: no events, no rejection. */
  thenReplays(): Outcome;
  /** A replay that still has something to do (completing a reservation a crash cut). */
  thenReplaysWith(expectedEvents: DomainEvent[]): Outcome;
}

export interface GivenSpec {
  /** The state built from the given events (for extra setup checks). */
  readonly state: ShardState;
  when(command: Command, now: EpochMs): WhenSpec;
}

export function stateFrom(events: readonly DomainEvent[], opts: GivenOptions = {}): ShardState {
  const state = new ShardState(opts.limits ?? defaultLimits);
  for (const event of events) evolve(state, event);
  return state;
}

export function given(events: readonly DomainEvent[], opts: GivenOptions = {}): GivenSpec {
  const state = stateFrom(events, opts);
  expect(invariantViolations(state), 'invariants of the given state').toEqual([]);
  return {
    state,
    when(command: Command, now: EpochMs): WhenSpec {
      const before = stateDigest([state]);
      const decision = decide(state, command, now);
      expect(stateDigest([state]), 'decide must not change the state').toBe(before);

      const settle = (): Outcome => {
        for (const event of decision.events) evolve(state, event);
        expect(invariantViolations(state), 'invariants after evolving the decision').toEqual([]);
        return { state, decision };
      };

      return {
        // biome-ignore lint/suspicious/noThenProperty: the DSL's given/when/then; a WhenSpec is never awaited.
        then(expectedEvents: DomainEvent[]): Outcome {
          expect(decision.rejection).toBeNull();
          expect(decision.replayed).toBe(false);
          expect(decision.events).toEqual(expectedEvents);
          return settle();
        },
        thenRejects(
          code: ErrorCode,
          partial?: Partial<Rejection>,
          expectedEvents: DomainEvent[] = [],
        ): Outcome {
          expect(decision.rejection, 'expected a rejection').not.toBeNull();
          expect(decision.rejection?.code).toBe(code);
          expect(decision.rejection?.ok).toBe(false);
          if (partial !== undefined) expect(decision.rejection).toMatchObject(partial);
          expect(decision.replayed).toBe(false);
          expect(decision.events).toEqual(expectedEvents);
          return settle();
        },
        thenReplays(): Outcome {
          expect(decision.rejection).toBeNull();
          expect(decision.replayed).toBe(true);
          expect(decision.events).toEqual([]);
          return settle();
        },
        thenReplaysWith(expectedEvents: DomainEvent[]): Outcome {
          expect(decision.rejection).toBeNull();
          expect(decision.replayed).toBe(true);
          expect(decision.events).toEqual(expectedEvents);
          return settle();
        },
      };
    },
  };
}
