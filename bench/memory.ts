/**
 * Heap bytes per stock record, measured at `BENCH_RECORDS` records (default 1,000,000)
 * in a ShardState, for two shapes: one location per SKU (the worst case: one Map entry
 * and one key string per record) and four locations per SKU; and bytes per kept
 * reservation at `BENCH_RESERVATIONS` (default 1,000,000), in a shard and in the router's
 * directory (the main thread's map of reservation ids to shards, kept with two or more shards).
 *
 * Run with --expose-gc for a clean measurement (npm run bench does).
 */
import { evolve } from '../src/actors/evolve.js';
import { ShardState } from '../src/actors/state.js';
import { defaultLimits } from '../src/config.js';
import { ReservationDirectory } from '../src/engine/directory.js';
import { describeMachine, envNumber } from './machine.js';

export interface MemoryResult {
  readonly shape: string;
  readonly records: number;
  readonly bytesPerRecord: number;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

export function measureRecordMemory(records: number, locationsPerSku: number): MemoryResult {
  collect();
  const before = process.memoryUsage().heapUsed;
  const state = new ShardState(defaultLimits);
  const skus = Math.ceil(records / locationsPerSku);
  const at = Date.UTC(2026, 0, 1);
  for (let s = 0; s < skus; s++) {
    const sku = `SKU-${String(s).padStart(8, '0')}`;
    for (let l = 0; l < locationsPerSku && s * locationsPerSku + l < records; l++) {
      evolve(state, {
        type: 'StockSet',
        at,
        sku,
        location: `WH-${l}`,
        onHand: 100 + (s % 1000),
        safetyStock: s % 3,
        sourceTs: at + s,
      });
    }
  }
  collect();
  const after = process.memoryUsage().heapUsed;
  if (state.recordCount !== records) throw new Error(`built ${state.recordCount} records, wanted ${records}`);
  return {
    shape: `${locationsPerSku} location(s)/SKU`,
    records,
    bytesPerRecord: Math.round((after - before) / records),
  };
}

export interface ReservationMemoryResult {
  readonly reservations: number;
  /** JavaScript heap plus array buffers (the reservation table's columns), per reservation. */
  readonly bytesPerReservation: number;
  readonly heapBytesPerReservation: number;
}

/**
 * Memory per reservation a shard keeps: `count` one-line reservations on 1,000 SKUs, every
 * other one committed (finished reservations stay for the retention window, a day by
 * default, so a shard holds every reservation of the last day).
 */
export function measureReservationMemory(count: number): ReservationMemoryResult {
  const state = new ShardState(defaultLimits);
  const at = Date.UTC(2026, 0, 1);
  const skus = 1_000;
  for (let s = 0; s < skus; s++) {
    const sku = `SKU-${String(s).padStart(8, '0')}`;
    evolve(state, {
      type: 'StockSet',
      at,
      sku,
      location: 'WH-0',
      onHand: 1_000_000_000,
      safetyStock: 0,
      sourceTs: 0,
    });
  }
  collect();
  const before = process.memoryUsage();
  for (let i = 0; i < count; i++) {
    const sku = `SKU-${String(i % skus).padStart(8, '0')}`;
    const reservationId = `order-${String(i).padStart(10, '0')}`;
    evolve(state, {
      type: 'ReservationHeld',
      at,
      reservationId,
      orderId: null,
      channel: null,
      bodyHash: 1_000_003 * i,
      expiresAt: at + 900_000,
      lines: [{ sku, location: 'WH-0', qty: 1 }],
    });
    if (i % 2 === 1) {
      evolve(state, {
        type: 'ReservationCommitted',
        at,
        reservationId,
        lines: [{ sku, location: 'WH-0', qty: 1, released: 0, onHandDecrease: 1 }],
      });
    }
  }
  collect();
  const after = process.memoryUsage();
  if (state.reservations.size !== count)
    throw new Error(`kept ${state.reservations.size} reservations, wanted ${count}`);
  const heap = after.heapUsed - before.heapUsed;
  return {
    reservations: count,
    bytesPerReservation: Math.round((heap + after.arrayBuffers - before.arrayBuffers) / count),
    heapBytesPerReservation: Math.round(heap / count),
  };
}

/**
 * Memory per reservation in the router's directory (src/engine/directory.ts): `count` ids
 * of the same shape as above, each on one of two shards, as a router over two shards
 * remembers them (for the longest TTL plus the retention window).
 */
export function measureDirectoryMemory(count: number): ReservationMemoryResult {
  collect();
  const before = process.memoryUsage();
  const directory = new ReservationDirectory(2);
  const at = Date.UTC(2026, 0, 1);
  for (let i = 0; i < count; i++) {
    directory.set(`order-${String(i).padStart(10, '0')}`, 1_000_003 * i, i % 2 === 0 ? [0] : [1], at + i);
  }
  collect();
  const after = process.memoryUsage();
  if (directory.size !== count) throw new Error(`kept ${directory.size} ids, wanted ${count}`);
  const heap = after.heapUsed - before.heapUsed;
  return {
    reservations: count,
    bytesPerReservation: Math.round((heap + after.arrayBuffers - before.arrayBuffers) / count),
    heapBytesPerReservation: Math.round(heap / count),
  };
}

export async function main(): Promise<void> {
  const records = envNumber('BENCH_RECORDS', 1_000_000);
  console.log(`memory per stock record — ${describeMachine()}`);
  if (!(globalThis as { gc?: () => void }).gc) console.log('(run with --expose-gc for exact figures)');
  for (const locations of [1, 4]) {
    const result = measureRecordMemory(records, locations);
    console.log(
      `${result.shape.padEnd(20)} ${result.records.toLocaleString('en-US')} records: ${result.bytesPerRecord} bytes/record (target <= 300)`,
    );
  }
  const reservations = measureReservationMemory(envNumber('BENCH_RESERVATIONS', 1_000_000));
  console.log(
    `${'reservations'.padEnd(20)} ${reservations.reservations.toLocaleString('en-US')} kept (half held, half committed): ${reservations.bytesPerReservation} bytes/reservation (${reservations.heapBytesPerReservation} of them on the JavaScript heap)`,
  );
  const directory = measureDirectoryMemory(envNumber('BENCH_RESERVATIONS', 1_000_000));
  console.log(
    `${'router directory'.padEnd(20)} ${directory.reservations.toLocaleString('en-US')} ids (shards > 1): ${directory.bytesPerReservation} bytes/reservation (${directory.heapBytesPerReservation} of them on the JavaScript heap)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
