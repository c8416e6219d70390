/** API keys: parsing, constant-time lookup, scopes, and the loopback-only rule without keys. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ApiKeyError,
  assertSafeBind,
  isLoopbackHost,
  KeyRing,
  loadApiKeys,
  parseApiKeys,
} from '../src/api/auth.js';

describe('parseApiKeys', () => {
  it('reads key:scopes[:max] entries separated by ; or new lines, skipping comments and blanks', () => {
    expect(parseApiKeys('key1:read,write;key2:admin')).toEqual([
      { key: 'key1', scopes: ['read', 'write'] },
      { key: 'key2', scopes: ['admin'] },
    ]);
    expect(parseApiKeys('# ops\nk-a:read:50\n\n  k-b:write  \n')).toEqual([
      { key: 'k-a', scopes: ['read'], rateLimitMax: 50 },
      { key: 'k-b', scopes: ['write'] },
    ]);
  });

  it.each([
    ['key1', 'expected key:scope'],
    ['key1:owner', 'unknown scope'],
    [':read', 'expected key:scope'],
    ['k:read:0', 'rate limit'],
    ['k:read:x', 'rate limit'],
    ['k:read:1:2', 'expected key:scope'],
    ['k:read;k:write', 'twice'],
  ])('refuses %j (%s) without echoing the key', (spec, message) => {
    expect(() => parseApiKeys(spec)).toThrow(ApiKeyError);
    expect(() => parseApiKeys(spec)).toThrow(message);
    try {
      parseApiKeys(spec);
    } catch (error) {
      if (spec.startsWith('k:')) expect((error as Error).message).not.toContain('k:');
    }
  });

  it('loads the environment spec and a keys file together', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stockd-keys-'));
    try {
      const file = join(dir, 'keys');
      await writeFile(file, '# keys\nfile-key:read\n');
      const keys = await loadApiKeys({ spec: 'env-key:write', file });
      expect(keys.map((k) => k.key)).toEqual(['env-key', 'file-key']);
      await expect(loadApiKeys({ spec: 'file-key:admin', file })).rejects.toThrow(ApiKeyError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('KeyRing', () => {
  const ring = new KeyRing(parseApiKeys('shop-key:read,write;ops-key:admin:10'));

  it('finds the principal of a configured key, with its scopes', () => {
    const shop = ring.authenticate('shop-key');
    expect(shop && [...shop.scopes].sort()).toEqual(['read', 'write']);
    const ops = ring.authenticate('ops-key');
    expect(ops && [...ops.scopes].sort()).toEqual(['admin', 'read', 'write']);
    expect(ops?.rateLimitMax).toBe(10);
    expect(ring.hasCustomRateLimits).toBe(true);
  });

  it('knows no other key, prefixes and extensions included', () => {
    for (const presented of ['', 'shop-ke', 'shop-key ', 'shop-keyy', 'SHOP-KEY']) {
      expect(ring.authenticate(presented)).toBeNull();
    }
  });

  it('identifies a key by a hash prefix, never by the key', () => {
    const id = ring.authenticate('shop-key')!.id;
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    expect(id).not.toContain('shop');
  });

  it('is disabled without keys', () => {
    expect(new KeyRing([]).enabled).toBe(false);
    expect(ring.enabled).toBe(true);
  });
});

describe('binding without keys', () => {
  it.each(['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])(
    'allows loopback %s',
    (host) => {
      expect(isLoopbackHost(host)).toBe(true);
      expect(() => assertSafeBind(host, false)).not.toThrow();
    },
  );

  it.each(['0.0.0.0', '::', '10.0.0.5', 'example.com', '128.0.0.1'])('refuses %s and says why', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
    expect(() => assertSafeBind(host, false)).toThrow(/without API keys/);
    expect(() => assertSafeBind(host, true)).not.toThrow();
  });
});
