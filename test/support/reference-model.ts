/**
 * A reference model of stockd's domain for property tests: single-threaded, plain Maps,
 * written from the documented semantics rather than from src/actors, and meant to be
 * easy to check by reading.
 *
 *   stock:        sku → location → { onHand, reserved, safetyStock }
 *   channels:     channel → { locations (priority order), buffer }
 *   reservations: id → { status, lines (sku, location, qty, held, committed), ... }
 *   adjustments:  sku → key → the body first used with that key
 *
 * Semantics:
 *   available(record) = max(0, onHand − reserved − safetyStock)
 *   ATP(sku, channel) = max(0, Σ available over the channel's locations − buffer)
 *   ATP(sku)          = Σ available over every location of the SKU (no buffer)
 *   reserve: lines of one SKU are summed against its ATP; all-or-nothing over every SKU;
 *     'priority' = first candidate location (channel order, else by name) that can fill the
 *     whole line; 'split' = fill across the candidates in order; 'most_available' = the
 *     candidate with the most available (first on ties), if it can fill the whole line.
 *   commit (whole): every held unit ships; onHand falls by the shipped units (never below 0).
 *   release / expiry: every held unit goes back.
 *   Every request first expires the reservations due at its time.
 *
 * Not modelled (keep them out of generated commands): `ifVersion`, `sourceTs`, partial
 * commits (`lines` on commit), forgetting finished reservations and adjustment keys.
 * Replies have the engine's Reply shape; rejections carry code and shortages, with a
 * placeholder detail. Record versions are not modelled (reported as 0).
 */
import type {
  ChannelView,
  LineRequest,
  Reply,
  Request,
  ReservationStatus,
  ReservationView,
  StockView,
} from '../../src/actors/types.js';
import type { ErrorCode, Shortage } from '../../src/errors.js';

const QUANTITY_MAX = 1_000_000_000;
const TTL_SECONDS_MIN = 1;
const TTL_SECONDS_MAX = 30 * 24 * 3600;
const TTL_SECONDS_DEFAULT = 15 * 60;
const LINES_MAX = 100;
const STRATEGIES = ['priority', 'most_available', 'split'];

interface ModelStock {
  onHand: number;
  reserved: number;
  safetyStock: number;
}

interface ModelLine {
  sku: string;
  location: string;
  qty: number;
  held: number;
  committed: number;
}

interface ModelReservation {
  id: string;
  orderId: string | null;
  channel: string | null;
  /** Canonical text of the request body: equal bodies ⇔ equal texts. */
  body: string;
  status: ReservationStatus;
  createdAt: number;
  expiresAt: number;
  lines: ModelLine[];
}

interface ModelChannel {
  locations: string[];
  buffer: number;
}

interface AdjustmentBody {
  location: string;
  delta: number;
  reason: string;
}

function fail(code: ErrorCode, shortages?: Shortage[]): Reply {
  return shortages === undefined
    ? { ok: false, code, detail: '(model)' }
    : { ok: false, code, detail: '(model)', shortages };
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 128;
}

function isLevel(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= QUANTITY_MAX;
}

function isPositiveQty(value: unknown): value is number {
  return isLevel(value) && value > 0;
}

function isTtl(value: unknown): value is number {
  return (
    typeof value === 'number' &&
    Number.isSafeInteger(value) &&
    value >= TTL_SECONDS_MIN &&
    value <= TTL_SECONDS_MAX
  );
}

function available(record: ModelStock): number {
  return Math.max(0, record.onHand - record.reserved - record.safetyStock);
}

export class ReferenceModel {
  readonly stock = new Map<string, Map<string, ModelStock>>();
  readonly channels = new Map<string, ModelChannel>();
  readonly reservations = new Map<string, ModelReservation>();
  readonly adjustments = new Map<string, Map<string, AdjustmentBody>>();

  /** An independent deep copy (to ask "what if" without changing this model). */
  clone(): ReferenceModel {
    const copy = new ReferenceModel();
    for (const [sku, locations] of this.stock) copy.stock.set(sku, structuredClone(locations));
    for (const [channel, config] of this.channels) copy.channels.set(channel, structuredClone(config));
    for (const [id, reservation] of this.reservations)
      copy.reservations.set(id, structuredClone(reservation));
    for (const [sku, keys] of this.adjustments) copy.adjustments.set(sku, structuredClone(keys));
    return copy;
  }

  /** Applies one request at time `now` and returns the reply the engine should give. */
  execute(request: Request, now: number): Reply {
    this.expireDue(now);
    switch (request.type) {
      case 'set':
        if (request.ifVersion !== undefined || request.sourceTs !== undefined) {
          throw new Error('the reference model does not model ifVersion / sourceTs');
        }
        return this.set(request.sku, request.location, request.onHand, request.safetyStock);
      case 'adjust':
        return this.adjust(request.sku, request.location, request.delta, request.reason, request.key);
      case 'safety':
        if (request.ifVersion !== undefined) throw new Error('the reference model does not model ifVersion');
        return this.safety(request.sku, request.location, request.safetyStock);
      case 'channel':
        return this.upsertChannel(request.channel, request.locations, request.buffer ?? 0);
      case 'reserve':
        return this.reserve(request, now);
      case 'commit':
        if (request.lines?.some((line) => line.qty !== undefined || line.location !== undefined))
          throw new Error('the reference model commits whole lines named by SKU only');
        return this.commit(
          request.reservationId,
          request.lines?.map((line) => line.sku),
        );
      case 'release':
        return this.release(request.reservationId);
      case 'extend':
        return this.extend(request.reservationId, request.ttlSeconds, now);
      case 'stock':
        return this.stockQuery(request.sku);
      case 'atp':
        return this.atpQuery(request.sku, request.channel, request.location);
      case 'get': {
        const reservation = this.reservations.get(request.reservationId);
        if (reservation === undefined) return fail('RESERVATION_NOT_FOUND');
        return {
          ok: true,
          kind: 'reservation',
          reservation: viewOfReservation(reservation),
          replayed: false,
        };
      }
      case 'channels':
        return {
          ok: true,
          kind: 'channels',
          channels: [...this.channels].map(([channel, c]) => ({
            channel,
            locations: [...c.locations],
            buffer: c.buffer,
          })),
        };
      default:
        throw new Error(`the reference model does not handle ${request.type}`);
    }
  }

  /** Moves every held reservation whose expiry is due to 'expired', giving its units back. */
  expireDue(now: number): void {
    for (const reservation of this.reservations.values()) {
      if (reservation.status === 'held' && reservation.expiresAt <= now) {
        this.giveBack(reservation);
        reservation.status = 'expired';
      }
    }
  }

  /** The record of (sku, location), if any. */
  record(sku: string, location: string): ModelStock | undefined {
    return this.stock.get(sku)?.get(location);
  }

  /** Every SKU with at least one record. */
  skus(): string[] {
    return [...this.stock.keys()];
  }

  /** Channel ATP (or total availability without a channel) as the model defines it. */
  atp(sku: string, channel?: string): number {
    if (channel === undefined) {
      let sum = 0;
      for (const record of this.stock.get(sku)?.values() ?? []) sum += available(record);
      return sum;
    }
    const c = this.channels.get(channel);
    if (c === undefined) throw new Error(`unknown channel ${channel}`);
    let sum = 0;
    for (const location of c.locations) {
      const record = this.record(sku, location);
      if (record !== undefined) sum += available(record);
    }
    return Math.max(0, sum - c.buffer);
  }

  /* ---------------------------------------------------------------------------- stock */

  private recordOrCreate(sku: string, location: string): ModelStock {
    let locations = this.stock.get(sku);
    if (locations === undefined) {
      locations = new Map();
      this.stock.set(sku, locations);
    }
    let record = locations.get(location);
    if (record === undefined) {
      record = { onHand: 0, reserved: 0, safetyStock: 0 };
      locations.set(location, record);
    }
    return record;
  }

  private stockReply(sku: string, location: string, duplicate?: boolean): Reply {
    const record = this.record(sku, location)!;
    const view = viewOfStock(sku, location, record);
    return duplicate === undefined
      ? { ok: true, kind: 'stock', record: view }
      : { ok: true, kind: 'stock', record: view, duplicate };
  }

  private set(sku: string, location: string, onHand: number, safetyStock: number | undefined): Reply {
    if (!isId(sku) || !isId(location)) return fail('INVALID_REQUEST');
    if (!isLevel(onHand)) return fail('INVALID_QUANTITY');
    if (safetyStock !== undefined && !isLevel(safetyStock)) return fail('INVALID_QUANTITY');
    const record = this.recordOrCreate(sku, location);
    record.onHand = onHand;
    if (safetyStock !== undefined) record.safetyStock = safetyStock;
    return this.stockReply(sku, location);
  }

  private safety(sku: string, location: string, safetyStock: number): Reply {
    if (!isId(sku) || !isId(location)) return fail('INVALID_REQUEST');
    if (!isLevel(safetyStock)) return fail('INVALID_QUANTITY');
    this.recordOrCreate(sku, location).safetyStock = safetyStock;
    return this.stockReply(sku, location);
  }

  private adjust(sku: string, location: string, delta: number, reason: string, key: string): Reply {
    if (!isId(sku) || !isId(location) || !isId(key)) return fail('INVALID_REQUEST');
    if (typeof reason !== 'string' || reason.length > 256) return fail('INVALID_REQUEST');
    if (!Number.isSafeInteger(delta) || delta === 0 || Math.abs(delta) > QUANTITY_MAX) {
      return fail('INVALID_QUANTITY');
    }
    const seen = this.adjustments.get(sku)?.get(key);
    if (seen !== undefined) {
      const same = seen.location === location && seen.delta === delta && seen.reason === reason;
      return same ? this.stockReply(sku, location, true) : fail('IDEMPOTENCY_KEY_REUSED');
    }
    const onHand = this.record(sku, location)?.onHand ?? 0;
    if (onHand + delta < 0) return fail('ADJUSTMENT_BELOW_ZERO');
    if (onHand + delta > QUANTITY_MAX) return fail('INVALID_QUANTITY');
    this.recordOrCreate(sku, location).onHand = onHand + delta;
    let keys = this.adjustments.get(sku);
    if (keys === undefined) {
      keys = new Map();
      this.adjustments.set(sku, keys);
    }
    keys.set(key, { location, delta, reason });
    return this.stockReply(sku, location, false);
  }

  private upsertChannel(channel: string, locations: readonly string[], buffer: number): Reply {
    if (!isId(channel)) return fail('INVALID_REQUEST');
    if (!Array.isArray(locations) || locations.length === 0) return fail('INVALID_REQUEST');
    if (!locations.every(isId) || new Set(locations).size !== locations.length)
      return fail('INVALID_REQUEST');
    if (!isLevel(buffer)) return fail('INVALID_QUANTITY');
    this.channels.set(channel, { locations: [...locations], buffer });
    const view: ChannelView = { channel, locations: [...locations], buffer };
    return { ok: true, kind: 'channel', channel: view };
  }

  /* --------------------------------------------------------------------- reservations */

  private reserve(request: Extract<Request, { type: 'reserve' }>, now: number): Reply {
    const { reservationId, orderId, channel, ttlSeconds, strategy, lines } = request;
    if (!isId(reservationId)) return fail('INVALID_REQUEST');
    if (orderId !== undefined && orderId !== null && !isId(orderId)) return fail('INVALID_REQUEST');
    if (ttlSeconds !== undefined && !isTtl(ttlSeconds)) return fail('INVALID_TTL');
    if (strategy !== undefined && !STRATEGIES.includes(strategy)) return fail('INVALID_REQUEST');
    if (!Array.isArray(lines) || lines.length === 0) return fail('INVALID_REQUEST');
    if (lines.length > LINES_MAX) return fail('LIMIT_EXCEEDED');
    for (const line of lines) {
      if (!isId(line.sku)) return fail('INVALID_REQUEST');
      if (line.location !== undefined && !isId(line.location)) return fail('INVALID_REQUEST');
      if (!isPositiveQty(line.qty)) return fail('INVALID_QUANTITY');
    }
    const channelConfig = channel === undefined || channel === null ? undefined : this.channels.get(channel);
    if (channel !== undefined && channel !== null && channelConfig === undefined) {
      return fail('UNKNOWN_CHANNEL');
    }

    const body = JSON.stringify([
      orderId ?? null,
      channel ?? null,
      ttlSeconds ?? null,
      strategy ?? null,
      lines.map((line) => [line.sku, line.qty, line.location ?? null]),
    ]);
    const existing = this.reservations.get(reservationId);
    if (existing !== undefined) {
      if (existing.body !== body) return fail('IDEMPOTENCY_KEY_REUSED');
      return { ok: true, kind: 'reservation', reservation: viewOfReservation(existing), replayed: true };
    }

    if (channelConfig !== undefined) {
      for (const line of lines) {
        if (line.location !== undefined && !channelConfig.locations.includes(line.location)) {
          return fail('LOCATION_NOT_IN_CHANNEL');
        }
      }
    }

    const outcome = this.allocate(lines, channel ?? undefined, strategy ?? 'priority');
    if (outcome.shortages.length > 0) return fail('INSUFFICIENT_STOCK', outcome.shortages);

    const reservation: ModelReservation = {
      id: reservationId,
      orderId: orderId ?? null,
      channel: channel ?? null,
      body,
      status: 'held',
      createdAt: now,
      expiresAt: now + (ttlSeconds ?? TTL_SECONDS_DEFAULT) * 1000,
      lines: [],
    };
    for (const [sku, byLocation] of outcome.taken) {
      for (const [location, qty] of byLocation) {
        this.record(sku, location)!.reserved += qty;
        reservation.lines.push({ sku, location, qty, held: qty, committed: 0 });
      }
    }
    this.reservations.set(reservationId, reservation);
    return { ok: true, kind: 'reservation', reservation: viewOfReservation(reservation), replayed: false };
  }

  /**
   * Decides where every line comes from without touching the state. Returns the units
   * taken per (sku, location), or the shortages (one per SKU that cannot be served, with
   * the SKU's whole requested quantity and its ATP before the request).
   */
  private allocate(
    lines: readonly LineRequest[],
    channel: string | undefined,
    strategy: string,
  ): { taken: Map<string, Map<string, number>>; shortages: Shortage[] } {
    const requested = new Map<string, number>();
    for (const line of lines) requested.set(line.sku, (requested.get(line.sku) ?? 0) + line.qty);

    const atpBefore = new Map<string, number>();
    const atpLeft = new Map<string, number>();
    for (const sku of requested.keys()) {
      atpBefore.set(sku, this.atp(sku, channel));
      atpLeft.set(sku, this.atp(sku, channel));
    }

    const taken = new Map<string, Map<string, number>>();
    const takenAt = (sku: string, location: string): number => taken.get(sku)?.get(location) ?? 0;
    const freeAt = (sku: string, location: string): number => {
      const record = this.record(sku, location);
      return (record === undefined ? 0 : available(record)) - takenAt(sku, location);
    };
    const take = (sku: string, location: string, qty: number): void => {
      let byLocation = taken.get(sku);
      if (byLocation === undefined) {
        byLocation = new Map();
        taken.set(sku, byLocation);
      }
      byLocation.set(location, takenAt(sku, location) + qty);
      atpLeft.set(sku, atpLeft.get(sku)! - qty);
    };

    const short = new Set<string>();
    for (const { sku, qty, location } of lines) {
      if (atpLeft.get(sku)! < qty) {
        short.add(sku);
        continue;
      }
      if (location !== undefined) {
        if (freeAt(sku, location) >= qty) take(sku, location, qty);
        else short.add(sku);
        continue;
      }
      const candidates = this.candidates(sku, channel);
      if (strategy === 'split') {
        const total = candidates.reduce((sum, candidate) => sum + freeAt(sku, candidate), 0);
        if (total < qty) {
          short.add(sku);
          continue;
        }
        let left = qty;
        for (const candidate of candidates) {
          const part = Math.min(left, freeAt(sku, candidate));
          if (part > 0) {
            take(sku, candidate, part);
            left -= part;
          }
        }
      } else if (strategy === 'most_available') {
        let best: string | undefined;
        for (const candidate of candidates) {
          if (best === undefined || freeAt(sku, candidate) > freeAt(sku, best)) best = candidate;
        }
        if (best !== undefined && freeAt(sku, best) >= qty) take(sku, best, qty);
        else short.add(sku);
      } else {
        const first = candidates.find((candidate) => freeAt(sku, candidate) >= qty);
        if (first !== undefined) take(sku, first, qty);
        else short.add(sku);
      }
    }

    // When every line of a SKU names the same location, no more than that location has.
    const shortages = [...short].map((sku) => {
      const named = new Set(lines.filter((line) => line.sku === sku).map((line) => line.location));
      const [only] = [...named];
      const record = named.size === 1 && only !== undefined ? this.record(sku, only) : undefined;
      const atBefore =
        named.size === 1 && only !== undefined ? (record === undefined ? 0 : available(record)) : Infinity;
      return { sku, requested: requested.get(sku)!, available: Math.min(atpBefore.get(sku)!, atBefore) };
    });
    return { taken, shortages };
  }

  /** Where a SKU is sourced from: the channel's locations in order, else all its locations by name. */
  private candidates(sku: string, channel: string | undefined): string[] {
    if (channel !== undefined) return [...this.channels.get(channel)!.locations];
    return [...(this.stock.get(sku)?.keys() ?? [])].sort();
  }

  private giveBack(reservation: ModelReservation): void {
    for (const line of reservation.lines) {
      this.record(line.sku, line.location)!.reserved -= line.held;
      line.held = 0;
    }
  }

  /** The reservation if it can be changed, else the rejection. */
  private live(id: string): ModelReservation | Reply {
    if (!isId(id)) return fail('INVALID_REQUEST');
    const reservation = this.reservations.get(id);
    return reservation ?? fail('RESERVATION_NOT_FOUND');
  }

  /**
   * A whole commit, or (skus given, each named once) a partial one: every held line of a
   * named SKU ships in full, the other lines stay held, and the reservation is committed
   * once nothing is held. A named SKU the reservation lacks refuses the whole commit.
   */
  private commit(id: string, skus?: readonly string[]): Reply {
    const reservation = this.live(id);
    if ('ok' in reservation) return reservation;
    if (reservation.status === 'committed') return reservationReply(reservation, true);
    if (reservation.status !== 'held') return fail('RESERVATION_NOT_HELD');
    if (skus !== undefined) {
      if (skus.length === 0 || new Set(skus).size !== skus.length) return fail('INVALID_REQUEST');
      if (skus.some((sku) => !isId(sku) || !reservation.lines.some((line) => line.sku === sku)))
        return fail('INVALID_REQUEST');
    }
    let shipped = 0;
    for (const line of reservation.lines) {
      if (line.held === 0 || (skus !== undefined && !skus.includes(line.sku))) continue;
      const record = this.record(line.sku, line.location)!;
      record.reserved -= line.held;
      record.onHand -= Math.min(line.held, record.onHand);
      line.committed += line.held;
      line.held = 0;
      shipped++;
    }
    if (shipped === 0) return reservationReply(reservation, true);
    if (reservation.lines.every((line) => line.held === 0)) reservation.status = 'committed';
    return reservationReply(reservation, false);
  }

  private release(id: string): Reply {
    const reservation = this.live(id);
    if ('ok' in reservation) return reservation;
    if (reservation.status === 'released') return reservationReply(reservation, true);
    if (reservation.status !== 'held') return fail('RESERVATION_NOT_HELD');
    this.giveBack(reservation);
    reservation.status = 'released';
    return reservationReply(reservation, false);
  }

  private extend(id: string, ttlSeconds: number, now: number): Reply {
    if (!isTtl(ttlSeconds)) return fail('INVALID_TTL');
    const reservation = this.live(id);
    if ('ok' in reservation) return reservation;
    if (reservation.status !== 'held') return fail('RESERVATION_NOT_HELD');
    reservation.expiresAt = now + ttlSeconds * 1000;
    return reservationReply(reservation, false);
  }

  /* -------------------------------------------------------------------------- queries */

  private stockQuery(sku: string): Reply {
    if (!isId(sku)) return fail('INVALID_REQUEST');
    const locations = this.stock.get(sku);
    if (locations === undefined || locations.size === 0) return fail('STOCK_NOT_FOUND');
    return {
      ok: true,
      kind: 'stockList',
      sku,
      locations: [...locations].map(([location, record]) => viewOfStock(sku, location, record)),
    };
  }

  private atpQuery(sku: string, channel: string | undefined, location: string | undefined): Reply {
    if (!isId(sku)) return fail('INVALID_REQUEST');
    if (location !== undefined && !isId(location)) return fail('INVALID_REQUEST');
    if (channel !== undefined && !this.channels.has(channel)) return fail('UNKNOWN_CHANNEL');
    if (location !== undefined) {
      if (channel !== undefined && !this.channels.get(channel)!.locations.includes(location)) {
        return fail('LOCATION_NOT_IN_CHANNEL');
      }
      const record = this.record(sku, location);
      const free = record === undefined ? 0 : available(record);
      return { ok: true, kind: 'atp', sku, available: free, byLocation: { [location]: free } };
    }
    const byLocation: Record<string, number> = {};
    for (const candidate of this.candidates(sku, channel)) {
      const record = this.record(sku, candidate);
      byLocation[candidate] = record === undefined ? 0 : available(record);
    }
    return { ok: true, kind: 'atp', sku, available: this.atp(sku, channel), byLocation };
  }
}

function viewOfStock(sku: string, location: string, record: ModelStock): StockView {
  return {
    sku,
    location,
    onHand: record.onHand,
    reserved: record.reserved,
    safetyStock: record.safetyStock,
    available: available(record),
    version: 0,
    sourceTs: null,
  };
}

function viewOfReservation(reservation: ModelReservation): ReservationView {
  return {
    reservationId: reservation.id,
    orderId: reservation.orderId,
    channel: reservation.channel,
    status: reservation.status,
    createdAt: reservation.createdAt,
    expiresAt: reservation.expiresAt,
    lines: reservation.lines.map((line) => ({ ...line })),
  };
}

function reservationReply(reservation: ModelReservation, replayed: boolean): Reply {
  return { ok: true, kind: 'reservation', reservation: viewOfReservation(reservation), replayed };
}

/* ---------------------------------------------------------------- comparing replies */

/*
 * Comparing replies of the real engine and the model: `essence` keeps what a reply means
 * (ok or the rejection code and shortages; stock levels, ATP, allocated lines, reservation
 * status) and drops what the model does not track (details, record versions, source
 * timestamps) or what depends on the shard layout (order of lines and locations).
 */

const byKey =
  <T>(key: (item: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

function stockEssence(view: StockView) {
  return {
    sku: view.sku,
    location: view.location,
    onHand: view.onHand,
    reserved: view.reserved,
    safetyStock: view.safetyStock,
    available: view.available,
  };
}

export function reservationEssence(view: ReservationView) {
  return {
    reservationId: view.reservationId,
    orderId: view.orderId,
    channel: view.channel,
    status: view.status,
    createdAt: view.createdAt,
    expiresAt: view.expiresAt,
    lines: [...view.lines]
      .map((line) => ({ ...line }))
      .sort(byKey((line) => `${line.sku}\u0000${line.location}`)),
  };
}

export function essence(reply: Reply): unknown {
  if (!reply.ok) {
    return reply.code === 'INSUFFICIENT_STOCK'
      ? { code: reply.code, shortages: [...(reply.shortages ?? [])].sort(byKey((s) => s.sku)) }
      : { code: reply.code };
  }
  switch (reply.kind) {
    case 'stock':
      return { kind: reply.kind, record: stockEssence(reply.record), duplicate: reply.duplicate ?? null };
    case 'stockList':
      return {
        kind: reply.kind,
        sku: reply.sku,
        locations: reply.locations.map(stockEssence).sort(byKey((view) => view.location)),
      };
    case 'atp':
      return {
        kind: reply.kind,
        sku: reply.sku,
        available: reply.available,
        byLocation: Object.entries(reply.byLocation).sort(byKey(([location]) => location)),
      };
    case 'channel':
      return { kind: reply.kind, channel: { ...reply.channel, locations: [...reply.channel.locations] } };
    case 'channels':
      return {
        kind: reply.kind,
        channels: reply.channels
          .map((c) => ({ ...c, locations: [...c.locations] }))
          .sort(byKey((c) => c.channel)),
      };
    case 'reservation':
      return {
        kind: reply.kind,
        replayed: reply.replayed,
        reservation: reservationEssence(reply.reservation),
      };
  }
}
