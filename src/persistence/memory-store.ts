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
import { setImmediate as nextTurn } from 'node:timers/promises';
import { checksumInParts } from './codec.js';
import { StoreError } from './store-errors.js';
import {
  type Layout,
  type SnapshotInfo,
  type SnapshotRow,
  type WalRow,
  WalSequenceError,
  type WalStore,
} from './wal.js';

/**
 * A copy of `bytes` in shared memory. Every payload stored here is one, so that a store
 * bridge (remote-store.ts) hands a reader on another thread the stored bytes instead of a
 * copy of them, as this store hands a caller in its own thread the stored row itself:
 * readers read payloads, never write them. A copy was the hosting thread's to make while
 * the reader waited, ~18 ms for a page of 1,000 WAL rows of a busy shard and ~30 ms for a
 * snapshot of 60 MB.
 */
function sharedCopy(bytes: Uint8Array): Uint8Array {
  const copy = sharedBytes(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

/**
 * Bytes of a snapshot payload copied and checksummed per turn of the event loop. A whole
 * payload (tens of MB) at once held the hosting thread for ~30 ms to copy and ~55 ms to
 * hash; in the main thread that was every request's latency while it lasted.
 */
const SNAPSHOT_PART_BYTES = 1 << 20;

export class MemoryWalStore implements WalStore {
  private layout: Layout | null = null;
  private readonly rowsByStream = new Map<number, WalRow[]>();
  /** Rows removed from the front of each stream by retention: seq n sits at index n − 1 − pruned. */
  private readonly pruned = new Map<number, number>();
  private readonly snapshots: SnapshotRow[] = [];
  /**
   * The stored snapshots whose payload matched its checksum when written; only these are
   * read. Bytes in memory do not rot, so each is checked once: checking on every read hashed
   * every snapshot kept (tens of MB each) in the thread that hosts the store, each time a
   * snapshot job started. A snapshot still being copied in is not here yet.
   */
  private readonly intact = new WeakSet<SnapshotRow>();
  /** The stored snapshots still being copied in: not read, not listed. */
  private readonly writing = new WeakSet<SnapshotRow>();
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
    rows.push({ ...row, payload: sharedCopy(row.payload) });
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

  /**
   * Stores a copy of the payload in shared memory, as a row's (`sharedCopy`). A large one is
   * copied and checksummed a part per turn of the event loop, so the thread hosting the
   * store keeps serving meanwhile. Its place among the snapshots is taken at once (two
   * writes keep their order); it is read only once whole and checked.
   */
  async writeSnapshot(snapshot: SnapshotRow): Promise<void> {
    this.assertOpen();
    const source = snapshot.payload;
    const payload = sharedBytes(source.byteLength);
    const stored: SnapshotRow = { ...snapshot, payload };
    this.snapshots.push(stored);
    this.writing.add(stored);
    try {
      const checksum = checksumInParts();
      for (let at = 0; at < payload.byteLength; at += SNAPSHOT_PART_BYTES) {
        if (at > 0) {
          await nextTurn();
          this.assertOpen();
        }
        const end = Math.min(at + SNAPSHOT_PART_BYTES, payload.byteLength);
        payload.set(source.subarray(at, end), at);
        checksum.update(payload.subarray(at, end));
      }
      if (checksum.digest() === stored.checksum) this.intact.add(stored);
    } catch (error) {
      // Closed meanwhile, or the caller's buffer went away: nothing of it stays.
      const at = this.snapshots.indexOf(stored);
      if (at >= 0) this.snapshots.splice(at, 1);
      throw error;
    } finally {
      this.writing.delete(stored);
    }
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
      .filter((s) => s.shard === shard && s.epoch === epoch && !this.writing.has(s))
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
