import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReservationMachineState } from '../src/actors/reservation-machine.js';
import {
  inlineIdLength,
  type Reservation,
  type ReservationInit,
  ReservationTable,
} from '../src/actors/reservation-table.js';
import { StockRecord } from '../src/actors/state.js';

const records = ['A', 'B', 'C', 'D'].map((sku) => new StockRecord(sku, 'W1', 0));

interface ModelLine {
  record: StockRecord;
  qty: number;
  held: number;
  committed: number;
}
type ModelReservation = { -readonly [K in keyof ReservationInit]: ReservationInit[K] } & {
  lines: ModelLine[];
};

function plain(r: Reservation) {
  return {
    id: r.id,
    orderId: r.orderId,
    channel: r.channel,
    bodyHash: r.bodyHash,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    status: r.status,
    finishedAt: r.finishedAt,
    extensions: r.extensions,
    lines: r.lines.map((l) => ({ record: l.record, qty: l.qty, held: l.held, committed: l.committed })),
  };
}

const statuses: ReservationMachineState[] = ['held', 'committed', 'released', 'expired', 'aborted'];
// Short ASCII ids are stored as bytes; long ones and non-ASCII ones as strings: both kinds.
const id = fc
  .integer({ min: 0, max: 40 })
  .map((n) => (n % 3 === 0 ? `r${n}` : n % 3 === 1 ? `é${n}` : `${'x'.repeat(inlineIdLength)}${n}`));
const line = fc.record({
  record: fc.constantFrom(...records),
  qty: fc.integer({ min: 1, max: 1_000_000_000 }),
  held: fc.nat({ max: 1_000_000_000 }),
  committed: fc.nat({ max: 1_000_000_000 }),
});
const op = fc.oneof(
  fc.record({
    kind: fc.constant('add' as const),
    init: fc.record({
      id,
      orderId: fc.option(fc.string(), { nil: null }),
      channel: fc.option(fc.constantFrom('web', 'amazon'), { nil: null }),
      bodyHash: fc.integer({ min: 0, max: 2 ** 53 - 1 }),
      createdAt: fc.integer({ min: 0, max: 2 ** 47 }),
      expiresAt: fc.integer({ min: 0, max: 2 ** 47 }),
      status: fc.constantFrom(...statuses),
      finishedAt: fc.integer({ min: 0, max: 2 ** 47 }),
      extensions: fc.nat({ max: 1000 }),
      lines: fc.array(line, { maxLength: 4 }),
    }),
  }),
  fc.record({ kind: fc.constant('delete' as const), id }),
  fc.record({ kind: fc.constant('forget' as const), id, stale: fc.boolean() }),
  fc.record({
    kind: fc.constant('append' as const),
    id,
    lines: fc.array(line, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant('change' as const),
    id,
    status: fc.constantFrom(...statuses),
    expiresAt: fc.integer({ min: 0, max: 2 ** 47 }),
    held: fc.nat({ max: 1000 }),
  }),
);

describe('ReservationTable', () => {
  it('given any adds, deletes, appended lines and changes, then it holds what a Map of objects would', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const table = new ReservationTable();
        const model = new Map<string, ModelReservation>();
        for (const o of ops) {
          if (o.kind === 'add') {
            if (model.has(o.init.id)) continue;
            table.add(o.init);
            model.set(o.init.id, { ...o.init, lines: o.init.lines.map((l) => ({ ...l })) });
          } else if (o.kind === 'delete') {
            expect(table.delete(o.id)).toBe(model.delete(o.id));
          } else if (o.kind === 'forget') {
            // A finished-queue entry: (slot, generation, finishedAt). A stale one (another
            // generation) never deletes; a current one deletes a finished reservation only.
            const r = table.get(o.id);
            const m = model.get(o.id);
            if (r === undefined || m === undefined) continue;
            const slot = table.slotOf(r);
            const generation = table.generationAt(slot) + (o.stale ? 1 : 0);
            const forgets = !o.stale && m.status !== 'held';
            expect(table.forgetFinished(slot, generation, m.finishedAt)).toBe(forgets);
            if (forgets) {
              model.delete(o.id);
              expect(table.forgetFinished(slot, generation, m.finishedAt)).toBe(false);
            }
          } else if (o.kind === 'append') {
            const m = model.get(o.id);
            if (m === undefined) continue;
            table.appendLines(o.id, o.lines);
            for (const l of o.lines) m.lines.push({ ...l });
          } else {
            const r = table.get(o.id);
            const m = model.get(o.id);
            expect(r === undefined).toBe(m === undefined);
            if (r === undefined || m === undefined) continue;
            r.status = o.status;
            r.expiresAt = o.expiresAt;
            r.finishedAt = o.expiresAt + 1;
            r.extensions++;
            m.status = o.status;
            m.expiresAt = o.expiresAt;
            m.finishedAt = o.expiresAt + 1;
            m.extensions++;
            const first = r.lines[0];
            if (first !== undefined) {
              first.held = o.held;
              first.committed += 1;
              m.lines[0]!.held = o.held;
              m.lines[0]!.committed += 1;
            }
          }
        }
        expect(table.size).toBe(model.size);
        const keys = [...table.keys()];
        expect([...keys].sort()).toEqual([...model.keys()].sort());
        expect([...table.values()].map((r) => r.id)).toEqual(keys);
        for (const [key, m] of model) expect(plain(table.get(key)!)).toEqual(m);
        // The order of keys() depends only on the ids and their order of adding: a table
        // rebuilt in that order (as from a snapshot) iterates the same way.
        const rebuilt = new ReservationTable();
        for (const key of keys) rebuilt.add({ ...model.get(key)!, lines: [] });
        expect([...rebuilt.keys()]).toEqual(keys);
        // The expiry timer holds exactly the held reservations and yields them by expiresAt.
        const held = [...model.values()].filter((m) => m.status === 'held');
        expect(table.scheduledExpiries).toBe(held.length);
        let previous = Number.NEGATIVE_INFINITY;
        for (let n = 0; n < held.length; n++) {
          const due = table.nextToExpire()!;
          const m = model.get(due)!;
          expect(m.status).toBe('held');
          expect(table.nextExpiryAt()).toBe(m.expiresAt);
          expect(m.expiresAt).toBeGreaterThanOrEqual(previous);
          previous = m.expiresAt;
          table.get(due)!.status = 'expired';
        }
        expect(table.nextToExpire()).toBeUndefined();
        expect(table.nextExpiryAt()).toBe(Number.POSITIVE_INFINITY);
      }),
    );
  });

  it('reuses the slots and lines of deleted reservations, and grows past its first capacity', () => {
    const table = new ReservationTable();
    const init = (n: number): ReservationInit => ({
      id: `r${n}`,
      orderId: null,
      channel: null,
      bodyHash: n,
      createdAt: n,
      expiresAt: n + 1,
      status: 'held',
      finishedAt: 0,
      extensions: 0,
      lines: [{ record: records[n % 4]!, qty: n + 1, held: n + 1, committed: 0 }],
    });
    for (let n = 0; n < 5_000; n++) table.add(init(n));
    for (let n = 0; n < 5_000; n += 2) table.delete(`r${n}`);
    for (let n = 5_000; n < 7_500; n++) table.add(init(n));
    expect(table.size).toBe(5_000);
    for (let n = 1; n < 7_500; n += n < 5_000 ? 2 : 1) {
      const r = table.get(`r${n}`)!;
      expect(r.bodyHash).toBe(n);
      expect(r.lines.map((l) => [l.sku, l.qty])).toEqual([[records[n % 4]!.sku, n + 1]]);
    }
    expect(table.get('r0')).toBeUndefined();
  });

  it('refuses a second reservation with the same id', () => {
    const table = new ReservationTable();
    const init: ReservationInit = {
      id: 'r1',
      orderId: null,
      channel: null,
      bodyHash: 1,
      createdAt: 1,
      expiresAt: 2,
      status: 'held',
      finishedAt: 0,
      extensions: 0,
      lines: [],
    };
    table.add(init);
    expect(() => table.add(init)).toThrow(/added twice/);
  });
});
