import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { serve } from '../src/cli/serve.js';
import { Engine } from '../src/engine/engine.js';
import { applyGcProfile, gcProfileFlags } from '../src/engine/gc-profile.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

const scratch = mkdtempSync(join(tmpdir(), 'stockd-gc-profile-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('garbage-collector profiles', () => {
  it('the latency profile names V8 flags this Node knows', () => {
    // Node refuses an unknown V8 flag on its command line ("bad option"); setFlagsFromString
    // would ignore it silently, so a flag renamed by a Node upgrade shows here.
    const flags = gcProfileFlags.latency;
    expect(flags.length).toBeGreaterThan(0);
    const run = spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('v8 sets no flag: the process keeps its own', () => {
    expect(applyGcProfile('v8')).toEqual([]);
  });

  it('refuses a profile it does not know', () => {
    expect(() => applyGcProfile('fast' as never)).toThrow(/gc profile must be one of latency, v8, got fast/);
    // Not a profile either, though every object has one by that name.
    expect(() => applyGcProfile('toString' as never)).toThrow(/gc profile must be one of/);
  });

  it('Engine.start refuses an unknown profile before it touches the store or starts a worker', async () => {
    const store = new MemoryWalStore();
    let layoutReads = 0;
    const readLayout = store.readLayout.bind(store);
    store.readLayout = () => {
      layoutReads++;
      return readLayout();
    };
    await expect(Engine.start({ store, shards: 1, gc: 'fast' as never })).rejects.toThrow(
      /gc profile must be one of/,
    );
    expect(layoutReads).toBe(0);
  });

  it('stockd serve refuses an unknown profile before it opens the store', async () => {
    const dataDir = join(scratch, 'data');
    await expect(
      serve({ port: 0, host: '127.0.0.1', dataDir, gc: 'fast' as never }, pino({ level: 'silent' })),
    ).rejects.toThrow(/gc profile must be one of/);
    expect(existsSync(dataDir)).toBe(false);
  });
});
