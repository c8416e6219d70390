/**
 * What the two alternatives (pg-row, redis-lua) share: the engine-shaped interface that lets
 * stockd's own HTTP front serve them, the request validation, and the reservation view.
 *
 *   HTTP client ─▶ buildServer() (src/api: the same routes, TypeBox schemas, serializers,
 *                   problem+json codes as stockd) ─▶ Baseline.execute / executeMany
 *                                                      ├─ PgRowBaseline    (pg-row.ts)
 *                                                      └─ RedisLuaBaseline (redis-lua.ts)
 *
 * Serving the alternatives through stockd's own server is what makes "the same HTTP front"
 * exact rather than approximate: the only thing that differs between the targets of a
 * benchmark run is what answers `execute`.
 *
 * Validation reuses stockd's pure checks (src/actors: `validateReserveShape`, the id,
 * quantity and TTL checks) and its reservation body hash, so a request is refused with the
 * same code, and an idempotent replay is recognised by the same rule, on every target.
 *
 * Scope, stated once: the alternatives implement what the benchmark sends — stock set
 * (absolute, with ifVersion/sourceTs), reserve at a named location, full commit, release,
 * extend, expiry, reservation read, ATP and stock reads. Channels, sourcing of lines
 * without a location, partial commits and adjustments are refused with INVALID_REQUEST,
 * like Medusa's inventory module, which also reserves at a named location.
 */
import { reserveBodyHash, validateReserveShape } from '../../src/actors/decide.js';
import type {
  Allocation,
  Extend,
  GetAtp,
  Reply,
  Request,
  ReservationStatus,
  ReservationView,
  Reserve,
  SetStock,
  StockView,
} from '../../src/actors/types.js';
import { isNonNegativeInteger, isValidId, isValidLevel, isValidTtl } from '../../src/actors/validate.js';
import type { ApiEngine } from '../../src/api/context.js';
import { defaultLimits, type Limits } from '../../src/config.js';
import { newLatencyCounts } from '../../src/engine/latency-counts.js';
import type { ShardStats } from '../../src/engine/protocol.js';
import { type Rejection, reject } from '../../src/errors.js';

/** An alternative, shaped like the engine so stockd's server and the load generators drive it alike. */
export interface Baseline extends ApiEngine {
  /** `pg-row` or `redis-lua`. */
  readonly name: string;
  /** True when a reply leaves only after the change is on disk. */
  readonly durable: boolean;
  /** One sentence on when a reply is sent relative to the disk, for reports. */
  readonly durability: string;
  /** Server software and version, e.g. `PostgreSQL 15.4 …`. */
  serverVersion(): Promise<string>;
  close(): Promise<void>;
}

/** A held line as stored by the alternatives (the same fields as stockd's ReservationLineView). */
export interface StoredLine {
  readonly sku: string;
  readonly location: string;
  readonly qty: number;
  held: number;
  committed: number;
}

export interface StoredReservation {
  readonly id: string;
  readonly bodyHash: number;
  readonly orderId: string | null;
  readonly channel: string | null;
  status: ReservationStatus;
  readonly createdAt: number;
  expiresAt: number;
  lines: StoredLine[];
}

export function reservationView(stored: StoredReservation): ReservationView {
  return {
    reservationId: stored.id,
    orderId: stored.orderId,
    channel: stored.channel,
    status: stored.status,
    createdAt: stored.createdAt,
    expiresAt: stored.expiresAt,
    lines: stored.lines.map((line) => ({ ...line })),
  };
}

export function reservationReply(stored: StoredReservation, replayed: boolean): Reply {
  return { ok: true, kind: 'reservation', reservation: reservationView(stored), replayed };
}

export function stockView(
  sku: string,
  location: string,
  onHand: number,
  reserved: number,
  safetyStock: number,
  version: number,
  sourceTs: number,
): StockView {
  return {
    sku,
    location,
    onHand,
    reserved,
    safetyStock,
    available: Math.max(0, onHand - reserved - safetyStock),
    version,
    sourceTs: sourceTs === 0 ? null : sourceTs,
  };
}

/** A request the alternative does not implement (see the header): refused, never half done. */
export function notImplemented(name: string, what: string): Rejection {
  return reject('INVALID_REQUEST', `${what} is not implemented by the ${name} baseline`);
}

/** The checks stockd's decideSet makes before it looks at the record, in the same order. */
export function validateSet(cmd: SetStock, limits: Limits): Rejection | null {
  if (!isValidId(cmd.sku, limits))
    return reject('INVALID_REQUEST', `sku must be 1..${limits.idBytesMax} bytes`);
  if (!isValidId(cmd.location, limits)) {
    return reject('INVALID_REQUEST', `location must be 1..${limits.idBytesMax} bytes`);
  }
  if (!isValidLevel(cmd.onHand, limits)) {
    return reject('INVALID_QUANTITY', `onHand must be a whole number 0..${limits.quantityMax}`);
  }
  if (cmd.safetyStock !== undefined && !isValidLevel(cmd.safetyStock, limits)) {
    return reject('INVALID_QUANTITY', `safetyStock must be a whole number 0..${limits.quantityMax}`);
  }
  if (cmd.ifVersion !== undefined && !isNonNegativeInteger(cmd.ifVersion)) {
    return reject('INVALID_REQUEST', 'ifVersion must be a whole number >= 0');
  }
  if (cmd.sourceTs !== undefined && !isNonNegativeInteger(cmd.sourceTs)) {
    return reject('INVALID_REQUEST', 'sourceTs must be epoch milliseconds >= 0');
  }
  return null;
}

/** What a reserve becomes once checked: its body hash and its lines merged per (sku, location). */
export interface CheckedReserve {
  readonly bodyHash: number;
  readonly allocations: Allocation[];
  /** Units requested per SKU (lines of one SKU summed), for shortages. */
  readonly requestedBySku: Map<string, number>;
}

export function checkReserve(name: string, cmd: Reserve, limits: Limits): CheckedReserve | Rejection {
  const invalid = validateReserveShape(cmd, limits);
  if (invalid !== null) return invalid;
  // No channels exist in the alternatives: naming one is what stockd answers for an unknown channel.
  if (cmd.channel !== undefined && cmd.channel !== null) {
    return reject('UNKNOWN_CHANNEL', `channel ${cmd.channel} is not configured`);
  }
  const merged = new Map<string, Allocation>();
  const requestedBySku = new Map<string, number>();
  for (const line of cmd.lines) {
    if (line.location === undefined) return notImplemented(name, 'a line without a location (sourcing)');
    const key = `${line.sku}\u0000${line.location}`;
    const prior = merged.get(key);
    merged.set(key, { sku: line.sku, location: line.location, qty: (prior?.qty ?? 0) + line.qty });
    requestedBySku.set(line.sku, (requestedBySku.get(line.sku) ?? 0) + line.qty);
  }
  return {
    bodyHash: cmd.bodyHash ?? reserveBodyHash(cmd),
    allocations: [...merged.values()],
    requestedBySku,
  };
}

export function checkReservationId(id: unknown, limits: Limits): Rejection | null {
  return isValidId(id, limits) ? null : reject('INVALID_REQUEST', 'reservationId must be 1..128 bytes');
}

export function checkExtend(cmd: Extend, limits: Limits): Rejection | null {
  if (!isValidTtl(cmd.ttlSeconds, limits)) {
    return reject(
      'INVALID_TTL',
      `ttlSeconds must be a whole number ${limits.ttlSecondsMin}..${limits.ttlSecondsMax}`,
    );
  }
  return checkReservationId(cmd.reservationId, limits);
}

export function checkAtp(query: GetAtp, limits: Limits): Rejection | null {
  if (!isValidId(query.sku, limits)) return reject('INVALID_REQUEST', 'sku must be 1..128 bytes');
  if (query.location !== undefined && !isValidId(query.location, limits)) {
    return reject('INVALID_REQUEST', 'location must be 1..128 bytes');
  }
  if (query.channel !== undefined)
    return reject('UNKNOWN_CHANNEL', `channel ${query.channel} is not configured`);
  return null;
}

/** The ATP reply from a SKU's records (name order, as stockd lists a SKU's locations without a channel). */
export function atpReply(sku: string, views: readonly StockView[], location: string | undefined): Reply {
  const byLocation: Record<string, number> = {};
  if (location !== undefined) {
    const available = views.find((view) => view.location === location)?.available ?? 0;
    byLocation[location] = available;
    return { ok: true, kind: 'atp', sku, available, byLocation };
  }
  let available = 0;
  for (const view of views) {
    byLocation[view.location] = view.available;
    available += view.available;
  }
  return { ok: true, kind: 'atp', sku, available, byLocation };
}

export function stockListReply(sku: string, views: readonly StockView[]): Reply {
  if (views.length === 0) return reject('STOCK_NOT_FOUND', `no stock recorded for ${sku}`);
  return { ok: true, kind: 'stockList', sku, locations: views };
}

/**
 * The engine-shaped parts the API reads besides execute: limits (the schemas are built
 * from them), a one-"shard" layout and a ready phase for /readyz and /metrics.
 */
export abstract class BaselineBase implements Baseline {
  abstract readonly name: string;
  abstract readonly durable: boolean;
  abstract readonly durability: string;
  readonly layout = { shardCount: 1, partitionCount: defaultLimits.partitionCount, epoch: 0 };
  readonly shards = [{ depth: 0, phase: 'ready' }];
  protected commands = 0;

  constructor(readonly limits: Limits = defaultLimits) {}

  abstract execute(request: Request): Promise<Reply>;
  abstract serverVersion(): Promise<string>;
  abstract close(): Promise<void>;

  /** Independent requests, answered in order; each runs on its own, concurrently, like separate HTTP requests. */
  executeMany(requests: readonly Request[]): Promise<Reply[]> {
    return Promise.all(requests.map((request) => this.execute(request)));
  }

  /** executeMany with a callback, as the API's batch route calls it; a failure answers every request UNAVAILABLE. */
  submitMany(requests: readonly Request[], done: (replies: Reply[]) => void): void {
    this.executeMany(requests).then(done, (error: unknown) =>
      done(requests.map(() => reject('UNAVAILABLE', `${this.name}: ${String(error)}`))),
    );
  }

  /** No shards and no WAL: zeros, except the commands it answered. */
  async stats(): Promise<ShardStats[]> {
    return [
      {
        shard: 0,
        lifecycle: 'ready',
        seq: 0,
        records: 0,
        reservations: 0,
        held: 0,
        batches: 0,
        commands: this.commands,
        appends: 0,
        eventsAppended: 0,
        appendFailures: 0,
        lastAppendMs: 0,
        appendLatency: newLatencyCounts(),
      },
    ];
  }
}
