/**
 * The one list of error codes (Fastify's lib/errors.js habit).
 *
 * Business outcomes are values with stable numbers that are never reused: a rejection
 * such as INSUFFICIENT_STOCK is a normal result of `decide`, never an exception. A broken
 * invariant is a programmer error: it throws `InvariantViolation` and kills the shard
 * worker, whose supervisor restarts it from the WAL.
 *
 * docs/errors.md documents every code; test/errors.unit.test.ts checks that the two agree.
 * To add a code: append it with the next free number, document it, never renumber.
 */

export interface ErrorDefinition {
  /** Stable number, never reused. */
  readonly number: number;
  /** HTTP status the API answers with. */
  readonly status: number;
  /** Short human title (problem+json `title`). */
  readonly title: string;
}

export const errorDefinitions = {
  INSUFFICIENT_STOCK: { number: 1, status: 409, title: 'Insufficient stock' },
  VERSION_CONFLICT: { number: 2, status: 409, title: 'Version conflict' },
  STALE_UPDATE: { number: 3, status: 409, title: 'Stale update' },
  RESERVATION_NOT_FOUND: { number: 4, status: 404, title: 'Reservation not found' },
  RESERVATION_NOT_HELD: { number: 5, status: 409, title: 'Reservation not held' },
  IDEMPOTENCY_KEY_REUSED: { number: 6, status: 422, title: 'Idempotency key reused with a different body' },
  INVALID_QUANTITY: { number: 7, status: 422, title: 'Invalid quantity' },
  UNKNOWN_CHANNEL: { number: 8, status: 422, title: 'Unknown channel' },
  OVERLOADED: { number: 9, status: 503, title: 'Overloaded' },
  UNAVAILABLE: { number: 10, status: 503, title: 'Unavailable' },
  LOCATION_NOT_IN_CHANNEL: { number: 11, status: 422, title: 'Location not in channel' },
  ADJUSTMENT_BELOW_ZERO: { number: 12, status: 409, title: 'Adjustment would take on-hand below zero' },
  INVALID_REQUEST: { number: 13, status: 400, title: 'Invalid request' },
  STOCK_NOT_FOUND: { number: 14, status: 404, title: 'Stock not found' },
  LIMIT_EXCEEDED: { number: 15, status: 413, title: 'Limit exceeded' },
  INVALID_TTL: { number: 16, status: 422, title: 'Invalid TTL' },
  UNAUTHORIZED: { number: 17, status: 401, title: 'Unauthorized' },
  FORBIDDEN: { number: 18, status: 403, title: 'Forbidden' },
  RATE_LIMITED: { number: 19, status: 429, title: 'Rate limited' },
  ROUTE_NOT_FOUND: { number: 20, status: 404, title: 'Route not found' },
  UNSUPPORTED_MEDIA_TYPE: { number: 21, status: 415, title: 'Unsupported media type' },
  CURSOR_EXPIRED: { number: 22, status: 410, title: 'Cursor expired' },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof errorDefinitions;

export const errorCodes = Object.keys(errorDefinitions) as ErrorCode[];

/** A shortfall on one SKU of a reservation (lines of the same SKU summed). */
export interface Shortage {
  readonly sku: string;
  readonly requested: number;
  readonly available: number;
}

/** A business rejection: a value, returned, never thrown. */
export interface Rejection {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly detail: string;
  readonly shortages?: readonly Shortage[];
  /** For VERSION_CONFLICT: the record's current version. */
  readonly currentVersion?: number;
  /**
   * For RESERVATION_NOT_HELD from a shard: the status of that shard's part, so the router
   * can tell a part settled by a partial commit from a reservation that is over.
   */
  readonly reservationStatus?: 'committed' | 'released' | 'expired' | 'aborted';
}

export function reject(code: ErrorCode, detail: string, extra?: Partial<Rejection>): Rejection {
  return { ok: false, code, detail, ...extra };
}

/** Thrown when an invariant is broken: a bug, never a business outcome. Crashes the shard worker. */
export class InvariantViolation extends Error {
  readonly code = 'INVARIANT_VIOLATION';
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantViolation(typeof message === 'string' ? message : message());
}
