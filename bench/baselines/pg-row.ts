/**
 * The PostgreSQL row-update alternative: what the open-source commerce engines do (Medusa's
 * inventory levels, Saleor's stock rows, Vendure's stock levels) — the stock count lives in
 * a row, and a reservation is one transaction that updates it conditionally.
 *
 *   reserve:  BEGIN
 *             INSERT INTO reservation … ON CONFLICT (id) DO NOTHING   idempotency: the id is the key
 *               └─ conflict: same body hash → the original; another → IDEMPOTENCY_KEY_REUSED
 *             per line, in (sku, location) order so two orders never deadlock:
 *             UPDATE stock SET reserved = reserved + $n
 *               WHERE sku = $1 AND location = $2 AND on_hand - reserved - safety_stock >= $n
 *               └─ 0 rows → ROLLBACK, INSUFFICIENT_STOCK with the shortage
 *             COMMIT                        ← the reply waits for this (synchronous_commit on)
 *   commit / release / extend: BEGIN; SELECT … FOR UPDATE; UPDATE stock per line; UPDATE reservation; COMMIT
 *   expiry:   every expiryTickMs one statement expires due reservations and frees their units
 *
 * Fair by construction: a connection pool (pg.Pool, default 2 × cores + 1 connections, the
 * usual sizing rule for a database on the same machine), named (prepared) statements,
 * READ COMMITTED (PostgreSQL's default, what the ORMs use), and durability like stockd's:
 * synchronous_commit is left as the server has it (on), so a reply means the COMMIT is on disk.
 * The hot row is locked only from its UPDATE to the COMMIT — the statements are ordered so.
 *
 * Its tables live in their own schema (default `stockd_bench_pg`), never stockd's.
 * Stock counts are `integer` (stockd's quantityMax is 10⁹); times and body hashes `bigint`,
 * read back as numbers (both stay below 2⁵³).
 */
import { availableParallelism } from 'node:os';
import pg from 'pg';
import type {
  Commit,
  Extend,
  GetAtp,
  Release,
  Reply,
  Request,
  ReservationStatus,
  Reserve,
  SetStock,
  StockView,
} from '../../src/actors/types.js';
import { defaultLimits, type Limits } from '../../src/config.js';
import { type Rejection, reject } from '../../src/errors.js';
import {
  atpReply,
  BaselineBase,
  checkAtp,
  checkExtend,
  checkReservationId,
  checkReserve,
  notImplemented,
  reservationReply,
  type StoredLine,
  type StoredReservation,
  stockListReply,
  stockView,
  validateSet,
} from './baseline.js';

export interface PgRowOptions {
  readonly connectionString: string;
  /** Schema of its tables; default `stockd_bench_pg`. */
  readonly schema?: string;
  /** Pooled connections; default 2 × cores + 1. */
  readonly poolSize?: number;
  /** Drop the schema first: a benchmark starts from nothing. Default false. */
  readonly reset?: boolean;
  readonly limits?: Limits;
  /** How often due reservations are expired; default stockd's expiryTickMs. */
  readonly expiryTickMs?: number;
}

export const pgRowDefaults = {
  schema: 'stockd_bench_pg',
  poolSize: 2 * availableParallelism() + 1,
  /** Reservations expired by one sweep statement, like stockd's expiriesPerBatchMax. */
  expiriesPerSweepMax: 4_096,
  /** Attempts of a transaction that hit a deadlock or serialization failure. */
  transactionAttemptsMax: 5,
} as const;

/** Deadlock and serialization failure: the transaction did nothing and may simply run again. */
const retryableCodes = new Set(['40P01', '40001']);
const uniqueViolation = '23505';

/** int8 as a number: times in ms and 53-bit body hashes are exact in a double. Per pool, never global. */
const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

interface ReservationRow {
  id: string;
  body_hash: number;
  order_id: string | null;
  channel: string | null;
  status: ReservationStatus;
  created_at: number;
  expires_at: number;
  lines: StoredLine[];
}

interface StockRow {
  sku: string;
  location: string;
  on_hand: number;
  reserved: number;
  safety_stock: number;
  version: number;
  source_ts: number;
}

/** A transaction's outcome: the reply, and whether to COMMIT (true) or ROLLBACK. */
interface Outcome {
  readonly reply: Reply;
  readonly commit: boolean;
}

function statements(schema: string) {
  const t = (table: string) => `"${schema}".${table}`;
  const named = (name: string, text: string) => ({ name: `${schema}.${name}`, text });
  return {
    schema: [
      `CREATE SCHEMA IF NOT EXISTS "${schema}"`,
      `CREATE TABLE IF NOT EXISTS ${t('stock')} (
         sku text NOT NULL,
         location text NOT NULL,
         on_hand integer NOT NULL CHECK (on_hand >= 0),
         reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
         safety_stock integer NOT NULL DEFAULT 0,
         version bigint NOT NULL DEFAULT 0,
         source_ts bigint NOT NULL DEFAULT 0,
         PRIMARY KEY (sku, location))`,
      `CREATE TABLE IF NOT EXISTS ${t('reservation')} (
         id text PRIMARY KEY,
         body_hash bigint NOT NULL,
         order_id text,
         channel text,
         lines jsonb NOT NULL,
         status text NOT NULL,
         expires_at bigint NOT NULL,
         created_at bigint NOT NULL)`,
      // The sweeper reads only held reservations in expiry order.
      `CREATE INDEX IF NOT EXISTS reservation_held_expiry ON ${t('reservation')} (expires_at) WHERE status = 'held'`,
    ],
    insertReservation: named(
      'insert_reservation',
      `INSERT INTO ${t('reservation')} (id, body_hash, order_id, channel, lines, status, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, 'held', $6, $7) ON CONFLICT (id) DO NOTHING`,
    ),
    selectReservation: named(
      'select_reservation',
      `SELECT id, body_hash, order_id, channel, status, created_at, expires_at, lines
       FROM ${t('reservation')} WHERE id = $1`,
    ),
    lockReservation: named(
      'lock_reservation',
      `SELECT id, body_hash, order_id, channel, status, created_at, expires_at, lines
       FROM ${t('reservation')} WHERE id = $1 FOR UPDATE`,
    ),
    updateReservation: named(
      'update_reservation',
      `UPDATE ${t('reservation')} SET status = $2, lines = $3, expires_at = $4 WHERE id = $1`,
    ),
    reserveLine: named(
      'reserve_line',
      `UPDATE ${t('stock')} SET reserved = reserved + $3, version = version + 1
       WHERE sku = $1 AND location = $2 AND on_hand - reserved - safety_stock >= $3`,
    ),
    releaseLine: named(
      'release_line',
      `UPDATE ${t('stock')} SET reserved = reserved - $3, version = version + 1
       WHERE sku = $1 AND location = $2`,
    ),
    // Shipping lowers on_hand too, never below zero (stockd clamps the same way).
    commitLine: named(
      'commit_line',
      `UPDATE ${t('stock')} SET reserved = reserved - $3, on_hand = on_hand - least($3, on_hand), version = version + 1
       WHERE sku = $1 AND location = $2`,
    ),
    skuAvailable: named(
      'sku_available',
      `SELECT coalesce(sum(greatest(on_hand - reserved - safety_stock, 0)), 0)::bigint AS available
       FROM ${t('stock')} WHERE sku = $1`,
    ),
    // COLLATE "C": byte order, which is how stockd lists a SKU's locations.
    stockOfSku: named(
      'stock_of_sku',
      `SELECT sku, location, on_hand, reserved, safety_stock, version, source_ts
       FROM ${t('stock')} WHERE sku = $1 ORDER BY location COLLATE "C"`,
    ),
    lockStock: named(
      'lock_stock',
      `SELECT version, source_ts FROM ${t('stock')} WHERE sku = $1 AND location = $2 FOR UPDATE`,
    ),
    upsertStock: named(
      'upsert_stock',
      `INSERT INTO ${t('stock')} AS st (sku, location, on_hand, safety_stock, version, source_ts)
       VALUES ($1, $2, $3, coalesce($4::integer, 0), 1, coalesce($5::bigint, 0))
       ON CONFLICT (sku, location) DO UPDATE SET
         on_hand = excluded.on_hand,
         safety_stock = coalesce($4::integer, st.safety_stock),
         version = st.version + 1,
         source_ts = greatest(st.source_ts, excluded.source_ts)
       RETURNING sku, location, on_hand, reserved, safety_stock, version, source_ts`,
    ),
    // A compare-and-set on a record that must not exist yet: a plain INSERT, so a racing insert fails loudly.
    insertStock: named(
      'insert_stock',
      `INSERT INTO ${t('stock')} (sku, location, on_hand, safety_stock, version, source_ts)
       VALUES ($1, $2, $3, coalesce($4::integer, 0), 1, coalesce($5::bigint, 0))
       RETURNING sku, location, on_hand, reserved, safety_stock, version, source_ts`,
    ),
    // What a WMS resync does in PostgreSQL: one multi-row upsert for a batch of absolute levels.
    upsertStockMany: named(
      'upsert_stock_many',
      `INSERT INTO ${t('stock')} AS st (sku, location, on_hand, version)
       SELECT r.sku, r.location, r.on_hand, 1
       FROM unnest($1::text[], $2::text[], $3::integer[]) AS r(sku, location, on_hand)
       ON CONFLICT (sku, location) DO UPDATE SET on_hand = excluded.on_hand, version = st.version + 1
       RETURNING sku, location, on_hand, reserved, safety_stock, version, source_ts`,
    ),
    // One statement: lock due held reservations (skipping any a client holds), mark them
    // expired, and give their held units back. Data-modifying CTEs always run in full.
    expireDue: named(
      'expire_due',
      `WITH due AS (
         SELECT id, lines FROM ${t('reservation')}
         WHERE status = 'held' AND expires_at <= $1
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
       ), expired AS (
         UPDATE ${t('reservation')} r SET status = 'expired',
           lines = (SELECT jsonb_agg(l || '{"held":0}'::jsonb ORDER BY n)
                    FROM jsonb_array_elements(r.lines) WITH ORDINALITY AS e(l, n))
         FROM due WHERE r.id = due.id
         RETURNING r.id
       ), freed AS (
         SELECT l.sku, l.location, sum(l.held)::integer AS qty
         FROM due, jsonb_to_recordset(due.lines) AS l(sku text, location text, held integer)
         GROUP BY l.sku, l.location
       )
       UPDATE ${t('stock')} s SET reserved = s.reserved - f.qty, version = s.version + 1
       FROM freed f WHERE s.sku = f.sku AND s.location = f.location AND f.qty > 0`,
    ),
  };
}

function checkSchema(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new Error(`invalid schema name ${JSON.stringify(schema)}`);
  return schema;
}

function viewOfRow(row: StockRow): StockView {
  return stockView(
    row.sku,
    row.location,
    row.on_hand,
    row.reserved,
    row.safety_stock,
    row.version,
    row.source_ts,
  );
}

function storedOf(row: ReservationRow): StoredReservation {
  return {
    id: row.id,
    bodyHash: row.body_hash,
    orderId: row.order_id,
    channel: row.channel,
    status: row.status,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lines: row.lines,
  };
}

function byKey(a: { sku: string; location: string }, b: { sku: string; location: string }): number {
  if (a.sku !== b.sku) return a.sku < b.sku ? -1 : 1;
  return a.location < b.location ? -1 : a.location > b.location ? 1 : 0;
}

export class PgRowBaseline extends BaselineBase {
  readonly name = 'pg-row';
  durable = true;
  durability =
    'a reply is sent after the transaction COMMIT returned, with synchronous_commit on: the change is flushed to disk';
  readonly poolSize: number;
  private readonly sql: ReturnType<typeof statements>;
  private readonly sweeper: NodeJS.Timeout;
  private sweeping: Promise<void> | null = null;
  private closed = false;
  /** Failures of the expiry sweep (logged once, counted). */
  sweepFailures = 0;

  private constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
    options: PgRowOptions,
  ) {
    super(options.limits ?? defaultLimits);
    this.poolSize = options.poolSize ?? pgRowDefaults.poolSize;
    this.sql = statements(schema);
    this.sweeper = setInterval(() => this.sweep(), options.expiryTickMs ?? this.limits.expiryTickMs);
    this.sweeper.unref();
  }

  /** Connects, creates (or with `reset`, recreates) its schema, and starts the expiry sweeper. */
  static async open(options: PgRowOptions): Promise<PgRowBaseline> {
    const schema = checkSchema(options.schema ?? pgRowDefaults.schema);
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? pgRowDefaults.poolSize,
      types: typeParsers,
      connectionTimeoutMillis: 5_000,
    });
    // An idle client that loses its server must not crash the process; the next query fails instead.
    pool.on('error', () => {});
    try {
      if (options.reset === true) await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      for (const ddl of statements(schema).schema) await pool.query(ddl);
      const setting = await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
      const baseline = new PgRowBaseline(pool, schema, options);
      const synchronousCommit = setting.rows[0]?.synchronous_commit ?? 'unknown';
      if (
        synchronousCommit !== 'on' &&
        synchronousCommit !== 'remote_apply' &&
        synchronousCommit !== 'remote_write'
      ) {
        baseline.durable = false;
        baseline.durability = `synchronous_commit is ${synchronousCommit} on this server: a reply may precede the flush to disk`;
      }
      return baseline;
    } catch (error) {
      await pool.end();
      throw error;
    }
  }

  async serverVersion(): Promise<string> {
    const result = await this.pool.query<{ version: string }>('SELECT version()');
    return result.rows[0]?.version ?? 'unknown';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    await this.sweeping;
    await this.pool.end();
  }

  execute(request: Request): Promise<Reply> {
    this.commands++;
    return this.dispatch(request).catch((error: unknown) =>
      // Infrastructure failure (connection lost, timeout): the outcome is unknown, as stockd says it.
      reject('UNAVAILABLE', `PostgreSQL: ${error instanceof Error ? error.message : String(error)}`),
    );
  }

  /**
   * Plain absolute sets of a batch become one multi-row upsert; everything else runs on its
   * own, concurrently, like separate requests. A second set of a record already in the
   * upsert waits for it, so the batch's last level wins as it does in stockd.
   */
  override async executeMany(requests: readonly Request[]): Promise<Reply[]> {
    const replies: Array<Reply | Promise<Reply>> = new Array(requests.length);
    const bulk: Array<{ index: number; set: SetStock }> = [];
    const later: number[] = [];
    const inBulk = new Set<string>();
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i]!;
      const key = request.type === 'set' ? `${request.sku}\u0000${request.location}` : '';
      if (request.type === 'set' && inBulk.has(key)) later.push(i);
      else if (
        request.type === 'set' &&
        request.ifVersion === undefined &&
        request.sourceTs === undefined &&
        request.safetyStock === undefined &&
        validateSet(request, this.limits) === null
      ) {
        inBulk.add(key);
        bulk.push({ index: i, set: request });
      } else {
        replies[i] = this.execute(request);
      }
    }
    if (bulk.length === 1) replies[bulk[0]!.index] = await this.execute(bulk[0]!.set);
    else if (bulk.length > 1) {
      this.commands += bulk.length;
      const results = await this.setMany(bulk.map((item) => item.set)).catch((error: unknown) => {
        const failure = reject(
          'UNAVAILABLE',
          `PostgreSQL: ${error instanceof Error ? error.message : String(error)}`,
        );
        return bulk.map(() => failure);
      });
      bulk.forEach((item, j) => {
        replies[item.index] = results[j]!;
      });
    }
    for (const i of later) replies[i] = await this.execute(requests[i]!);
    return Promise.all(replies);
  }

  private dispatch(request: Request): Promise<Reply> {
    switch (request.type) {
      case 'set':
        return this.set(request);
      case 'reserve':
        return this.reserve(request);
      case 'commit':
        return this.settle(request);
      case 'release':
        return this.settle(request);
      case 'extend':
        return this.settle(request);
      case 'get':
        return this.get(request.reservationId);
      case 'atp':
        return this.atp(request);
      case 'stock':
        return this.stockOf(request.sku).then((views) => stockListReply(request.sku, views));
      case 'channels':
        return Promise.resolve({ ok: true, kind: 'channels', channels: [] });
      default:
        return Promise.resolve(notImplemented(this.name, `the ${request.type} command`));
    }
  }

  /**
   * Runs `work` in one transaction on a pooled connection. It is retried from the start
   * when PostgreSQL aborted it for a deadlock or a serialization failure (nothing of it
   * was applied), as any production code around such a transaction would.
   */
  private async transaction(
    work: (client: pg.PoolClient) => Promise<Outcome>,
    retryable: ReadonlySet<string> = retryableCodes,
  ): Promise<Reply> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const outcome = await work(client);
        await client.query(outcome.commit ? 'COMMIT' : 'ROLLBACK');
        return outcome.reply;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        const code = (error as { code?: string }).code;
        if (code !== undefined && retryable.has(code) && attempt < pgRowDefaults.transactionAttemptsMax)
          continue;
        throw error;
      } finally {
        // A connection whose ROLLBACK failed is unusable: drop it rather than return it to the pool.
        client.release(broken);
      }
    }
  }

  /* ----------------------------------------------------------------------- stock */

  private async set(cmd: SetStock): Promise<Reply> {
    const invalid = validateSet(cmd, this.limits);
    if (invalid !== null) return invalid;
    const values = [cmd.sku, cmd.location, cmd.onHand, cmd.safetyStock ?? null, cmd.sourceTs ?? null];
    if (cmd.ifVersion === undefined && cmd.sourceTs === undefined) {
      const result = await this.pool.query<StockRow>({ ...this.sql.upsertStock, values });
      return { ok: true, kind: 'stock', record: viewOfRow(result.rows[0]!) };
    }
    // Compare-and-set or source-time ordering: check under the row lock, then write.
    return this.transaction(
      async (client) => {
        const current = (
          await client.query<Pick<StockRow, 'version' | 'source_ts'>>({
            ...this.sql.lockStock,
            values: [cmd.sku, cmd.location],
          })
        ).rows[0];
        const version = current?.version ?? 0;
        if (cmd.ifVersion !== undefined && cmd.ifVersion !== version) {
          const conflict = reject(
            'VERSION_CONFLICT',
            `expected version ${cmd.ifVersion}, record is at ${version}`,
            {
              currentVersion: version,
            },
          );
          return { reply: conflict, commit: false };
        }
        const lastSourceTs = current?.source_ts ?? 0;
        if (cmd.sourceTs !== undefined && cmd.sourceTs < lastSourceTs) {
          const stale = reject(
            'STALE_UPDATE',
            `sourceTs ${cmd.sourceTs} is older than the record's last update ${lastSourceTs}`,
          );
          return { reply: stale, commit: false };
        }
        // No row to lock: insert outright, so an insert racing this one fails with a unique
        // violation and the transaction runs again (and then sees the row).
        const statement = current === undefined ? this.sql.insertStock : this.sql.upsertStock;
        const row = (await client.query<StockRow>({ ...statement, values })).rows[0]!;
        return { reply: { ok: true, kind: 'stock', record: viewOfRow(row) }, commit: true };
      },
      new Set([...retryableCodes, uniqueViolation]),
    );
  }

  private async setMany(sets: readonly SetStock[]): Promise<Reply[]> {
    // Sorted, so two concurrent batches lock shared rows in the same order.
    const order = sets.map((_, i) => i).sort((a, b) => byKey(sets[a]!, sets[b]!));
    const values = [
      order.map((i) => sets[i]!.sku),
      order.map((i) => sets[i]!.location),
      order.map((i) => sets[i]!.onHand),
    ];
    const rows = await this.transaction(async (client) => {
      const result = await client.query<StockRow>({ ...this.sql.upsertStockMany, values });
      return {
        reply: { ok: true, kind: 'stockList', sku: '', locations: result.rows.map(viewOfRow) },
        commit: true,
      };
    });
    const byRecord = new Map<string, StockView>();
    if (rows.ok && rows.kind === 'stockList') {
      for (const view of rows.locations) byRecord.set(`${view.sku}\u0000${view.location}`, view);
    }
    return sets.map((set): Reply => {
      const record = byRecord.get(`${set.sku}\u0000${set.location}`);
      return record === undefined
        ? reject('UNAVAILABLE', 'the bulk upsert returned no row for this record')
        : { ok: true, kind: 'stock', record };
    });
  }

  private async stockOf(sku: string): Promise<StockView[]> {
    const result = await this.pool.query<StockRow>({ ...this.sql.stockOfSku, values: [sku] });
    return result.rows.map(viewOfRow);
  }

  private async atp(query: GetAtp): Promise<Reply> {
    const invalid = checkAtp(query, this.limits);
    if (invalid !== null) return invalid;
    return atpReply(query.sku, await this.stockOf(query.sku), query.location);
  }

  /* ---------------------------------------------------------------- reservations */

  private async reserve(cmd: Reserve): Promise<Reply> {
    const checked = checkReserve(this.name, cmd, this.limits);
    if ('ok' in checked) return checked;
    const now = Date.now();
    const expiresAt = now + (cmd.ttlSeconds ?? this.limits.ttlSecondsDefault) * 1000;
    const lines: StoredLine[] = checked.allocations.map((a) => ({ ...a, held: a.qty, committed: 0 }));
    const inOrder = [...checked.allocations].sort(byKey);
    return this.transaction(async (client) => {
      // 1. The reservation row first: a concurrent attempt with the same id waits here.
      const inserted = await client.query({
        ...this.sql.insertReservation,
        values: [
          cmd.reservationId,
          checked.bodyHash,
          cmd.orderId ?? null,
          null,
          JSON.stringify(lines),
          expiresAt,
          now,
        ],
      });
      if (inserted.rowCount === 0) {
        // 2a. The id exists: the same body is a replay, another body a refusal.
        const row = (
          await client.query<ReservationRow>({ ...this.sql.selectReservation, values: [cmd.reservationId] })
        ).rows[0];
        if (row === undefined) throw Object.assign(new Error('reservation vanished'), { code: '40001' });
        if (row.body_hash !== checked.bodyHash) {
          const reused = reject(
            'IDEMPOTENCY_KEY_REUSED',
            `reservation ${cmd.reservationId} exists with a different body`,
          );
          return { reply: reused, commit: false };
        }
        return { reply: reservationReply(storedOf(row), true), commit: false };
      }
      // 2b. Each line takes its units only if they are available; the row lock is held to COMMIT.
      const applied = new Map<string, number>();
      for (const line of inOrder) {
        const updated = await client.query({
          ...this.sql.reserveLine,
          values: [line.sku, line.location, line.qty],
        });
        if (updated.rowCount === 0) {
          return {
            reply: await this.shortage(client, line.sku, checked.requestedBySku, applied),
            commit: false,
          };
        }
        applied.set(line.sku, (applied.get(line.sku) ?? 0) + line.qty);
      }
      const held: StoredReservation = {
        id: cmd.reservationId,
        bodyHash: checked.bodyHash,
        orderId: cmd.orderId ?? null,
        channel: null,
        status: 'held',
        createdAt: now,
        expiresAt,
        lines,
      };
      return { reply: reservationReply(held, false), commit: true };
    });
  }

  /**
   * INSUFFICIENT_STOCK for the SKU whose line did not fit, with its ATP as it was before
   * this transaction (what it took of the SKU's other locations is added back). Like an
   * ORM's transaction, it stops at the first line that fails, so it names that SKU only.
   */
  private async shortage(
    client: pg.PoolClient,
    sku: string,
    requestedBySku: ReadonlyMap<string, number>,
    applied: ReadonlyMap<string, number>,
  ): Promise<Rejection> {
    const result = await client.query<{ available: number }>({ ...this.sql.skuAvailable, values: [sku] });
    const available = (result.rows[0]?.available ?? 0) + (applied.get(sku) ?? 0);
    return reject('INSUFFICIENT_STOCK', `not enough available stock for ${sku}`, {
      shortages: [{ sku, requested: requestedBySku.get(sku) ?? 0, available }],
    });
  }

  private async get(id: string): Promise<Reply> {
    const invalid = checkReservationId(id, this.limits);
    if (invalid !== null) return invalid;
    const row = (await this.pool.query<ReservationRow>({ ...this.sql.selectReservation, values: [id] }))
      .rows[0];
    if (row === undefined) return reject('RESERVATION_NOT_FOUND', `no reservation ${id}`);
    return reservationReply(storedOf(row), false);
  }

  /** Commit, release or extend: lock the reservation row, decide as stockd does, write stock and reservation. */
  private async settle(cmd: Commit | Release | Extend): Promise<Reply> {
    const invalid =
      cmd.type === 'extend'
        ? checkExtend(cmd, this.limits)
        : checkReservationId(cmd.reservationId, this.limits);
    if (invalid !== null) return invalid;
    if (cmd.type === 'commit' && cmd.lines !== undefined)
      return notImplemented(this.name, 'a partial commit');
    return this.transaction(async (client) => {
      const row = (
        await client.query<ReservationRow>({ ...this.sql.lockReservation, values: [cmd.reservationId] })
      ).rows[0];
      if (row === undefined) {
        return {
          reply: reject('RESERVATION_NOT_FOUND', `no reservation ${cmd.reservationId}`),
          commit: false,
        };
      }
      const reservation = storedOf(row);
      const now = Date.now();
      // Touching a reservation whose time has come expires it first (stockd's rule too).
      if (reservation.status === 'held' && reservation.expiresAt <= now) {
        await this.free(client, reservation, 'expired');
        const expired = reject('RESERVATION_NOT_HELD', `reservation ${reservation.id} has expired`);
        return { reply: expired, commit: true };
      }
      const settled = cmd.type === 'commit' ? 'committed' : cmd.type === 'release' ? 'released' : null;
      if (settled !== null && reservation.status === settled) {
        return { reply: reservationReply(reservation, true), commit: false };
      }
      if (reservation.status !== 'held') {
        const notHeld = reject(
          'RESERVATION_NOT_HELD',
          `reservation ${reservation.id} is ${reservation.status}`,
        );
        return { reply: notHeld, commit: false };
      }
      if (cmd.type === 'extend') {
        reservation.expiresAt = now + cmd.ttlSeconds * 1000;
        await this.writeReservation(client, reservation);
      } else {
        await this.free(client, reservation, settled!);
      }
      return { reply: reservationReply(reservation, false), commit: true };
    });
  }

  /** Gives a held reservation's units back (release, expiry) or ships them (commit), then writes it. */
  private async free(
    client: pg.PoolClient,
    reservation: StoredReservation,
    status: 'committed' | 'released' | 'expired',
  ): Promise<void> {
    const statement = status === 'committed' ? this.sql.commitLine : this.sql.releaseLine;
    for (const line of [...reservation.lines].sort(byKey)) {
      if (line.held === 0) continue;
      await client.query({ ...statement, values: [line.sku, line.location, line.held] });
    }
    reservation.lines = reservation.lines.map((line) => ({
      ...line,
      committed: status === 'committed' ? line.committed + line.held : line.committed,
      held: 0,
    }));
    reservation.status = status;
    await this.writeReservation(client, reservation);
  }

  private async writeReservation(client: pg.PoolClient, reservation: StoredReservation): Promise<void> {
    await client.query({
      ...this.sql.updateReservation,
      values: [reservation.id, reservation.status, JSON.stringify(reservation.lines), reservation.expiresAt],
    });
  }

  /** One sweep at a time; a failed sweep is retried by the next tick. */
  private sweep(): void {
    if (this.sweeping !== null || this.closed) return;
    this.sweeping = this.pool
      .query({ ...this.sql.expireDue, values: [Date.now(), pgRowDefaults.expiriesPerSweepMax] })
      .then(
        () => undefined,
        (error: unknown) => {
          if (this.sweepFailures++ === 0 && !this.closed) {
            console.warn(`pg-row: expiry sweep failed (${error instanceof Error ? error.message : error})`);
          }
        },
      )
      .finally(() => {
        this.sweeping = null;
      });
  }
}
