import { describe, expect, it } from 'vitest';
import { storeFromEnv } from '../bench/http.js';

describe('HTTP benchmark options', () => {
  it('measures a durable store unless told otherwise', () => {
    expect(storeFromEnv({})).toBe('pglite');
    expect(storeFromEnv({ BENCH_DATABASE_URL: 'postgres://localhost/x' })).toBe('postgres');
    expect(storeFromEnv({ BENCH_STORE: 'memory', BENCH_DATABASE_URL: 'postgres://localhost/x' })).toBe(
      'memory',
    );
    expect(() => storeFromEnv({ BENCH_STORE: 'redis' })).toThrow(/BENCH_STORE must be/);
  });
});
