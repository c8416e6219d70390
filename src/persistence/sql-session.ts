/**
 * The little the SQL stores need of a database connection, so that one body of SQL
 * (sql-store.ts, migrations.ts) serves both PostgreSQL through `pg` and PGlite.
 */
import { StoreError } from './store-errors.js';

export interface SqlStatement {
  /** Text of one statement, parameters as $1, $2, … with explicit casts (PGlite infers nothing). */
  readonly text: string;
  /** Prepared-statement name: `pg` parses and plans a named statement once per connection. */
  readonly name?: string;
  /** Client-side bound on this call: past it the call rejects and its connection is dropped. */
  readonly timeoutMs?: number;
}

export interface SqlResult {
  readonly rows: ReadonlyArray<Record<string, unknown>>;
  /** Rows inserted, updated or deleted (0 for a SELECT on PGlite). */
  readonly rowCount: number;
}

export interface SqlSession {
  query(statement: SqlStatement, params?: readonly unknown[]): Promise<SqlResult>;
  /** Runs `body` in one transaction on one connection; commits if it resolves, rolls back if it throws. */
  transaction<T>(body: (tx: SqlSession) => Promise<T>): Promise<T>;
}

/** PostgreSQL's identifier limit (NAMEDATALEN − 1). */
const identifierBytesMax = 63;

/**
 * A schema name is spliced into SQL text (CREATE SCHEMA, search_path), so only plain
 * lower-case identifiers are accepted: nothing that needs quoting rules to be safe.
 */
export function checkSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema) || schema.length > identifierBytesMax) {
    throw new StoreError(
      'STORE_CONFIG',
      `schema name ${JSON.stringify(schema)} must be a lower-case identifier (a-z, 0-9, _) of at most ${identifierBytesMax} characters`,
    );
  }
  return schema;
}

/** A bigint column as a JS number: `pg` returns int8 as a string, PGlite as a number. */
export function toNumber(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n))
    throw new Error(`expected a safe integer from the database, got ${String(value)}`);
  return n;
}
