import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src/engine/engine.js';
import { applyGcProfile, gcProfileFlags, gcProfiles } from '../src/engine/gc-profile.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';

describe('garbage-collector profiles', () => {
  it.each(gcProfiles)('names V8 flags this Node knows (%s)', (profile) => {
    // Node refuses an unknown V8 flag on its command line ("bad option"); setFlagsFromString
    // would ignore it silently, so a flag renamed by a Node upgrade shows here.
    const flags = gcProfileFlags[profile];
    expect(flags.length).toBeGreaterThan(0);
    const run = spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('refuses a profile it does not know, setting nothing', () => {
    expect(() => applyGcProfile('fast' as never)).toThrow(/gc profile must be one of latency, v8, got fast/);
  });

  it('applies a profile and returns its flags', () => {
    expect(applyGcProfile('latency')).toBe(gcProfileFlags.latency);
  });

  it('Engine.start refuses an unknown profile before it starts a worker', async () => {
    await expect(
      Engine.start({ store: new MemoryWalStore(), shards: 1, gc: 'fast' as never }),
    ).rejects.toThrow(/gc profile must be one of/);
  });
});
