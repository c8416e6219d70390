/**
 * The WalStore in PostgreSQL, through `pg`.
 *
 *   main thread                                     PostgreSQL
 *   PgWalStore.open ── lock session (1 client) ───▶ pg_try_advisory_lock(writer, schema), held
 *                   ── pool ──────────────────────▶ migrations, layout, writer epoch + 1
 *   shard worker i: PgWalStore.attach ── own pool ▶ append / read / snapshot, fenced by epoch
 *
 * Durability: `append` is one autocommit INSERT; it resolves when PostgreSQL has answered
 * the COMMIT, which with the default synchronous_commit = on means the row is flushed to
 * the server's disk. stockd never changes synchronous_commit.
 *
 * Single writer: the writer holds a session advisory lock on a dedicated connection for
 * its whole life and bumps the writer epoch in stockd_writer once it has the lock. Every
 * write names that epoch (sql-store.ts), so a process that lost its lock session and was
 * replaced can no longer write, even though it still runs. If the lock session dies and
 * nobody else took over (the epoch is still ours), the lock is taken again in the
 * background; if someone did, this store stays fenced and every write says so.
 *
 * Connection loss: every call has a client-side timeout and the pool a connect timeout, so
 * a dead server turns into a rejection within seconds, never a hang; a failed call drops
 * its connection and the next call opens a fresh one.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import { advisoryLockTag, checkSchemaCurrent, migrate } from './migrations.js';
import type { SqlResult, SqlSession, SqlStatement } from './sql-session.js';
import { checkSchemaName } from './sql-session.js';
import { claimWriter, readWriter, SqlWalStore } from './sql-store.js';
import { StoreError, storeLockedError } from './store-errors.js';
import type { LinkableStore, WorkerLink } from './store-link.js';

/** What a process (or a shard worker) needs to reach the database: plain data, cloneable. */
export interface PgConnectionSpec {
  readonly connectionString: string;
  /** Schema holding stockd's tables; default `public`. */
  readonly schema?: string;
}

/** Connection limits of the PostgreSQL store. */
export const pgLimits = {
  /** Connections of the main thread's pool (layout, recovery reads, appends of bridged workers). */
  poolConnectionsMax: 4,
  /** Connections of one shard worker's pool: it appends one group at a time. */
  workerPoolConnectionsMax: 2,
  /** Giving up on reaching the server. */
  connectTimeoutMs: 5_000,
  /** Server-side bound on one statement (the largest snapshot write fits well inside). */
  statementTimeoutMs: 150_000,
  /** Server-side bound on a session idle inside a transaction (a client that vanished mid-way). */
  idleInTransactionTimeoutMs: 60_000,
  /** Idle connections of the main thread's pool are closed after this. */
  idleConnectionMs: 30_000,
  /** TCP keepalive, so a silently vanished server is noticed. */
  keepAliveInitialDelayMs: 10_000,
  /** Back-off bounds when the writer lock session must be re-established. */
  lockRetryMinMs: 100,
  lockRetryMaxMs: 5_000,
} as const;

const defaultSchema = 'public';

export class PgWalStore extends SqlWalStore implements LinkableStore {
  private constructor(
    session: SqlSession,
    private readonly spec: Required<PgConnectionSpec>,
    writerEpoch: number | null,
    release: () => Promise<void>,
  ) {
    super(session, { writerEpoch, where: describePg(spec), release });
  }

  /**
   * Opens for writing: migrates, takes the writer lock, bumps the writer epoch. Refuses
   * with STORE_LOCKED when another live process holds the lock.
   */
  static async open(spec: PgConnectionSpec): Promise<PgWalStore> {
    const full = withDefaults(spec);
    const pool = createPool(full, pgLimits.poolConnectionsMax);
    const session = new PgPoolSession(pool);
    let lock: WriterLock | null = null;
    try {
      await migrate(session, full.schema);
      lock = await WriterLock.acquire(full);
      const epoch = await claimWriter(session, process.pid, hostname());
      lock.watch(epoch, session);
      const held = lock;
      return new PgWalStore(session, full, epoch, async () => {
        await held.release();
        await pool.end();
      });
    } catch (error) {
      await lock?.release();
      await pool.end();
      throw error;
    }
  }

  /** Opens for reading only (replay tool): no lock, no migration, every write refused. */
  static async openForRead(spec: PgConnectionSpec): Promise<PgWalStore> {
    const full = withDefaults(spec);
    const pool = createPool(full, pgLimits.poolConnectionsMax);
    const session = new PgPoolSession(pool);
    try {
      await checkSchemaCurrent(session, full.schema);
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new PgWalStore(session, full, null, () => pool.end());
  }

  /**
   * The store of a shard worker: its own small pool, writing under the epoch the main
   * thread's writer claimed. It takes no lock: the epoch check fences it like its parent.
   */
  static attach(spec: PgConnectionSpec, writerEpoch: number): PgWalStore {
    const full = withDefaults(spec);
    // Idle connections are kept: the first append after a quiet spell should not pay for a
    // new connection (a dead one is dropped by the pool and replaced on the next call).
    const pool = createPool(full, pgLimits.workerPoolConnectionsMax, 0);
    return new PgWalStore(new PgPoolSession(pool), full, writerEpoch, () => pool.end());
  }

  describe(): string {
    return describePg(this.spec);
  }

  /** Shard workers connect on their own (one hop less than the bridge through this thread). */
  async linkForWorker(): Promise<WorkerLink> {
    const writerEpoch = this.writerEpoch;
    if (writerEpoch === null) {
      throw new StoreError('STORE_READ_ONLY', `the store of ${this.describe()} was opened read-only`);
    }
    return { link: { kind: 'postgres', connection: this.spec, writerEpoch }, transfer: [], release() {} };
  }
}

/** `postgres://user@host:port/db` (never the password), plus the schema when not the default. */
export function describePg(spec: PgConnectionSpec): string {
  const schema = spec.schema !== undefined && spec.schema !== defaultSchema ? ` schema ${spec.schema}` : '';
  try {
    const url = new URL(spec.connectionString);
    const user = url.username === '' ? '' : `${decodeURIComponent(url.username)}@`;
    return `${url.protocol}//${user}${url.host}${url.pathname}${schema}`;
  } catch {
    return `postgres (unparsable URL)${schema}`;
  }
}

function withDefaults(spec: PgConnectionSpec): Required<PgConnectionSpec> {
  return { connectionString: spec.connectionString, schema: checkSchemaName(spec.schema ?? defaultSchema) };
}

function clientConfig(spec: Required<PgConnectionSpec>): pg.ClientConfig {
  return {
    connectionString: spec.connectionString,
    application_name: 'stockd',
    connectionTimeoutMillis: pgLimits.connectTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: pgLimits.keepAliveInitialDelayMs,
    statement_timeout: pgLimits.statementTimeoutMs,
    idle_in_transaction_session_timeout: pgLimits.idleInTransactionTimeoutMs,
    // The schema was checked by checkSchemaName: a plain identifier, safe in a startup option.
    options: `-c search_path=${spec.schema}`,
  };
}

/** `idleMs` 0 keeps idle connections open for good. */
function createPool(
  spec: Required<PgConnectionSpec>,
  max: number,
  idleMs: number = pgLimits.idleConnectionMs,
): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(spec), max, idleTimeoutMillis: idleMs });
  // An idle connection that dies (server restart, pg_terminate_backend) is already removed
  // from the pool when this fires; the next call opens a new one. Without a listener the
  // error would crash the process.
  pool.on('error', () => {});
  return pool;
}

/** SqlSession over a pool: each query on any free connection, transactions on one. */
class PgPoolSession implements SqlSession {
  constructor(private readonly pool: pg.Pool) {}

  async query(statement: SqlStatement, params: readonly unknown[] = []): Promise<SqlResult> {
    // pool.query hands a failed connection back with the error, which closes it: after a
    // timeout or a network error the connection's state is unknown and must not be reused.
    const result = await this.pool.query(toQueryConfig(statement), params as unknown[]);
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  }

  async transaction<T>(body: (tx: SqlSession) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let failure: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await body(new PgClientSession(client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release(failure);
    }
  }
}

/** SqlSession on one client, inside a transaction. */
class PgClientSession implements SqlSession {
  constructor(private readonly client: pg.ClientBase) {}

  async query(statement: SqlStatement, params: readonly unknown[] = []): Promise<SqlResult> {
    const result = await this.client.query(toQueryConfig(statement), params as unknown[]);
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  }

  transaction<T>(): Promise<T> {
    return Promise.reject(new Error('nested transactions are not supported'));
  }
}

function toQueryConfig(statement: SqlStatement): pg.QueryConfig & { query_timeout?: number } {
  return {
    text: statement.text,
    ...(statement.name === undefined ? {} : { name: statement.name }),
    ...(statement.timeoutMs === undefined ? {} : { query_timeout: statement.timeoutMs }),
  };
}

/**
 * The writer's session advisory lock, on a connection of its own that lives as long as
 * the store. Losing that connection loses the lock; `watch` then takes it again, but only
 * while stockd_writer still shows our epoch (nobody took over in between).
 */
class WriterLock {
  private client: pg.Client | null;
  private released = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private epoch = 0;
  private session: SqlSession | null = null;

  private constructor(
    private readonly spec: Required<PgConnectionSpec>,
    client: pg.Client,
  ) {
    this.client = client;
    this.onLost(client);
  }

  static async acquire(spec: Required<PgConnectionSpec>): Promise<WriterLock> {
    const client = await WriterLock.tryLock(spec);
    if (client === null) {
      // Who holds it: the last claim recorded in stockd_writer.
      const probe = new pg.Client(clientConfig(spec));
      probe.on('error', () => {});
      try {
        await probe.connect();
        const holder = await readWriter(new PgClientSession(probe));
        throw storeLockedError(`${describePg(spec)}`, holder, ' (stop it first, or open read-only)');
      } finally {
        await probe.end().catch(() => undefined);
      }
    }
    return new WriterLock(spec, client);
  }

  /** A connected client holding the lock, or null when another session holds it. */
  private static async tryLock(spec: Required<PgConnectionSpec>): Promise<pg.Client | null> {
    const client = new pg.Client(clientConfig(spec));
    // Errors after connect are handled by onLost; until then they reject connect().
    client.on('error', () => {});
    try {
      await client.connect();
      const result = await client.query({
        text: 'SELECT pg_try_advisory_lock($1::int, hashtext($2::text)) AS locked',
        values: [advisoryLockTag.writer, spec.schema],
        query_timeout: pgLimits.connectTimeoutMs,
      } as pg.QueryConfig);
      if (result.rows[0]?.locked === true) return client;
      await client.end();
      return null;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  /** Starts re-taking the lock whenever its session dies, as long as `epoch` is still ours. */
  watch(epoch: number, session: SqlSession): void {
    this.epoch = epoch;
    this.session = session;
  }

  private onLost(client: pg.Client): void {
    const lost = (): void => {
      if (this.client !== client || this.released) return;
      this.client = null;
      void client.end().catch(() => undefined);
      this.retry(0);
    };
    client.on('error', lost);
    client.on('end', lost);
  }

  private retry(attempt: number): void {
    if (this.released) return;
    const delayMs = Math.min(pgLimits.lockRetryMaxMs, pgLimits.lockRetryMinMs * 2 ** attempt);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.retake().then(
        (outcome) => {
          if (outcome === 'retry') this.retry(attempt + 1);
        },
        () => this.retry(attempt + 1),
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  /**
   * 'held': we have the lock again and nobody wrote in between. 'fenced': someone else is
   * (or was) the writer: stop; our writes fail STORE_FENCED from the epoch check.
   */
  private async retake(): Promise<'held' | 'fenced' | 'retry'> {
    if (this.released || this.session === null) return 'fenced';
    const client = await WriterLock.tryLock(this.spec);
    if (client === null) return 'fenced';
    const writer = await readWriter(this.session).catch(() => null);
    if (writer === null || this.released) {
      await client.end().catch(() => undefined);
      return writer === null ? 'retry' : 'fenced';
    }
    if (writer.epoch !== this.epoch) {
      await client.end().catch(() => undefined);
      return 'fenced';
    }
    this.client = client;
    this.onLost(client);
    return 'held';
  }

  /** True while the lock session is up (for health reporting and tests). */
  get held(): boolean {
    return this.client !== null;
  }

  async release(): Promise<void> {
    this.released = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    // Ending the session releases the advisory lock.
    await client?.end().catch(() => undefined);
  }
}
