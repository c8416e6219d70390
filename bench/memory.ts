/**
 * Heap bytes per stock record, measured at `BENCH_RECORDS` records (default 1,000,000)
 * in a ShardState, for two shapes: one location per SKU (the worst case: one Map entry
 * and one key string per record) and four locations per SKU.
 *
 * Run with --expose-gc for a clean measurement (npm run bench does).
 */
import { evolve } from '../src/actors/evolve.js';
import { ShardState } from '../src/actors/state.js';
import { defaultLimits } from '../src/config.js';
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
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
