/**
 * PgWalStore against the real PostgreSQL server: the WalStore contract, migrations,
 * single-writer fencing and connection loss. Each test works in a schema of its own,
 * dropped afterwards, so runs never collide.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, schemaVersionCurrent } from '../src/persistence/migrations.js';
import { PgWalStore } from '../src/persistence/pg-store.js';
import type { SqlResult, SqlSession, SqlStatement } from '../src/persistence/sql-session.js';
import { storeFromLink } from '../src/persistence/store-link.js';
import type { WalRow, WalStore } from '../src/persistence/wal.js';
import { adminQuery, dropSchema, findPostgres, pgSpec, testSchemaName } from './support/services.js';
import { walStoreContract } from './support/wal-store-contract.js';

const postgres = await findPostgres();
const label = postgres.available ? '' : ` (skipped: ${postgres.name} unreachable)`;

function row(stream: number, seq: number): WalRow {
  return { stream, seq, epoch: 1, at: 1_000 + seq, eventCount: 1, payload: Uint8Array.of(seq) };
}

/* Cleanup: every store and schema a test made, whatever it threw. */
const opened: Array<{ close(): Promise<void> }> = [];
const schemas: string[] = [];

function freshSchema(): string {
  const schema = testSchemaName();
  schemas.push(schema);
  return schema;
}

async function openWriter(schema: string): Promise<PgWalStore> {
  const store = await PgWalStore.open(pgSpec(schema));
  opened.push(store);
  return store;
}

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((store) => store.close()));
  await Promise.all(schemas.splice(0).map(dropSchema));
});

describe.runIf(postgres.available)(`PostgreSQL store${label}`, () => {
  walStoreContract('PostgreSQL', async () => {
    const schema = freshSchema();
    const store = await openWriter(schema);
    return { store, close: () => store.close() };
  });

  // A shard worker's own connection: what `storeFromLink` builds from the writer's link.
  walStoreContract('PostgreSQL, attached as a shard worker does', async () => {
    const writer = await openWriter(freshSchema());
    const { link } = await writer.linkForWorker();
    const store = storeFromLink(link);
    opened.push(store);
    return { store, close: () => store.close() };
  });

  describe('migrations', () => {
    /** A SqlSession over one pg client, as the store's own session would be. */
    async function withSession<T>(body: (session: SqlSession) => Promise<T>): Promise<T> {
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: pgSpec('x').connectionString });
      await client.connect();
      const run = async (statement: SqlStatement, params: readonly unknown[] = []): Promise<SqlResult> => {
        const result = await client.query(statement.text, params as unknown[]);
        return { rows: result.rows, rowCount: result.rowCount ?? 0 };
      };
      const session: SqlSession = {
        query: run,
        async transaction(inner) {
          await client.query('BEGIN');
          try {
            const result = await inner(session);
            await client.query('COMMIT');
            return result;
          } catch (error) {
            await client.query('ROLLBACK');
            throw error;
          }
        },
      };
      try {
        return await body(session);
      } finally {
        await client.end();
      }
    }

    it('creates the schema and every table on a fresh database', async () => {
      const schema = freshSchema();
      const result = await withSession((session) => migrate(session, schema));
      expect(result).toEqual({ schema, from: 0, to: schemaVersionCurrent });
      const tables = await adminQuery<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [schema],
      );
      expect(tables.map((t) => t.table_name)).toEqual([
        'stockd_layout',
        'stockd_schema',
        'stockd_snapshot',
        'stockd_wal',
        'stockd_writer',
      ]);
    });

    it('does nothing when run a second time', async () => {
      const schema = freshSchema();
      await withSession((session) => migrate(session, schema));
      const again = await withSession((session) => migrate(session, schema));
      expect(again).toEqual({ schema, from: schemaVersionCurrent, to: schemaVersionCurrent });
      const versions = await adminQuery(`SELECT version FROM "${schema}".stockd_schema`);
      expect(versions).toHaveLength(migrationsCount());
    });

    it('runs once when two connections migrate at the same moment', async () => {
      const schema = freshSchema();
      const results = await Promise.all([
        withSession((session) => migrate(session, schema)),
        withSession((session) => migrate(session, schema)),
      ]);
      // One of them applied everything, the other found it done; neither failed.
      expect(results.map((r) => r.from).sort()).toEqual([0, schemaVersionCurrent]);
      const versions = await adminQuery(`SELECT version FROM "${schema}".stockd_schema`);
      expect(versions).toHaveLength(migrationsCount());
    });

    it('refuses to open a database whose schema is newer than the code, and changes nothing', async () => {
      const schema = freshSchema();
      const store = await openWriter(schema);
      await store.append(row(0, 1));
      await store.close();
      const future = schemaVersionCurrent + 1;
      await adminQuery(`INSERT INTO "${schema}".stockd_schema (version) VALUES ($1)`, [future]);
      await expect(PgWalStore.open(pgSpec(schema))).rejects.toMatchObject({
        code: 'SCHEMA_TOO_NEW',
        message: expect.stringContaining(`version ${future}`),
      });
      await expect(PgWalStore.openForRead(pgSpec(schema))).rejects.toMatchObject({ code: 'SCHEMA_TOO_NEW' });
      const writer = await adminQuery<{ epoch: string }>(`SELECT epoch FROM "${schema}".stockd_writer`);
      expect(writer[0]!.epoch).toBe('1');
    });

    it('opens read-only without creating anything, and refuses a database without stockd', async () => {
      const schema = freshSchema();
      await expect(PgWalStore.openForRead(pgSpec(schema))).rejects.toMatchObject({
        code: 'SCHEMA_NOT_CURRENT',
      });
      const present = await adminQuery('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      expect(present).toHaveLength(0);
    });
  });

  describe('single writer', () => {
    it('refuses a second writer with who holds the database, and lets it in once the first closes', async () => {
      const schema = freshSchema();
      const first = await openWriter(schema);
      const refusal = PgWalStore.open(pgSpec(schema));
      await expect(refusal).rejects.toMatchObject({ code: 'STORE_LOCKED' });
      await expect(refusal).rejects.toThrow(
        new RegExp(`another stockd process \\(pid ${process.pid}, host .+, since .+\\) is the writer of`),
      );
      await first.append(row(0, 1));
      await first.close();
      const second = await openWriter(schema);
      expect(second.writerEpoch).toBe(first.writerEpoch! + 1);
      await second.append(row(0, 2));
      expect(await second.lastSeq(0)).toBe(2);
    });

    it('lets readers in while a writer holds the database, and refuses their writes', async () => {
      const schema = freshSchema();
      const writer = await openWriter(schema);
      await writer.append(row(0, 1));
      const reader = await PgWalStore.openForRead(pgSpec(schema));
      opened.push(reader);
      expect(await reader.lastSeq(0)).toBe(1);
      expect(reader.writerEpoch).toBeNull();
      await expect(reader.append(row(0, 2))).rejects.toMatchObject({ code: 'STORE_READ_ONLY' });
      await expect(
        reader.writeLayout({ shardCount: 1, partitionCount: 1024, epoch: 1 }),
      ).rejects.toMatchObject({
        code: 'STORE_READ_ONLY',
      });
      await writer.append(row(0, 2));
      expect(await reader.lastSeq(0)).toBe(2);
    });

    it('fences a stale writer: once another process has taken over, none of its writes land', async () => {
      const schema = freshSchema();
      const stale = await openWriter(schema);
      const { link } = await stale.linkForWorker();
      const staleWorker = storeFromLink(link);
      opened.push(staleWorker);
      await stale.append(row(0, 1));
      await staleWorker.append(row(1, 1));
      // Another process claims the database behind this one's back: as a successor does
      // after this writer's lock session died (network partition, killed backend) while
      // the process itself kept running.
      await adminQuery(`UPDATE "${schema}".stockd_writer SET epoch = epoch + 1, pid = 1, host = 'elsewhere'`);
      for (const store of [stale, staleWorker]) {
        await expect(store.append(row(0, 2))).rejects.toMatchObject({
          code: 'STORE_FENCED',
          message: expect.stringContaining('no longer the writer'),
        });
      }
      await expect(staleWorker.append(row(1, 2))).rejects.toMatchObject({ code: 'STORE_FENCED' });
      // Stores that have not yet learnt it: the database itself refuses their writes.
      const unaware = (): WalStore => {
        const store = storeFromLink(link);
        opened.push(store);
        return store;
      };
      await expect(
        unaware().writeSnapshot({
          shard: 0,
          epoch: 1,
          seq: 1,
          at: 1,
          payload: Uint8Array.of(1),
          checksum: 'x',
        }),
      ).rejects.toMatchObject({ code: 'STORE_FENCED' });
      await expect(
        unaware().writeLayout({ shardCount: 9, partitionCount: 1024, epoch: 9 }),
      ).rejects.toMatchObject({
        code: 'STORE_FENCED',
      });
      expect(await stale.lastSeq(0)).toBe(1);
      expect(await stale.lastSeq(1)).toBe(1);
      expect(await stale.readLayout()).toBeNull();
      expect(await stale.latestSnapshot(0, 1)).toBeNull();
    });

    it('takes its lock back after losing the lock session when nobody took over', async () => {
      const schema = freshSchema();
      const writer = await openWriter(schema);
      await killLockSession(schema);
      // Until the lock is back a second writer could slip in; once it is, it is refused.
      await expect
        .poll(async () => (await lockHolders(schema)).length, { timeout: 10_000, interval: 50 })
        .toBe(1);
      await expect(PgWalStore.open(pgSpec(schema))).rejects.toMatchObject({ code: 'STORE_LOCKED' });
      await writer.append(row(0, 1));
    });
  });

  describe('connection loss', () => {
    it('rejects an append promptly when its connection is killed, and the next append reconnects', async () => {
      const schema = freshSchema();
      const store = await openWriter(schema);
      await store.append(row(0, 1));
      // Hold the writer row so the next append blocks inside PostgreSQL, then kill it there.
      const pg = (await import('pg')).default;
      const blocker = new pg.Client({ connectionString: pgSpec(schema).connectionString });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query(`SELECT * FROM "${schema}".stockd_writer FOR UPDATE`);
        const append = store.append(row(0, 2));
        const settled = append.then(
          () => 'resolved',
          (error: Error) => error.message,
        );
        const waiting = await waitForBlockedAppend(schema);
        const killedAt = performance.now();
        await adminQuery('SELECT pg_terminate_backend($1)', [waiting]);
        expect(await settled).toMatch(/terminat/);
        expect(performance.now() - killedAt).toBeLessThan(1_000);
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      // The killed statement never committed: seq 2 is still free, on a fresh connection.
      expect(await store.lastSeq(0)).toBe(1);
      await store.append(row(0, 2));
      expect(await store.lastSeq(0)).toBe(2);
    });

    it('rejects within its connect timeout when the server cannot be reached', async () => {
      // A port nothing listens on: the connection is refused at once.
      const started = performance.now();
      await expect(
        PgWalStore.open({ connectionString: 'postgres://postgres@127.0.0.1:1/test', schema: 'x' }),
      ).rejects.toThrow(/ECONNREFUSED|connect/);
      expect(performance.now() - started).toBeLessThan(6_000);
    });
  });
});

function migrationsCount(): number {
  return schemaVersionCurrent;
}

/** Backends holding the writer advisory lock of `schema`. */
async function lockHolders(schema: string): Promise<number[]> {
  const rows = await adminQuery<{ pid: number }>(
    `SELECT pid FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND objid = hashtext($1)::oid AND classid = $2::oid`,
    [schema, 0x73746b02],
  );
  return rows.map((r) => r.pid);
}

async function killLockSession(schema: string): Promise<void> {
  const holders = await lockHolders(schema);
  expect(holders).toHaveLength(1);
  await adminQuery('SELECT pg_terminate_backend($1)', [holders[0]]);
  await expect.poll(async () => (await lockHolders(schema)).length, { timeout: 5_000, interval: 20 }).toBe(0);
}

/** The pid of the stockd backend waiting on a lock (the blocked append). */
async function waitForBlockedAppend(schema: string): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const rows = await adminQuery<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
       WHERE application_name = 'stockd' AND wait_event_type = 'Lock' AND query LIKE '%stockd_wal%'
         AND pid IN (SELECT pid FROM pg_locks WHERE NOT granted)`,
    );
    if (rows.length > 0) return rows[0]!.pid;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no append of schema ${schema} is waiting`);
}
