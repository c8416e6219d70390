/**
 * The domain's vocabulary: commands (what a client asks), queries (what it reads), events
 * (what happened, the only thing the WAL stores) and replies.
 *
 * Events carry every value `evolve` needs (allocated locations, quantities, expiry
 * instants), so replaying them never depends on configuration or on the replay's clock.
 */
import type { Rejection, Shortage } from '../errors.js';

/** Milliseconds since the Unix epoch. Time always arrives as data (with the batch). */
export type EpochMs = number;

export type SourcingStrategy = 'priority' | 'most_available' | 'split';
export const sourcingStrategies: readonly SourcingStrategy[] = ['priority', 'most_available', 'split'];

export interface LineRequest {
  readonly sku: string;
  readonly qty: number;
  readonly location?: string;
}

export interface CommitLine {
  readonly sku: string;
  readonly location?: string;
  /** Units shipped; defaults to all units held on the matching lines. The remainder of a line is released. */
  readonly qty?: number;
}

export interface SetStock {
  readonly type: 'set';
  readonly sku: string;
  readonly location: string;
  readonly onHand: number;
  readonly safetyStock?: number;
  /** Compare-and-set: applied only if the record's version equals this (0 = record must not exist yet). */
  readonly ifVersion?: number;
  /** Source system timestamp (ms); an update older than the record's last one is STALE_UPDATE. */
  readonly sourceTs?: number;
}

export interface AdjustStock {
  readonly type: 'adjust';
  readonly sku: string;
  readonly location: string;
  readonly delta: number;
  readonly reason: string;
  /** Idempotency key, unique per SKU within the adjustment key window. */
  readonly key: string;
}

export interface SetSafetyStock {
  readonly type: 'safety';
  readonly sku: string;
  readonly location: string;
  readonly safetyStock: number;
  readonly ifVersion?: number;
}

export interface UpsertChannel {
  readonly type: 'channel';
  readonly channel: string;
  readonly locations: readonly string[];
  readonly buffer?: number;
}

export interface Reserve {
  readonly type: 'reserve';
  readonly reservationId: string;
  readonly orderId?: string;
  readonly channel?: string;
  readonly ttlSeconds?: number;
  readonly strategy?: SourcingStrategy;
  readonly lines: readonly LineRequest[];
  /**
   * Hash of the whole request body. The engine sets it when it splits a cross-shard
   * reservation, so every part compares against the same body; computed when absent.
   */
  readonly bodyHash?: number;
}

export interface Commit {
  readonly type: 'commit';
  readonly reservationId: string;
  /** Absent: commit every held line. */
  readonly lines?: readonly CommitLine[];
  /**
   * Decide only: every check of a real commit, but no event; an accepted check replies with
   * the reservation as it stands. Internal: the router checks every part of a cross-shard
   * partial commit before it commits any (the API builds commands field by field, so
   * clients cannot set it).
   */
  readonly check?: boolean;
}

export interface Release {
  readonly type: 'release';
  readonly reservationId: string;
}

export interface Extend {
  readonly type: 'extend';
  readonly reservationId: string;
  readonly ttlSeconds: number;
}

/** Internal: the engine's compensation when another shard refused a cross-shard reservation. */
export interface Abort {
  readonly type: 'abort';
  readonly reservationId: string;
}

/** Internal: produced by the shard's expiry timer. */
export interface Expire {
  readonly type: 'expire';
  readonly reservationId: string;
}

export type Command =
  | SetStock
  | AdjustStock
  | SetSafetyStock
  | UpsertChannel
  | Reserve
  | Commit
  | Release
  | Extend
  | Abort
  | Expire;

export interface GetStock {
  readonly type: 'stock';
  readonly sku: string;
}

export interface GetAtp {
  readonly type: 'atp';
  readonly sku: string;
  readonly channel?: string;
  readonly location?: string;
}

export interface GetReservation {
  readonly type: 'get';
  readonly reservationId: string;
}

export interface ListChannels {
  readonly type: 'channels';
}

export type Query = GetStock | GetAtp | GetReservation | ListChannels;

export type Request = Command | Query;

export const queryTypes: ReadonlySet<string> = new Set(['stock', 'atp', 'get', 'channels']);
export function isQuery(request: Request): request is Query {
  return queryTypes.has(request.type);
}

/* ----------------------------------------------------------------------------- events */

export interface Allocation {
  readonly sku: string;
  readonly location: string;
  readonly qty: number;
}

export interface StockSetEvent {
  readonly type: 'StockSet';
  readonly at: EpochMs;
  readonly sku: string;
  readonly location: string;
  readonly onHand: number;
  readonly safetyStock: number;
  /** The record's last source timestamp after this event (0 = none). */
  readonly sourceTs: number;
}

export interface StockAdjustedEvent {
  readonly type: 'StockAdjusted';
  readonly at: EpochMs;
  readonly sku: string;
  readonly location: string;
  readonly delta: number;
  readonly reason: string;
  readonly key: string;
  readonly bodyHash: number;
}

export interface SafetyStockSetEvent {
  readonly type: 'SafetyStockSet';
  readonly at: EpochMs;
  readonly sku: string;
  readonly location: string;
  readonly safetyStock: number;
}

export interface ChannelUpsertedEvent {
  readonly type: 'ChannelUpserted';
  readonly at: EpochMs;
  readonly channel: string;
  readonly locations: readonly string[];
  readonly buffer: number;
}

export interface ReservationHeldEvent {
  readonly type: 'ReservationHeld';
  readonly at: EpochMs;
  readonly reservationId: string;
  readonly orderId: string | null;
  readonly channel: string | null;
  readonly bodyHash: number;
  readonly expiresAt: EpochMs;
  readonly lines: readonly Allocation[];
}

export interface CommittedLine {
  /** The line, by SKU and location (unique within a reservation: allocations are merged). */
  readonly sku: string;
  readonly location: string;
  /** Units shipped: lowers reserved, and onHand by `onHandDecrease`. */
  readonly qty: number;
  /** Units of the line released because fewer were shipped than held. */
  readonly released: number;
  /** min(qty, onHand) at decision time, so onHand never goes below zero. */
  readonly onHandDecrease: number;
}

export interface ReservationCommittedEvent {
  readonly type: 'ReservationCommitted';
  readonly at: EpochMs;
  readonly reservationId: string;
  readonly lines: readonly CommittedLine[];
}

export interface ReservationReleasedEvent {
  readonly type: 'ReservationReleased';
  readonly at: EpochMs;
  readonly reservationId: string;
}

export interface ReservationExpiredEvent {
  readonly type: 'ReservationExpired';
  readonly at: EpochMs;
  readonly reservationId: string;
}

export interface ReservationExtendedEvent {
  readonly type: 'ReservationExtended';
  readonly at: EpochMs;
  readonly reservationId: string;
  readonly expiresAt: EpochMs;
}

export interface ReservationAbortedEvent {
  readonly type: 'ReservationAborted';
  readonly at: EpochMs;
  readonly reservationId: string;
}

export type DomainEvent =
  | StockSetEvent
  | StockAdjustedEvent
  | SafetyStockSetEvent
  | ChannelUpsertedEvent
  | ReservationHeldEvent
  | ReservationCommittedEvent
  | ReservationReleasedEvent
  | ReservationExpiredEvent
  | ReservationExtendedEvent
  | ReservationAbortedEvent;

/* ---------------------------------------------------------------------------- replies */

export interface StockView {
  readonly sku: string;
  readonly location: string;
  readonly onHand: number;
  readonly reserved: number;
  readonly safetyStock: number;
  readonly available: number;
  readonly version: number;
  readonly sourceTs: number | null;
}

export type ReservationStatus = 'held' | 'committed' | 'released' | 'expired';

export interface ReservationLineView {
  readonly sku: string;
  readonly location: string;
  readonly qty: number;
  readonly held: number;
  readonly committed: number;
}

export interface ReservationView {
  readonly reservationId: string;
  readonly orderId: string | null;
  readonly channel: string | null;
  readonly status: ReservationStatus;
  readonly createdAt: EpochMs;
  readonly expiresAt: EpochMs;
  /**
   * When it left `held` (0 while held). The router merges the parts of a cross-shard
   * reservation by it (combineOutcomes); not part of the HTTP body. Absent from views
   * built outside the engine (the benchmark baselines), which have no parts.
   */
  readonly finishedAt?: EpochMs;
  /** Extensions this part took (internal, like finishedAt). */
  readonly extensions?: number;
  readonly lines: readonly ReservationLineView[];
}

export interface ChannelView {
  readonly channel: string;
  readonly locations: readonly string[];
  readonly buffer: number;
}

export type Reply =
  | Rejection
  | { readonly ok: true; readonly kind: 'stock'; readonly record: StockView; readonly duplicate?: boolean }
  | {
      readonly ok: true;
      readonly kind: 'stockList';
      readonly sku: string;
      readonly locations: readonly StockView[];
    }
  | {
      readonly ok: true;
      readonly kind: 'atp';
      readonly sku: string;
      readonly available: number;
      readonly byLocation: Readonly<Record<string, number>>;
    }
  | { readonly ok: true; readonly kind: 'channel'; readonly channel: ChannelView }
  | { readonly ok: true; readonly kind: 'channels'; readonly channels: readonly ChannelView[] }
  | {
      readonly ok: true;
      readonly kind: 'reservation';
      readonly reservation: ReservationView;
      /** True when the request repeated one already applied (idempotent replay). */
      readonly replayed: boolean;
    };

export type { Rejection, Shortage };
