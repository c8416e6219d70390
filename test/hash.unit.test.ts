import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { reserveBodyHash } from '../src/actors/decide.js';
import { fnv1a32, hash53, hash53Pieces, partitionOf } from '../src/actors/hash.js';
import { type Reserve, sourcingStrategies } from '../src/actors/types.js';

/** The reserve body hash as first defined, building the text; reserveBodyHash must equal it. */
function reserveBodyHashReference(cmd: Omit<Reserve, 'type' | 'reservationId' | 'bodyHash'>): number {
  let text = `${cmd.orderId ?? ''}\u0001${cmd.channel ?? ''}\u0001${cmd.ttlSeconds ?? ''}\u0001${cmd.strategy ?? ''}`;
  for (const line of cmd.lines) text += `\u0001${line.sku}\u0000${line.qty}\u0000${line.location ?? ''}`;
  return hash53(text);
}

// These hashes are persisted (body hashes in WAL events) or decide data placement
// (partitions): a change of value would corrupt existing databases. Pin them.
describe('hashes are stable', () => {
  it('hash53 and fnv1a32 keep their values', () => {
    expect(hash53('')).toBe(3338908027751811);
    expect(hash53('SKU-1')).toBe(hash53('SKU-1', 0));
    expect(hash53('a quick brown fox')).toBe(7619530613350109);
    expect(fnv1a32('SKU-1')).toBe(3820720972);
    expect(partitionOf('SKU-1', 1024)).toBe(3820720972 % 1024);
  });

  it('hash53Pieces over any split equals hash53 of the whole', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme' }), { maxLength: 8 }), (pieces) => {
        hash53Pieces.start();
        for (const piece of pieces) hash53Pieces.add(piece);
        expect(hash53Pieces.finish()).toBe(hash53(pieces.join('')));
      }),
    );
  });

  it('reserveBodyHash equals its original string-building definition', () => {
    const line = fc.record(
      {
        sku: fc.string({ minLength: 1, maxLength: 12 }),
        qty: fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), fc.double()),
        location: fc.string({ maxLength: 6 }),
      },
      { requiredKeys: ['sku', 'qty'] },
    );
    const body = fc.record(
      {
        orderId: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
        channel: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
        ttlSeconds: fc.option(fc.integer({ min: 1, max: 86_400 }), { nil: undefined }),
        strategy: fc.option(fc.constantFrom(...sourcingStrategies), { nil: undefined }),
        lines: fc.array(line, { minLength: 1, maxLength: 5 }),
      },
      { requiredKeys: ['lines'] },
    );
    fc.assert(
      fc.property(body, (cmd) => {
        expect(reserveBodyHash(cmd)).toBe(reserveBodyHashReference(cmd));
      }),
      { numRuns: 500 },
    );
  });
});
