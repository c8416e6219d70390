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
import { IdIndex } from '../src/actors/id-index.js';
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

export interface LookupYardstick {
  /** ns per lookup of a present id in one Map of `entries` ids. */
  readonly mapNs: number;
  /** The same lookups in the reservation table's id index (id-index.ts). */
  readonly indexNs: number;
  /** The same lookups of ids the index does not hold (a new reservation's first step). */
  readonly indexMissNs: number;
}

/**
 * The machine's yardstick for the loop: ns per lookup of a present key, in a random order,
 * in one Map of `entries` short string ids. A shard keeps every reservation of the
 * retention window, so its commands look up tables far larger than the CPU caches; the
 * Map's figure is the cost of a few such misses on this machine. The same lookups in the
 * reservation index (open addressing over typed arrays), and lookups of absent ids there,
 * are timed alongside, so the two structures compare within one run.
 */
export function lookupYardstick(entries: number): LookupYardstick {
  const ids: string[] = new Array(entries);
  const map = new Map<string, number>();
  const index = new IdIndex({ matches: (slot: number, id: string) => ids[slot] === id });
  for (let i = 0; i < entries; i++) {
    ids[i] = `r${i}`;
    map.set(ids[i]!, i);
    index.add(ids[i]!, i);
  }
  // Fresh strings for each, as decoded from a request: no hash cached in them yet.
  const fresh = (): string[] => Array.from({ length: entries }, (_, i) => `r${i}`);
  const absent = Array.from({ length: entries }, (_, i) => `x${i}`);
  // A stride coprime with the size visits every key once, far from the last.
  const stride = 7_919;
  const timed = (lookup: (id: string) => boolean, keys: readonly string[]): number => {
    let found = 0;
    const started = performance.now();
    for (let i = 0, j = 0; i < entries; i++, j = (j + stride) % entries) if (lookup(keys[j]!)) found++;
    const ns = ((performance.now() - started) * 1e6) / entries;
    if (found !== (keys === absent ? 0 : entries)) throw new Error('lookup yardstick lost keys');
    return ns;
  };
  const mapNs = timed((id) => map.get(id) !== undefined, fresh());
  const indexNs = timed((id) => index.get(id) !== -1, fresh());
  const indexMissNs = timed((id) => index.get(id) !== -1, absent);
  return { mapNs, indexNs, indexMissNs };
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
  const y = lookupYardstick(entries);
  console.log(
    `yardstick  a random lookup in a Map of ${entries.toLocaleString('en-US')} ids: ${y.mapNs.toFixed(0)} ns; ` +
      `the loop spends ${(1e9 / result.commandsPerSecond).toFixed(0)} ns per command (${(1e9 / result.commandsPerSecond / y.mapNs).toFixed(1)} such lookups)`,
  );
  console.log(
    `id index   the same lookups in the reservation id index: ${y.indexNs.toFixed(0)} ns (${(y.indexNs / y.mapNs).toFixed(2)}× the Map); ` +
      `an absent id: ${y.indexMissNs.toFixed(0)} ns`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
