/**
 * openStore's choices and the store descriptions that go into logs; no database needed:
 * each refusal here happens before any connection is attempted.
 */
import { describe, expect, it } from 'vitest';
import { openStore } from '../src/persistence/open-store.js';
import { describePg } from '../src/persistence/pg-store.js';
import { describePglite } from '../src/persistence/pglite-store.js';
import { checkSchemaName } from '../src/persistence/sql-session.js';

describe('openStore', () => {
  it('refuses a database URL that is not PostgreSQL', async () => {
    await expect(openStore({ databaseUrl: 'mysql://db/stock' })).rejects.toMatchObject({
      code: 'STORE_CONFIG',
      message: expect.stringContaining('"mysql"'),
    });
  });

  it('refuses a schema name that would need quoting, for either store', async () => {
    for (const schema of ['Stock', 'a-b', 'x"; DROP TABLE t; --', '', 'a'.repeat(64)]) {
      expect(() => checkSchemaName(schema)).toThrow(expect.objectContaining({ code: 'STORE_CONFIG' }));
      await expect(openStore({ databaseUrl: 'postgres://h/db', schema })).rejects.toMatchObject({
        code: 'STORE_CONFIG',
      });
      await expect(openStore({ dataDir: '/nonexistent/never-created', schema })).rejects.toMatchObject({
        code: 'STORE_CONFIG',
      });
    }
    expect(checkSchemaName('stockd_2')).toBe('stockd_2');
  });
});

describe('store descriptions for logs', () => {
  it('names the PostgreSQL server and database, never the password', () => {
    expect(
      describePg({ connectionString: 'postgres://app:s3cret@db.internal:5433/stock?sslmode=require' }),
    ).toBe('postgres://app@db.internal:5433/stock');
    expect(describePg({ connectionString: 'postgresql://db/stock', schema: 'tenant_a' })).toBe(
      'postgresql://db/stock schema tenant_a',
    );
    expect(describePg({ connectionString: 'not a url' })).toBe('postgres (unparsable URL)');
  });

  it('names the PGlite directory relative to the working directory when inside it', () => {
    expect(describePglite('./data')).toBe('pglite ./data');
    expect(describePglite('data/sub', 'tenant_a')).toBe('pglite ./data/sub schema tenant_a');
    expect(describePglite('/srv/stockd')).toBe('pglite /srv/stockd');
  });
});
