/**
 * The WalStore over SQL: one body of statements for PostgreSQL (pg-store.ts) and PGlite
 * (pglite-host.ts). Tables are those of migrations.ts, reached through the search_path.
 *
 * Every write is fenced: it names the writer epoch this process received when it opened
 * the database, and the statement itself checks it against stockd_writer, holding a
 * share lock on that row until COMMIT:
 *
 *   INSERT INTO stockd_wal … SELECT … FROM stockd_writer
 *     WHERE epoch = <ours> AND max(seq of the stream) + 1 = <seq>  FOR SHARE
 *
 * A new writer's epoch bump (an UPDATE of that row) therefore waits for appends in flight
 * and every append after it finds another epoch and inserts nothing. A stale writer — one
 * whose advisory-lock session died while it kept running — can never append, even by
 * racing. The seq check refuses a gap; the primary key (stream, seq) refuses a duplicate.
 */
import { checksumOf } from './codec.js';
import type { SqlResult, SqlSession, SqlStatement } from './sql-session.js';
import { toNumber } from './sql-session.js';
import { StoreError, type WriterIdentity } from './store-errors.js';
import {
  type Layout,
  type SnapshotInfo,
  type SnapshotRow,
  type WalRow,
  WalSequenceError,
  type WalStore,
} from './wal.js';

/**
 * Bytes of payload one `read` returns at most (it always returns at least one row). A
 * page of walReadPageRows rows of a busy shard can hold hundreds of megabytes; this keeps
 * a recovery's memory bounded whatever the row size.
 */
export const walReadPageBytesMax = 32 * 1024 * 1024;

/** Client-side bounds per kind of call, so a silent server never stalls a shard for good. */
export const sqlTimeoutsMs = {
  /** One append: a few milliseconds when healthy. */
  append: 10_000,
  /** Reads and small writes. */
  read: 30_000,
  /** A snapshot can be tens of megabytes. */
  snapshot: 120_000,
} as const;

const statements = {
  append: {
    name: 'stockd_append',
    timeoutMs: sqlTimeoutsMs.append,
    text: `INSERT INTO stockd_wal (stream, seq, epoch, at, event_count, writer_epoch, payload)
           SELECT $1::int, $2::bigint, $3::int, $4::bigint, $5::int, w.epoch, $6::bytea
           FROM stockd_writer w
           WHERE w.id = 1 AND w.epoch = $7::bigint
             AND coalesce((SELECT max(seq) FROM stockd_wal WHERE stream = $1::int), 0) + 1 = $2::bigint
           FOR SHARE OF w`,
  },
  lastSeq: {
    name: 'stockd_last_seq',
    timeoutMs: sqlTimeoutsMs.read,
    text: 'SELECT coalesce(max(seq), 0) AS seq FROM stockd_wal WHERE stream = $1::int',
  },
  // A loose index scan over the primary key (stream, seq): one index probe per stream,
  // however many rows each holds.
  streams: {
    name: 'stockd_streams',
    timeoutMs: sqlTimeoutsMs.read,
    text: `WITH RECURSIVE s AS (
             (SELECT stream FROM stockd_wal ORDER BY stream LIMIT 1)
             UNION ALL
             SELECT (SELECT w.stream FROM stockd_wal w WHERE w.stream > s.stream ORDER BY w.stream LIMIT 1)
             FROM s WHERE s.stream IS NOT NULL
           )
           SELECT stream FROM s WHERE stream IS NOT NULL`,
  },
  // The window sum stops a page once it holds walReadPageBytesMax bytes; octet_length of
  // an out-of-line value reads its header only, not the value.
  read: {
    name: 'stockd_read',
    timeoutMs: sqlTimeoutsMs.read,
    text: `SELECT stream, seq, epoch, at, event_count, payload FROM (
             SELECT stream, seq, epoch, at, event_count, payload,
                    sum(octet_length(payload)) OVER (ORDER BY seq) - octet_length(payload) AS bytes_before
             FROM stockd_wal
             WHERE stream = $1::int AND seq > $2::bigint
             ORDER BY seq
             LIMIT $3::int
           ) page
           WHERE bytes_before < $4::bigint
           ORDER BY seq`,
  },
  writerState: {
    timeoutMs: sqlTimeoutsMs.read,
    text: `SELECT w.epoch AS writer_epoch,
                  coalesce((SELECT max(seq) FROM stockd_wal WHERE stream = $1::int), 0) AS last_seq
           FROM stockd_writer w WHERE w.id = 1`,
  },
  readLayout: {
    timeoutMs: sqlTimeoutsMs.read,
    text: 'SELECT shard_count, partition_count, epoch FROM stockd_layout WHERE id = 1',
  },
  writeLayout: {
    timeoutMs: sqlTimeoutsMs.read,
    text: `INSERT INTO stockd_layout (id, shard_count, partition_count, epoch, updated_at)
           SELECT 1, $1::int, $2::int, $3::int, now()
           FROM stockd_writer w WHERE w.id = 1 AND w.epoch = $4::bigint
           FOR SHARE OF w
           ON CONFLICT (id) DO UPDATE SET shard_count = excluded.shard_count,
             partition_count = excluded.partition_count, epoch = excluded.epoch,
             updated_at = excluded.updated_at`,
  },
  // A snapshot is one row written by one statement: it is there whole or not at all. A
  // second snapshot at the same seq images the same state (replay is deterministic) and
  // replaces the first.
  writeSnapshot: {
    timeoutMs: sqlTimeoutsMs.snapshot,
    text: `INSERT INTO stockd_snapshot (shard, epoch, seq, at, checksum, payload)
           SELECT $1::int, $2::int, $3::bigint, $4::bigint, $5::text, $6::bytea
           FROM stockd_writer w WHERE w.id = 1 AND w.epoch = $7::bigint
           FOR SHARE OF w
           ON CONFLICT (shard, epoch, seq) DO UPDATE SET at = excluded.at,
             checksum = excluded.checksum, payload = excluded.payload, taken_at = now()`,
  },
  snapshotBefore: {
    timeoutMs: sqlTimeoutsMs.snapshot,
    text: `SELECT shard, epoch, seq, at, checksum, payload FROM stockd_snapshot
           WHERE shard = $1::int AND epoch = $2::int AND seq < $3::bigint
           ORDER BY seq DESC LIMIT 1`,
  },
  listSnapshots: {
    timeoutMs: sqlTimeoutsMs.read,
    text: `SELECT seq, at FROM stockd_snapshot WHERE shard = $1::int AND epoch = $2::int ORDER BY seq`,
  },
  // Retention deletes are fenced like appends: a stale writer removes nothing.
  pruneRows: {
    timeoutMs: sqlTimeoutsMs.snapshot,
    text: `DELETE FROM stockd_wal
           WHERE stream = $1::int AND seq <= $2::bigint
             AND seq < (SELECT max(seq) FROM stockd_wal WHERE stream = $1::int)
             AND EXISTS (SELECT 1 FROM stockd_writer WHERE id = 1 AND epoch = $3::int)`,
  },
  pruneSnapshots: {
    timeoutMs: sqlTimeoutsMs.snapshot,
    text: `DELETE FROM stockd_snapshot
           WHERE shard = $1::int AND (epoch < $2::int OR (epoch = $2::int AND seq < $3::bigint))
             AND EXISTS (SELECT 1 FROM stockd_writer WHERE id = 1 AND epoch = $4::int)`,
  },
  claimWriter: {
    timeoutMs: sqlTimeoutsMs.read,
    text: `UPDATE stockd_writer SET epoch = epoch + 1, pid = $1::int, host = $2::text, since = now()
           WHERE id = 1 RETURNING epoch`,
  },
  readWriter: {
    timeoutMs: sqlTimeoutsMs.read,
    text: 'SELECT epoch, pid, host, since FROM stockd_writer WHERE id = 1',
  },
} satisfies Record<string, SqlStatement>;

/** Larger than any seq: the first `snapshotBefore` query looks at every snapshot. */
const seqUnbounded = '9223372036854775807';

/** SQLSTATE of a unique violation: a concurrent append took the same seq. */
const uniqueViolation = '23505';

export interface SqlWalStoreOptions {
  /** The epoch this process claimed with `claimWriter`, or null when opened for reading only. */
  readonly writerEpoch: number | null;
  /** Where the data lives, for messages ("postgres://host/db", "pglite ./data"). */
  readonly where: string;
  /** Releases connections, lock sessions, threads: called once by `close`. */
  readonly release?: () => Promise<void>;
}

export class SqlWalStore implements WalStore {
  private closed = false;
  private fencedBy: number | null = null;

  constructor(
    private readonly session: SqlSession,
    private readonly options: SqlWalStoreOptions,
  ) {}

  get writerEpoch(): number | null {
    return this.options.writerEpoch;
  }

  async readLayout(): Promise<Layout | null> {
    const result = await this.query(statements.readLayout, []);
    const row = result.rows[0];
    if (row === undefined) return null;
    return {
      shardCount: toNumber(row.shard_count),
      partitionCount: toNumber(row.partition_count),
      epoch: toNumber(row.epoch),
    };
  }

  async writeLayout(layout: Layout): Promise<void> {
    const epoch = this.writable();
    const result = await this.query(statements.writeLayout, [
      layout.shardCount,
      layout.partitionCount,
      layout.epoch,
      epoch,
    ]);
    if (result.rowCount === 0) throw await this.fencedError();
  }

  async append(row: WalRow): Promise<void> {
    const epoch = this.writable();
    let result: SqlResult;
    try {
      result = await this.query(statements.append, [
        row.stream,
        row.seq,
        row.epoch,
        row.at,
        row.eventCount,
        row.payload,
        epoch,
      ]);
    } catch (error) {
      // Two appends raced for one seq (there is one writer per stream, so this is a bug or
      // a stale writer): the loser learns the seq the stream now expects.
      if (isSqlState(error, uniqueViolation)) throw await this.rejectionOf(row);
      throw error;
    }
    if (result.rowCount !== 1) throw await this.rejectionOf(row);
  }

  async read(stream: number, afterSeq: number, limit: number): Promise<WalRow[]> {
    if (limit <= 0) return [];
    const result = await this.query(statements.read, [stream, afterSeq, limit, walReadPageBytesMax]);
    return result.rows.map((row) => ({
      stream: toNumber(row.stream),
      seq: toNumber(row.seq),
      epoch: toNumber(row.epoch),
      at: toNumber(row.at),
      eventCount: toNumber(row.event_count),
      payload: row.payload as Uint8Array,
    }));
  }

  async streams(): Promise<number[]> {
    const result = await this.query(statements.streams, []);
    return result.rows.map((row) => toNumber(row.stream));
  }

  async lastSeq(stream: number): Promise<number> {
    const result = await this.query(statements.lastSeq, [stream]);
    return toNumber(result.rows[0]?.seq ?? 0);
  }

  async writeSnapshot(snapshot: SnapshotRow): Promise<void> {
    const epoch = this.writable();
    const result = await this.query(statements.writeSnapshot, [
      snapshot.shard,
      snapshot.epoch,
      snapshot.seq,
      snapshot.at,
      snapshot.checksum,
      snapshot.payload,
      epoch,
    ]);
    if (result.rowCount === 0) throw await this.fencedError();
  }

  /** The newest snapshot whose payload matches its checksum; damaged ones are passed over. */
  async latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null> {
    return this.newestValidSnapshotBefore(shard, epoch, seqUnbounded);
  }

  private async newestValidSnapshotBefore(
    shard: number,
    epoch: number,
    seqBelow: number | string,
  ): Promise<SnapshotRow | null> {
    let before: number | string = seqBelow;
    for (;;) {
      const result = await this.query(statements.snapshotBefore, [shard, epoch, before]);
      const row = result.rows[0];
      if (row === undefined) return null;
      const snapshot: SnapshotRow = {
        shard: toNumber(row.shard),
        epoch: toNumber(row.epoch),
        seq: toNumber(row.seq),
        at: toNumber(row.at),
        checksum: String(row.checksum),
        payload: row.payload as Uint8Array,
      };
      if (checksumOf(snapshot.payload) === snapshot.checksum) return snapshot;
      before = snapshot.seq;
    }
  }

  async snapshotAtOrBefore(shard: number, epoch: number, atOrBeforeSeq: number): Promise<SnapshotRow | null> {
    return this.newestValidSnapshotBefore(shard, epoch, atOrBeforeSeq + 1);
  }

  async listSnapshots(shard: number, epoch: number): Promise<SnapshotInfo[]> {
    const result = await this.query(statements.listSnapshots, [shard, epoch]);
    return result.rows.map((row) => ({ seq: toNumber(row.seq), at: toNumber(row.at) }));
  }

  async prune(
    stream: number,
    epoch: number,
    throughSeq: number,
  ): Promise<{ rows: number; snapshots: number }> {
    const writer = this.writable();
    const rows = await this.query(statements.pruneRows, [stream, throughSeq, writer]);
    const snapshots = await this.query(statements.pruneSnapshots, [stream, epoch, throughSeq, writer]);
    return { rows: rows.rowCount, snapshots: snapshots.rowCount };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.options.release?.();
  }

  private async query(statement: SqlStatement, params: readonly unknown[]): Promise<SqlResult> {
    if (this.closed) throw new StoreError('STORE_CLOSED', `the store of ${this.options.where} is closed`);
    return this.session.query(statement, params);
  }

  /** Our writer epoch, or a refusal when this store may not write. */
  private writable(): number {
    if (this.closed) throw new StoreError('STORE_CLOSED', `the store of ${this.options.where} is closed`);
    const epoch = this.options.writerEpoch;
    if (epoch === null) {
      throw new StoreError('STORE_READ_ONLY', `the store of ${this.options.where} was opened read-only`);
    }
    if (this.fencedBy !== null) throw this.fenced(this.fencedBy);
    return epoch;
  }

  /** Why an append inserted nothing: another writer took over, or the seq is not the next. */
  private async rejectionOf(row: WalRow): Promise<Error> {
    const result = await this.query(statements.writerState, [row.stream]);
    const state = result.rows[0];
    const writerEpoch = toNumber(state?.writer_epoch ?? 0);
    if (writerEpoch !== this.options.writerEpoch) {
      this.fencedBy = writerEpoch;
      return this.fenced(writerEpoch);
    }
    return new WalSequenceError(row.stream, toNumber(state?.last_seq ?? 0) + 1, row.seq);
  }

  private async fencedError(): Promise<Error> {
    const result = await this.query(statements.readWriter, []);
    const epoch = toNumber(result.rows[0]?.epoch ?? 0);
    this.fencedBy = epoch;
    return this.fenced(epoch);
  }

  private fenced(current: number): StoreError {
    return new StoreError(
      'STORE_FENCED',
      `this process is no longer the writer of ${this.options.where}: it opened as writer epoch ${this.options.writerEpoch}, another process has since opened it as epoch ${current}`,
    );
  }
}

/** Takes the writer role: bumps the epoch and records who we are. The caller holds the lock. */
export async function claimWriter(session: SqlSession, pid: number, host: string): Promise<number> {
  const result = await session.query(statements.claimWriter, [pid, host]);
  return toNumber(result.rows[0]?.epoch);
}

/** Who last claimed the writer role (for the STORE_LOCKED message) and at which epoch. */
export async function readWriter(session: SqlSession): Promise<WriterIdentity & { epoch: number }> {
  const result = await session.query(statements.readWriter, []);
  const row = result.rows[0] ?? {};
  const since = row.since;
  return {
    epoch: toNumber(row.epoch ?? 0),
    pid: row.pid === null || row.pid === undefined ? null : toNumber(row.pid),
    host: typeof row.host === 'string' ? row.host : null,
    since: since instanceof Date ? since.toISOString() : since == null ? null : String(since),
  };
}

function isSqlState(error: unknown, state: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === state;
}
