/**
 * Rebuilding a shard's state: latest snapshot + WAL tail.
 *
 * Same shard count as the stored layout: snapshot(shard, epoch) + rows of stream `shard`
 * after it. A different shard count: every old stream's snapshot and tail, filtered to
 * the SKUs this shard owns under the new layout (see src/persistence/wal.ts).
 *
 * `rebuildShard` is the one replay loop: a snapshot at or before a target plus the rows
 * after it. Recovery (shard workers, the simulation), background snapshots and the replay
 * tool (src/engine/replay.ts) all use it.
 */
import { ShardCore } from '../actors/core.js';
import { shardOf } from '../actors/hash.js';
import { imageOf, mergeImage, type StateImage, type StateImageV1 } from '../actors/snapshot.js';
import type { OwnsSku } from '../actors/state.js';
import { defaultLimits, type Limits } from '../config.js';
import { checksumOf, decodeEvents, decodeSnapshot } from '../persistence/codec.js';
import {
  type Layout,
  type SnapshotRow,
  type WalRow,
  type WalStore,
  walReadPageRows,
} from '../persistence/wal.js';

export interface RecoveryResult {
  readonly core: ShardCore;
  /** Last seq of the shard's own stream (the next append uses seq + 1). */
  readonly seq: number;
  /** Time of the newest applied row (ms), 0 when nothing was applied. */
  readonly lastAt: number;
  readonly rowsApplied: number;
  readonly eventsApplied: number;
  readonly snapshotsLoaded: number;
}

export interface RecoverOptions {
  readonly shard: number;
  /** The layout this process runs with. */
  readonly layout: Layout;
  /** The layout stored in the database (null on a fresh database). */
  readonly previous: Layout | null;
  readonly limits: Limits;
}

export function ownerFilter(shard: number, partitionCount: number, shardCount: number): OwnsSku {
  if (shardCount === 1) return () => true;
  return (sku) => shardOf(sku, partitionCount, shardCount) === shard;
}

export async function recoverShard(store: WalStore, options: RecoverOptions): Promise<RecoveryResult> {
  const { shard, layout, previous, limits } = options;
  const core = new ShardCore(limits, ownerFilter(shard, layout.partitionCount, layout.shardCount));
  if (previous === null) {
    return {
      core,
      seq: await store.lastSeq(shard),
      lastAt: 0,
      rowsApplied: 0,
      eventsApplied: 0,
      snapshotsLoaded: 0,
    };
  }
  if (previous.partitionCount !== layout.partitionCount) {
    throw new Error(
      `the database uses ${previous.partitionCount} partitions; this process ${layout.partitionCount}`,
    );
  }
  // Same shard count: this shard's latest snapshot + its stream after it. Another layout:
  // every old stream, each rebuilt on its own (filtered to our SKUs) and then merged, so the
  // parts of a cross-shard reservation that lived on different old shards each replay their
  // own events before they become one part here.
  const sources = previous.shardCount === layout.shardCount ? [shard] : range(previous.shardCount);
  const totals = { rows: 0, events: 0, lastAt: 0, snapshots: 0 };
  let result = core;
  for (const source of sources) {
    const part = await rebuildShard(store, previous, source, {
      limits,
      owns: core.owns,
      otherLayout: previous.shardCount !== layout.shardCount,
    });
    if (sources.length === 1) result = part.core;
    else mergeImage(core.state, imageOf(part.core.state));
    totals.rows += part.rows;
    totals.events += part.events;
    totals.lastAt = Math.max(totals.lastAt, part.position.at);
    if (part.position.fromSnapshot) totals.snapshots++;
  }
  return {
    core: result,
    seq: await store.lastSeq(shard),
    lastAt: totals.lastAt,
    rowsApplied: totals.rows,
    eventsApplied: totals.events,
    snapshotsLoaded: totals.snapshots,
  };
}

export interface ReplayTarget {
  /** Last seq to apply, for every stream (a number) or per stream (a map; absent streams: all). */
  readonly toSeq?: number | ReadonlyMap<number, number>;
  /** Last batch time to apply (ms since the epoch). */
  readonly toTime?: number;
}

/** Called after each page of rows, with running totals. */
export type ReplayProgress = (done: { rows: number; events: number; stream: number; seq: number }) => void;

export interface StreamPosition {
  readonly stream: number;
  /** Last applied seq (0: nothing). */
  readonly seq: number;
  /** Batch time of the last applied row (0: nothing applied). */
  readonly at: number;
  /** Where the rebuild started: a snapshot's seq, or 0 for the start of the stream. */
  readonly fromSeq: number;
  readonly fromSnapshot: boolean;
}

/** A target that cannot be reached from what the database keeps. Exit code 1 in the CLI. */
export class ReplayRangeError extends Error {
  readonly code = 'REPLAY_OUT_OF_RANGE';
  constructor(message: string) {
    super(message);
    this.name = 'ReplayRangeError';
  }
}

function targetSeqOf(target: ReplayTarget, stream: number): number {
  if (target.toSeq === undefined) return Number.POSITIVE_INFINITY;
  if (typeof target.toSeq === 'number') return target.toSeq;
  return target.toSeq.get(stream) ?? Number.POSITIVE_INFINITY;
}

function withinTarget(row: WalRow, target: ReplayTarget): boolean {
  return (
    row.seq <= targetSeqOf(target, row.stream) && (target.toTime === undefined || row.at <= target.toTime)
  );
}

/**
 * Every row of a stream after `afterSeq`, page by page, in seq order; checks there is no gap.
 * The next page is already being read while the caller applies this one, so the database's
 * work overlaps the replay's (at most two pages in memory).
 */
export async function* rowsOf(store: WalStore, stream: number, afterSeq = 0): AsyncGenerator<WalRow[]> {
  let seq = afterSeq;
  let next: Promise<WalRow[]> | null = store.read(stream, seq, walReadPageRows);
  try {
    while (next !== null) {
      const rows = await next;
      next = null;
      if (rows.length === 0) return;
      for (const row of rows) {
        if (seq > 0 && row.seq !== seq + 1) {
          throw new ReplayRangeError(`WAL stream ${stream} has a gap: seq ${row.seq} follows ${seq}`);
        }
        seq = row.seq;
      }
      next = store.read(stream, seq, walReadPageRows);
      yield rows;
    }
  } finally {
    // The caller stopped early (a target reached, an error): the read ahead is not wanted.
    next?.catch(() => undefined);
  }
}

/** The seq of the first row a stream still holds (after retention), or null when empty. */
export async function firstSeqOf(store: WalStore, stream: number): Promise<number | null> {
  const [first] = await store.read(stream, 0, 1);
  return first === undefined ? null : first.seq;
}

/**
 * Chooses where to start a shard's rebuild: the newest snapshot of the current epoch at or
 * before the target, else the start of the stream if the stream is complete (epoch 1, the
 * first row still there).
 */
async function startingPoint(
  store: WalStore,
  layout: Layout,
  shard: number,
  target: ReplayTarget,
): Promise<{ snapshot: SnapshotRow | null; fromSeq: number }> {
  let targetSeq = targetSeqOf(target, shard);
  if (target.toTime !== undefined) {
    // The newest snapshot taken at or before the time bounds the seq too.
    const byTime = (await store.listSnapshots(shard, layout.epoch)).filter((s) => s.at <= target.toTime!);
    targetSeq = Math.min(targetSeq, byTime.at(-1)?.seq ?? 0);
    if (byTime.length === 0) targetSeq = -1;
  }
  const snapshot =
    targetSeq < 0
      ? null
      : await store.snapshotAtOrBefore(
          shard,
          layout.epoch,
          Number.isFinite(targetSeq) ? targetSeq : Number.MAX_SAFE_INTEGER,
        );
  const first = await firstSeqOf(store, shard);
  if (snapshot !== null && (first === null || first <= snapshot.seq + 1))
    return { snapshot, fromSeq: snapshot.seq };
  const complete = layout.epoch === 1 && (first === null || first === 1);
  if (complete) return { snapshot: null, fromSeq: 0 };
  const earliest = await earliestPoint(store, layout, shard);
  throw new ReplayRangeError(
    `shard ${shard}: the target is before the earliest point this database can rebuild, ${earliest.description}`,
  );
}

/** The earliest state of a shard this database can rebuild (retention and resharding move it). */
export async function earliestPoint(
  store: WalStore,
  layout: Layout,
  shard: number,
): Promise<{ seq: number; at: number | null; description: string }> {
  const first = await firstSeqOf(store, shard);
  if (layout.epoch === 1 && (first === null || first === 1))
    return { seq: 0, at: null, description: 'the start of the log' };
  for (const info of await store.listSnapshots(shard, layout.epoch)) {
    if (first === null || first <= info.seq + 1) {
      return {
        seq: info.seq,
        at: info.at,
        description: `seq ${info.seq} (${new Date(info.at).toISOString()}), a snapshot`,
      };
    }
  }
  return {
    seq: Number.NaN,
    at: null,
    description: 'none: no usable snapshot and the start of the log was removed',
  };
}

/** One shard rebuilt as of a target: its core, and where its stream stopped. */
export interface RebuiltShard {
  readonly core: ShardCore;
  readonly position: StreamPosition;
  readonly rows: number;
  readonly events: number;
}

/**
 * Rebuilds one shard of `layout` as of `target`: snapshot (when usable) + rows after it.
 * The position is the last row *applied*, so rows appended meanwhile (a live writer) are
 * simply not included: the result is the exact state at `position.seq`.
 */
export async function rebuildShard(
  store: WalStore,
  layout: Layout,
  shard: number,
  options: ReplayTarget & {
    readonly limits?: Limits;
    readonly onProgress?: ReplayProgress;
    /** Which SKUs to keep; default the shard's own under `layout` (recovery into another layout passes its own). */
    readonly owns?: OwnsSku;
    /** The rows were written under another shard count than the state's (see ShardState.replayingOtherLayout). */
    readonly otherLayout?: boolean;
  } = {},
): Promise<RebuiltShard> {
  const limits = { ...(options.limits ?? defaultLimits), partitionCount: layout.partitionCount };
  const core = new ShardCore(
    limits,
    options.owns ?? ownerFilter(shard, layout.partitionCount, layout.shardCount),
  );
  const { snapshot, fromSeq } = await startingPoint(store, layout, shard, options);
  let at = 0;
  if (snapshot !== null) {
    if (checksumOf(snapshot.payload) !== snapshot.checksum) {
      throw new ReplayRangeError(`snapshot of shard ${shard} at seq ${snapshot.seq} fails its checksum`);
    }
    mergeImage(core.state, decodeSnapshot<StateImage | StateImageV1>(snapshot.payload), snapshot.at);
    at = snapshot.at;
  }
  let seq = fromSeq;
  let rows = 0;
  let events = 0;
  core.state.replayingOtherLayout = options.otherLayout === true;
  pages: for await (const page of rowsOf(store, shard, fromSeq)) {
    for (const row of page) {
      if (!withinTarget(row, options)) break pages;
      const decoded = decodeEvents(row.payload);
      core.apply(decoded);
      seq = row.seq;
      at = row.at;
      rows++;
      events += decoded.length;
    }
    options.onProgress?.({ rows, events, stream: shard, seq });
  }
  core.state.replayingOtherLayout = false;
  return {
    core,
    position: { stream: shard, seq, at, fromSeq, fromSnapshot: snapshot !== null },
    rows,
    events,
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
