/**
 * The reservation lifecycle as an xstate statechart: the single source of truth.
 *
 *            COMMIT_PARTIAL / EXTEND
 *                 ┌──────┐
 *                 ▼      │
 *   (reserve) ─▶ held ───┘
 *                 │ COMMIT      ─▶ committed  (final)
 *                 │ RELEASE     ─▶ released   (final)
 *                 │ EXPIRE      ─▶ expired    (final)
 *                 │ ABORT       ─▶ aborted    (final; the hold never counted: cross-shard compensation)
 *
 * Terminal states never revert: they accept no event. The hot path must not call xstate
 * per command (a pure `transition()` runs ~40k/s), so `reservationTransitions` is a plain
 * table derived from the machine once at load; test/reservation-machine.unit.test.ts
 * proves the table and the machine agree for every state and event.
 */
import { createMachine, getInitialSnapshot, transition } from 'xstate';

export const reservationEvents = [
  'COMMIT',
  'COMMIT_PARTIAL',
  'RELEASE',
  'EXPIRE',
  'EXTEND',
  'ABORT',
] as const;
export type ReservationEventType = (typeof reservationEvents)[number];
export const reservationStates = ['held', 'committed', 'released', 'expired', 'aborted'] as const;
export type ReservationMachineState = (typeof reservationStates)[number];

export const reservationMachine = createMachine({
  id: 'reservation',
  initial: 'held',
  types: {} as { events: { type: ReservationEventType } },
  states: {
    held: {
      on: {
        COMMIT: 'committed',
        COMMIT_PARTIAL: 'held',
        EXTEND: 'held',
        RELEASE: 'released',
        EXPIRE: 'expired',
        ABORT: 'aborted',
      },
    },
    committed: { type: 'final' },
    released: { type: 'final' },
    expired: { type: 'final' },
    aborted: { type: 'final' },
  },
});

export type TransitionTable = Readonly<
  Record<ReservationMachineState, Readonly<Record<ReservationEventType, ReservationMachineState | null>>>
>;

/** Asks the machine itself: from `state`, where does `event` lead (null = not allowed)? */
export function machineNextState(
  state: ReservationMachineState,
  event: ReservationEventType,
): ReservationMachineState | null {
  const from = reservationMachine.resolveState({ value: state, context: undefined as never });
  if (!from.can({ type: event })) return null;
  const [next] = transition(reservationMachine, from, { type: event });
  return next.value as ReservationMachineState;
}

function deriveTable(): TransitionTable {
  const table = {} as Record<
    ReservationMachineState,
    Record<ReservationEventType, ReservationMachineState | null>
  >;
  for (const state of reservationStates) {
    table[state] = {} as Record<ReservationEventType, ReservationMachineState | null>;
    for (const event of reservationEvents) table[state][event] = machineNextState(state, event);
  }
  return table;
}

export const reservationTransitions: TransitionTable = deriveTable();

export const initialReservationState = getInitialSnapshot(reservationMachine)
  .value as ReservationMachineState;

export function isTerminal(state: ReservationMachineState): boolean {
  return reservationEvents.every((event) => reservationTransitions[state][event] === null);
}
