/**
 * The schema of the durable stores, as numbered migrations applied at open.
 *
 *   open ─▶ BEGIN ─▶ advisory xact lock (per schema) ─▶ read stockd_schema version
 *           ├─ newer than this code ─▶ refuse (SCHEMA_TOO_NEW), change nothing
 *           ├─ older ─▶ apply each missing migration, record its version
 *           └─ COMMIT
 *
 * The lock makes two processes that open the same schema at once run the migrations one
 * after the other: the second finds them applied and does nothing. Every migration runs
 * in that one transaction, so a crash midway leaves the previous version intact.
 *
 * A migration, once released, is never edited: a change is a new migration with the next
 * version. The same SQL runs on PostgreSQL and PGlite, so it sticks to what both support.
 */
import { checkSchemaName, type SqlSession, toNumber } from './sql-session.js';
import { StoreError } from './store-errors.js';

export interface Migration {
  readonly version: number;
  readonly description: string;
  /** One statement per entry (the extended query protocol runs one at a time). */
  readonly statements: readonly string[];
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'WAL, snapshots, layout and writer fencing',
    statements: [
      `CREATE TABLE stockd_layout (
         id int PRIMARY KEY CHECK (id = 1),
         shard_count int NOT NULL,
         partition_count int NOT NULL,
         epoch int NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now()
       )`,
      // One row: the writer epoch, bumped by every process that opens the database for
      // writing. Every write checks it in the same statement (see sql-store.ts).
      `CREATE TABLE stockd_writer (
         id int PRIMARY KEY CHECK (id = 1),
         epoch bigint NOT NULL,
         pid int,
         host text,
         since timestamptz
       )`,
      'INSERT INTO stockd_writer (id, epoch) VALUES (1, 0)',
      // One row per group-committed batch of one shard; payload = msgpackr DomainEvent[].
      `CREATE TABLE stockd_wal (
         stream int NOT NULL,
         seq bigint NOT NULL,
         epoch int NOT NULL,
         at bigint NOT NULL,
         event_count int NOT NULL,
         writer_epoch bigint NOT NULL,
         payload bytea NOT NULL,
         PRIMARY KEY (stream, seq)
       )`,
      // msgpackr output compresses poorly and the server shares the machine's cores with
      // the engine: store payloads out of line without compression.
      'ALTER TABLE stockd_wal ALTER COLUMN payload SET STORAGE EXTERNAL',
      `CREATE TABLE stockd_snapshot (
         shard int NOT NULL,
         epoch int NOT NULL,
         seq bigint NOT NULL,
         at bigint NOT NULL,
         checksum text NOT NULL,
         payload bytea NOT NULL,
         taken_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (shard, epoch, seq)
       )`,
      'ALTER TABLE stockd_snapshot ALTER COLUMN payload SET STORAGE EXTERNAL',
    ],
  },
];

/** The schema version this code reads and writes. */
export const schemaVersionCurrent: number = migrations.at(-1)!.version;

/** First key of the two-key advisory locks stockd takes ('stk' + role), second = hashtext(schema). */
export const advisoryLockTag = { migrate: 0x73746b01, writer: 0x73746b02 } as const;

export interface MigrationResult {
  readonly schema: string;
  readonly from: number;
  readonly to: number;
}

/** Brings `schema` to the current version (creating it if needed), or refuses a newer one. */
export async function migrate(session: SqlSession, schema: string): Promise<MigrationResult> {
  checkSchemaName(schema);
  return session.transaction(async (tx) => {
    await tx.query({ text: 'SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))' }, [
      advisoryLockTag.migrate,
      schema,
    ]);
    // Created only when absent: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
    // even when the schema exists, which a least-privilege role may not have.
    const present = await tx.query({ text: 'SELECT 1 FROM pg_namespace WHERE nspname = $1::text' }, [schema]);
    if (present.rows.length === 0) await tx.query({ text: `CREATE SCHEMA "${schema}"` });
    await tx.query({
      text: `CREATE TABLE IF NOT EXISTS "${schema}".stockd_schema (
               version int PRIMARY KEY,
               applied_at timestamptz NOT NULL DEFAULT now()
             )`,
    });
    const from = await versionOf(tx, schema);
    if (from > schemaVersionCurrent) throw tooNew(schema, from);
    for (const migration of migrations) {
      if (migration.version <= from) continue;
      // Unqualified names in the migrations land in this schema.
      await tx.query({ text: `SET LOCAL search_path TO "${schema}"` });
      for (const statement of migration.statements) await tx.query({ text: statement });
      await tx.query({ text: `INSERT INTO "${schema}".stockd_schema (version) VALUES ($1::int)` }, [
        migration.version,
      ]);
    }
    return { schema, from, to: Math.max(from, schemaVersionCurrent) };
  });
}

/** For read-only opens, which never change the database: the schema must be exactly current. */
export async function checkSchemaCurrent(session: SqlSession, schema: string): Promise<void> {
  checkSchemaName(schema);
  const table = await session.query({ text: 'SELECT to_regclass($1::text) IS NOT NULL AS present' }, [
    `"${schema}".stockd_schema`,
  ]);
  if (table.rows[0]?.present !== true) {
    throw new StoreError(
      'SCHEMA_NOT_CURRENT',
      `schema "${schema}" holds no stockd data (open it for writing once to create it)`,
    );
  }
  const version = await versionOf(session, schema);
  if (version > schemaVersionCurrent) throw tooNew(schema, version);
  if (version < schemaVersionCurrent) {
    throw new StoreError(
      'SCHEMA_NOT_CURRENT',
      `schema "${schema}" is at version ${version}, this code reads version ${schemaVersionCurrent}: open it for writing once to migrate it`,
    );
  }
}

async function versionOf(session: SqlSession, schema: string): Promise<number> {
  const result = await session.query({
    text: `SELECT coalesce(max(version), 0) AS version FROM "${schema}".stockd_schema`,
  });
  return toNumber(result.rows[0]?.version ?? 0);
}

function tooNew(schema: string, version: number): StoreError {
  return new StoreError(
    'SCHEMA_TOO_NEW',
    `schema "${schema}" is at version ${version}, newer than this stockd understands (${schemaVersionCurrent}): run a newer stockd, or restore a backup`,
  );
}
