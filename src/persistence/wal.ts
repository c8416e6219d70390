/**
 * The write-ahead log and snapshot store, as the engine sees it.
 *
 *   shard actor ──append(row)──▶ store ──▶ durable ──▶ resolve ──▶ replies sent
 *
 * One row per group-committed batch of one shard: (stream = shard, seq) is its position,
 * `payload` its events encoded with msgpackr (src/persistence/codec.ts). Rows of a stream
 * are appended strictly in seq order by the single writer of that stream; `append`
 * refuses a seq that is not lastSeq + 1, so a stale or confused writer cannot fork it.
 *
 * The layout (shard count, partition count, epoch) says how SKUs were spread over
 * streams when the rows were written. When a process starts with another shard count it
 * recovers every shard from all the old streams, filtered to the SKUs it now owns, writes
 * a snapshot of every new shard under epoch + 1, and only then records the new layout;
 * from then on recovery needs only that epoch's snapshots and the rows after them.
 *
 * Implementations: MemoryWalStore (tests, benchmarks, the simulation), PgWalStore
 * (PostgreSQL, pg-store.ts) and PgliteWalStore (embedded PGlite, pglite-store.ts); the
 * CLI and the server open the durable ones with `openStore` (open-store.ts). Every
 * implementation passes the contract in test/support/wal-store-contract.ts (run by
 * test/wal-store.unit.test.ts, test/pg-store.int.test.ts, test/pglite-store.int.test.ts).
 * The log format, migrations and fencing are described in docs/persistence.md.
 */

export interface Layout {
  readonly shardCount: number;
  readonly partitionCount: number;
  readonly epoch: number;
}

export interface WalRow {
  readonly stream: number;
  readonly seq: number;
  readonly epoch: number;
  /** The batch's time (ms). */
  readonly at: number;
  readonly eventCount: number;
  readonly payload: Uint8Array;
}

export interface SnapshotRow {
  readonly shard: number;
  readonly epoch: number;
  /** Last seq of stream `shard` the snapshot includes. */
  readonly seq: number;
  readonly at: number;
  readonly payload: Uint8Array;
  /** Hex checksum of payload; a snapshot whose payload does not match is never used. */
  readonly checksum: string;
}

export interface SnapshotInfo {
  readonly seq: number;
  readonly at: number;
}

export interface WalStore {
  readLayout(): Promise<Layout | null>;
  writeLayout(layout: Layout): Promise<void>;
  /**
   * Resolves once the row is durable. Rejects if seq is not the stream's next (code
   * WAL_SEQUENCE), and — durable stores — if another process has become the writer
   * (STORE_FENCED) or the outcome is unknown (connection lost: the row may or may not be
   * there; the caller re-reads the stream's tail).
   */
  append(row: WalRow): Promise<void>;
  /** Rows of `stream` with seq > afterSeq, in seq order, at most `limit`. */
  read(stream: number, afterSeq: number, limit: number): Promise<WalRow[]>;
  /** 0 for an empty stream. */
  lastSeq(stream: number): Promise<number>;
  /**
   * Every stream that holds at least one row, ascending. Includes the streams of earlier
   * layouts with more shards (retired streams), which retention and the SKU history visit.
   */
  streams(): Promise<number[]>;
  /**
   * Resolves once the snapshot is stored. The payload must not change until then: a store
   * may read it over several turns of the event loop (the in-memory store copies a large one
   * in parts). Afterwards the caller's bytes are its own again.
   */
  writeSnapshot(snapshot: SnapshotRow): Promise<void>;
  /**
   * The newest snapshot of a shard in an epoch whose payload matches its checksum, or null.
   * A damaged snapshot is passed over, so recovery falls back to an older one (and more WAL).
   */
  latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null>;
  /** The newest valid snapshot of a shard in an epoch with seq <= atOrBeforeSeq, or null. */
  snapshotAtOrBefore(shard: number, epoch: number, atOrBeforeSeq: number): Promise<SnapshotRow | null>;
  /** Seq and time of every snapshot of a shard in an epoch, oldest first (payloads not read). */
  listSnapshots(shard: number, epoch: number): Promise<SnapshotInfo[]>;
  /**
   * Retention: deletes the rows of `stream` with seq <= throughSeq — except the stream's
   * last row, which carries its position — the snapshots of shard `stream` in `epoch` with
   * seq < throughSeq, and its snapshots of earlier epochs. The caller keeps a snapshot at
   * throughSeq, so recovery and later replays lose nothing.
   */
  prune(stream: number, epoch: number, throughSeq: number): Promise<{ rows: number; snapshots: number }>;
  close(): Promise<void>;
}

/** Every method of WalStore, so a wrapper cannot miss one added later (checked below). */
export const walStoreMethods = [
  'readLayout',
  'writeLayout',
  'append',
  'read',
  'lastSeq',
  'streams',
  'writeSnapshot',
  'latestSnapshot',
  'snapshotAtOrBefore',
  'listSnapshots',
  'prune',
  'close',
] as const satisfies ReadonlyArray<keyof WalStore>;
export type WalStoreMethod = (typeof walStoreMethods)[number];
const everyMethodListed: Exclude<keyof WalStore, WalStoreMethod> extends never ? true : false = true;
void everyMethodListed;

/**
 * A plain WalStore that forwards every call to `inner` except those in `overrides`: for
 * views of a store (without snapshots, without a direct line for workers). Only the
 * WalStore methods are forwarded, so extras of `inner` (e.g. linkForWorker) stay hidden.
 */
export function delegatingStore(inner: WalStore, overrides: Partial<WalStore> = {}): WalStore {
  const view: Record<string, unknown> = {};
  for (const method of walStoreMethods) {
    const own = inner[method] as (...args: unknown[]) => unknown;
    view[method] = overrides[method] ?? ((...args: unknown[]) => own.apply(inner, args));
  }
  return view as unknown as WalStore;
}

export class WalSequenceError extends Error {
  readonly code = 'WAL_SEQUENCE';
  constructor(stream: number, expected: number, got: number) {
    super(`WAL stream ${stream}: expected seq ${expected}, got ${got} (another writer, or a lost append)`);
    this.name = 'WalSequenceError';
  }
}

/** Rows read per call during recovery and replay. */
export const walReadPageRows = 1_000;
