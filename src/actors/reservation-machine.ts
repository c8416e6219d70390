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

/** Where one part of a reservation stands: its status, when it left `held` (0 while it holds), its expiry. */
export interface PartOutcome {
  readonly status: ReservationMachineState;
  readonly finishedAt: number;
  readonly expiresAt: number;
  /** Extensions the part took: every part holding takes each one, a settled part no more. */
  readonly extensions: number;
}

/** Of two parts finished in the same millisecond, the higher one was settled last. */
const lastAmongSimultaneous: Readonly<Record<ReservationMachineState, number>> = {
  held: 0,
  aborted: 1,
  committed: 2,
  expired: 3,
  released: 4,
};

/**
 * Of two parts of a reservation whose lines are split over shards, the one whose status
 * and expiry one shard holding every line would report. That shard leaves `held` only
 * when its last held line settles, so: a part still holding (the later expiry of two:
 * parts that settled stopped taking extensions); otherwise the part that finished last.
 * Parts finished in the same millisecond: a release or an expiry comes after a commit (it
 * can only meet a part whose lines were all committed before, never the reverse), and of
 * a release and an expiry either can be last — released is chosen. Always one of its
 * arguments, and the same whatever their order.
 */
export function combineOutcomes<T extends PartOutcome>(a: T, b: T): T {
  const aHeld = a.status === 'held';
  const bHeld = b.status === 'held';
  if (aHeld !== bHeld) return aHeld ? a : b;
  if (!aHeld && a.finishedAt !== b.finishedAt) return a.finishedAt > b.finishedAt ? a : b;
  const rankA = lastAmongSimultaneous[a.status];
  const rankB = lastAmongSimultaneous[b.status];
  if (rankA !== rankB) return rankA > rankB ? a : b;
  // Same status in the same millisecond: the part that took more extensions held longer.
  if (a.extensions !== b.extensions) return a.extensions > b.extensions ? a : b;
  return a.expiresAt >= b.expiresAt ? a : b;
}
