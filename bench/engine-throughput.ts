/**
 * Engine throughput with the in-memory WAL and real worker threads (no HTTP).
 *
 * Workload: a mix of reserve (new id, qty 1), commit and release of earlier reservations,
 * in waves of `waveSize` commands sent with Engine.executeMany. Two phases per scenario:
 *   1. saturation — closed loop, `wavesInFlight` waves outstanding: the maximum rate;
 *   2. latency — open loop at `loadFraction` of that rate: waves leave on a fixed
 *      schedule whatever the replies do, and each wave's round trip is measured from
 *      its *scheduled* start, which corrects for coordinated omission. A warm-up at the
 *      same rate (a third of BENCH_SECONDS, at most 1 s) runs first and is not counted:
 *      the engine settles from the saturated phase before it.
 * Round trips go into an HDR histogram (hdr-histogram-js).
 *
 * The latency phase sends smaller waves (BENCH_LATENCY_WAVE, default 100 commands: a burst of
 * concurrent client requests) than the saturation phase (BENCH_WAVE, default 2,000), because a
 * wave's round trip grows with its size.
 *
 * BENCH_RATES (e.g. 5000,20000,50000) adds open-loop runs at those fixed rates, to see where
 * the tail bends below saturation; BENCH_YOUNG_MB overrides the shard workers' young
 * generation (limits.workerYoungGenerationMb) to compare GC settings. The open loop at half of
 * saturation is also split by whether a background snapshot overlapped each wave (as in
 * durability.js); BENCH_SNAPSHOT_EVENTS sets limits.snapshotEveryEvents, and a value out of
 * reach (1000000000000) runs with none. BENCH_REMEMBERED (default 0)
 * fills the router's reservation directory with that many ids of earlier reservations before
 * the run, as a router over two or more shards holds after a day of traffic (it keeps every id
 * for the longest TTL plus the retention window); with one shard there is no directory.
 *
 * Parameters (environment): BENCH_SECONDS, BENCH_SKUS, BENCH_WAVE, BENCH_LATENCY_WAVE,
 * BENCH_INFLIGHT, BENCH_SHARDS, BENCH_RATES, BENCH_YOUNG_MB, BENCH_SNAPSHOT_EVENTS, BENCH_REMEMBERED, BENCH_SATURATION (0: skip
 * the saturation phase and the open loop at half of it, run only BENCH_RATES); STOCKD_GC=v8 runs the engine on V8's own
 * garbage-collector settings instead of the latency profile (src/engine/gc-profile.ts).
 */
import * as hdr from 'hdr-histogram-js';
import type { Reply, Request } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { MemoryWalStore } from '../src/persistence/memory-store.js';
import { benchGcProfile, describeMachine, envNumber } from './machine.js';

export interface ThroughputOptions {
  readonly shards: number;
  readonly skus: number;
  /** All reservations on one SKU instead of spread uniformly. */
  readonly hotSku: boolean;
  readonly seconds: number;
  readonly waveSize: number;
  /** Commands per wave in the open-loop latency phase (a burst of concurrent client requests). */
  readonly latencyWaveSize: number;
  readonly wavesInFlight: number;
  readonly loadFraction: number;
  /** Extra open-loop runs at these fixed rates (commands/s). */
  readonly rates?: readonly number[];
  /** Overrides limits.workerYoungGenerationMb. */
  readonly youngGenerationMb?: number;
  /** Overrides limits.snapshotEveryEvents (a value out of reach: no background snapshot). */
  readonly snapshotEveryEvents?: number;
  /** Overrides limits.snapshotCheckMs (the smoke test snapshots often). */
  readonly snapshotCheckMs?: number;
  /** Ids of earlier reservations in the router's directory before the run (shards > 1). */
  readonly remembered?: number;
  /**
   * false: skip the saturation phase and the open loop at `loadFraction` of it; only the
   * fixed `rates` run (after the same warm-up). Default true.
   */
  readonly saturation?: boolean;
}

export interface RoundTrip {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Round-trip percentiles of a set of waves, and how many. */
export type WaveSummary = RoundTrip & { readonly waves: number };

/** The open loop's waves split by whether a background snapshot overlapped them (OpenLoopResult). */
export interface SnapshotSplit {
  readonly during: WaveSummary | null;
  readonly without: WaveSummary | null;
  /** Background snapshot jobs that overlapped the measured waves. */
  readonly overlapped: number;
}

export interface ThroughputResult {
  readonly scenario: string;
  readonly shards: number;
  /** The saturation phase's figures; null when it was skipped (ThroughputOptions.saturation). */
  readonly commandsPerSecond: number | null;
  readonly commands: number | null;
  readonly rejected: number | null;
  readonly latencyRate: number | null;
  readonly latencyWaveSize: number;
  readonly roundTripMs: RoundTrip | null;
  /** The open loop at `loadFraction` split by background snapshots (null when it did not run). */
  readonly snapshots: SnapshotSplit | null;
  /** Open-loop round trips at the fixed rates asked for (ThroughputOptions.rates). */
  readonly atRates: ReadonlyArray<{ readonly rate: number; readonly roundTripMs: RoundTrip }>;
  readonly walRows: number;
  readonly eventsPerRow: number;
}

/** Builds waves of mixed commands; remembers held ids so commits and releases hit real reservations. */
export class Workload {
  private nextId = 0;
  private readonly held: string[] = [];
  private heldHead = 0;
  constructor(private readonly options: Pick<ThroughputOptions, 'hotSku' | 'skus'>) {}

  wave(size: number): Request[] {
    const wave: Request[] = new Array(size);
    for (let i = 0; i < size; i++) {
      const roll = i % 4;
      const available = this.held.length - this.heldHead;
      if (roll >= 2 && available > 0) {
        const reservationId = this.held[this.heldHead++]!;
        wave[i] = roll === 2 ? { type: 'commit', reservationId } : { type: 'release', reservationId };
        continue;
      }
      const id = `r${this.nextId++}`;
      const sku = this.options.hotSku ? 'HOT' : `SKU-${this.nextId % this.options.skus}`;
      wave[i] = {
        type: 'reserve',
        reservationId: id,
        lines: [{ sku, qty: 1, location: 'WH1' }],
        ttlSeconds: 3600,
      };
      this.held.push(id);
    }
    if (this.heldHead > 100_000) {
      this.held.splice(0, this.heldHead);
      this.heldHead = 0;
    }
    return wave;
  }
}

/**
 * Enters `count` ids of earlier reservations in the router's directory, spread over the
 * shards, as the directory stands after a day of traffic (it is loaded the way a restart
 * loads it). With one shard the router keeps no directory, so this does nothing.
 */
export function rememberEarlierReservations(engine: Engine, count: number): void {
  if (engine.shardCount < 2) return;
  for (let from = 0; from < count; from += 100_000) {
    const indexes = Array.from({ length: engine.shardCount }, () => [] as Array<[string, number]>);
    for (let i = from; i < Math.min(count, from + 100_000); i++)
      indexes[i % engine.shardCount]!.push([`earlier-${String(i).padStart(10, '0')}`, i]);
    engine.loadDirectoryFrom(indexes);
  }
}

/** Stock for every SKU the workload uses, large enough that reservations never run out. */
export async function seedStock(
  engine: Engine,
  options: Pick<ThroughputOptions, 'hotSku' | 'skus'>,
): Promise<void> {
  const skus = options.hotSku ? ['HOT'] : Array.from({ length: options.skus }, (_, i) => `SKU-${i}`);
  for (let i = 0; i < skus.length; i += 10_000) {
    const replies = await engine.executeMany(
      skus.slice(i, i + 10_000).map((sku) => ({ type: 'set', sku, location: 'WH1', onHand: 1_000_000_000 })),
    );
    for (const reply of replies)
      if (!reply.ok) throw new Error(`seeding stock: ${reply.code} ${reply.detail}`);
  }
}

export async function runThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const store = new MemoryWalStore();
  const limits = {
    ...defaultLimits,
    ...(options.youngGenerationMb === undefined
      ? {}
      : { workerYoungGenerationMb: options.youngGenerationMb }),
    ...(options.snapshotEveryEvents === undefined
      ? {}
      : { snapshotEveryEvents: options.snapshotEveryEvents }),
    ...(options.snapshotCheckMs === undefined ? {} : { snapshotCheckMs: options.snapshotCheckMs }),
  };
  const engine = await Engine.start({ store, shards: options.shards, limits, gc: benchGcProfile() });
  try {
    await seedStock(engine, options);
    rememberEarlierReservations(engine, options.remembered ?? 0);
    const workload = new Workload(options);
    // Warm-up: let V8 optimise the hot paths before measuring.
    await closedLoop(engine, workload, options, Math.min(1, options.seconds / 4));
    const saturation =
      options.saturation === false ? null : await closedLoop(engine, workload, options, options.seconds);
    const latencyRate = saturation === null ? null : saturation.rate * options.loadFraction;
    const atHalf =
      latencyRate === null
        ? null
        : await openLoop(engine, workload, options, latencyRate, options.seconds, {
            activity: () => engine.snapshots,
          });
    const atRates = [];
    for (const rate of options.rates ?? []) {
      const fixed = await openLoop(engine, workload, options, rate, options.seconds);
      atRates.push({ rate, roundTripMs: roundTripOf(fixed.all) });
      fixed.destroy();
    }
    const totals = store.totals();
    const result: ThroughputResult = {
      scenario: options.hotSku ? 'hot-sku' : 'uniform',
      shards: options.shards,
      commandsPerSecond: saturation === null ? null : Math.round(saturation.rate),
      commands: saturation?.commands ?? null,
      rejected: saturation?.rejected ?? null,
      latencyRate: latencyRate === null ? null : Math.round(latencyRate),
      latencyWaveSize: options.latencyWaveSize,
      roundTripMs: atHalf === null ? null : roundTripOf(atHalf.all),
      snapshots: atHalf === null ? null : snapshotSplitOf(atHalf),
      atRates,
      walRows: totals.rows,
      eventsPerRow: Math.round(totals.events / Math.max(1, totals.rows)),
    };
    atHalf?.destroy();
    return result;
  } finally {
    await engine.stop();
  }
}

export function roundTripOf(histogram: hdr.Histogram): RoundTrip {
  return {
    p50: histogram.getValueAtPercentile(50) / 1000,
    p90: histogram.getValueAtPercentile(90) / 1000,
    p99: histogram.getValueAtPercentile(99) / 1000,
    p999: histogram.getValueAtPercentile(99.9) / 1000,
    max: histogram.maxValue / 1000,
  };
}

export const waveSummary = (histogram: hdr.Histogram): WaveSummary | null =>
  histogram.totalCount === 0 ? null : { ...roundTripOf(histogram), waves: histogram.totalCount };

export function snapshotSplitOf(result: OpenLoopResult): SnapshotSplit {
  return {
    during: waveSummary(result.marked),
    without: waveSummary(result.unmarked),
    overlapped: result.overlappingRuns,
  };
}

export const formatWaves = (r: WaveSummary): string =>
  `p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} p999 ${r.p999.toFixed(2)} ms (${r.waves.toLocaleString('en-US')} waves)`;

/** One line: the round trips of the waves a background snapshot overlapped, and of the rest. */
export function formatSnapshotSplit(split: SnapshotSplit, totalWaves: number): string {
  if (split.during === null) return 'no background snapshot ran meanwhile';
  const share = Math.round((100 * split.during.waves) / Math.max(1, totalWaves));
  return (
    `while a background snapshot ran (${split.overlapped} of them, ${share}% of the waves): ${formatWaves(split.during)}; ` +
    (split.without === null ? 'no wave without one' : `without: ${formatWaves(split.without)}`)
  );
}

export async function closedLoop(
  engine: Engine,
  workload: Workload,
  options: ThroughputOptions,
  seconds: number,
): Promise<{ rate: number; commands: number; rejected: number }> {
  const deadline = performance.now() + seconds * 1000;
  let commands = 0;
  let rejected = 0;
  const started = performance.now();
  // Each lane sends its next wave from the callback of the last (Engine.submitMany): a
  // promise per wave would be old by the time its replies arrive and keep them alive
  // through the next scavenges (bench/README.md, "Replies and promises").
  await new Promise<void>((resolve) => {
    let lanes = options.wavesInFlight;
    let sending = false;
    const lane = (replies: readonly Reply[] | null): void => {
      // Replies given before submitMany returned (refused at once): go on from a
      // microtask, not deeper into the stack.
      if (sending) {
        queueMicrotask(() => lane(replies));
        return;
      }
      if (replies !== null) {
        commands += replies.length;
        for (const reply of replies) if (!reply.ok) rejected++;
      }
      if (performance.now() >= deadline) {
        if (--lanes === 0) resolve();
        return;
      }
      sending = true;
      engine.submitMany(workload.wave(options.waveSize), lane);
      sending = false;
    };
    if (lanes <= 0) resolve();
    for (let i = 0; i < options.wavesInFlight; i++) lane(null);
  });
  const elapsed = (performance.now() - started) / 1000;
  return { rate: commands / elapsed, commands, rejected };
}

/** What an open loop measured: every wave, and the waves split by OpenLoopExtras.activity. */
export interface OpenLoopResult {
  readonly all: hdr.Histogram;
  /** The waves that a run of the activity overlapped (none without `activity`). */
  readonly marked: hdr.Histogram;
  /** The other waves. */
  readonly unmarked: hdr.Histogram;
  /** Runs of the activity that overlapped the measured waves (0 without `activity`). */
  readonly overlappingRuns: number;
  destroy(): void;
}

/** Runs of some background activity so far: started, and finished (a run in between is under way). */
export interface ActivityCounts {
  readonly started: number;
  readonly finished: number;
}

export interface OpenLoopExtras {
  /**
   * Seconds of the same schedule before the measured waves, not counted: the engine
   * settles from what ran before (a saturated closed loop leaves garbage to collect and
   * queues to drain). Default min(1, seconds / 3).
   */
  readonly warmupSeconds?: number;
  /**
   * Counts of an activity whose cost the caller wants apart (the durability benchmark: the
   * background snapshots), read at each wave's send and reply. A wave is marked when a run
   * started before its reply had not finished at its send.
   */
  readonly activity?: () => ActivityCounts;
}

export function latencyHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/**
 * Waves of `latencyWaveSize` commands at `commandsPerSecond`, on a fixed schedule whatever
 * the replies do; each wave's round trip counts from its scheduled send, which corrects for
 * coordinated omission. The schedule's first `warmupSeconds` are not counted
 * (OpenLoopExtras); it runs on without a pause into the measured `seconds`.
 */
export async function openLoop(
  engine: Engine,
  workload: Workload,
  options: ThroughputOptions,
  commandsPerSecond: number,
  seconds: number,
  extras: OpenLoopExtras = {},
): Promise<OpenLoopResult> {
  const warmup = extras.warmupSeconds ?? Math.min(1, seconds / 3);
  const all = latencyHistogram();
  const marked = latencyHistogram();
  const unmarked = latencyHistogram();
  const activity = extras.activity ?? (() => ({ started: 0, finished: 0 }));
  const waveSize = options.latencyWaveSize;
  const intervalMs = (waveSize / commandsPerSecond) * 1000;
  const uncounted = Math.floor((warmup * 1000) / intervalMs);
  const waves = uncounted + Math.max(1, Math.floor((seconds * 1000) / intervalMs));
  // The activity at the first counted send and at the last reply.
  const seen: { first: ActivityCounts | null; last: ActivityCounts | null } = { first: null, last: null };
  const start = performance.now();
  // A timer wakes the generator; it sends every wave whose time has come. It never spins:
  // a busy-waiting generator would take a core from the shards on a small machine. A wave
  // sent late by the timer counts its lateness as latency (measured from its schedule).
  await new Promise<void>((resolve) => {
    let sent = 0;
    let done = 0;
    const tick = (): void => {
      const now = performance.now();
      while (sent < waves && start + sent * intervalMs <= now) {
        const scheduled = start + sent * intervalMs;
        const counted = sent >= uncounted;
        const atSend = counted ? activity() : null;
        if (seen.first === null) seen.first = atSend;
        sent++;
        engine.submitMany(workload.wave(waveSize), () => {
          if (atSend !== null) {
            const micros = Math.max(1, Math.round((performance.now() - scheduled) * 1000));
            all.recordValue(micros);
            seen.last = activity();
            (seen.last.started > atSend.finished ? marked : unmarked).recordValue(micros);
          }
          if (++done === waves) resolve();
        });
      }
      if (sent < waves) setTimeout(tick, Math.max(0, start + sent * intervalMs - performance.now()));
    };
    tick();
  });
  const runs = seen.first === null || seen.last === null ? 0 : seen.last.started - seen.first.finished;
  return {
    all,
    marked,
    unmarked,
    overlappingRuns: runs,
    destroy() {
      all.destroy();
      marked.destroy();
      unmarked.destroy();
    },
  };
}

const formatRoundTrip = (l: RoundTrip): string =>
  `p50 ${l.p50.toFixed(2)} ms p90 ${l.p90.toFixed(2)} p99 ${l.p99.toFixed(2)} p999 ${l.p999.toFixed(2)} max ${l.max.toFixed(2)} ms`;

export function formatThroughput(result: ThroughputResult): string {
  const l = result.roundTripMs;
  const fixed = result.atRates.map(
    ({ rate, roundTripMs }) => `\n    at ${rate.toLocaleString('en-US')}/s: ${formatRoundTrip(roundTripMs)}`,
  );
  const head = `${result.scenario.padEnd(8)} shards=${result.shards}`;
  if (result.commandsPerSecond === null || result.latencyRate === null || l === null)
    return `${head}  saturation not measured (BENCH_SATURATION=0), ${result.latencyWaveSize}-command waves, ${result.eventsPerRow} events/WAL row${fixed.join('')}`;
  const split = result.snapshots;
  const waves = (split?.during?.waves ?? 0) + (split?.without?.waves ?? 0);
  return (
    `${head}  ${result.commandsPerSecond.toLocaleString('en-US')} commands/s` +
    `  (rejected ${result.rejected}, ${result.eventsPerRow} events/WAL row)` +
    `  round trip of ${result.latencyWaveSize}-command waves at ${result.latencyRate.toLocaleString('en-US')}/s: ${formatRoundTrip(l)}` +
    (split === null ? '' : `\n    ${formatSnapshotSplit(split, waves)}`) +
    fixed.join('')
  );
}

export async function main(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 5);
  const base = {
    skus: envNumber('BENCH_SKUS', 100_000),
    seconds,
    waveSize: envNumber('BENCH_WAVE', 2_000),
    latencyWaveSize: envNumber('BENCH_LATENCY_WAVE', 100),
    wavesInFlight: envNumber('BENCH_INFLIGHT', 4),
    loadFraction: 0.5,
    rates: (process.env.BENCH_RATES ?? '').split(',').filter(Boolean).map(Number),
    youngGenerationMb: process.env.BENCH_YOUNG_MB === undefined ? undefined : envNumber('BENCH_YOUNG_MB', 4),
    snapshotEveryEvents: envNumber('BENCH_SNAPSHOT_EVENTS', defaultLimits.snapshotEveryEvents),
    remembered: envNumber('BENCH_REMEMBERED', 0),
    saturation: envNumber('BENCH_SATURATION', 1) !== 0,
  };
  if (!base.saturation && base.rates.length === 0)
    throw new Error('BENCH_SATURATION=0 measures only the fixed rates: set BENCH_RATES too');
  const shardCounts = [1, envNumber('BENCH_SHARDS', 2)];
  console.log(
    `engine throughput (in-memory WAL, real worker threads, gc ${benchGcProfile()}` +
      (base.remembered > 0
        ? `, ${base.remembered.toLocaleString('en-US')} earlier reservation ids in the router's directory with 2+ shards`
        : '') +
      `) — ${describeMachine()}`,
  );
  for (const hotSku of [false, true]) {
    for (const shards of shardCounts) {
      console.log(formatThroughput(await runThroughput({ ...base, shards, hotSku })));
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
