/**
 * In-memory WAL store: for tests, benchmarks and the deterministic simulation. It lives
 * in the thread that created it; shard workers reach it through `exposeStore`.
 * "Durable" here means "recorded in this process": it survives a worker crash, not a
 * process crash.
 *
 * `failNextAppends(n)` injects faults for tests: the next n appends reject, and nothing
 * is written. `fence()` acts out another process taking over the database: every later
 * append fails STORE_FENCED, as a stale writer's do in PostgreSQL.
 */
import { checksumOf } from './codec.js';
import { StoreError } from './store-errors.js';
import {
  type Layout,
  type SnapshotInfo,
  type SnapshotRow,
  type WalRow,
  WalSequenceError,
  type WalStore,
} from './wal.js';

export class MemoryWalStore implements WalStore {
  private layout: Layout | null = null;
  private readonly rowsByStream = new Map<number, WalRow[]>();
  /** Rows removed from the front of each stream by retention: seq n sits at index n − 1 − pruned. */
  private readonly pruned = new Map<number, number>();
  private readonly snapshots: SnapshotRow[] = [];
  /**
   * The stored snapshots whose payload matched its checksum when written. Bytes in memory do
   * not rot, so each is checked once: checking on every read hashed every snapshot kept (tens
   * of MB each) in the thread that hosts the store, each time a snapshot job started.
   */
  private readonly intact = new WeakSet<SnapshotRow>();
  private failuresPending = 0;
  private fencedBy: string | null = null;
  private closed = false;

  async readLayout(): Promise<Layout | null> {
    this.assertOpen();
    return this.layout;
  }

  async writeLayout(layout: Layout): Promise<void> {
    this.assertOpen();
    this.layout = { ...layout };
  }

  async append(row: WalRow): Promise<void> {
    this.assertOpen();
    if (this.fencedBy !== null) {
      throw new StoreError('STORE_FENCED', `this process is no longer the writer: ${this.fencedBy}`);
    }
    if (this.failuresPending > 0) {
      this.failuresPending--;
      throw new Error('injected WAL append failure');
    }
    const rows = this.rowsOf(row.stream);
    const expected = (rows.at(-1)?.seq ?? 0) + 1;
    if (row.seq !== expected) throw new WalSequenceError(row.stream, expected, row.seq);
    // Copy: the caller may reuse or transfer its buffer.
    rows.push({ ...row, payload: row.payload.slice() });
  }

  async read(stream: number, afterSeq: number, limit: number): Promise<WalRow[]> {
    this.assertOpen();
    const rows = this.rowsOf(stream);
    // seq is 1-based and dense, so seq n sits at index n − 1 − pruned.
    const start = Math.max(0, afterSeq - (this.pruned.get(stream) ?? 0));
    return rows.slice(start, start + limit);
  }

  async streams(): Promise<number[]> {
    this.assertOpen();
    return [...this.rowsByStream.entries()]
      .filter(([, rows]) => rows.length > 0)
      .map(([stream]) => stream)
      .sort((a, b) => a - b);
  }

  async lastSeq(stream: number): Promise<number> {
    this.assertOpen();
    return this.rowsOf(stream).at(-1)?.seq ?? 0;
  }

  async writeSnapshot(snapshot: SnapshotRow): Promise<void> {
    this.assertOpen();
    const stored = { ...snapshot, payload: snapshot.payload.slice() };
    if (checksumOf(stored.payload) === stored.checksum) this.intact.add(stored);
    this.snapshots.push(stored);
  }

  /** The newest snapshot whose payload matches its checksum; damaged ones are passed over. */
  async latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null> {
    this.assertOpen();
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      const s = this.snapshots[i]!;
      if (s.shard === shard && s.epoch === epoch && this.intact.has(s)) return s;
    }
    return null;
  }

  async snapshotAtOrBefore(shard: number, epoch: number, atOrBeforeSeq: number): Promise<SnapshotRow | null> {
    this.assertOpen();
    let best: SnapshotRow | null = null;
    for (const s of this.snapshots) {
      if (s.shard !== shard || s.epoch !== epoch || s.seq > atOrBeforeSeq) continue;
      if (!this.intact.has(s)) continue;
      if (best === null || s.seq >= best.seq) best = s;
    }
    return best;
  }

  async listSnapshots(shard: number, epoch: number): Promise<SnapshotInfo[]> {
    this.assertOpen();
    return this.snapshots
      .filter((s) => s.shard === shard && s.epoch === epoch)
      .map((s) => ({ seq: s.seq, at: s.at }))
      .sort((a, b) => a.seq - b.seq);
  }

  async prune(
    stream: number,
    epoch: number,
    throughSeq: number,
  ): Promise<{ rows: number; snapshots: number }> {
    this.assertOpen();
    const rows = this.rowsOf(stream);
    const pruned = this.pruned.get(stream) ?? 0;
    // The last row stays: it carries the stream's position.
    const count = Math.max(0, Math.min(throughSeq - pruned, rows.length - 1));
    if (count > 0) {
      this.pruned.set(stream, pruned + count);
      rows.splice(0, count);
    }
    const before = this.snapshots.length;
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      const s = this.snapshots[i]!;
      if (s.shard === stream && (s.epoch < epoch || (s.epoch === epoch && s.seq < throughSeq))) {
        this.snapshots.splice(i, 1);
      }
    }
    return { rows: count, snapshots: before - this.snapshots.length };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  failNextAppends(count: number): void {
    this.failuresPending = count;
  }

  /** From now on every append fails STORE_FENCED (another writer took over). */
  fence(by = 'another process took over'): void {
    this.fencedBy = by;
  }

  /** Total rows and events, for tests and benchmarks. */
  totals(): { rows: number; events: number } {
    let rows = 0;
    let events = 0;
    for (const list of this.rowsByStream.values()) {
      rows += list.length;
      for (const row of list) events += row.eventCount;
    }
    return { rows, events };
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the in-memory store is closed');
  }

  private rowsOf(stream: number): WalRow[] {
    let rows = this.rowsByStream.get(stream);
    if (rows === undefined) {
      rows = [];
      this.rowsByStream.set(stream, rows);
    }
    return rows;
  }
}
