/**
 * Crash test against the real PostgreSQL (bench/crash/driver.ts): a child process runs a
 * durable engine under concurrent writes and is killed with SIGKILL at a random moment,
 * five times, with a different shard count on each restart. After each restart every
 * acknowledged write is present, unacknowledged reservations are whole or absent (a cut
 * cross-shard one is completed by the client's retry), invariants hold and
 * `replay --verify` passes. `npm run crash -- --cycles 300` runs hundreds.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCrashCycles } from '../bench/crash/driver.js';
import { dropSchema, findPostgres, testDatabaseUrl, testSchemaName } from './support/services.js';

const postgres = await findPostgres();
const schema = testSchemaName();

describe.runIf(postgres.available)('SIGKILL at a random moment, against PostgreSQL', () => {
  afterAll(() => dropSchema(schema));

  it('loses nothing acknowledged over 5 kill/restart cycles', async () => {
    const seed = Number(process.env.STOCKD_CRASH_SEED ?? Date.now() % 1_000_000);
    const lines: string[] = [];
    try {
      const reports = await runCrashCycles({
        databaseUrl: testDatabaseUrl,
        schema,
        cycles: 5,
        seed,
        minRunMs: 100,
        maxRunMs: 700,
        clients: 12,
        log: (line) => lines.push(line),
      });
      expect(reports).toHaveLength(5);
      // The kills landed while writes were flowing, not before the first one.
      expect(reports.reduce((sum, r) => sum + r.acknowledged, 0)).toBeGreaterThan(100);
    } catch (error) {
      throw new Error(
        `crash test failed (seed ${seed}; rerun with STOCKD_CRASH_SEED=${seed}):\n${lines.join('\n')}\n${String(error)}`,
      );
    }
  }, 180_000);
});
