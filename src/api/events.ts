/**
 * The change feed: committed WAL rows as a stream of events, for GET /v1/events (pages)
 * and its SSE tail. It reads the log, never the state, so it shows exactly what is durable.
 *
 *   shard worker ──append──▶ NotifyingStore ──▶ inner store (durable)
 *                                 │ after the append resolved
 *                                 │ (a worker with its own connection: Engine.onDurable)
 *                                 ▼
 *                           ChangeFeed.recent (last rows per stream, decoded once)
 *                                 │ wakes waiting SSE tails; pages read here first,
 *                                 ▼ the store when older
 *                           page(cursor, limit) ──▶ events in log order + next cursor
 *
 * Order. The log is one stream per shard. Within a stream the order is exact (seq, then
 * the event's index in its row). Across streams, rows are merged by (epoch, at, stream,
 * seq): every event of an older layout epoch comes before any of a newer one, and within
 * an epoch rows interleave by their batch time. A SKU lives on one stream per epoch, so
 * the events of one SKU (and of one part of a reservation) always arrive in the order
 * they happened; events of different shards are only ordered as well as their clocks.
 *
 * Cursor. A position per stream: `seq` (rows up to it consumed) and `skip` (events of the
 * next row consumed), encoded as `c1.<stream>-<seq>-<skip>_…`. Clients treat it as
 * opaque. Streams are append-only and keep their numbers and seqs across restarts, also
 * when the shard count changes (the layout's epoch goes up, new rows of a stream keep
 * counting from its last seq, a stream no longer written keeps its rows, a new stream
 * starts at seq 1). So a cursor stays valid across any restart and any resharding: it
 * resumes every stream where it stopped, and a stream it does not mention is read from
 * its beginning. Resharding itself writes snapshots, not log rows, so no event is
 * repeated or invented by it. WAL retention (`prune`) removes old rows: reading from the
 * beginning then starts at the oldest row kept, and a cursor whose next rows are gone is
 * refused with CURSOR_EXPIRED rather than silently skipping them.
 */
import type { DomainEvent } from '../actors/types.js';
import { decodeEvents } from '../persistence/codec.js';
import type { Layout, SnapshotInfo, SnapshotRow, WalRow, WalStore } from '../persistence/wal.js';
import { ProblemError } from './problem.js';

export type AppendListener = (row: WalRow) => void;

/**
 * A WalStore that tells listeners about every append once it is durable. The engine
 * must be started with it: a store hosted in this thread (the in-memory one, and any
 * store without a direct worker link) receives every worker's append here, so the feed
 * learns of each row without polling.
 *
 * A store that offers shard workers a direct path (`linkForWorker`, e.g. PGlite's own
 * thread or a PostgreSQL pool per worker) keeps it: this decorator passes the link on,
 * appends then bypass it and `seesEveryAppend` is false. The feed then learns of rows from
 * the engine instead (Engine.onDurable: each worker reports the seq of every durable row
 * with the replies of its batches) and tails read them from the store; only a feed given
 * no such notices falls back to watching the streams' last seqs while a tail waits.
 */
export class NotifyingStore implements WalStore {
  private readonly listeners = new Set<AppendListener>();
  readonly seesEveryAppend: boolean;

  constructor(readonly inner: WalStore) {
    const link = (inner as { linkForWorker?: () => Promise<unknown> }).linkForWorker;
    this.seesEveryAppend = typeof link !== 'function';
    if (typeof link === 'function') {
      // Own property, so the engine finds the link exactly as on the inner store.
      Object.defineProperty(this, 'linkForWorker', { value: () => link.call(inner), enumerable: false });
    }
  }

  readLayout(): Promise<Layout | null> {
    return this.inner.readLayout();
  }

  writeLayout(layout: Layout): Promise<void> {
    return this.inner.writeLayout(layout);
  }

  async append(row: WalRow): Promise<void> {
    await this.inner.append(row);
    for (const listener of this.listeners) {
      try {
        listener(row);
      } catch {
        // A listener's failure must never turn a durable append into a failed one.
      }
    }
  }

  read(stream: number, afterSeq: number, limit: number): Promise<WalRow[]> {
    return this.inner.read(stream, afterSeq, limit);
  }

  lastSeq(stream: number): Promise<number> {
    return this.inner.lastSeq(stream);
  }

  streams(): Promise<number[]> {
    return this.inner.streams();
  }

  writeSnapshot(snapshot: SnapshotRow): Promise<void> {
    return this.inner.writeSnapshot(snapshot);
  }

  latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null> {
    return this.inner.latestSnapshot(shard, epoch);
  }

  snapshotAtOrBefore(shard: number, epoch: number, atOrBeforeSeq: number): Promise<SnapshotRow | null> {
    return this.inner.snapshotAtOrBefore(shard, epoch, atOrBeforeSeq);
  }

  listSnapshots(shard: number, epoch: number): Promise<SnapshotInfo[]> {
    return this.inner.listSnapshots(shard, epoch);
  }

  prune(stream: number, epoch: number, throughSeq: number): Promise<{ rows: number; snapshots: number }> {
    return this.inner.prune(stream, epoch, throughSeq);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** What the inner store says about itself, when it can (PostgreSQL URL without password, data dir, memory). */
  describe(): string {
    const inner = this.inner as WalStore & { describe?: () => string };
    return typeof inner.describe === 'function' ? inner.describe() : 'in-memory WAL';
  }

  onAppend(listener: AppendListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/* ------------------------------------------------------------------------- cursors */

export interface StreamPosition {
  /** Rows of the stream up to this seq are consumed. */
  readonly seq: number;
  /** Events of row seq + 1 already consumed (a page may end inside a row). */
  readonly skip: number;
}

export type Cursor = ReadonlyMap<number, StreamPosition>;

export const beginning: Cursor = new Map();

const cursorPrefix = 'c1.';
/** Streams a cursor may name: the partition count's upper bound (src/config.ts). */
const cursorStreamsMax = 65_536;

export function encodeCursor(cursor: Cursor): string {
  const parts: string[] = [];
  for (const stream of [...cursor.keys()].sort((a, b) => a - b)) {
    const { seq, skip } = cursor.get(stream)!;
    parts.push(`${stream}-${seq}-${skip}`);
  }
  return cursorPrefix + parts.join('_');
}

/** The cursor, or null when the text is not one this server wrote. */
export function decodeCursor(text: string): Cursor | null {
  if (!text.startsWith(cursorPrefix)) return null;
  const body = text.slice(cursorPrefix.length);
  const cursor = new Map<number, StreamPosition>();
  if (body === '') return cursor;
  for (const part of body.split('_')) {
    const match = /^(\d{1,5})-(\d{1,15})-(\d{1,9})$/.exec(part);
    if (match === null) return null;
    const stream = Number(match[1]);
    const seq = Number(match[2]);
    const skip = Number(match[3]);
    if (stream >= cursorStreamsMax || cursor.has(stream) || !Number.isSafeInteger(seq)) return null;
    cursor.set(stream, { seq, skip });
  }
  return cursor;
}

/* ---------------------------------------------------------------------------- feed */

/** A committed domain event with its place in the log (`bodyHash`, an internal detail, is left out). */
export type FeedEvent = { shard: number; seq: number; index: number; epoch: number } & Omit<
  DomainEvent,
  'bodyHash'
>;

export interface FeedPage {
  readonly events: FeedEvent[];
  readonly next: Cursor;
}

export interface ChangeFeedOptions {
  /** Streams written now (the engine's shard count); older layouts' streams are discovered. */
  readonly shardCount: number;
  /** Rows per stream kept decoded for tails and near-tail pages. */
  readonly recentRowsMax: number;
  /** Rows read from the store per call while paging. */
  readonly readChunkRows?: number;
  /**
   * Durable-append notices from the engine that writes (Engine.onDurable). Needed when the
   * shard workers append on their own connections, past the NotifyingStore: without them
   * a waiting tail falls back to polling the streams' last seqs every `pollMs`.
   */
  readonly notices?: (listener: (stream: number, seq: number) => void) => () => void;
  /** Fallback only (no notices, store sees not every append): how often waiting tails poll. */
  readonly pollMs?: number;
  /** Least time between two wake-ups of the tails by notices (coalesces appends under load). */
  readonly noticeIntervalMs?: number;
}

export class ChangeFeed {
  private readonly recent = new Map<number, WalRow[]>();
  /** Last seq of streams with no recent rows, as the store reported it; appends land in `recent`. */
  private readonly ends = new Map<number, number>();
  private readonly decoded = new WeakMap<WalRow, FeedEvent[]>();
  private readonly waiters = new Set<() => void>();
  private knownStreams: Promise<number[]> | null = null;
  private readonly unsubscribe: () => void;
  private pollTimer: NodeJS.Timeout | null = null;
  /** Coalesces the engine's durable-append notices (onNotice). */
  private noticeTimer: NodeJS.Timeout | null = null;
  private lastNoticeBump = 0;
  /** Bumped by every append: a tail that saw version v waits for v + 1. */
  version = 0;

  constructor(
    private readonly store: NotifyingStore,
    private readonly options: ChangeFeedOptions,
  ) {
    const unsubscribeRows = store.onAppend((row) => this.onRow(row));
    const unsubscribeNotices =
      options.notices === undefined || store.seesEveryAppend
        ? () => undefined
        : options.notices(() => this.onNotice());
    this.unsubscribe = () => {
      unsubscribeRows();
      unsubscribeNotices();
    };
  }

  /**
   * A row is durable somewhere the NotifyingStore does not see: wake the tails, which read
   * it from the store. At once when idle, then at most every noticeIntervalMs, so a busy
   * engine (hundreds of rows a second) costs each tail a bounded number of reads.
   */
  private onNotice(): void {
    if (this.noticeTimer !== null) return;
    const interval = this.options.noticeIntervalMs ?? 10;
    const wait = this.lastNoticeBump + interval - performance.now();
    const fire = (): void => {
      this.noticeTimer = null;
      this.lastNoticeBump = performance.now();
      this.bump();
    };
    if (wait <= 0) fire();
    else this.noticeTimer = setTimeout(fire, wait);
  }

  close(): void {
    this.unsubscribe();
    if (this.noticeTimer !== null) clearTimeout(this.noticeTimer);
    this.noticeTimer = null;
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  private onRow(row: WalRow): void {
    let rows = this.recent.get(row.stream);
    if (rows === undefined) {
      rows = [];
      this.recent.set(row.stream, rows);
    }
    // Keep a contiguous run of the newest rows; a gap (never expected) restarts it.
    const last = rows.at(-1);
    if (last !== undefined && last.seq + 1 !== row.seq) rows.length = 0;
    rows.push(row);
    if (rows.length > this.options.recentRowsMax) rows.splice(0, rows.length - this.options.recentRowsMax);
    this.bump();
  }

  private bump(): void {
    this.version++;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /**
   * Without a notification for every append, watch the streams' last seqs while someone
   * waits (one probe per stream per interval for all tails together).
   */
  private ensurePolling(): void {
    if (this.store.seesEveryAppend || this.options.notices !== undefined || this.pollTimer !== null) return;
    const probe = (): Promise<string> =>
      this.streams()
        .then((streams) => Promise.all(streams.map((stream) => this.store.lastSeq(stream))))
        .then((seqs) => seqs.join(','));
    let baseline: string | null = null;
    void probe().then((seqs) => {
      baseline ??= seqs;
    });
    this.pollTimer = setInterval(() => {
      if (this.waiters.size === 0) {
        clearInterval(this.pollTimer!);
        this.pollTimer = null;
        return;
      }
      void probe()
        .then((seqs) => {
          if (baseline !== null && seqs !== baseline) this.bump();
          baseline = seqs;
        })
        .catch(() => undefined);
    }, this.options.pollMs ?? 200);
    this.pollTimer.unref();
  }

  /**
   * Resolves once an append happened after `version` was read, after `timeoutMs`, or when
   * `signal` aborts — whichever comes first. Poll-free: appends wake it.
   */
  waitForAppend(version: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.version > version || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
      this.ensurePolling();
    });
  }

  /** The streams to read: every stream any layout wrote, discovered once. */
  streams(): Promise<number[]> {
    this.knownStreams ??= this.discoverStreams();
    return this.knownStreams;
  }

  private async discoverStreams(): Promise<number[]> {
    // Today's shards, and the streams an older layout with more shards left behind (once:
    // only this layout writes from now on).
    const found = new Set(Array.from({ length: this.options.shardCount }, (_, stream) => stream));
    for (const stream of await this.store.streams()) found.add(stream);
    return [...found].sort((a, b) => a - b);
  }

  /** The current end of every stream: a tail from here sees only what comes next. */
  async latest(): Promise<Cursor> {
    const streams = await this.streams();
    const seqs = await Promise.all(streams.map((stream) => this.store.lastSeq(stream)));
    return new Map(streams.map((stream, i) => [stream, { seq: seqs[i]!, skip: 0 }]));
  }

  /** Up to `limit` events after `after`, in log order (see the header), and the cursor after them. */
  async page(after: Cursor, limit: number): Promise<FeedPage> {
    // Only streams that exist are read: a position for any other stream (no layout ever
    // wrote it) can never matter, and reading it would cost a store call per page.
    const streams = await this.streams();
    const readers = streams.map((stream) => new StreamReader(this, stream, after.get(stream)));
    const events: FeedEvent[] = [];
    while (events.length < limit) {
      let best: StreamReader | undefined;
      let bestRow: WalRow | undefined;
      for (const reader of readers) {
        const row = await reader.head();
        if (row !== undefined && (bestRow === undefined || comesBefore(row, bestRow))) {
          best = reader;
          bestRow = row;
        }
      }
      if (best === undefined || bestRow === undefined) break;
      best.take(this.eventsOf(bestRow), limit - events.length, events);
    }
    const next = new Map<number, StreamPosition>();
    for (const reader of readers) next.set(reader.stream, reader.position);
    return { events, next };
  }

  /** Rows of a stream after `afterSeq`: from the recent rows when they cover it, else from the store. */
  async rows(stream: number, afterSeq: number, limit: number): Promise<WalRow[]> {
    // The shortcuts below trust that every append passed through the NotifyingStore.
    if (!this.store.seesEveryAppend) return this.store.read(stream, afterSeq, limit);
    const recent = this.recent.get(stream);
    if (recent !== undefined && recent.length > 0) {
      const first = recent[0]!.seq;
      const last = recent.at(-1)!.seq;
      // Every append passes through here, so the newest recent row is the stream's end.
      if (afterSeq >= last) return [];
      if (afterSeq + 1 >= first) {
        const from = afterSeq + 1 - first;
        return recent.slice(from, from + limit);
      }
    }
    const end = this.ends.get(stream);
    if (end !== undefined && afterSeq >= end && (recent === undefined || recent.length === 0)) return [];
    const rows = await this.store.read(stream, afterSeq, limit);
    if (rows.length < limit) this.ends.set(stream, rows.at(-1)?.seq ?? afterSeq);
    return rows;
  }

  get readChunkRows(): number {
    return this.options.readChunkRows ?? 64;
  }

  private eventsOf(row: WalRow): FeedEvent[] {
    let events = this.decoded.get(row);
    if (events === undefined) {
      events = decodeEvents(row.payload).map((event, index) => toFeedEvent(row, event, index));
      this.decoded.set(row, events);
    }
    return events;
  }
}

function toFeedEvent(row: WalRow, event: DomainEvent, index: number): FeedEvent {
  const { bodyHash: _internal, ...fields } = event as DomainEvent & { bodyHash?: number };
  return { shard: row.stream, seq: row.seq, index, epoch: row.epoch, ...fields } as FeedEvent;
}

function comesBefore(a: WalRow, b: WalRow): boolean {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch;
  if (a.at !== b.at) return a.at < b.at;
  if (a.stream !== b.stream) return a.stream < b.stream;
  return a.seq < b.seq;
}

/** One stream's rows during one page, fetched in chunks as the merge consumes them. */
class StreamReader {
  position: StreamPosition;
  private buffer: WalRow[] = [];
  private exhausted = false;
  /** The cursor named this stream: a gap after its position means events were removed. */
  private resuming: boolean;

  constructor(
    private readonly feed: ChangeFeed,
    readonly stream: number,
    start: StreamPosition | undefined,
  ) {
    this.position = start ?? { seq: 0, skip: 0 };
    this.resuming = start !== undefined;
  }

  async head(): Promise<WalRow | undefined> {
    if (this.buffer.length === 0 && !this.exhausted) {
      const chunk = this.feed.readChunkRows;
      this.buffer = await this.feed.rows(this.stream, this.position.seq, chunk);
      if (this.buffer.length < chunk) this.exhausted = true;
      const first = this.buffer[0];
      // Seqs are dense, so a first row past position + 1 means retention removed rows.
      if (first !== undefined && first.seq > this.position.seq + 1) {
        if (this.resuming) {
          throw new ProblemError(
            'CURSOR_EXPIRED',
            `events of shard ${this.stream} after seq ${this.position.seq} were removed by WAL retention (the log now starts at seq ${first.seq})`,
          );
        }
        // Reading from the beginning: the beginning is the oldest row kept.
        this.position = { seq: first.seq - 1, skip: 0 };
      }
      this.resuming = true;
    }
    return this.buffer[0];
  }

  /** Moves up to `room` events of the head row into `out` and advances the position. */
  take(events: readonly FeedEvent[], room: number, out: FeedEvent[]): void {
    const row = this.buffer[0]!;
    const start = Math.min(this.position.skip, events.length);
    const count = Math.min(events.length - start, room);
    for (let i = start; i < start + count; i++) out.push(events[i]!);
    if (start + count >= events.length) {
      this.position = { seq: row.seq, skip: 0 };
      this.buffer.shift();
    } else {
      this.position = { seq: row.seq - 1, skip: start + count };
    }
  }
}
