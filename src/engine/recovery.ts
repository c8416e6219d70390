/**
 * Rebuilding a shard's state: latest snapshot + WAL tail.
 *
 * Same shard count as the stored layout: snapshot(shard, epoch) + rows of stream `shard`
 * after it. A different shard count: every old stream's snapshot and tail, filtered to
 * the SKUs this shard owns under the new layout (see src/persistence/wal.ts). Used by the
 * shard worker, the simulation and the replay tool.
 */
import { ShardCore } from '../actors/core.js';
import { shardOf } from '../actors/hash.js';
import { imageOf, mergeImage, type StateImage } from '../actors/snapshot.js';
import type { OwnsSku } from '../actors/state.js';
import type { Limits } from '../config.js';
import { checksumOf, decode, decodeEvents } from '../persistence/codec.js';
import { type Layout, type WalStore, walReadPageRows } from '../persistence/wal.js';

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
  /** Stop applying rows after this time (replay tool's --to-time). */
  readonly toTime?: number;
  readonly onProgress?: (rows: number, events: number) => void;
}

export function ownerFilter(shard: number, partitionCount: number, shardCount: number): OwnsSku {
  if (shardCount === 1) return () => true;
  return (sku) => shardOf(sku, partitionCount, shardCount) === shard;
}

export async function recoverShard(store: WalStore, options: RecoverOptions): Promise<RecoveryResult> {
  const { shard, layout, previous, limits } = options;
  const core = new ShardCore(limits, ownerFilter(shard, layout.partitionCount, layout.shardCount));
  const totals = { rows: 0, events: 0, lastAt: 0, snapshots: 0 };
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
  if (previous.shardCount === layout.shardCount) {
    const fromSeq = await loadSnapshot(store, core, shard, previous.epoch, totals);
    await replayStream(store, core, shard, fromSeq, options, totals);
  } else {
    // Another layout: every old stream, each rebuilt on its own (filtered to our SKUs) and
    // then merged, so the parts of a cross-shard reservation that lived on different old
    // shards each replay their own events before they become one part here.
    for (const source of range(previous.shardCount)) {
      const part = new ShardCore(limits, core.owns);
      const fromSeq = await loadSnapshot(store, part, source, previous.epoch, totals);
      await replayStream(store, part, source, fromSeq, options, totals);
      mergeImage(core.state, imageOf(part.state));
    }
  }
  return {
    core,
    seq: await store.lastSeq(shard),
    lastAt: totals.lastAt,
    rowsApplied: totals.rows,
    eventsApplied: totals.events,
    snapshotsLoaded: totals.snapshots,
  };
}

async function loadSnapshot(
  store: WalStore,
  core: ShardCore,
  source: number,
  epoch: number,
  totals: { snapshots: number; lastAt: number },
): Promise<number> {
  const snapshot = await store.latestSnapshot(source, epoch);
  if (snapshot === null) {
    // Epoch 1 began on an empty database, so its streams replay from the start; a later
    // epoch began with a snapshot of every shard, so a missing one means lost data.
    if (epoch > 1) throw new Error(`snapshot of shard ${source} for epoch ${epoch} is missing`);
    return 0;
  }
  if (checksumOf(snapshot.payload) !== snapshot.checksum) {
    throw new Error(`snapshot of shard ${source} at seq ${snapshot.seq} fails its checksum`);
  }
  mergeImage(core.state, decode<StateImage>(snapshot.payload));
  totals.snapshots++;
  totals.lastAt = Math.max(totals.lastAt, snapshot.at);
  return snapshot.seq;
}

async function replayStream(
  store: WalStore,
  core: ShardCore,
  stream: number,
  afterSeq: number,
  options: RecoverOptions,
  totals: { rows: number; events: number; lastAt: number },
): Promise<void> {
  let seq = afterSeq;
  for (;;) {
    const rows = await store.read(stream, seq, walReadPageRows);
    if (rows.length === 0) return;
    for (const row of rows) {
      if (row.seq !== seq + 1) throw new Error(`WAL stream ${stream} has a gap: seq ${row.seq} after ${seq}`);
      if (options.toTime !== undefined && row.at > options.toTime) return;
      const events = decodeEvents(row.payload);
      core.apply(events);
      seq = row.seq;
      totals.rows++;
      totals.events += events.length;
      totals.lastAt = Math.max(totals.lastAt, row.at);
    }
    options.onProgress?.(totals.rows, totals.events);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
