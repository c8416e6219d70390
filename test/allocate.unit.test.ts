import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allocateLines, allocateOneLine } from '../src/actors/decide.js';
import { evolve } from '../src/actors/evolve.js';
import { ShardState } from '../src/actors/state.js';
import type { Reserve } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';

// The single-line fast path must decide exactly as the general allocator does.
const locations = ['A', 'B', 'C', 'D'];
const stockArb = fc.array(
  fc.record({
    location: fc.constantFrom(...locations),
    onHand: fc.integer({ min: 0, max: 20 }),
    reserved: fc.integer({ min: 0, max: 20 }),
    safetyStock: fc.integer({ min: 0, max: 5 }),
  }),
  { maxLength: 6 },
);
const channelArb = fc.option(
  fc.record({
    locations: fc.uniqueArray(fc.constantFrom(...locations), { minLength: 1, maxLength: 4 }),
    buffer: fc.integer({ min: 0, max: 6 }),
  }),
  { nil: undefined },
);
const lineArb = fc.record({
  qty: fc.integer({ min: 1, max: 30 }),
  location: fc.option(fc.constantFrom(...locations, 'Z'), { nil: undefined }),
  strategy: fc.constantFrom('priority' as const, 'most_available' as const, 'split' as const),
});

describe('allocateOneLine', () => {
  it('agrees with the general allocator on every single-line reservation', () => {
    fc.assert(
      fc.property(stockArb, channelArb, lineArb, (stock, channel, line) => {
        const state = new ShardState(defaultLimits);
        const at = 1;
        for (const s of stock) {
          evolve(state, {
            type: 'StockSet',
            at,
            sku: 'X',
            location: s.location,
            onHand: s.onHand,
            safetyStock: s.safetyStock,
            sourceTs: 0,
          });
          // Reserved comes from a held reservation so the state stays consistent.
          if (s.reserved > 0) {
            evolve(state, {
              type: 'ReservationHeld',
              at,
              reservationId: `h-${s.location}-${state.reservations.size}`,
              orderId: null,
              channel: null,
              bodyHash: 0,
              expiresAt: 1_000_000,
              lines: [{ sku: 'X', location: s.location, qty: s.reserved }],
            });
          }
        }
        const ch = channel && { channel: 'c', locations: channel.locations, buffer: channel.buffer };
        const cmd: Reserve = {
          type: 'reserve',
          reservationId: 'r',
          strategy: line.strategy,
          lines: [{ sku: 'X', qty: line.qty, ...(line.location ? { location: line.location } : {}) }],
        };
        expect(allocateOneLine(state, cmd, ch)).toEqual(allocateLines(state, cmd, ch));
      }),
      { numRuns: 2_000 },
    );
  });
});
