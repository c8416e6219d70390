/**
 * Tiny forms of the durability benchmark (bench/durability.ts), so it never rots: each part
 * runs end to end against PGlite and the real PostgreSQL server and reports sane numbers.
 * Figures are not asserted (shared, noisy machines).
 */
import { describe, expect, it } from 'vitest';
import {
  durableThroughput,
  formatDurableThroughput,
  formatRecovery,
  imageCost,
  recovery,
  stall,
} from '../bench/durability.js';
import { findPostgres, testDatabaseUrl } from './support/services.js';

const postgres = await findPostgres();
const kinds = postgres.available ? ['pglite', 'postgres'] : ['pglite'];

describe.each(kinds)('durability benchmark smoke (%s)', (kind) => {
  it('throughput: saturation, then acknowledgements at half of it, split by background snapshots', async () => {
    // A snapshot is due at every check (20 ms) once anything was written: they run
    // throughout the open loop, one after another.
    const result = await durableThroughput(
      kind,
      { seconds: 0.6, waveSize: 50, shards: 1, skus: 100, snapshotEveryMs: 1, snapshotCheckMs: 20 },
      testDatabaseUrl,
    );
    expect(result.snapshotError).toBeNull();
    expect(result.snapshotsTaken).toBeGreaterThan(0);
    expect(result.rate).toBeGreaterThan(0);
    expect(result.target).toBeCloseTo(result.rate / 2);
    expect(result.ack.waves).toBeGreaterThan(0);
    expect(result.ack.p99).toBeGreaterThanOrEqual(result.ack.p50);
    // Every wave is on one side of the split, and snapshots did run meanwhile.
    const during = result.snapshots.during?.waves ?? 0;
    const without = result.snapshots.without?.waves ?? 0;
    expect(during + without).toBe(result.ack.waves);
    expect(during).toBeGreaterThan(0);
    expect(result.snapshots.overlapped).toBeGreaterThan(0);
    const line = formatDurableThroughput(result);
    expect(line).toContain('durable commands/s');
    expect(line).toContain('while a background snapshot ran');
  });

  it('throughput with snapshots out of reach reports that none ran', async () => {
    const result = await durableThroughput(
      kind,
      { seconds: 0.3, waveSize: 50, shards: 1, skus: 100, snapshotEveryEvents: 1e12 },
      testDatabaseUrl,
    );
    expect(result.snapshots.during).toBeNull();
    expect(result.snapshots.overlapped).toBe(0);
    expect(result.snapshots.without?.waves).toBe(result.ack.waves);
    expect(formatDurableThroughput(result)).toContain('no background snapshot ran meanwhile');
  });

  it('recovery: from the WAL alone and from a snapshot, to the same state', async () => {
    const result = await recovery(kind, 200, 2_000, 1, testDatabaseUrl);
    expect(result.replayed).toBeGreaterThanOrEqual(2_000);
    expect(result.fromWalSeconds).toBeGreaterThan(0);
    expect(result.fromSnapshotSeconds).toBeGreaterThan(0);
    expect(formatRecovery(result)).toContain('events/s');
  });

  it('stall: the in-worker image and the background snapshot, against a baseline', async () => {
    const line = await stall(kind, 500, testDatabaseUrl);
    expect(line).toMatch(/in-worker image stalls the mailbox [\d.]+ ms/);
    expect(line).toMatch(/with no snapshot, as long: p50 [\d.]+/);
  });
});

describe('durability benchmark smoke (image)', () => {
  it("times the image's phases", () => {
    expect(imageCost(500, 2_000, 1)).toMatch(/image [\d.]+ ms, encode [\d.]+ ms/);
  });
});
