/**
 * In-memory WAL store: for tests, benchmarks and the deterministic simulation. It lives
 * in the thread that created it; shard workers reach it through `exposeStore`.
 * "Durable" here means "recorded in this process": it survives a worker crash, not a
 * process crash.
 *
 * `failNextAppends(n)` injects faults for tests: the next n appends reject, and nothing
 * is written.
 */
import { type Layout, type SnapshotRow, type WalRow, WalSequenceError, type WalStore } from './wal.js';

export class MemoryWalStore implements WalStore {
  private layout: Layout | null = null;
  private readonly streams = new Map<number, WalRow[]>();
  private readonly snapshots: SnapshotRow[] = [];
  private failuresPending = 0;

  async readLayout(): Promise<Layout | null> {
    return this.layout;
  }

  async writeLayout(layout: Layout): Promise<void> {
    this.layout = { ...layout };
  }

  async append(row: WalRow): Promise<void> {
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
    const rows = this.rowsOf(stream);
    // seq is 1-based and dense, so seq n sits at index n - 1.
    return rows.slice(Math.max(0, afterSeq), Math.max(0, afterSeq) + limit);
  }

  async lastSeq(stream: number): Promise<number> {
    return this.rowsOf(stream).at(-1)?.seq ?? 0;
  }

  async writeSnapshot(snapshot: SnapshotRow): Promise<void> {
    this.snapshots.push({ ...snapshot, payload: snapshot.payload.slice() });
  }

  async latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null> {
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      const s = this.snapshots[i]!;
      if (s.shard === shard && s.epoch === epoch) return s;
    }
    return null;
  }

  async close(): Promise<void> {}

  failNextAppends(count: number): void {
    this.failuresPending = count;
  }

  /** Total rows and events, for tests and benchmarks. */
  totals(): { rows: number; events: number } {
    let rows = 0;
    let events = 0;
    for (const list of this.streams.values()) {
      rows += list.length;
      for (const row of list) events += row.eventCount;
    }
    return { rows, events };
  }

  private rowsOf(stream: number): WalRow[] {
    let rows = this.streams.get(stream);
    if (rows === undefined) {
      rows = [];
      this.streams.set(stream, rows);
    }
    return rows;
  }
}
