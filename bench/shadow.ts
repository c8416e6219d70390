/**
 * Shadow traffic: real traffic from a database's WAL, replayed at k× its recorded speed
 * into a fresh engine — another shard count, another store — to see how that configuration
 * copes with it: achieved rate against intended, latency from the scheduled time, and
 * refusals by code. `stockd bench shadow` (npm run shadow) is its command line.
 *
 *   source store (read-only) ── rowsOf/decodeEvents per stream, within the range
 *     ─▶ merge the streams by event time (each stream's order kept)
 *     ─▶ events back into the commands that caused them (commandsFromEvents)
 *     ─▶ [state before the range, rebuilt and loaded: seedRequests]
 *     ─▶ fresh Engine ◀── command i sent at start + (at_i − at_0) ÷ k, on a clock that
 *                         reads the recorded time of what is being sent
 *     ─▶ HDR latency from the scheduled time, outcomes by code; digest against the source
 *
 * What the WAL holds is what was *accepted*: refused commands and reads wrote nothing, so
 * they are not replayed; nor does it say how commands were grouped into requests, so a
 * batch comes back as single commands. Events back into commands:
 *
 *   StockSet → set (onHand, safetyStock, sourceTs)      StockAdjusted → adjust (same key)
 *   SafetyStockSet → safety                              ChannelUpserted → channel (once, not per shard)
 *   ReservationHeld → reserve with the allocated lines and locations (the parts of a
 *     cross-shard reservation merged, sent when its last part was held)
 *   ReservationCommitted → commit naming the shipped lines     ReservationReleased → release
 *   ReservationExtended → extend (the TTL it was given)
 *   ReservationExpired, ReservationAborted → not sent: the engine makes them itself (expiry
 *     from its clock; aborts when a shard refuses a part). A reservation aborted in the
 *     range was never acknowledged, so its held parts are not sent either.
 *
 * The fresh engine's clock (`recorded`, the default) reads the recorded time of the
 * command being sent, so TTLs, expiries and adjustment-key windows keep their place in
 * the traffic at any speed. In order (`ordered`: one command at a time, each after the
 * previous reply) the replayed state then equals the recorded one — the same digest — as
 * long as the range starts at the start of the log, holds no aborted reservation, and its
 * reservations named their locations and TTL (the reservation body hash covers the
 * request as sent; a replayed reserve names what was allocated).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import pg from 'pg';
import type {
  ChannelUpsertedEvent,
  CommitLine,
  DomainEvent,
  Reply,
  Request,
  ReservationExtendedEvent,
  ReservationHeldEvent,
} from '../src/actors/types.js';
import { parseTime, parseToSeq } from '../src/cli/replay.js';
import type { Clock } from '../src/engine/clock.js';
import { Engine } from '../src/engine/engine.js';
import {
  digestOf,
  exportLines,
  type ReplayTarget,
  readLayoutOrFail,
  rebuild,
  rowsOf,
} from '../src/engine/replay.js';
import { decodeEvents } from '../src/persistence/codec.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { openStore } from '../src/persistence/open-store.js';
import type { Layout, WalStore } from '../src/persistence/wal.js';
import { isFailure, type Outcome, okOutcome } from './load/operation.js';
import { type Measurement, Recorder } from './load/recorder.js';

/* ---------------------------------------------------------------------------- range */

/** Which rows to take: seqs (every stream, or per stream) and/or batch times, both ends inclusive. */
export interface ShadowRange {
  readonly fromSeq?: number | ReadonlyMap<number, number>;
  readonly toSeq?: number | ReadonlyMap<number, number>;
  readonly fromTime?: number;
  readonly toTime?: number;
}

function seqOf(
  bound: number | ReadonlyMap<number, number> | undefined,
  stream: number,
  fallback: number,
): number {
  if (bound === undefined) return fallback;
  if (typeof bound === 'number') return bound;
  return bound.get(stream) ?? fallback;
}

/** True when the range starts at the start of every stream (nothing before it to load). */
export function startsAtBeginning(range: ShadowRange, streams: number): boolean {
  if (range.fromTime !== undefined) return false;
  for (let stream = 0; stream < streams; stream++) if (seqOf(range.fromSeq, stream, 1) > 1) return false;
  return true;
}

/* ------------------------------------------------------------------ events → commands */

/** An event with where it came from, in the merged order. */
export interface SourcedEvent {
  readonly event: DomainEvent;
  readonly stream: number;
  readonly seq: number;
}

/** A command to replay: when it was sent (recorded time) and what the engine's clock reads for it. */
export interface TimedCommand {
  /** Recorded time the command is scheduled at (ms). */
  readonly at: number;
  /** What the replay clock reads while it is sent: the batch time its events had. */
  readonly stamp: number;
  readonly request: Request;
}

export interface ShadowTraffic {
  readonly layout: Layout;
  readonly commands: TimedCommand[];
  /** Events read, by type. */
  readonly events: Record<string, number>;
  /** Events not turned into a command, by why. */
  readonly skipped: Record<string, number>;
  /** Per stream, the last seq read (the state "as of the range end"). */
  readonly lastSeqs: Map<number, number>;
  readonly firstAt: number | null;
  readonly lastAt: number | null;
}

/**
 * Merges per-stream event lists into one order by event time, keeping each stream's own
 * order even where its clock stepped back (a k-way merge over the stream heads).
 */
export function mergeStreams(streams: ReadonlyArray<readonly SourcedEvent[]>): SourcedEvent[] {
  const heads = streams.map(() => 0);
  const merged: SourcedEvent[] = [];
  const total = streams.reduce((sum, s) => sum + s.length, 0);
  // A binary heap of stream indexes keyed by (head event time, stream).
  const heap: number[] = [];
  const key = (s: number): number => streams[s]![heads[s]!]!.event.at;
  const less = (a: number, b: number): boolean => key(a) < key(b) || (key(a) === key(b) && a < b);
  const swap = (i: number, j: number): void => {
    const t = heap[i]!;
    heap[i] = heap[j]!;
    heap[j] = t;
  };
  const up = (i: number): void => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i]!, heap[parent]!)) return;
      swap(i, parent);
      i = parent;
    }
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < heap.length && less(heap[l]!, heap[best]!)) best = l;
      if (r < heap.length && less(heap[r]!, heap[best]!)) best = r;
      if (best === i) return;
      swap(i, best);
      i = best;
    }
  };
  streams.forEach((s, i) => {
    if (s.length > 0) {
      heap.push(i);
      up(heap.length - 1);
    }
  });
  while (merged.length < total) {
    const s = heap[0]!;
    merged.push(streams[s]![heads[s]!]!);
    heads[s]!++;
    if (heads[s]! < streams[s]!.length) down(0);
    else {
      heap[0] = heap.at(-1)!;
      heap.pop();
      down(0);
    }
  }
  return merged;
}

/** The lines of a commit as a client would name them to ship what the event shipped. */
export function commitLinesOf(
  lines: ReadonlyArray<{ sku: string; location: string; qty: number }>,
): CommitLine[] {
  // A line shipping 0 only comes from a commit naming the SKU alone (its quantity ran out
  // before this line): name such a SKU alone again, with the total, so the engine spreads
  // it over the lines the same way. Every other line is named by SKU and location.
  const bySkuOnly = new Set(lines.filter((l) => l.qty === 0).map((l) => l.sku));
  const out: CommitLine[] = [];
  const totals = new Map<string, number>();
  for (const line of lines) {
    if (!bySkuOnly.has(line.sku)) {
      out.push({ sku: line.sku, location: line.location, qty: line.qty });
      continue;
    }
    if (!totals.has(line.sku)) out.push({ sku: line.sku, qty: 0 });
    totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.qty);
  }
  return out.map((line) =>
    line.location === undefined ? { sku: line.sku, qty: totals.get(line.sku)! } : line,
  );
}

interface Group<E> {
  readonly parts: Array<{ event: E; stream: number; position: number }>;
  readonly streams: Set<number>;
}

/**
 * Parts of one command that the engine wrote on several shards — a cross-shard hold, a
 * release or extension of one, a channel (kept on every shard) — share a key. A part
 * joins the open group of its key unless its stream already gave one (then it is a new
 * command); `sameCommand` can refuse it too (a channel upserted with another body).
 */
function groupParts<E>(
  events: readonly SourcedEvent[],
  pick: (event: DomainEvent) => E | null,
  keyOf: (event: E) => string,
  sameCommand: (a: E, b: E) => boolean = () => true,
): Array<Group<E>> {
  const open = new Map<string, Group<E>>();
  const groups: Array<Group<E>> = [];
  events.forEach(({ event, stream }, position) => {
    const picked = pick(event);
    if (picked === null) return;
    const key = keyOf(picked);
    const group = open.get(key);
    if (group !== undefined && !group.streams.has(stream) && sameCommand(group.parts[0]!.event, picked)) {
      group.parts.push({ event: picked, stream, position });
      group.streams.add(stream);
      return;
    }
    const fresh: Group<E> = { parts: [{ event: picked, stream, position }], streams: new Set([stream]) };
    open.set(key, fresh);
    groups.push(fresh);
  });
  return groups;
}

const ttlOf = (expiresAt: number, at: number): number => Math.max(1, Math.round((expiresAt - at) / 1000));

/**
 * The commands that caused the events, in the order to send them. Pure: the events go in
 * merged order (mergeStreams); `skipped` counts what is not sent, by reason.
 */
export function commandsFromEvents(events: readonly SourcedEvent[]): {
  commands: TimedCommand[];
  skipped: Record<string, number>;
} {
  const skipped: Record<string, number> = {};
  const skip = (why: string, count = 1): void => {
    skipped[why] = (skipped[why] ?? 0) + count;
  };
  const placed: Array<{ position: number; command: TimedCommand }> = [];
  const place = (position: number, at: number, stamp: number, request: Request): void => {
    placed.push({ position, command: { at, stamp, request } });
  };

  // Reservations aborted in the range: their holds were never acknowledged.
  const aborted = new Set<string>();
  for (const { event } of events) if (event.type === 'ReservationAborted') aborted.add(event.reservationId);

  // 1. Holds: one reserve per reservation, its parts' lines merged, sent when its last part was held.
  const holds = groupParts(
    events,
    (e) => (e.type === 'ReservationHeld' ? e : null),
    (e: ReservationHeldEvent) => e.reservationId,
  );
  for (const group of holds) {
    const first = group.parts[0]!.event;
    if (aborted.has(first.reservationId)) {
      skip('ReservationHeld of a reservation aborted in the range (never acknowledged)', group.parts.length);
      continue;
    }
    if (group.parts.length > 1)
      skip('ReservationHeld part merged into its cross-shard reserve', group.parts.length - 1);
    const parts = [...group.parts].sort((a, b) => a.stream - b.stream);
    const last = group.parts.reduce((a, b) => (b.position > a.position ? b : a));
    const stamp = Math.max(...group.parts.map((p) => p.event.at));
    place(last.position, last.event.at, stamp, {
      type: 'reserve',
      reservationId: first.reservationId,
      ...(first.orderId === null ? {} : { orderId: first.orderId }),
      ...(first.channel === null ? {} : { channel: first.channel }),
      ttlSeconds: ttlOf(first.expiresAt, first.at),
      lines: parts.flatMap((p) => p.event.lines.map(({ sku, qty, location }) => ({ sku, qty, location }))),
    });
  }

  // 2. Extensions and releases of cross-shard reservations: once, at the first part.
  const extensions = groupParts(
    events,
    (e) => (e.type === 'ReservationExtended' ? e : null),
    (e: ReservationExtendedEvent) => e.reservationId,
    (a, b) => ttlOf(a.expiresAt, a.at) === ttlOf(b.expiresAt, b.at),
  );
  for (const group of extensions) {
    const first = group.parts[0]!;
    if (group.parts.length > 1)
      skip('ReservationExtended part merged into its extend', group.parts.length - 1);
    // Each part's expiry is its batch time + TTL; the reservation's is the latest part's.
    const stamp = Math.max(...group.parts.map((p) => p.event.at));
    place(first.position, first.event.at, stamp, {
      type: 'extend',
      reservationId: first.event.reservationId,
      ttlSeconds: ttlOf(first.event.expiresAt, first.event.at),
    });
  }
  const released = new Set<string>();
  const channels = groupParts(
    events,
    (e) => (e.type === 'ChannelUpserted' ? e : null),
    (e: ChannelUpsertedEvent) => e.channel,
    (a, b) => a.buffer === b.buffer && a.locations.join('\u0000') === b.locations.join('\u0000'),
  );
  for (const group of channels) {
    const { event, position } = group.parts[0]!;
    if (group.parts.length > 1) skip('ChannelUpserted copy on another shard', group.parts.length - 1);
    place(position, event.at, event.at, {
      type: 'channel',
      channel: event.channel,
      locations: [...event.locations],
      buffer: event.buffer,
    });
  }

  // 3. Everything that maps one to one.
  events.forEach(({ event }, position) => {
    switch (event.type) {
      case 'StockSet':
        place(position, event.at, event.at, {
          type: 'set',
          sku: event.sku,
          location: event.location,
          onHand: event.onHand,
          safetyStock: event.safetyStock,
          ...(event.sourceTs === 0 ? {} : { sourceTs: event.sourceTs }),
        });
        break;
      case 'StockAdjusted':
        place(position, event.at, event.at, {
          type: 'adjust',
          sku: event.sku,
          location: event.location,
          delta: event.delta,
          reason: event.reason,
          key: event.key,
        });
        break;
      case 'SafetyStockSet':
        place(position, event.at, event.at, {
          type: 'safety',
          sku: event.sku,
          location: event.location,
          safetyStock: event.safetyStock,
        });
        break;
      case 'ReservationCommitted':
        // Per part: a commit naming lines goes to the shard holding them, as the original's parts did.
        place(position, event.at, event.at, {
          type: 'commit',
          reservationId: event.reservationId,
          lines: commitLinesOf(event.lines),
        });
        break;
      case 'ReservationReleased':
        if (released.has(event.reservationId)) {
          skip('ReservationReleased part merged into its release');
          break;
        }
        released.add(event.reservationId);
        place(position, event.at, event.at, { type: 'release', reservationId: event.reservationId });
        break;
      case 'ReservationExpired':
        skip('ReservationExpired (the engine expires on its own clock)');
        break;
      case 'ReservationAborted':
        skip('ReservationAborted (engine-internal: a shard refused a part)');
        break;
      case 'ReservationHeld':
      case 'ReservationExtended':
      case 'ChannelUpserted':
        break; // grouped above
      default: {
        const unknown: never = event;
        throw new Error(`unknown event ${JSON.stringify(unknown)}`);
      }
    }
  });
  placed.sort((a, b) => a.position - b.position);
  return { commands: placed.map((p) => p.command), skipped };
}

/* ------------------------------------------------------------------------ reading */

/** Events read before the replay refuses the range (they are held in memory). */
export const shadowEventsMax = 20_000_000;

/** Reads the range from every stream of the stored layout and turns it into commands. */
export async function readShadowTraffic(
  store: WalStore,
  range: ShadowRange = {},
  eventsMax = shadowEventsMax,
): Promise<ShadowTraffic> {
  const layout = await readLayoutOrFail(store);
  const perStream: SourcedEvent[][] = [];
  const events: Record<string, number> = {};
  const lastSeqs = new Map<number, number>();
  let count = 0;
  for (let stream = 0; stream < layout.shardCount; stream++) {
    const fromSeq = seqOf(range.fromSeq, stream, 1);
    const toSeq = seqOf(range.toSeq, stream, Number.POSITIVE_INFINITY);
    const mine: SourcedEvent[] = [];
    lastSeqs.set(stream, fromSeq - 1);
    pages: for await (const page of rowsOf(store, stream, Math.max(0, fromSeq - 1))) {
      for (const row of page) {
        if (row.seq > toSeq || (range.toTime !== undefined && row.at > range.toTime)) break pages;
        lastSeqs.set(stream, row.seq);
        if (range.fromTime !== undefined && row.at < range.fromTime) continue;
        for (const event of decodeEvents(row.payload)) {
          if (++count > eventsMax) {
            throw new Error(
              `the range holds more than ${eventsMax.toLocaleString('en-US')} events: narrow it`,
            );
          }
          events[event.type] = (events[event.type] ?? 0) + 1;
          mine.push({ event, stream, seq: row.seq });
        }
      }
    }
    perStream.push(mine);
  }
  const merged = mergeStreams(perStream);
  const { commands, skipped } = commandsFromEvents(merged);
  return {
    layout,
    commands,
    events,
    skipped,
    lastSeqs,
    firstAt: merged[0]?.event.at ?? null,
    lastAt: merged.at(-1)?.event.at ?? null,
  };
}

/* ------------------------------------------------------------------- the replay */

/**
 * The fresh engine's clock. `recorded`: it reads the recorded time of the command being
 * sent (set by the replay), so TTLs and expiries keep their place in the traffic at any
 * speed; `wall`: real time, so at k× a reservation lives k× longer relative to the traffic.
 */
export class ShadowClock implements Clock {
  private current: number;

  constructor(
    readonly mode: 'recorded' | 'wall' = 'recorded',
    start = Date.now(),
  ) {
    this.current = start;
  }

  now(): number {
    return this.mode === 'wall' ? Date.now() : this.current;
  }

  set(ms: number): void {
    this.current = ms;
  }
}

/** What the replay sends to: stockd's Engine. */
export interface ShadowEngine {
  execute(request: Request): Promise<Reply>;
}

export interface ReplayOptions {
  /** k: the replay runs k× faster than recorded (0 < k; Infinity: as fast as possible). */
  readonly speed: number;
  /** One command at a time, each after the previous reply (the order the log has). */
  readonly ordered: boolean;
  readonly clock: ShadowClock;
  /** Commands outstanding at most: at the bound, sending waits for replies (and falls behind schedule). */
  readonly maxInFlight?: number;
  readonly signal?: AbortSignal;
  /** Called after each reply with the commands answered so far and in all. */
  readonly onProgress?: (answered: number, total: number) => void;
}

export interface ShadowResult {
  readonly commands: number;
  readonly sent: number;
  readonly answered: number;
  readonly speed: number;
  /** Recorded seconds of traffic ÷ speed. */
  readonly intendedSeconds: number;
  /** Commands per second the schedule asks for (null: the range spans no time). */
  readonly intendedRate: number | null;
  readonly elapsedSeconds: number;
  readonly achievedRate: number;
  /** The latest a command left after its scheduled time (ms): the replay falling behind. */
  readonly lateMsMax: number;
  /** Sending reached the in-flight bound and waited: the target did not keep up with the schedule. */
  readonly throttled: boolean;
  readonly maxInFlight: number;
  readonly interrupted: boolean;
  /** Latency from the scheduled send time; codes of everything not ok. */
  readonly measurement: Measurement;
  /** Per code, the first command refused with it. */
  readonly examples: Record<string, string>;
}

function describeRequest(request: Request): string {
  if ('reservationId' in request) return `${request.type} ${request.reservationId}`;
  if ('sku' in request)
    return `${request.type} ${request.sku}${'location' in request ? `@${request.location}` : ''}`;
  if (request.type === 'channel') return `channel ${request.channel}`;
  return request.type;
}

export async function replayTraffic(
  engine: ShadowEngine,
  commands: readonly TimedCommand[],
  options: ReplayOptions,
): Promise<ShadowResult> {
  if (!(options.speed > 0)) throw new Error(`the speed must be > 0, got ${options.speed}`);
  const recorder = new Recorder();
  const examples: Record<string, string> = {};
  const maxInFlight = options.maxInFlight ?? 10_000;
  const firstAt = commands[0]?.at ?? 0;
  const spanMs = (commands.at(-1)?.at ?? firstAt) - firstAt;
  const start = performance.now();
  const scheduledOf = (command: TimedCommand): number =>
    Number.isFinite(options.speed) ? start + (command.at - firstAt) / options.speed : start;
  let sent = 0;
  let answered = 0;
  let lastAnswer = start;
  let lateMsMax = 0;
  let throttled = false;
  let inFlight = 0;
  let onReply: (() => void) | null = null;
  const nextReply = (): Promise<void> => new Promise((resolve) => (onReply = resolve));

  const settle = (command: TimedCommand, scheduled: number, outcome: Outcome): void => {
    const now = performance.now();
    recorder.record({ requests: [command.request], batch: false }, now - scheduled, [outcome]);
    if (outcome !== okOutcome && examples[outcome] === undefined)
      examples[outcome] = describeRequest(command.request);
    answered++;
    lastAnswer = now;
    options.onProgress?.(answered, commands.length);
    const wake = onReply;
    onReply = null;
    wake?.();
  };
  const send = (command: TimedCommand): Promise<void> => {
    // As fast as possible has no schedule: latency then runs from the actual send.
    const scheduled = Number.isFinite(options.speed) ? scheduledOf(command) : performance.now();
    lateMsMax = Math.max(lateMsMax, performance.now() - scheduled);
    options.clock.set(command.stamp);
    sent++;
    inFlight++;
    return engine.execute(command.request).then(
      (reply) => {
        inFlight--;
        settle(command, scheduled, reply.ok ? okOutcome : reply.code);
      },
      () => {
        inFlight--;
        settle(command, scheduled, 'TRANSPORT_ERROR');
      },
    );
  };
  const aborted = (): boolean => options.signal?.aborted === true;
  const waitUntil = (time: number): Promise<void> =>
    new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(time - performance.now(), 50))));

  if (options.ordered) {
    for (const command of commands) {
      if (aborted()) break;
      while (performance.now() < scheduledOf(command) && !aborted()) await waitUntil(scheduledOf(command));
      if (aborted()) break;
      await send(command);
    }
  } else {
    let next = 0;
    while (next < commands.length && !aborted()) {
      const now = performance.now();
      // Send everything that has fallen due; each keeps its own scheduled time.
      while (next < commands.length && scheduledOf(commands[next]!) <= now && !aborted()) {
        if (inFlight >= maxInFlight) {
          // Backpressure: wait for a reply. What waits is late, and its latency (from the
          // scheduled time) says so.
          throttled = true;
          await nextReply();
          continue;
        }
        void send(commands[next++]!);
      }
      if (next < commands.length && !aborted()) await waitUntil(scheduledOf(commands[next]!));
    }
    while (inFlight > 0) await nextReply();
  }
  const elapsedSeconds = Math.max(lastAnswer - start, 1e-9) / 1000;
  const measurement = recorder.result(elapsedSeconds);
  recorder.destroy();
  const intendedSeconds = Number.isFinite(options.speed) ? spanMs / 1000 / options.speed : 0;
  return {
    commands: commands.length,
    sent,
    answered,
    speed: options.speed,
    intendedSeconds,
    intendedRate: intendedSeconds > 0 ? commands.length / intendedSeconds : null,
    elapsedSeconds,
    achievedRate: answered / elapsedSeconds,
    lateMsMax,
    throttled,
    maxInFlight,
    interrupted: aborted(),
    measurement,
    examples,
  };
}

/* ----------------------------------------------------------- state before the range */

/**
 * Commands that load a rebuilt state into an empty engine: channels, stock levels, then
 * the reservations held at that point (their held units, at their locations, for the TTL
 * they had left at `asOf`). Versions and body hashes are not carried over.
 */
export function seedRequests(lines: Iterable<string>, asOf: number): Request[] {
  const channels: Request[] = [];
  const stock: Request[] = [];
  const held: Request[] = [];
  for (const line of lines) {
    const item = JSON.parse(line) as { type: string } & Record<string, unknown>;
    if (item.type === 'channel') {
      channels.push({
        type: 'channel',
        channel: item.channel as string,
        locations: item.locations as string[],
        buffer: item.buffer as number,
      });
    } else if (item.type === 'stock') {
      stock.push({
        type: 'set',
        sku: item.sku as string,
        location: item.location as string,
        onHand: item.onHand as number,
        safetyStock: item.safetyStock as number,
        ...(item.sourceTs === null ? {} : { sourceTs: item.sourceTs as number }),
      });
    } else if (item.type === 'reservation') {
      const expiresAt = item.expiresAt as number;
      const lines = (item.lines as Array<{ sku: string; location: string; held: number }>).filter(
        (l) => l.held > 0,
      );
      if (expiresAt <= asOf || lines.length === 0) continue;
      held.push({
        type: 'reserve',
        reservationId: item.reservationId as string,
        ...(item.orderId === null ? {} : { orderId: item.orderId as string }),
        ...(item.channel === null ? {} : { channel: item.channel as string }),
        ttlSeconds: Math.max(1, Math.ceil((expiresAt - asOf) / 1000)),
        lines: lines.map((l) => ({ sku: l.sku, location: l.location, qty: l.held })),
      });
    }
  }
  return [...channels, ...stock, ...held];
}

/** Commands per executeMany while loading the state before the range. */
const seedChunk = 5_000;

async function seed(engine: Engine, requests: readonly Request[]): Promise<Record<string, number>> {
  const refused: Record<string, number> = {};
  for (let from = 0; from < requests.length; from += seedChunk) {
    for (const reply of await engine.executeMany(requests.slice(from, from + seedChunk))) {
      if (!reply.ok) refused[reply.code] = (refused[reply.code] ?? 0) + 1;
    }
  }
  return refused;
}

/* -------------------------------------------------------------------- the whole run */

export interface ShadowSource {
  readonly databaseUrl?: string;
  readonly dataDir?: string;
  readonly schema?: string;
}

export interface ShadowTarget {
  /** Where the fresh engine keeps its WAL: memory, a fresh PGlite directory, or an emptied PostgreSQL schema. */
  readonly store: 'memory' | 'pglite' | 'postgres';
  readonly databaseUrl?: string;
  /** PostgreSQL schema of the fresh engine; dropped and recreated. */
  readonly schema: string;
  /** Shard count; default the source's. */
  readonly shards?: number;
}

export interface ShadowOptions extends Omit<ReplayOptions, 'clock'> {
  readonly source: ShadowSource;
  readonly range: ShadowRange;
  readonly target: ShadowTarget;
  readonly clock: 'recorded' | 'wall';
  /** Load the state as it was just before the range (default: when the range does not start at the start of the log). */
  readonly seed?: boolean;
  readonly log?: (line: string) => void;
}

export interface ShadowReport {
  readonly source: string;
  readonly layout: Layout;
  readonly range: {
    readonly firstAt: string | null;
    readonly lastAt: string | null;
    readonly lastSeqs: Record<string, number>;
  };
  readonly events: Record<string, number>;
  readonly commandsByType: Record<string, number>;
  readonly skipped: Record<string, number>;
  readonly seeded: { readonly requests: number; readonly refused: Record<string, number> } | null;
  readonly target: string;
  readonly clock: 'recorded' | 'wall';
  readonly ordered: boolean;
  readonly result: ShadowResult;
  /** The replayed state against the source's as of the range end; null when not comparable (loaded state). */
  readonly digest: { readonly source: string; readonly replay: string; readonly matches: boolean } | null;
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`);
  } finally {
    await client.end();
  }
}

async function openTarget(
  target: ShadowTarget,
  source: ShadowSource,
): Promise<{ store: WalStore; describe: string; dispose: () => Promise<void> }> {
  if (target.store === 'memory') {
    return { store: new MemoryWalStore(), describe: 'WAL in memory', dispose: async () => {} };
  }
  if (target.store === 'pglite') {
    const dataDir = await mkdtemp(join(tmpdir(), 'stockd-shadow-'));
    const store = await openStore({ dataDir });
    return {
      store,
      describe: `WAL in a fresh PGlite (${store.describe()})`,
      dispose: async () => {
        await store.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  }
  const url = target.databaseUrl;
  if (url === undefined || url === '') throw new Error('--target-store postgres needs --target-database-url');
  if (url === source.databaseUrl && target.schema === (source.schema ?? 'public')) {
    throw new Error('the target schema is the source: refusing to empty it (choose --target-schema)');
  }
  await dropSchema(url, target.schema);
  const store = await openStore({ databaseUrl: url, schema: target.schema });
  return { store, describe: `WAL in ${store.describe()} (emptied first)`, dispose: () => store.close() };
}

/** Expiry ticks to wait after the last reply, so expiries the traffic made due have happened. */
const settleTicks = 3;

export async function runShadow(options: ShadowOptions): Promise<ShadowReport> {
  const log = options.log ?? (() => {});
  const source = await openStore({ ...options.source, readOnly: true });
  let target: Awaited<ReturnType<typeof openTarget>> | null = null;
  let engine: Engine | null = null;
  try {
    // 1. Read the range.
    const traffic = await readShadowTraffic(source, options.range);
    const commandsByType: Record<string, number> = {};
    for (const { request } of traffic.commands)
      commandsByType[request.type] = (commandsByType[request.type] ?? 0) + 1;
    log(
      `read ${traffic.commands.length.toLocaleString('en-US')} commands from ${source.describe()} (${traffic.layout.shardCount} shard(s))`,
    );
    const fromStart = startsAtBeginning(options.range, traffic.layout.shardCount);
    const startAt = traffic.firstAt ?? options.range.fromTime ?? Date.now();
    const clock = new ShadowClock(options.clock, startAt);

    // 2. A fresh engine, with the state before the range when there is one.
    target = await openTarget(options.target, options.source);
    const shards = options.target.shards ?? traffic.layout.shardCount;
    engine = await Engine.start({ store: target.store, shards, clock });
    let seeded: ShadowReport['seeded'] = null;
    if (options.seed ?? !fromStart) {
      const { fromSeq, fromTime } = options.range;
      const asOf: ReplayTarget = {
        ...(fromSeq === undefined
          ? {}
          : {
              toSeq: new Map(
                [...Array(traffic.layout.shardCount).keys()].map((s) => [s, seqOf(fromSeq, s, 1) - 1]),
              ),
            }),
        ...(fromTime === undefined ? {} : { toTime: fromTime - 1 }),
      };
      const before = await rebuild(source, asOf);
      const requests = seedRequests(exportLines(before), startAt);
      log(`loading the state before the range: ${requests.length.toLocaleString('en-US')} commands`);
      seeded = { requests: requests.length, refused: await seed(engine, requests) };
    }

    // 3. Replay.
    log(`replaying at ${options.speed}× into ${shards} shard(s), ${target.describe}`);
    const result = await replayTraffic(engine, traffic.commands, { ...options, clock });
    await new Promise((resolve) => setTimeout(resolve, settleTicks * engine!.limits.expiryTickMs));

    // 4. Compare with the source as of the range end (only meaningful from an empty start).
    let digest: ShadowReport['digest'] = null;
    // Only a complete replay of a range from the start of the log can equal the source.
    if (seeded === null && result.sent === result.commands && !result.interrupted) {
      const sourceDigest = digestOf((await rebuild(source, { toSeq: traffic.lastSeqs })).shards);
      const replayDigest = await engine.digest();
      digest = { source: sourceDigest, replay: replayDigest, matches: sourceDigest === replayDigest };
    }
    return {
      source: source.describe(),
      layout: traffic.layout,
      range: {
        firstAt: traffic.firstAt === null ? null : new Date(traffic.firstAt).toISOString(),
        lastAt: traffic.lastAt === null ? null : new Date(traffic.lastAt).toISOString(),
        lastSeqs: Object.fromEntries([...traffic.lastSeqs].map(([s, q]) => [String(s), q])),
      },
      events: traffic.events,
      commandsByType,
      skipped: traffic.skipped,
      seeded,
      target: `stockd engine, ${shards} shard(s), ${target.describe}`,
      clock: options.clock,
      ordered: options.ordered,
      result,
      digest,
    };
  } finally {
    await engine?.stop();
    await target?.dispose();
    await source.close();
  }
}

/* ------------------------------------------------------------------- the command */

const count = (value: number): string => value.toLocaleString('en-US');
const entries = (record: Record<string, number>): string =>
  Object.entries(record)
    .sort(([, a], [, b]) => b - a)
    .map(([key, value]) => `${key} ${count(value)}`)
    .join(', ') || 'none';

export function formatShadowReport(report: ShadowReport): string[] {
  const r = report.result;
  const l = r.measurement.latencyMs;
  const seqs = Object.entries(report.range.lastSeqs)
    .map(([stream, seq]) => `${stream}:${seq}`)
    .join(',');
  const refused: Record<string, number> = {};
  const failed: Record<string, number> = {};
  for (const [code, n] of Object.entries(r.measurement.codes)) (isFailure(code) ? failed : refused)[code] = n;
  const withExample = (record: Record<string, number>): string =>
    Object.keys(record).length === 0
      ? 'none'
      : Object.entries(record)
          .map(([code, n]) => `${code} ${count(n)} (first: ${r.examples[code] ?? '?'})`)
          .join(', ');
  const lines = [
    `source     ${report.source} (read-only), ${report.layout.shardCount} shard(s), epoch ${report.layout.epoch}`,
    `range      ${report.range.firstAt ?? '—'} → ${report.range.lastAt ?? '—'}; read up to seq ${seqs}`,
    `events     ${entries(report.events)}`,
    `commands   ${count(r.commands)}: ${entries(report.commandsByType)}`,
    `not sent   ${entries(report.skipped)}`,
  ];
  if (report.seeded !== null) {
    lines.push(
      `loaded     the state before the range: ${count(report.seeded.requests)} commands, refused: ${entries(report.seeded.refused)}`,
    );
  }
  lines.push(
    `target     ${report.target}; clock ${report.clock}; ${report.ordered ? 'in order (one at a time)' : 'on schedule (concurrent)'}`,
    `rate       at ${Number.isFinite(r.speed) ? `${r.speed}×` : 'full speed'}: intended ${r.intendedRate === null ? 'as fast as possible' : `${count(Math.round(r.intendedRate))}/s over ${r.intendedSeconds.toFixed(1)} s`}; achieved ${count(Math.round(r.achievedRate))}/s over ${r.elapsedSeconds.toFixed(1)} s; sent ${count(r.sent)}, latest ${r.lateMsMax.toFixed(1)} ms behind schedule${r.throttled ? `; THROTTLED (${count(r.maxInFlight)} in flight: sending waited for replies)` : ''}${r.interrupted ? '; INTERRUPTED' : ''}`,
    `latency    p50 ${l.p50} ms  p90 ${l.p90} ms  p99 ${l.p99} ms  p999 ${l.p999} ms  max ${l.max} ms (from the ${Number.isFinite(r.speed) ? 'scheduled time' : 'send'})`,
    `refused    ${withExample(refused)}`,
    `failed     ${withExample(failed)}`,
  );
  if (report.digest !== null) {
    lines.push(
      report.digest.matches
        ? `digest     ${report.digest.replay}: the replayed state equals the source's as of the range end`
        : `digest     differs: source ${report.digest.source}, replay ${report.digest.replay} (expected unless in order, on the recorded clock, without aborts, with reservations that named locations and TTL)`,
    );
  }
  return lines;
}

function positiveNumber(value: string): number {
  const parsed = value === 'max' ? Number.POSITIVE_INFINITY : Number(value);
  if (!(parsed > 0)) throw new InvalidArgumentError('expected a number > 0, or max');
  return parsed;
}

function wholeNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1)
    throw new InvalidArgumentError('expected a whole number >= 1');
  return parsed;
}

interface ShadowCliOptions {
  databaseUrl?: string;
  dataDir: string;
  schema?: string;
  fromSeq?: number | Map<number, number>;
  toSeq?: number | Map<number, number>;
  fromTime?: number;
  toTime?: number;
  speed: number;
  shards?: number;
  targetStore: 'memory' | 'pglite' | 'postgres';
  targetDatabaseUrl?: string;
  targetSchema: string;
  ordered?: boolean;
  clock: 'recorded' | 'wall';
  seed?: boolean;
  maxInFlight: number;
  json?: boolean;
  progress: boolean;
}

export function shadowCommand(
  onExitCode: (code: number) => void = (code) => (process.exitCode = code),
): Command {
  return new Command('shadow')
    .description(
      'replay a WAL range at k× its recorded speed into a fresh engine: achieved rate, latency, refusals',
    )
    .addOption(
      new Option('--database-url <url>', 'source PostgreSQL (otherwise the PGlite data directory)').env(
        'DATABASE_URL',
      ),
    )
    .addOption(
      new Option('--data-dir <dir>', 'source PGlite data directory').env('STOCKD_DATA_DIR').default('./data'),
    )
    .option('--schema <name>', 'source schema (default public)')
    .option('--from-seq <seq>', 'first seq: SEQ for every stream, or STREAM:SEQ,…', parseToSeq)
    .option('--to-seq <seq>', 'last seq: SEQ for every stream, or STREAM:SEQ,…', parseToSeq)
    .option('--from-time <time>', 'first batch time (ISO 8601 or ms)', parseTime)
    .option('--to-time <time>', 'last batch time (ISO 8601 or ms)', parseTime)
    .addOption(
      new Option('--speed <k>', 'k× the recorded speed, or max').default(1).argParser(positiveNumber),
    )
    .addOption(
      new Option('--shards <n>', 'shards of the fresh engine (default: the source’s)').argParser(wholeNumber),
    )
    .addOption(
      new Option('--target-store <store>', 'WAL of the fresh engine')
        .choices(['memory', 'pglite', 'postgres'])
        .default('memory'),
    )
    .option('--target-database-url <url>', 'PostgreSQL of the fresh engine (--target-store postgres)')
    .option('--target-schema <name>', 'its schema: DROPPED and recreated', 'stockd_shadow')
    .option(
      '--ordered',
      'one command at a time, each after the previous reply (reproduces the state exactly)',
    )
    .addOption(
      new Option('--clock <clock>', 'the fresh engine’s clock: the recorded times, or wall time')
        .choices(['recorded', 'wall'])
        .default('recorded'),
    )
    .option(
      '--seed',
      'load the state before the range first (default: when the range starts after the start of the log)',
    )
    .option('--no-seed', 'do not load the state before the range')
    .addOption(
      new Option(
        '--max-in-flight <n>',
        'outstanding commands at most; at the bound sending waits for replies',
      )
        .default(10_000)
        .argParser(wholeNumber),
    )
    .option('--json', 'print the report as JSON')
    .option('--no-progress', 'no progress bar')
    .action(async (options: ShadowCliOptions) => {
      const controller = new AbortController();
      const onSigint = (): void => {
        if (controller.signal.aborted) process.exit(130);
        console.error(
          '\ninterrupted: waiting for the commands in flight, then reporting (Ctrl-C again to quit)',
        );
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      const bar =
        options.progress && process.stderr.isTTY === true && options.json !== true
          ? new SingleBar({ format: 'replay [{bar}] {value}/{total} commands', hideCursor: true })
          : null;
      try {
        const report = await runShadow({
          source: {
            ...(options.databaseUrl === undefined
              ? { dataDir: options.dataDir }
              : { databaseUrl: options.databaseUrl }),
            ...(options.schema === undefined ? {} : { schema: options.schema }),
          },
          range: {
            ...(options.fromSeq === undefined ? {} : { fromSeq: options.fromSeq }),
            ...(options.toSeq === undefined ? {} : { toSeq: options.toSeq }),
            ...(options.fromTime === undefined ? {} : { fromTime: options.fromTime }),
            ...(options.toTime === undefined ? {} : { toTime: options.toTime }),
          },
          target: {
            store: options.targetStore,
            schema: options.targetSchema,
            ...(options.targetDatabaseUrl === undefined ? {} : { databaseUrl: options.targetDatabaseUrl }),
            ...(options.shards === undefined ? {} : { shards: options.shards }),
          },
          speed: options.speed,
          ordered: options.ordered === true,
          clock: options.clock,
          ...(options.seed === undefined ? {} : { seed: options.seed }),
          maxInFlight: options.maxInFlight,
          signal: controller.signal,
          ...(bar === null
            ? {}
            : {
                onProgress: (answered: number, total: number) => {
                  if (answered === 1) bar.start(total, 0);
                  bar.update(answered);
                },
              }),
          log: (line) => {
            if (options.json !== true) console.error(line);
          },
        });
        bar?.stop();
        if (options.json === true) console.log(JSON.stringify(report, null, 2));
        else for (const line of formatShadowReport(report)) console.log(line);
        onExitCode(report.result.interrupted ? 130 : 0);
      } finally {
        bar?.stop();
        process.off('SIGINT', onSigint);
      }
    });
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  await shadowCommand().parseAsync(process.argv);
}
