/**
 * The things under test, opened the same way whether the load generator talks to them in
 * this process (direct) or a server process puts them behind HTTP (target-server.ts):
 *
 *   stockd     Engine.start({store, shards}); store = its WAL in PostgreSQL (durable, the
 *              default) or in memory (MemoryWalStore: fast, not durable across a process crash)
 *   pg-row     bench/baselines/pg-row.ts     (PostgreSQL row update, durable)
 *   redis-lua  bench/baselines/redis-lua.ts  (Redis Lua script, NOT durable: see there)
 *
 * Every backend starts from nothing: stockd's WAL schema, pg-row's schema and redis-lua's
 * namespace are the benchmark's own and are emptied at start.
 */
import pg from 'pg';
import type { ApiEngine } from '../../src/api/context.js';
import { Engine } from '../../src/engine/engine.js';
import { MemoryWalStore } from '../../src/persistence/memory-store.js';
import { PgWalStore } from '../../src/persistence/pg-store.js';
import type { WalStore } from '../../src/persistence/wal.js';
import { PgRowBaseline } from '../baselines/pg-row.js';
import { RedisLuaBaseline } from '../baselines/redis-lua.js';
import { benchGcProfile } from '../machine.js';
import type { EngineLike } from './senders.js';

export const targetNames = ['stockd', 'pg-row', 'redis-lua'] as const;
export type TargetName = (typeof targetNames)[number];

export interface BackendConfig {
  /** stockd's shard workers. */
  readonly shards: number;
  /** Where stockd keeps its WAL. */
  readonly store: 'postgres' | 'memory';
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** pg-row's pooled connections. */
  readonly pgPoolSize: number;
  /** Schema of stockd's WAL in the benchmark (emptied at start). */
  readonly engineSchema: string;
  /** Schema of pg-row's tables (emptied at start). */
  readonly pgSchema: string;
  /** Hash tag of redis-lua's keys (emptied at start). */
  readonly redisNamespace: string;
}

export interface Backend {
  readonly engine: ApiEngine & EngineLike;
  readonly durable: boolean;
  /** When a reply leaves relative to the disk, in one sentence. */
  readonly durability: string;
  /** What answered: software, version and the settings that matter. */
  readonly server: string;
  close(): Promise<void>;
}

async function withPg<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function openStockd(config: BackendConfig): Promise<Backend> {
  let store: WalStore & { close(): Promise<void> };
  let durable: boolean;
  let durability: string;
  let where: string;
  if (config.store === 'postgres') {
    const synchronousCommit = await withPg(config.databaseUrl, async (client) => {
      await client.query(`DROP SCHEMA IF EXISTS "${config.engineSchema}" CASCADE`);
      return (await client.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]
        ?.synchronous_commit;
    });
    const pgStore = await PgWalStore.open({
      connectionString: config.databaseUrl,
      schema: config.engineSchema,
    });
    store = pgStore;
    where = pgStore.describe();
    durable = synchronousCommit === 'on';
    durability = durable
      ? 'a reply is sent after the WAL row holding its events is committed in PostgreSQL (synchronous_commit on): flushed to disk'
      : `stockd's WAL is in PostgreSQL with synchronous_commit ${synchronousCommit}: a reply may precede the flush`;
  } else {
    store = new MemoryWalStore();
    where = 'memory';
    durable = false;
    durability =
      'WAL in memory (MemoryWalStore): a reply waits for the in-memory append, which survives a worker crash but not a process crash';
  }
  const engine = await Engine.start({ store, shards: config.shards, gc: benchGcProfile() });
  return {
    engine,
    durable,
    durability,
    server: `stockd engine, ${config.shards} shard${config.shards === 1 ? '' : 's'}, WAL in ${where}`,
    close: async () => {
      await engine.stop();
      await store.close();
    },
  };
}

export async function openBackend(name: TargetName, config: BackendConfig): Promise<Backend> {
  switch (name) {
    case 'stockd':
      return openStockd(config);
    case 'pg-row': {
      const baseline = await PgRowBaseline.open({
        connectionString: config.databaseUrl,
        schema: config.pgSchema,
        poolSize: config.pgPoolSize,
        reset: true,
      });
      return {
        engine: baseline,
        durable: baseline.durable,
        durability: baseline.durability,
        server: `${await baseline.serverVersion()}; pool of ${baseline.poolSize} connections`,
        close: () => baseline.close(),
      };
    }
    case 'redis-lua': {
      const baseline = await RedisLuaBaseline.open({
        url: config.redisUrl,
        namespace: config.redisNamespace,
        reset: true,
      });
      return {
        engine: baseline,
        durable: baseline.durable,
        durability: baseline.durability,
        server: await baseline.serverVersion(),
        close: () => baseline.close(),
      };
    }
    default: {
      const unknown: never = name;
      throw new Error(`unknown target ${JSON.stringify(unknown)}`);
    }
  }
}
