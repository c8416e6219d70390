/**
 * The one way the CLI and the server open the durable store:
 *
 *   databaseUrl given ─▶ PostgreSQL (pg-store.ts)
 *   otherwise         ─▶ embedded PGlite in dataDir ?? ./data (pglite-store.ts)
 *
 * `readOnly` is for the replay tool: nothing is migrated or written, and on PostgreSQL the
 * writer lock is not taken, so it can read while stockd serves. (PGlite cannot be shared
 * between processes: a read-only open of a directory in use is refused.)
 */
import { PgWalStore } from './pg-store.js';
import { defaultDataDir, PgliteWalStore } from './pglite-store.js';
import { StoreError } from './store-errors.js';
import type { LinkableStore } from './store-link.js';

export interface OpenStoreOptions {
  /** postgres://user@host:port/database; when absent, PGlite is used. */
  readonly databaseUrl?: string;
  /** PGlite's directory; default ./data. Ignored with a databaseUrl. */
  readonly dataDir?: string;
  readonly readOnly?: boolean;
  /** Schema holding stockd's tables; default `public`. */
  readonly schema?: string;
}

export interface DurableStore extends LinkableStore {
  /** For logs: `postgres://user@host:5432/db` (no password) or `pglite ./data`. */
  describe(): string;
  /** The writer epoch this process holds, or null when opened read-only. */
  readonly writerEpoch: number | null;
}

export async function openStore(options: OpenStoreOptions = {}): Promise<DurableStore> {
  const { databaseUrl, readOnly = false } = options;
  const schema = options.schema === undefined ? {} : { schema: options.schema };
  if (databaseUrl !== undefined && databaseUrl !== '') {
    if (!/^postgres(ql)?:\/\//.test(databaseUrl)) {
      throw new StoreError(
        'STORE_CONFIG',
        `database URL must start with postgres:// or postgresql://, got ${JSON.stringify(databaseUrl.split(':')[0])}`,
      );
    }
    const spec = { connectionString: databaseUrl, ...schema };
    return readOnly ? PgWalStore.openForRead(spec) : PgWalStore.open(spec);
  }
  return PgliteWalStore.open({ dataDir: options.dataDir ?? defaultDataDir, readOnly, ...schema });
}
