/**
 * One shard's logic (ShardCore.processForWire, replies in the compact form a worker sends)
 * driven in this thread, no workers and no WAL: the same reserve/commit/release mix as
 * engine-throughput.ts, in batches of BENCH_CORE_BATCH
 * commands, until BENCH_CORE_COMMANDS commands. It prints the commands/s of the bare
 * decide/evolve loop and the distribution of the time per batch, whose maximum shows any
 * step that grows with the state (a rehash or a copy of a whole table) as a pause.
 *
 *   npm run build && node --expose-gc dist/bench/core-loop.js
 */
import { ShardCore } from '../src/actors/core.js';
import { defaultLimits } from '../src/config.js';
import { Workload } from './engine-throughput.js';
import { describeMachine, envNumber } from './machine.js';

export interface CoreLoopResult {
  readonly commands: number;
  readonly batchSize: number;
  readonly commandsPerSecond: number;
  /** Reservations the shard keeps at the end (held and finished). */
  readonly reservations: number;
  readonly batchMs: {
    readonly p50: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
  /** The slowest batch and how many reservations the shard held when it ran. */
  readonly slowest: { readonly ms: number; readonly atCommand: number; readonly reservations: number };
}

export function runCoreLoop(commands: number, batchSize: number, skus = 100_000): CoreLoopResult {
  const core = new ShardCore(defaultLimits);
  const now = Date.now();
  for (let i = 0; i < skus; i += 1_000) {
    const sets = Array.from({ length: Math.min(1_000, skus - i) }, (_, j) => ({
      type: 'set' as const,
      sku: `SKU-${i + j}`,
      location: 'WH1',
      onHand: defaultLimits.quantityMax,
    }));
    core.process(sets, now);
  }
  const workload = new Workload({ skus, hotSku: false });
  const times = new Float64Array(Math.ceil(commands / batchSize));
  let slowest = { ms: 0, atCommand: 0, reservations: 0 };
  const started = performance.now();
  for (let done = 0, b = 0; done < commands; done += batchSize, b++) {
    const batch = workload.wave(batchSize);
    const t0 = performance.now();
    // One simulated millisecond per thousand commands: nothing expires within the run.
    core.processForWire(batch, now + done / 1_000);
    const ms = performance.now() - t0;
    times[b] = ms;
    if (ms > slowest.ms) slowest = { ms, atCommand: done, reservations: core.state.reservations.size };
  }
  const elapsed = performance.now() - started;
  times.sort();
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(times.length * q))]!;
  return {
    commands,
    batchSize,
    commandsPerSecond: Math.round((commands / elapsed) * 1_000),
    reservations: core.state.reservations.size,
    batchMs: { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: times[times.length - 1]! },
    slowest,
  };
}

/**
 * The machine's yardstick for the loop: ns per lookup of a present key, in a random order,
 * in one Map of `entries` short string ids (the shape of the reservation index). A shard
 * keeps every reservation of the retention window, so its commands look up tables far
 * larger than the CPU caches; this figure is the cost of one such miss on this machine.
 */
export function mapLookupNs(entries: number): number {
  const ids: string[] = new Array(entries);
  const map = new Map<string, number>();
  for (let i = 0; i < entries; i++) {
    ids[i] = `r${i}`;
    map.set(ids[i]!, i);
  }
  // A stride coprime with the size visits every key once, far from the last.
  const stride = 7_919;
  let found = 0;
  const started = performance.now();
  for (let i = 0, j = 0; i < entries; i++, j = (j + stride) % entries)
    if (map.get(ids[j]!) !== undefined) found++;
  const ns = ((performance.now() - started) * 1e6) / entries;
  if (found !== entries) throw new Error('lookup yardstick lost keys');
  return ns;
}

export function formatCoreLoop(r: CoreLoopResult): string {
  const f = (ms: number): string => ms.toFixed(3);
  return (
    `core loop  ${r.commands.toLocaleString('en-US')} commands in batches of ${r.batchSize}: ` +
    `${r.commandsPerSecond.toLocaleString('en-US')} commands/s · time per batch p50 ${f(r.batchMs.p50)} ms ` +
    `p99 ${f(r.batchMs.p99)} p999 ${f(r.batchMs.p999)} max ${f(r.batchMs.max)} ms ` +
    `(slowest at command ${r.slowest.atCommand.toLocaleString('en-US')}, ${r.slowest.reservations.toLocaleString('en-US')} reservations kept)`
  );
}

export async function main(): Promise<void> {
  console.log(`shard core loop (one thread, no WAL) — ${describeMachine()}`);
  const result = runCoreLoop(envNumber('BENCH_CORE_COMMANDS', 4_000_000), envNumber('BENCH_CORE_BATCH', 100));
  console.log(formatCoreLoop(result));
  const entries = envNumber('BENCH_LOOKUP_ENTRIES', 1_000_000);
  const ns = mapLookupNs(entries);
  console.log(
    `yardstick  a random lookup in a Map of ${entries.toLocaleString('en-US')} ids: ${ns.toFixed(0)} ns; ` +
      `the loop spends ${(1e9 / result.commandsPerSecond).toFixed(0)} ns per command (${(1e9 / result.commandsPerSecond / ns).toFixed(1)} such lookups)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
