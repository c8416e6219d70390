/**
 * The real services some tests need: PostgreSQL and Redis.
 *
 *   STOCKD_TEST_DATABASE_URL   default postgres://postgres@127.0.0.1:5432/test
 *   STOCKD_TEST_REDIS_URL      default redis://127.0.0.1:6379
 *
 * A test file probes at collection time (top-level await) and wraps its suites in
 * `describe.runIf(service.available)`. When a service is unreachable its tests are skipped
 * with a message saying which and why — except in CI (CI=true), where a missing service is
 * a failure: a green CI run must mean the durability tests ran.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import pg from 'pg';
import type { PgConnectionSpec } from '../../src/persistence/pg-store.js';

export const testDatabaseUrl =
  process.env.STOCKD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const testRedisUrl = process.env.STOCKD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A probe that takes longer than this counts as unreachable. */
const probeTimeoutMs = 2_000;

export interface Service {
  readonly name: string;
  readonly url: string;
  readonly available: boolean;
  /** Why it is unavailable ('' when available). */
  readonly reason: string;
}

/**
 * Settles the fate of the tests needing `service`. Unavailable: warn that they are
 * skipped, or — in CI — throw, so the whole file fails instead of passing by skipping.
 */
export function decide(service: Service, env: NodeJS.ProcessEnv = process.env): Service {
  if (service.available) return service;
  const message = `${service.name} is unreachable at ${service.url} (${service.reason})`;
  if (env.CI === 'true') throw new Error(`${message}: CI=true requires it`);
  console.warn(`\n  ⚠ skipping the tests that need ${message}\n`);
  return service;
}

/** Where the URL points, without a password, for messages. */
function shown(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url;
  }
}

export async function findPostgres(url = testDatabaseUrl, env = process.env): Promise<Service> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: probeTimeoutMs,
  });
  client.on('error', () => {});
  let reason = '';
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    reason = error instanceof Error ? error.message || String(error) : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
  return decide({ name: 'PostgreSQL', url: shown(url), available: reason === '', reason }, env);
}

export async function findRedis(redisUrl = testRedisUrl, env = process.env): Promise<Service> {
  const url = new URL(redisUrl);
  const reason = await new Promise<string>((resolve) => {
    const socket = new Socket();
    const done = (why: string): void => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(probeTimeoutMs, () => done(`no answer within ${probeTimeoutMs} ms`));
    socket.once('error', (error) => done(error.message));
    // Any RESP reply means a Redis is there (a password-protected one answers -NOAUTH).
    socket.once('data', (data) => done(/^[+-]/.test(data.toString()) ? '' : 'not a Redis reply'));
    socket.connect(Number(url.port || 6379), url.hostname, () => socket.write('PING\r\n'));
  });
  return decide({ name: 'Redis', url: shown(redisUrl), available: reason === '', reason }, env);
}

/** A fresh schema name per test, so runs (and tests) never see each other's rows. */
export function testSchemaName(): string {
  return `stockd_test_${randomBytes(6).toString('hex')}`;
}

export function pgSpec(schema: string): PgConnectionSpec {
  return { connectionString: testDatabaseUrl, schema };
}

/** Runs SQL as the test harness (not through the store), e.g. to kill a backend or drop a schema. */
export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({
    connectionString: testDatabaseUrl,
    connectionTimeoutMillis: probeTimeoutMs,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}
