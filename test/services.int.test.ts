/**
 * The service finder itself: an unreachable service skips its tests with a message, except
 * in CI, where it must fail the run (a green CI means the durability tests really ran).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { findPostgres, findRedis } from './support/services.js';

// Port 1 on the loopback: nothing listens there, so the connection is refused at once.
const nowhere = { postgres: 'postgres://postgres:secret@127.0.0.1:1/test', redis: 'redis://127.0.0.1:1' };

afterEach(() => {
  vi.restoreAllMocks();
});

describe('service finder', () => {
  it('reports an unreachable service and warns that its tests are skipped', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const postgres = await findPostgres(nowhere.postgres, {});
    expect(postgres).toMatchObject({ name: 'PostgreSQL', available: false });
    expect(postgres.reason).not.toBe('');
    // The password never reaches a message.
    expect(postgres.url).not.toContain('secret');
    const redis = await findRedis(nowhere.redis, {});
    expect(redis).toMatchObject({ name: 'Redis', available: false });
    expect(warn).toHaveBeenCalledTimes(2);
    expect(String(warn.mock.calls[0]![0])).toMatch(/skipping the tests that need PostgreSQL is unreachable/);
  });

  it('fails instead of skipping when CI=true', async () => {
    await expect(findPostgres(nowhere.postgres, { CI: 'true' })).rejects.toThrow(
      /PostgreSQL is unreachable at .*CI=true requires it/,
    );
    await expect(findRedis(nowhere.redis, { CI: 'true' })).rejects.toThrow(/Redis is unreachable/);
  });
});
