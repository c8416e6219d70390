/**
 * Periodic snapshots without stalling a shard: each one is built from the WAL on a
 * short-lived thread (snapshot-worker.ts). The engine asks `due()` on a timer; a shard is
 * due once `snapshotEveryEvents` events were appended since its last snapshot, or
 * `snapshotEveryMs` passed with anything new. One job runs at a time (on-demand runs take
 * the same slot, `exclusive`), which bounds the extra memory to one shard's state.
 */
import { Worker } from 'node:worker_threads';
import type { Limits } from '../config.js';
import { linkStore } from '../persistence/store-link.js';
import type { Layout, WalStore } from '../persistence/wal.js';
import type { SnapshotJob, SnapshotJobResult } from './snapshot-worker.js';

export const snapshotWorkerUrl: URL = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/src/engine/snapshot-worker.js', import.meta.url)
  : new URL('./snapshot-worker.js', import.meta.url);

export interface BackgroundSnapshot {
  readonly shard: number;
  readonly seq: number;
  readonly bytes: number;
  readonly rows: number;
  readonly events: number;
  readonly millis: number;
}

/** Builds and writes one shard's snapshot from the WAL on its own thread. */
export async function snapshotFromWal(
  store: WalStore,
  layout: Layout,
  limits: Limits,
  shard: number,
): Promise<BackgroundSnapshot> {
  const link = await linkStore(store);
  try {
    const job: SnapshotJob = { link: link.link, layout, limits, shard };
    const worker = new Worker(snapshotWorkerUrl, {
      workerData: job,
      transferList: [...link.transfer],
      name: `stockd-snapshot-${shard}`,
    });
    const result = await new Promise<SnapshotJobResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`snapshot worker exited with code ${code}`)));
    });
    await worker.terminate();
    if (!result.ok) throw new Error(`snapshot of shard ${shard} failed: ${result.error}`);
    return {
      shard,
      seq: result.seq,
      bytes: result.bytes,
      rows: result.rows,
      events: result.events,
      millis: result.millis,
    };
  } finally {
    link.release();
  }
}

interface ShardMark {
  /** Events appended (the worker's counter) when the last snapshot was taken. */
  events: number;
  seq: number;
  at: number;
}

/** A background snapshot under way: which shard, since when (the engine's clock, ms). */
export interface SnapshotInProgress {
  readonly shard: number;
  readonly startedAt: number;
}

export class Snapshotter {
  private readonly marks = new Map<number, ShardMark>();
  /** The one slot: the job that holds it (periodic, or an on-demand run over every shard). */
  private running: Promise<unknown> | null = null;
  private current: SnapshotInProgress | null = null;
  readonly taken: BackgroundSnapshot[] = [];
  lastError: string | null = null;
  /** Snapshot jobs started and finished (failed ones included), periodic and on demand. */
  readonly jobs = { started: 0, finished: 0 };

  /** `recoveredSeqs`: each shard's seq right after recovery (its workers count events from there). */
  constructor(
    private readonly store: WalStore,
    private readonly layout: Layout,
    private readonly limits: Limits,
    private readonly now: () => number,
    recoveredSeqs: ReadonlyArray<{ shard: number; seq: number }>,
  ) {
    for (const { shard, seq } of recoveredSeqs) this.marks.set(shard, { events: 0, seq, at: now() });
  }

  /**
   * Starts a snapshot of the first due shard, if none is running. `stats` are the shards'
   * counters: events appended in this process and the stream's last seq.
   */
  poll(stats: ReadonlyArray<{ shard: number; eventsAppended: number; seq: number }>): void {
    if (this.running !== null) return;
    const now = this.now();
    for (const stat of stats) {
      let mark = this.marks.get(stat.shard);
      if (mark === undefined) {
        mark = { events: stat.eventsAppended, seq: stat.seq, at: now };
        this.marks.set(stat.shard, mark);
      }
      // A restarted worker counts from zero again.
      if (stat.eventsAppended < mark.events) mark.events = 0;
      const byEvents = stat.eventsAppended - mark.events >= this.limits.snapshotEveryEvents;
      const byTime = now - mark.at >= this.limits.snapshotEveryMs && stat.seq > mark.seq;
      if (!byEvents && !byTime) continue;
      const taken = { events: stat.eventsAppended, at: now };
      const job = this.take(stat.shard).then(async (snapshot) => {
        this.marks.set(stat.shard, { ...taken, seq: snapshot.seq });
        this.taken.push(snapshot);
        if (this.taken.length > 100) this.taken.shift();
        this.lastError = null;
        await this.applyRetention(stat.shard);
        await this.applyRetiredRetention();
      });
      // A failure is tried again at the next poll: the WAL still holds everything.
      void this.hold(
        job.catch((error: unknown) => {
          this.lastError = error instanceof Error ? error.message : String(error);
        }),
      );
      return;
    }
  }

  /**
   * Removes what the retention window no longer needs: the newest snapshot older than the
   * window becomes the base, and the rows and snapshots before it go.
   */
  async applyRetention(shard: number): Promise<{ rows: number; snapshots: number }> {
    const horizon = this.now() - this.limits.walRetentionMs;
    const snapshots = await this.store.listSnapshots(shard, this.layout.epoch);
    const base = snapshots.filter((s) => s.at < horizon).at(-1);
    if (base === undefined) return { rows: 0, snapshots: 0 };
    const removed = await this.store.prune(shard, this.layout.epoch, base.seq);
    this.pruned.rows += removed.rows;
    this.pruned.snapshots += removed.snapshots;
    return removed;
  }

  /**
   * Retention of retired streams: those of an earlier layout with more shards, beyond
   * today's shard count. Nothing of the current epoch reads them (its shards recover from
   * the epoch's own snapshots), so once a retired stream's last row is older than the
   * window, its rows go (but the last, which keeps the stream's position should a later
   * layout write it again) and so do its snapshots.
   */
  async applyRetiredRetention(): Promise<{ rows: number; snapshots: number }> {
    const horizon = this.now() - this.limits.walRetentionMs;
    const removed = { rows: 0, snapshots: 0 };
    for (const stream of await this.store.streams()) {
      if (stream < this.layout.shardCount) continue;
      const lastSeq = await this.store.lastSeq(stream);
      const [last] = await this.store.read(stream, lastSeq - 1, 1);
      if (last === undefined || last.at >= horizon) continue;
      const pruned = await this.store.prune(stream, this.layout.epoch, lastSeq);
      removed.rows += pruned.rows;
      removed.snapshots += pruned.snapshots;
    }
    this.pruned.rows += removed.rows;
    this.pruned.snapshots += removed.snapshots;
    return removed;
  }

  /**
   * One shard's background snapshot (snapshotFromWal), shown as `inProgress` while it runs.
   * The periodic ones and Engine.snapshotInBackground both take theirs here.
   */
  async take(shard: number): Promise<BackgroundSnapshot> {
    const job = { shard, startedAt: this.now() };
    this.current = job;
    this.jobs.started++;
    try {
      return await snapshotFromWal(this.store, this.layout, this.limits, shard);
    } finally {
      this.jobs.finished++;
      if (this.current === job) this.current = null;
    }
  }

  /**
   * Runs `work` in the one slot, after whatever holds it; the periodic check starts
   * nothing meanwhile (Engine.snapshotInBackground runs its shards in it).
   */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.running !== null) await this.running;
    return this.hold(work());
  }

  /** Holds the slot until `job` settles (the slot itself never rejects). */
  private hold<T>(job: Promise<T>): Promise<T> {
    const slot: Promise<void> = job
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        if (this.running === slot) this.running = null;
      });
    this.running = slot;
    return job;
  }

  /** The background snapshot running now, if any. */
  get inProgress(): SnapshotInProgress | null {
    return this.current;
  }

  /** Rows and snapshots removed by retention since start. */
  readonly pruned = { rows: 0, snapshots: 0 };

  /** Waits for the job in the slot, if any (engine stop). */
  async idle(): Promise<void> {
    await this.running;
  }
}
