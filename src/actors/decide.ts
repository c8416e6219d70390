/**
 * decide(state, command, now) → events | rejection. Pure: it reads the state and the
 * time it is given, and never changes anything. The shard actor evolves the returned
 * events into the state before it decides the next command, so every command sees the
 * effects of the ones before it in the same batch.
 *
 * A rejection is a value with a stable code (src/errors.ts). A decision may carry events
 * *and* a rejection: touching a reservation whose expiry is due expires it (an event)
 * and then rejects the command as RESERVATION_NOT_HELD.
 */
import type { Limits } from '../config.js';
import { invariant, type Rejection, reject, type Shortage } from '../errors.js';
import { hash53, hash53Pieces } from './hash.js';
import { availableOf, type Channel, type Reservation, type ShardState, type StockRecord } from './state.js';
import type {
  Abort,
  AdjustStock,
  Allocation,
  Command,
  Commit,
  CommittedLine,
  DomainEvent,
  EpochMs,
  Expire,
  Extend,
  LineRequest,
  Release,
  Reserve,
  SetSafetyStock,
  SetStock,
  SourcingStrategy,
  UpsertChannel,
} from './types.js';
import { sourcingStrategies } from './types.js';
import { isNonNegativeInteger, isValidId, isValidLevel, isValidQuantity, isValidTtl } from './validate.js';

export interface Decision {
  readonly events: DomainEvent[];
  readonly rejection: Rejection | null;
  /** The command repeated one already applied: nothing new happened. */
  readonly replayed: boolean;
}

const noEvents: DomainEvent[] = [];
const noShortages: Shortage[] = [];
const accepted = (events: DomainEvent[]): Decision => ({ events, rejection: null, replayed: false });
const replayed: Decision = Object.freeze({ events: noEvents, rejection: null, replayed: true });
/** A commit `check` that passed: no events, the reply is the reservation as it stands. */
const checked: Decision = Object.freeze({ events: noEvents, rejection: null, replayed: false });
const rejected = (rejection: Rejection, events: DomainEvent[] = noEvents): Decision => ({
  events,
  rejection,
  replayed: false,
});

export function decide(state: ShardState, command: Command, now: EpochMs): Decision {
  switch (command.type) {
    case 'set':
      return decideSet(state, command, now);
    case 'adjust':
      return decideAdjust(state, command, now);
    case 'safety':
      return decideSafety(state, command, now);
    case 'channel':
      return decideChannel(state, command, now);
    case 'reserve':
      return decideReserve(state, command, now);
    case 'commit':
      return decideCommit(state, command, now);
    case 'release':
      return decideRelease(state, command, now);
    case 'extend':
      return decideExtend(state, command, now);
    case 'abort':
      return decideAbort(state, command, now);
    case 'expire':
      return decideExpire(state, command, now);
    default: {
      const unknown: never = command;
      return rejected(
        reject('INVALID_REQUEST', `unknown command type ${JSON.stringify((unknown as Command).type)}`),
      );
    }
  }
}

/* ------------------------------------------------------------------------------ stock */

function checkSkuLocation(limits: Limits, sku: unknown, location: unknown): Rejection | null {
  if (!isValidId(sku, limits)) return reject('INVALID_REQUEST', `sku must be 1..${limits.idBytesMax} bytes`);
  if (!isValidId(location, limits)) {
    return reject('INVALID_REQUEST', `location must be 1..${limits.idBytesMax} bytes`);
  }
  return null;
}

function decideSet(state: ShardState, cmd: SetStock, now: EpochMs): Decision {
  const limits = state.limits;
  const invalid = checkSkuLocation(limits, cmd.sku, cmd.location);
  if (invalid) return rejected(invalid);
  if (!isValidLevel(cmd.onHand, limits)) {
    return rejected(reject('INVALID_QUANTITY', `onHand must be a whole number 0..${limits.quantityMax}`));
  }
  if (cmd.safetyStock !== undefined && !isValidLevel(cmd.safetyStock, limits)) {
    return rejected(
      reject('INVALID_QUANTITY', `safetyStock must be a whole number 0..${limits.quantityMax}`),
    );
  }
  if (cmd.ifVersion !== undefined && !isNonNegativeInteger(cmd.ifVersion)) {
    return rejected(reject('INVALID_REQUEST', 'ifVersion must be a whole number >= 0'));
  }
  if (cmd.sourceTs !== undefined && !isNonNegativeInteger(cmd.sourceTs)) {
    return rejected(reject('INVALID_REQUEST', 'sourceTs must be epoch milliseconds >= 0'));
  }
  const record = state.record(cmd.sku, cmd.location);
  const version = record?.version ?? 0;
  if (cmd.ifVersion !== undefined && cmd.ifVersion !== version) {
    return rejected(
      reject('VERSION_CONFLICT', `expected version ${cmd.ifVersion}, record is at ${version}`, {
        currentVersion: version,
      }),
    );
  }
  const lastSourceTs = record?.sourceTs ?? 0;
  if (cmd.sourceTs !== undefined && cmd.sourceTs < lastSourceTs) {
    return rejected(
      reject(
        'STALE_UPDATE',
        `sourceTs ${cmd.sourceTs} is older than the record's last update ${lastSourceTs}`,
      ),
    );
  }
  return accepted([
    {
      type: 'StockSet',
      at: now,
      sku: cmd.sku,
      location: cmd.location,
      onHand: cmd.onHand,
      safetyStock: cmd.safetyStock ?? record?.safetyStock ?? 0,
      sourceTs: Math.max(lastSourceTs, cmd.sourceTs ?? 0),
    },
  ]);
}

function decideSafety(state: ShardState, cmd: SetSafetyStock, now: EpochMs): Decision {
  const limits = state.limits;
  const invalid = checkSkuLocation(limits, cmd.sku, cmd.location);
  if (invalid) return rejected(invalid);
  if (!isValidLevel(cmd.safetyStock, limits)) {
    return rejected(
      reject('INVALID_QUANTITY', `safetyStock must be a whole number 0..${limits.quantityMax}`),
    );
  }
  if (cmd.ifVersion !== undefined && !isNonNegativeInteger(cmd.ifVersion)) {
    return rejected(reject('INVALID_REQUEST', 'ifVersion must be a whole number >= 0'));
  }
  const version = state.record(cmd.sku, cmd.location)?.version ?? 0;
  if (cmd.ifVersion !== undefined && cmd.ifVersion !== version) {
    return rejected(
      reject('VERSION_CONFLICT', `expected version ${cmd.ifVersion}, record is at ${version}`, {
        currentVersion: version,
      }),
    );
  }
  return accepted([
    { type: 'SafetyStockSet', at: now, sku: cmd.sku, location: cmd.location, safetyStock: cmd.safetyStock },
  ]);
}

export function adjustmentBodyHash(cmd: Pick<AdjustStock, 'sku' | 'location' | 'delta' | 'reason'>): number {
  return hash53(`${cmd.sku}\u0000${cmd.location}\u0000${cmd.delta}\u0000${cmd.reason}`);
}

function decideAdjust(state: ShardState, cmd: AdjustStock, now: EpochMs): Decision {
  const limits = state.limits;
  const invalid = checkSkuLocation(limits, cmd.sku, cmd.location);
  if (invalid) return rejected(invalid);
  if (!isValidId(cmd.key, limits)) return rejected(reject('INVALID_REQUEST', 'key must be 1..128 bytes'));
  if (typeof cmd.reason !== 'string' || cmd.reason.length > 256) {
    return rejected(reject('INVALID_REQUEST', 'reason must be a string of at most 256 characters'));
  }
  if (
    typeof cmd.delta !== 'number' ||
    !Number.isSafeInteger(cmd.delta) ||
    cmd.delta === 0 ||
    Math.abs(cmd.delta) > limits.quantityMax
  ) {
    return rejected(
      reject('INVALID_QUANTITY', `delta must be a non-zero whole number within ±${limits.quantityMax}`),
    );
  }
  const bodyHash = adjustmentBodyHash(cmd);
  const seen = state.adjustmentKeys.get(`${cmd.sku}\u0000${cmd.key}`);
  if (seen !== undefined && seen.at > now - limits.adjustmentKeyWindowSeconds * 1000) {
    if (seen.bodyHash === bodyHash && seen.location === cmd.location) return replayed;
    return rejected(
      reject('IDEMPOTENCY_KEY_REUSED', `adjustment key ${cmd.key} was used with a different body`),
    );
  }
  const onHand = state.record(cmd.sku, cmd.location)?.onHand ?? 0;
  if (onHand + cmd.delta < 0) {
    return rejected(
      reject(
        'ADJUSTMENT_BELOW_ZERO',
        `onHand is ${onHand}; a delta of ${cmd.delta} would take it below zero`,
      ),
    );
  }
  if (onHand + cmd.delta > limits.quantityMax) {
    return rejected(reject('INVALID_QUANTITY', `onHand would exceed ${limits.quantityMax}`));
  }
  return accepted([
    {
      type: 'StockAdjusted',
      at: now,
      sku: cmd.sku,
      location: cmd.location,
      delta: cmd.delta,
      reason: cmd.reason,
      key: cmd.key,
      bodyHash,
    },
  ]);
}

function decideChannel(state: ShardState, cmd: UpsertChannel, now: EpochMs): Decision {
  const limits = state.limits;
  if (!isValidId(cmd.channel, limits))
    return rejected(reject('INVALID_REQUEST', 'channel must be 1..128 bytes'));
  if (!Array.isArray(cmd.locations) || cmd.locations.length === 0) {
    return rejected(reject('INVALID_REQUEST', 'a channel needs at least one location'));
  }
  if (cmd.locations.length > limits.channelLocationsMax) {
    return rejected(
      reject('LIMIT_EXCEEDED', `a channel has at most ${limits.channelLocationsMax} locations`),
    );
  }
  const unique = new Set<string>();
  for (const location of cmd.locations) {
    if (!isValidId(location, limits))
      return rejected(reject('INVALID_REQUEST', 'location must be 1..128 bytes'));
    if (unique.has(location)) return rejected(reject('INVALID_REQUEST', `location ${location} listed twice`));
    unique.add(location);
  }
  const buffer = cmd.buffer ?? 0;
  if (!isValidLevel(buffer, limits)) {
    return rejected(reject('INVALID_QUANTITY', `buffer must be a whole number 0..${limits.quantityMax}`));
  }
  if (!state.channels.has(cmd.channel) && state.channels.size >= limits.channelsMax) {
    return rejected(reject('LIMIT_EXCEEDED', `at most ${limits.channelsMax} channels`));
  }
  return accepted([
    { type: 'ChannelUpserted', at: now, channel: cmd.channel, locations: [...cmd.locations], buffer },
  ]);
}

/* ---------------------------------------------------------------------- reservations */

/** Hash of everything that defines a reserve request except its id, in a fixed order. */
export function reserveBodyHash(cmd: Omit<Reserve, 'type' | 'reservationId' | 'bodyHash'>): number {
  // hash53 of `orderId␁channel␁ttlSeconds␁strategy` then `␁sku␀qty␀location` per line,
  // fed piecewise so the hot path builds no string (test/hash.unit.test.ts checks it against
  // the string-building definition).
  const h = hash53Pieces;
  h.start();
  // String(x) is what a template literal does with x (and returns a string unchanged).
  h.add(String(cmd.orderId ?? ''));
  h.addChar(1);
  h.add(String(cmd.channel ?? ''));
  h.addChar(1);
  h.add(String(cmd.ttlSeconds ?? ''));
  h.addChar(1);
  h.add(String(cmd.strategy ?? ''));
  for (const line of cmd.lines) {
    h.addChar(1);
    h.add(String(line.sku));
    h.addChar(0);
    h.add(String(line.qty));
    h.addChar(0);
    h.add(String(line.location ?? ''));
  }
  return h.finish();
}

/** The locations a SKU is sourced from: the channel's in priority order, else all of the SKU's by name. */
export function candidateLocations(
  state: ShardState,
  sku: string,
  channel: Channel | undefined,
): readonly string[] {
  if (channel !== undefined) return channel.locations;
  return state
    .recordsOf(sku)
    .map((record) => record.location)
    .sort();
}

/** Channel ATP of a SKU: Σ available over the candidate locations − buffer, floored at 0. */
export function skuAtp(state: ShardState, sku: string, channel: Channel | undefined): number {
  let sum = 0;
  if (channel === undefined) {
    for (let r: StockRecord | null | undefined = state.stock.get(sku); r; r = r.next) sum += availableOf(r);
    return sum;
  }
  for (const location of channel.locations) {
    const record = state.record(sku, location);
    if (record !== undefined) sum += availableOf(record);
  }
  const atp = sum - channel.buffer;
  return Math.max(atp, 0);
}

function validateReserve(state: ShardState, cmd: Reserve): Rejection | null {
  const invalid = validateReserveShape(cmd, state.limits);
  if (invalid !== null) return invalid;
  if (cmd.channel !== undefined && cmd.channel !== null && !state.channels.has(cmd.channel)) {
    return reject('UNKNOWN_CHANNEL', `channel ${cmd.channel} is not configured`);
  }
  return null;
}

/** The checks of a reserve that need no state, in the order a shard makes them. */
export function validateReserveShape(cmd: Reserve, limits: Limits): Rejection | null {
  if (!isValidId(cmd.reservationId, limits))
    return reject('INVALID_REQUEST', 'reservationId must be 1..128 bytes');
  if (cmd.orderId !== undefined && cmd.orderId !== null && !isValidId(cmd.orderId, limits)) {
    return reject('INVALID_REQUEST', 'orderId must be 1..128 bytes');
  }
  if (cmd.ttlSeconds !== undefined && !isValidTtl(cmd.ttlSeconds, limits)) {
    return reject(
      'INVALID_TTL',
      `ttlSeconds must be a whole number ${limits.ttlSecondsMin}..${limits.ttlSecondsMax}`,
    );
  }
  if (cmd.strategy !== undefined && !sourcingStrategies.includes(cmd.strategy)) {
    return reject('INVALID_REQUEST', `strategy must be one of ${sourcingStrategies.join(', ')}`);
  }
  if (!Array.isArray(cmd.lines) || cmd.lines.length === 0) {
    return reject('INVALID_REQUEST', 'a reservation needs at least one line');
  }
  if (cmd.lines.length > limits.reservationLinesMax) {
    return reject('LIMIT_EXCEEDED', `a reservation has at most ${limits.reservationLinesMax} lines`);
  }
  for (const line of cmd.lines) {
    if (!isValidId(line?.sku, limits)) return reject('INVALID_REQUEST', 'sku must be 1..128 bytes');
    if (line.location !== undefined && !isValidId(line.location, limits)) {
      return reject('INVALID_REQUEST', 'location must be 1..128 bytes');
    }
    if (!isValidQuantity(line.qty, limits)) {
      return reject('INVALID_QUANTITY', `qty must be a whole number 1..${limits.quantityMax}`);
    }
  }
  return null;
}

/**
 * Allocates every line to locations on a scratch copy of availability, so lines of the
 * same SKU (a bundle) are summed before the check and can never oversell together.
 */
function allocate(
  state: ShardState,
  cmd: Reserve,
  channel: Channel | undefined,
): { allocations: Allocation[]; shortages: Shortage[]; misplaced: string | null } {
  return cmd.lines.length === 1 ? allocateOneLine(state, cmd, channel) : allocateLines(state, cmd, channel);
}

/** Available units of a record now (0 when there is none). */
function freeNow(state: ShardState, sku: string, location: string): number {
  const record = state.record(sku, location);
  return record === undefined ? 0 : availableOf(record);
}

/** The general allocator (any number of lines). Exported for the test that compares it with the fast path. */
export function allocateLines(
  state: ShardState,
  cmd: Reserve,
  channel: Channel | undefined,
): { allocations: Allocation[]; shortages: Shortage[]; misplaced: string | null } {
  const strategy: SourcingStrategy = cmd.strategy ?? 'priority';
  // Remaining per location (`sku\0location`) and remaining channel ATP per SKU.
  const remainingAt = new Map<string, number>();
  const remainingAtp = new Map<string, number>();
  const initialAtp = new Map<string, number>();
  const requested = new Map<string, number>();
  const failed = new Set<string>();
  const merged = new Map<string, Allocation>();
  const locationsOf = new Map<string, readonly string[]>();
  /** Per SKU: the location every one of its lines names, else null. */
  const pinned = new Map<string, string | null>();

  const freeAt = (sku: string, location: string): number => {
    const key = `${sku}\u0000${location}`;
    let free = remainingAt.get(key);
    if (free === undefined) {
      const record = state.record(sku, location);
      free = record === undefined ? 0 : availableOf(record);
      remainingAt.set(key, free);
    }
    return free;
  };
  const take = (sku: string, location: string, qty: number): void => {
    remainingAt.set(`${sku}\u0000${location}`, freeAt(sku, location) - qty);
    remainingAtp.set(sku, remainingAtp.get(sku)! - qty);
    const key = `${sku}\u0000${location}`;
    const prior = merged.get(key);
    merged.set(key, { sku, location, qty: (prior?.qty ?? 0) + qty });
  };

  for (const line of cmd.lines) {
    const { sku, qty } = line;
    requested.set(sku, (requested.get(sku) ?? 0) + qty);
    const pin = line.location ?? null;
    pinned.set(sku, pinned.has(sku) && pinned.get(sku) !== pin ? null : pin);
    if (!remainingAtp.has(sku)) {
      const atp = skuAtp(state, sku, channel);
      remainingAtp.set(sku, atp);
      initialAtp.set(sku, atp);
      locationsOf.set(sku, candidateLocations(state, sku, channel));
    }
    const candidates = locationsOf.get(sku)!;
    // A location outside the channel is wrong whatever the stock; say so before shortages.
    if (line.location !== undefined && channel !== undefined && !candidates.includes(line.location)) {
      return { allocations: [], shortages: [], misplaced: line.location };
    }
    if (remainingAtp.get(sku)! < qty) {
      failed.add(sku);
      continue;
    }
    if (line.location !== undefined) {
      if (freeAt(sku, line.location) < qty) failed.add(sku);
      else take(sku, line.location, qty);
      continue;
    }
    let chosen: string | undefined;
    if (strategy === 'priority') {
      chosen = candidates.find((location) => freeAt(sku, location) >= qty);
    } else if (strategy === 'most_available') {
      let best = -1;
      for (const location of candidates) {
        const free = freeAt(sku, location);
        if (free > best) {
          best = free;
          chosen = location;
        }
      }
      if (best < qty) chosen = undefined;
    } else {
      // split: fill from the candidates in priority order.
      let total = 0;
      for (const location of candidates) total += freeAt(sku, location);
      if (total < qty) {
        failed.add(sku);
        continue;
      }
      let left = qty;
      for (const location of candidates) {
        if (left === 0) break;
        const part = Math.min(left, freeAt(sku, location));
        if (part > 0) {
          take(sku, location, part);
          left -= part;
        }
      }
      continue;
    }
    if (chosen === undefined) failed.add(sku);
    else take(sku, chosen, qty);
  }

  const shortages: Shortage[] = [];
  for (const sku of failed) {
    // What the SKU could give: its ATP, and no more than the one location its lines all name.
    const location = pinned.get(sku) ?? null;
    const atp = initialAtp.get(sku)!;
    const available = location === null ? atp : Math.min(atp, freeNow(state, sku, location));
    shortages.push({ sku, requested: requested.get(sku)!, available });
  }
  return { allocations: [...merged.values()], shortages, misplaced: null };
}

/**
 * The common case, one line, without the scratch maps: the same rules as `allocate`
 * (test/allocate.unit.test.ts checks the two agree on random states).
 */
export function allocateOneLine(
  state: ShardState,
  cmd: Reserve,
  channel: Channel | undefined,
): { allocations: Allocation[]; shortages: Shortage[]; misplaced: string | null } {
  const line = cmd.lines[0]!;
  const { sku, qty } = line;
  if (line.location !== undefined && channel !== undefined && !channel.locations.includes(line.location)) {
    return { allocations: [], shortages: [], misplaced: line.location };
  }
  const atp = skuAtp(state, sku, channel);
  const freeAt = (location: string): number => freeNow(state, sku, location);
  // Built only on the way out: the hot path (enough stock) allocates just its allocation.
  const short = (): { allocations: Allocation[]; shortages: Shortage[]; misplaced: null } => ({
    allocations: [],
    shortages: [
      {
        sku,
        requested: qty,
        available: line.location === undefined ? atp : Math.min(atp, freeAt(line.location)),
      },
    ],
    misplaced: null,
  });
  if (atp < qty) return short();
  if (line.location !== undefined) {
    return freeAt(line.location) >= qty
      ? { allocations: [{ sku, location: line.location, qty }], shortages: noShortages, misplaced: null }
      : short();
  }
  const candidates = candidateLocations(state, sku, channel);
  const strategy: SourcingStrategy = cmd.strategy ?? 'priority';
  if (strategy === 'priority') {
    for (const location of candidates) {
      if (freeAt(location) >= qty)
        return { allocations: [{ sku, location, qty }], shortages: noShortages, misplaced: null };
    }
    return short();
  }
  if (strategy === 'most_available') {
    let best = -1;
    let chosen = '';
    for (const location of candidates) {
      const free = freeAt(location);
      if (free > best) {
        best = free;
        chosen = location;
      }
    }
    return best >= qty
      ? { allocations: [{ sku, location: chosen, qty }], shortages: noShortages, misplaced: null }
      : short();
  }
  const allocations: Allocation[] = [];
  let left = qty;
  for (const location of candidates) {
    if (left === 0) break;
    const part = Math.min(left, freeAt(location));
    if (part > 0) {
      allocations.push({ sku, location, qty: part });
      left -= part;
    }
  }
  return left === 0 ? { allocations, shortages: noShortages, misplaced: null } : short();
}

function decideReserve(state: ShardState, cmd: Reserve, now: EpochMs): Decision {
  const invalid = validateReserve(state, cmd);
  if (invalid) return rejected(invalid);
  const bodyHash = cmd.bodyHash ?? reserveBodyHash(cmd);
  const existing = state.reservations.get(cmd.reservationId);
  if (existing !== undefined) {
    if (existing.bodyHash !== bodyHash) {
      return rejected(
        reject('IDEMPOTENCY_KEY_REUSED', `reservation ${cmd.reservationId} exists with a different body`),
      );
    }
    return existing.status === 'held' ? completeCutReservation(state, cmd, existing, now) : replayed;
  }
  const channel = cmd.channel ? state.channels.get(cmd.channel) : undefined;
  const { allocations, shortages, misplaced } = allocate(state, cmd, channel);
  if (misplaced !== null) {
    return rejected(
      reject('LOCATION_NOT_IN_CHANNEL', `location ${misplaced} is not in channel ${cmd.channel}`),
    );
  }
  if (shortages.length > 0) {
    const skus = shortages.map((s) => s.sku).join(', ');
    return rejected(reject('INSUFFICIENT_STOCK', `not enough available stock for ${skus}`, { shortages }));
  }
  const ttlSeconds = cmd.ttlSeconds ?? state.limits.ttlSecondsDefault;
  return accepted([
    {
      type: 'ReservationHeld',
      at: now,
      reservationId: cmd.reservationId,
      orderId: cmd.orderId ?? null,
      channel: cmd.channel ?? null,
      bodyHash,
      expiresAt: now + ttlSeconds * 1000,
      lines: allocations,
    },
  ]);
}

/**
 * The retry of a reservation this shard holds only part of. That happens when a crash cut
 * a cross-shard reservation (some parts held, others never) and the process restarted
 * with fewer shards, so the parts now live together: the retry must hold the lines that
 * were never held, or the reservation would stay incomplete until it expires. Lines
 * already held are not touched; when nothing is missing this is a plain idempotent replay.
 *
 * When the missing lines cannot be held, the retry is refused for good, and the client
 * will not try again: the part held so far is aborted with the refusal, as the Router
 * aborts the held parts of a cross-shard reserve another shard refused. Not when one of
 * its lines was committed since: someone acted on that part, so it stays as it is.
 */
function completeCutReservation(
  state: ShardState,
  cmd: Reserve,
  existing: Reservation,
  now: EpochMs,
): Decision {
  const present = new Set<string>();
  for (const line of existing.lines) present.add(line.sku);
  const missing: LineRequest[] = [];
  for (const line of cmd.lines) {
    if (!present.has(line.sku) && state.owns(line.sku)) missing.push(line);
  }
  if (missing.length === 0) return replayed;
  const channel = cmd.channel ? state.channels.get(cmd.channel) : undefined;
  const { allocations, shortages, misplaced } = allocate(state, { ...cmd, lines: missing }, channel);
  const refuse = (rejection: Rejection): Decision =>
    existing.lines.every((line) => line.committed === 0)
      ? rejected(rejection, [{ type: 'ReservationAborted', at: now, reservationId: cmd.reservationId }])
      : rejected(rejection);
  if (misplaced !== null) {
    return refuse(
      reject('LOCATION_NOT_IN_CHANNEL', `location ${misplaced} is not in channel ${cmd.channel}`),
    );
  }
  if (shortages.length > 0) {
    const skus = shortages.map((s) => s.sku).join(', ');
    return refuse(
      reject('INSUFFICIENT_STOCK', `not enough available stock to complete ${cmd.reservationId}: ${skus}`, {
        shortages,
      }),
    );
  }
  const held: DomainEvent = {
    type: 'ReservationHeld',
    at: now,
    reservationId: cmd.reservationId,
    orderId: existing.orderId,
    channel: existing.channel,
    bodyHash: existing.bodyHash,
    // The reservation keeps its expiry: a retry completes it, it does not extend it.
    expiresAt: existing.expiresAt,
    lines: allocations,
  };
  return { events: [held], rejection: null, replayed: true };
}

/** Looks up a reservation that a command wants to change while held; expires it if its time has come. */
function lookupLive(state: ShardState, id: string, now: EpochMs): Reservation | Decision {
  if (!isValidId(id, state.limits))
    return rejected(reject('INVALID_REQUEST', 'reservationId must be 1..128 bytes'));
  const reservation = state.reservations.get(id);
  if (reservation === undefined) return rejected(reject('RESERVATION_NOT_FOUND', `no reservation ${id}`));
  if (reservation.status === 'held' && reservation.expiresAt <= now) {
    const expired: DomainEvent = { type: 'ReservationExpired', at: now, reservationId: id };
    return rejected(reject('RESERVATION_NOT_HELD', `reservation ${id} has expired`), [expired]);
  }
  return reservation;
}

function isDecision(value: Reservation | Decision): value is Decision {
  return 'events' in value;
}

function notHeld(reservation: Reservation): Decision {
  const status = reservation.status;
  invariant(status !== 'held', 'notHeld() of a held reservation');
  return rejected(
    reject('RESERVATION_NOT_HELD', `reservation ${reservation.id} is ${status}`, {
      reservationStatus: status,
    }),
  );
}

function decideCommit(state: ShardState, cmd: Commit, now: EpochMs): Decision {
  const reservation = lookupLive(state, cmd.reservationId, now);
  if (isDecision(reservation)) return reservation;
  if (reservation.status === 'committed') return replayed;
  if (reservation.status !== 'held') return notHeld(reservation);

  const changes: CommittedLine[] = [];
  // Read once: each read of `lines` builds the array afresh (reservation-table.ts).
  const lines = reservation.lines;
  // Track onHand as it falls, in case two lines ever share a record.
  // (Only a reservation with several lines can need it: the common single line skips the map.)
  const onHandLeft = lines.length > 1 ? new Map<StockRecord, number>() : null;
  const ship = (index: number, qty: number): void => {
    const line = lines[index]!;
    if (onHandLeft === null) {
      const onHandDecrease = Math.min(qty, line.record.onHand);
      changes.push({
        sku: line.sku,
        location: line.location,
        qty,
        released: line.held - qty,
        onHandDecrease,
      });
      return;
    }
    const onHand = onHandLeft.get(line.record) ?? line.record.onHand;
    const onHandDecrease = Math.min(qty, onHand);
    onHandLeft.set(line.record, onHand - onHandDecrease);
    changes.push({ sku: line.sku, location: line.location, qty, released: line.held - qty, onHandDecrease });
  };

  if (cmd.lines === undefined) {
    for (let index = 0; index < lines.length; index++) {
      const held = lines[index]!.held;
      if (held > 0) ship(index, held);
    }
  } else {
    if (!Array.isArray(cmd.lines) || cmd.lines.length > state.limits.reservationLinesMax) {
      return rejected(reject('INVALID_REQUEST', 'lines must be a list of at most 100 lines'));
    }
    if (cmd.lines.length === 0)
      return rejected(reject('INVALID_REQUEST', 'lines, when given, must not be empty'));
    // A reservation line may be named once, whether by SKU alone or by SKU and location.
    const claimed = new Set<number>();
    for (const wanted of cmd.lines) {
      if (!isValidId(wanted?.sku, state.limits))
        return rejected(reject('INVALID_REQUEST', 'sku must be 1..128 bytes'));
      if (wanted.qty !== undefined && !isValidQuantity(wanted.qty, state.limits)) {
        return rejected(
          reject('INVALID_QUANTITY', `qty must be a whole number 1..${state.limits.quantityMax}`),
        );
      }
      const matching: number[] = [];
      lines.forEach((line, index) => {
        if (line.sku === wanted.sku && (wanted.location === undefined || line.location === wanted.location)) {
          matching.push(index);
        }
      });
      for (const index of matching) {
        if (claimed.has(index)) return rejected(reject('INVALID_REQUEST', `line ${wanted.sku} named twice`));
        claimed.add(index);
      }
      if (matching.length === 0) {
        return rejected(reject('INVALID_REQUEST', `reservation ${reservation.id} has no line ${wanted.sku}`));
      }
      const heldIndexes = matching.filter((index) => lines[index]!.held > 0);
      const heldTotal = heldIndexes.reduce((sum, index) => sum + lines[index]!.held, 0);
      if (heldIndexes.length === 0) continue; // already settled: repeating is harmless
      let left = wanted.qty ?? heldTotal;
      if (left > heldTotal) {
        return rejected(
          reject('INVALID_QUANTITY', `qty ${left} exceeds the ${heldTotal} units held for ${wanted.sku}`),
        );
      }
      for (const index of heldIndexes) {
        const part = Math.min(left, lines[index]!.held);
        ship(index, part);
        left -= part;
      }
    }
  }
  if (changes.length === 0) return replayed;
  if (cmd.check === true) return checked;
  return accepted([
    { type: 'ReservationCommitted', at: now, reservationId: cmd.reservationId, lines: changes },
  ]);
}

function decideRelease(state: ShardState, cmd: Release, now: EpochMs): Decision {
  const reservation = lookupLive(state, cmd.reservationId, now);
  if (isDecision(reservation)) return reservation;
  if (reservation.status === 'released') return replayed;
  if (reservation.status !== 'held') return notHeld(reservation);
  return accepted([{ type: 'ReservationReleased', at: now, reservationId: cmd.reservationId }]);
}

function decideExtend(state: ShardState, cmd: Extend, now: EpochMs): Decision {
  if (!isValidTtl(cmd.ttlSeconds, state.limits)) {
    return rejected(
      reject(
        'INVALID_TTL',
        `ttlSeconds must be a whole number ${state.limits.ttlSecondsMin}..${state.limits.ttlSecondsMax}`,
      ),
    );
  }
  const reservation = lookupLive(state, cmd.reservationId, now);
  if (isDecision(reservation)) return reservation;
  if (reservation.status !== 'held') return notHeld(reservation);
  return accepted([
    {
      type: 'ReservationExtended',
      at: now,
      reservationId: cmd.reservationId,
      expiresAt: now + cmd.ttlSeconds * 1000,
    },
  ]);
}

function decideAbort(state: ShardState, cmd: Abort, now: EpochMs): Decision {
  const reservation = state.reservations.get(cmd.reservationId);
  if (reservation === undefined) return replayed; // nothing was held here
  if (reservation.status !== 'held') return notHeld(reservation);
  return accepted([{ type: 'ReservationAborted', at: now, reservationId: cmd.reservationId }]);
}

function decideExpire(state: ShardState, cmd: Expire, now: EpochMs): Decision {
  const reservation = state.reservations.get(cmd.reservationId);
  // A stale timer entry (extended, settled or forgotten since) is not an error: nothing to do.
  if (reservation === undefined || reservation.status !== 'held' || reservation.expiresAt > now)
    return replayed;
  return accepted([{ type: 'ReservationExpired', at: now, reservationId: cmd.reservationId }]);
}
