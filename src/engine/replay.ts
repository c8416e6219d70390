/**
 * The replay tool's library: rebuild the state as of a WAL position or a time, verify a
 * database, export the state, and tell a SKU's history. `stockd replay` (src/cli/replay.ts)
 * is its command line; the crash test and the shadow-traffic benchmark use it too.
 *
 * Positions: each shard writes its own stream of rows (stream = shard, seq = 1, 2, …).
 * A target seq applies to every stream (`toSeq: 500`) or to chosen ones
 * (`toSeq: new Map([[0, 500], [1, 420]])`); a target time applies to every stream by the
 * rows' batch time. The state "as of" a target is every row at or before it.
 *
 * Starting points: a snapshot at or before the target, else the start of the stream when
 * the stream is complete (epoch 1 and its first row is seq 1). After a change of shard
 * count (epoch > 1) the epoch's first snapshots are the earliest point; earlier history
 * stays readable row by row (history, verify) but is not rebuilt.
 */
import { ShardCore } from '../actors/core.js';
import { canonicalLines, digestOfLines, mergeCanonicalLines } from '../actors/digest.js';
import { invariantViolations } from '../actors/invariants.js';
import { reservationView } from '../actors/queries.js';
import { mergeImage, type StateImage, type StateImageV1 } from '../actors/snapshot.js';
import { availableOf, type ShardState, type StockRecord } from '../actors/state.js';
import type { DomainEvent } from '../actors/types.js';
import { defaultLimits, type Limits } from '../config.js';
import { checksumOf, decodeEvents, decodeSnapshot } from '../persistence/codec.js';
import type { Layout, WalRow, WalStore } from '../persistence/wal.js';
import {
  firstSeqOf,
  ownerFilter,
  type ReplayProgress,
  type ReplayTarget,
  rebuildShard,
  rowsOf,
  type StreamPosition,
} from './recovery.js';

export {
  earliestPoint,
  firstSeqOf,
  type RebuiltShard,
  type ReplayProgress,
  ReplayRangeError,
  type ReplayTarget,
  rebuildShard,
  rowsOf,
  type StreamPosition,
} from './recovery.js';

export interface RebuiltState {
  readonly layout: Layout;
  readonly shards: ShardState[];
  readonly positions: StreamPosition[];
  readonly rows: number;
  readonly events: number;
  readonly millis: number;
}

/** A database with nothing to replay. */
export class EmptyDatabaseError extends Error {
  readonly code = 'EMPTY_DATABASE';
  constructor() {
    super('the database holds no stockd layout: nothing has been written yet');
    this.name = 'EmptyDatabaseError';
  }
}

export async function readLayoutOrFail(store: WalStore): Promise<Layout> {
  const layout = await store.readLayout();
  if (layout === null) throw new EmptyDatabaseError();
  return layout;
}

/** Rebuilds every shard of the stored layout as of `target` (default: everything). */
export async function rebuild(
  store: WalStore,
  options: ReplayTarget & { readonly limits?: Limits; readonly onProgress?: ReplayProgress } = {},
): Promise<RebuiltState> {
  const started = performance.now();
  const layout = await readLayoutOrFail(store);
  const shards: ShardState[] = [];
  const positions: StreamPosition[] = [];
  let rows = 0;
  let events = 0;
  for (let shard = 0; shard < layout.shardCount; shard++) {
    const before = { rows, events };
    const one = await rebuildShard(store, layout, shard, {
      ...options,
      ...(options.onProgress
        ? {
            onProgress: (p) =>
              options.onProgress!({ ...p, rows: before.rows + p.rows, events: before.events + p.events }),
          }
        : {}),
    });
    shards.push(one.core.state);
    positions.push(one.position);
    rows += one.rows;
    events += one.events;
  }
  return { layout, shards, positions, rows, events, millis: performance.now() - started };
}

/** One digest for a rebuilt state, comparable with `Engine.digest()`. */
export function digestOf(states: readonly ShardState[]): string {
  return digestOfLines(mergeCanonicalLines(states.flatMap((state) => canonicalLines([state]))));
}

/* --------------------------------------------------------------------------- verify */

export interface VerifyReport {
  readonly ok: boolean;
  readonly problems: string[];
  readonly notes: string[];
  readonly layout: Layout | null;
  readonly streams: Array<{
    stream: number;
    firstSeq: number | null;
    lastSeq: number;
    rows: number;
    events: number;
  }>;
  readonly snapshots: Array<{
    shard: number;
    seq: number;
    checksumOk: boolean;
    agreesWithWal: boolean | null;
  }>;
  readonly digest: string | null;
}

/**
 * Checks a database: every row (of every stream, retired ones too) decodes into as many
 * events as it declares, seqs have no gaps, snapshots match their checksums, each
 * snapshot equals the WAL replayed up to it (when the log still reaches back to the
 * start), and the rebuilt state keeps every invariant. `decodeRows` lets the CLI decode pages on several threads.
 */
export async function verify(
  store: WalStore,
  options: {
    readonly limits?: Limits;
    readonly onProgress?: ReplayProgress;
    readonly decodeRows?: (
      rows: WalRow[],
    ) => Promise<Array<{ seq: number; events: number; error: string | null }>>;
  } = {},
): Promise<VerifyReport> {
  const problems: string[] = [];
  const notes: string[] = [];
  const layout = await store.readLayout();
  if (layout === null) {
    return {
      ok: true,
      problems,
      notes: ['empty database: no layout'],
      layout,
      streams: [],
      snapshots: [],
      digest: null,
    };
  }
  const decodeRows =
    options.decodeRows ??
    (async (rows: WalRow[]) =>
      rows.map((row) => {
        try {
          return { seq: row.seq, events: decodeEvents(row.payload).length, error: null };
        } catch (error) {
          return { seq: row.seq, events: 0, error: String(error) };
        }
      }));

  // 1. Rows: decodable, counted right, no gaps.
  const streams: VerifyReport['streams'] = [];
  let rowsSeen = 0;
  let eventsSeen = 0;
  // The layout's streams, and those an earlier, larger layout left behind (kept until
  // retention removes them: their rows still tell the history).
  const streamNumbers = [...new Set([...Array(layout.shardCount).keys(), ...(await store.streams())])].sort(
    (a, b) => a - b,
  );
  for (const stream of streamNumbers) {
    if (stream >= layout.shardCount)
      notes.push(
        `stream ${stream} is retired (the layout has ${layout.shardCount} shards): its rows are checked, not rebuilt`,
      );
    let rows = 0;
    let events = 0;
    let lastSeq = 0;
    const firstSeq = await firstSeqOf(store, stream);
    try {
      for await (const page of rowsOf(store, stream)) {
        const decoded = await decodeRows(page);
        decoded.forEach((result, i) => {
          const row = page[i]!;
          if (result.error !== null)
            problems.push(`stream ${stream} seq ${row.seq}: payload does not decode: ${result.error}`);
          else if (result.events !== row.eventCount)
            problems.push(
              `stream ${stream} seq ${row.seq}: declares ${row.eventCount} events, holds ${result.events}`,
            );
          events += result.events;
        });
        rows += page.length;
        lastSeq = page.at(-1)!.seq;
        rowsSeen += page.length;
        for (const result of decoded) eventsSeen += result.events;
        options.onProgress?.({ rows: rowsSeen, events: eventsSeen, stream, seq: lastSeq });
      }
    } catch (error) {
      problems.push(String(error instanceof Error ? error.message : error));
    }
    const storedLast = await store.lastSeq(stream);
    if (storedLast !== lastSeq)
      problems.push(`stream ${stream}: lastSeq is ${storedLast} but rows end at ${lastSeq}`);
    streams.push({ stream, firstSeq, lastSeq, rows, events });
  }

  // 2. Snapshots: checksum, and agreement with the WAL replayed up to them.
  const snapshots: VerifyReport['snapshots'] = [];
  for (let shard = 0; shard < layout.shardCount; shard++) {
    const snapshot = await store.latestSnapshot(shard, layout.epoch);
    if (snapshot === null) continue;
    const checksumOk = checksumOf(snapshot.payload) === snapshot.checksum;
    if (!checksumOk) problems.push(`snapshot of shard ${shard} at seq ${snapshot.seq} fails its checksum`);
    let agreesWithWal: boolean | null = null;
    const first = streams.find((s) => s.stream === shard)?.firstSeq ?? null;
    if (checksumOk && layout.epoch === 1 && (first === null || first === 1)) {
      const limits = { ...(options.limits ?? defaultLimits), partitionCount: layout.partitionCount };
      const owns = ownerFilter(shard, layout.partitionCount, layout.shardCount);
      const fromSnapshot = new ShardCore(limits, owns);
      mergeImage(
        fromSnapshot.state,
        decodeSnapshot<StateImage | StateImageV1>(snapshot.payload),
        snapshot.at,
      );
      const fromWal = new ShardCore(limits, owns);
      try {
        pages: for await (const page of rowsOf(store, shard)) {
          for (const row of page) {
            if (row.seq > snapshot.seq) break pages;
            fromWal.apply(decodeEvents(row.payload));
          }
        }
        agreesWithWal = digestOf([fromSnapshot.state]) === digestOf([fromWal.state]);
      } catch (error) {
        // Already reported row by row above; the comparison is impossible, not failed.
        notes.push(
          `snapshot of shard ${shard}: not compared, the WAL before it does not replay (${String(error)})`,
        );
      }
      if (agreesWithWal === false)
        problems.push(
          `snapshot of shard ${shard} at seq ${snapshot.seq} differs from the WAL replayed to it`,
        );
    } else if (checksumOk) {
      notes.push(
        `snapshot of shard ${shard} at seq ${snapshot.seq}: not compared with the WAL (${
          layout.epoch > 1
            ? 'it starts an epoch after a change of shard count'
            : 'the log before it was removed by retention'
        })`,
      );
    }
    snapshots.push({ shard, seq: snapshot.seq, checksumOk, agreesWithWal });
  }

  // 3. The state as of now: rebuilt, and every invariant holds.
  let digest: string | null = null;
  if (problems.length === 0) {
    try {
      const rebuilt = await rebuild(store, { ...(options.limits ? { limits: options.limits } : {}) });
      rebuilt.shards.forEach((state, shard) => {
        for (const violation of invariantViolations(state)) problems.push(`shard ${shard}: ${violation}`);
      });
      digest = digestOf(rebuilt.shards);
    } catch (error) {
      problems.push(`rebuild failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { ok: problems.length === 0, problems, notes, layout, streams, snapshots, digest };
}

/* --------------------------------------------------------------------------- export */

/** NDJSON lines of a rebuilt state: stock records, open (held) reservations, channels. */
export function* exportLines(rebuilt: RebuiltState): Generator<string> {
  const channelsSeen = new Set<string>();
  for (const state of rebuilt.shards) {
    for (const [sku, first] of state.stock) {
      for (let r: StockRecord | null = first; r; r = r.next) {
        yield JSON.stringify({
          type: 'stock',
          sku,
          location: r.location,
          onHand: r.onHand,
          reserved: r.reserved,
          safetyStock: r.safetyStock,
          available: availableOf(r),
          version: r.version,
          sourceTs: r.sourceTs === 0 ? null : r.sourceTs,
        });
      }
    }
  }
  // A cross-shard reservation has a part on every shard it touches: export it once, whole.
  const open = new Map<string, ReturnType<typeof reservationView>>();
  for (const state of rebuilt.shards) {
    for (const reservation of state.reservations.values()) {
      if (reservation.status !== 'held') continue;
      const view = reservationView(reservation);
      const prior = open.get(view.reservationId);
      open.set(
        view.reservationId,
        prior === undefined ? view : { ...prior, lines: [...prior.lines, ...view.lines] },
      );
    }
    for (const channel of state.channels.values()) {
      if (channelsSeen.has(channel.channel)) continue;
      channelsSeen.add(channel.channel);
      yield JSON.stringify({
        type: 'channel',
        channel: channel.channel,
        locations: channel.locations,
        buffer: channel.buffer,
      });
    }
  }
  for (const view of open.values()) yield JSON.stringify({ type: 'reservation', ...view });
}

/* -------------------------------------------------------------------------- history */

export interface HistoryEntry {
  readonly at: string;
  readonly stream: number;
  readonly seq: number;
  readonly event: DomainEvent['type'];
  /** What happened to the SKU, in words. */
  readonly cause: string;
  readonly reservationId?: string;
  readonly location?: string;
  /** Units: + adds to onHand/reserved as the event says; see `cause`. */
  readonly qty?: number;
}

/**
 * The events of one row that touched `sku`. `holders` carries, across rows of a stream,
 * the reservations that hold the SKU, so their release, expiry or extension is reported.
 */
export function historyOfRow(
  sku: string,
  row: Pick<WalRow, 'stream' | 'seq'>,
  events: readonly DomainEvent[],
  holders: Set<string>,
): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  const base = { stream: row.stream, seq: row.seq };
  for (const event of events) {
    const at = new Date(event.at).toISOString();
    switch (event.type) {
      case 'StockSet':
        if (event.sku === sku)
          out.push({
            ...base,
            at,
            event: event.type,
            location: event.location,
            qty: event.onHand,
            cause: `on hand set to ${event.onHand} (safety stock ${event.safetyStock})${event.sourceTs ? `, source time ${new Date(event.sourceTs).toISOString()}` : ''}`,
          });
        break;
      case 'StockAdjusted':
        if (event.sku === sku)
          out.push({
            ...base,
            at,
            event: event.type,
            location: event.location,
            qty: event.delta,
            cause: `adjusted by ${event.delta > 0 ? '+' : ''}${event.delta} (reason ${JSON.stringify(event.reason)}, key ${JSON.stringify(event.key)})`,
          });
        break;
      case 'SafetyStockSet':
        if (event.sku === sku)
          out.push({
            ...base,
            at,
            event: event.type,
            location: event.location,
            qty: event.safetyStock,
            cause: `safety stock set to ${event.safetyStock}`,
          });
        break;
      case 'ChannelUpserted':
        break;
      case 'ReservationHeld':
        for (const line of event.lines) {
          if (line.sku !== sku) continue;
          holders.add(event.reservationId);
          out.push({
            ...base,
            at,
            event: event.type,
            reservationId: event.reservationId,
            location: line.location,
            qty: line.qty,
            cause: `reservation ${event.reservationId} holds ${line.qty}${event.orderId ? ` for order ${event.orderId}` : ''}${event.channel ? ` on channel ${event.channel}` : ''}, expires ${new Date(event.expiresAt).toISOString()}`,
          });
        }
        break;
      case 'ReservationCommitted':
        for (const line of event.lines) {
          if (line.sku !== sku) continue;
          out.push({
            ...base,
            at,
            event: event.type,
            reservationId: event.reservationId,
            location: line.location,
            qty: line.qty,
            cause: `reservation ${event.reservationId} shipped ${line.qty} (on hand −${line.onHandDecrease})${line.released > 0 ? `, released ${line.released}` : ''}`,
          });
        }
        break;
      case 'ReservationReleased':
      case 'ReservationExpired':
      case 'ReservationAborted':
        if (holders.has(event.reservationId)) {
          const verb =
            event.type === 'ReservationReleased'
              ? 'released'
              : event.type === 'ReservationExpired'
                ? 'expired'
                : 'aborted (another shard refused)';
          out.push({
            ...base,
            at,
            event: event.type,
            reservationId: event.reservationId,
            cause: `reservation ${event.reservationId} ${verb}: its units are free again`,
          });
        }
        break;
      case 'ReservationExtended':
        if (holders.has(event.reservationId))
          out.push({
            ...base,
            at,
            event: event.type,
            reservationId: event.reservationId,
            cause: `reservation ${event.reservationId} extended to ${new Date(event.expiresAt).toISOString()}`,
          });
        break;
      default: {
        const unknown: never = event;
        throw new Error(`unknown event ${JSON.stringify(unknown)}`);
      }
    }
  }
  return out;
}

/**
 * Every event that touched `sku`, stream by stream in log order (the streams of every
 * layout the database has had: a SKU may have lived on several). Sequential on purpose:
 * whether a release concerns the SKU depends on the holds before it.
 */
export async function* history(
  store: WalStore,
  sku: string,
  options: { readonly onProgress?: ReplayProgress } = {},
): AsyncGenerator<HistoryEntry> {
  await readLayoutOrFail(store);
  // Streams beyond the current shard count may hold an older layout's rows.
  let rows = 0;
  let events = 0;
  for (const stream of await store.streams()) {
    const holders = new Set<string>();
    for await (const page of rowsOf(store, stream)) {
      for (const row of page) {
        const decoded = decodeEvents(row.payload);
        events += decoded.length;
        yield* historyOfRow(sku, row, decoded, holders);
      }
      rows += page.length;
      options.onProgress?.({ rows, events, stream, seq: page.at(-1)!.seq });
    }
  }
}
