/**
 * Durability benchmarks (no HTTP), each on the real stores:
 *
 *   throughput  durable engine commands/s by batch size (wave size), PostgreSQL and PGlite:
 *               a closed loop of reserve/commit/release waves, every reply after its COMMIT;
 *               then the round trip at half that rate, open loop (HDR, from the scheduled
 *               send, so coordinated omission is corrected), after a warm-up at that rate.
 *               The open loop's waves are also split by whether a background snapshot
 *               overlapped them, from send to reply (they run every snapshotEveryEvents events,
 *               every few seconds at these rates; BENCH_SNAPSHOT_EVENTS overrides it)
 *   recovery    replay speed and time to ready: RECORDS stock records, then WAL_EVENTS
 *               events; restart from the WAL alone, then from a snapshot + the tail
 *   stall       what a snapshot costs the shard at RECORDS records: the in-worker image
 *               (mailbox stalled while the image is built) against the background snapshot
 *               built from the WAL (round trips of small batches measured meanwhile, and
 *               for as long again with no snapshot running, the baseline to compare with)
 *   image       the snapshot image's own cost, store-independent, on one thread: a shard
 *               state of RECORDS records plus what WAL_EVENTS events of the workload leave
 *               (held and finished reservations), then imageOf, encode, decode and
 *               mergeImage timed separately (median of 3); a background snapshot pays each
 *               of them on top of its replay
 *
 * Parameters (environment): BENCH_ONLY (throughput,recovery,stall,image), BENCH_STORES
 * (postgres,pglite), BENCH_SECONDS (3), BENCH_WAVES (100,1000,4000), BENCH_RECORDS
 * (1000000), BENCH_WAL_EVENTS (5000000), BENCH_SHARDS (1), BENCH_YOUNG_MB (recovery: the shard
 * workers' young generation, default limits.workerYoungGenerationMb), BENCH_SNAPSHOT_EVENTS
 * (throughput: limits.snapshotEveryEvents, default the engine's), STOCKD_BENCH_DATABASE_URL.
 *
 *   npm run build && node --expose-gc dist/bench/durability.js
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import pg from 'pg';
import { ShardCore } from '../src/actors/core.js';
import { imageOf, mergeImage, type StateImage } from '../src/actors/snapshot.js';
import { ShardState } from '../src/actors/state.js';
import { defaultLimits, type Limits } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { checksumOf, compressSnapshot, decode, encode, inflateSnapshot } from '../src/persistence/codec.js';
import { PgWalStore } from '../src/persistence/pg-store.js';
import { PgliteWalStore } from '../src/persistence/pglite-store.js';
import type { WalStore } from '../src/persistence/wal.js';
import {
  closedLoop,
  formatSnapshotSplit,
  formatWaves,
  openLoop,
  type SnapshotSplit,
  seedStock,
  snapshotSplitOf,
  type ThroughputOptions,
  type WaveSummary,
  Workload,
  waveSummary,
} from './engine-throughput.js';
import { benchGcProfile, describeMachine, envNumber, formatGcPauses, threadGc } from './machine.js';

const defaultDatabaseUrl = process.env.STOCKD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const list = (name: string, fallback: string): string[] =>
  (process.env[name] ?? fallback).split(',').filter(Boolean);

interface OpenedStore {
  readonly store: WalStore;
  reopen(): Promise<WalStore>;
  dispose(): Promise<void>;
}

/** A fresh, empty store of the kind: its own PostgreSQL schema, or a temporary PGlite directory. */
async function freshStore(kind: string, databaseUrl: string): Promise<OpenedStore> {
  if (kind === 'postgres') {
    const schema = `stockd_bench_${process.pid}_${Date.now() % 1_000_000}`;
    const spec = { connectionString: databaseUrl, schema };
    let store: WalStore = await PgWalStore.open(spec);
    return {
      store,
      async reopen() {
        await store.close();
        store = await PgWalStore.open(spec);
        return store;
      },
      async dispose() {
        await store.close().catch(() => undefined);
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await client.end();
      },
    };
  }
  const dir = await mkdtemp(join(tmpdir(), 'stockd-bench-'));
  let store: WalStore = await PgliteWalStore.open({ dataDir: dir });
  return {
    store,
    async reopen() {
      await store.close();
      store = await PgliteWalStore.open({ dataDir: dir });
      return store;
    },
    async dispose() {
      await store.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function ms(histogram: hdr.Histogram, percentile: number): string {
  return (histogram.getValueAtPercentile(percentile) / 1000).toFixed(2);
}

export interface DurableThroughputOptions {
  readonly seconds: number;
  readonly waveSize: number;
  readonly shards: number;
  readonly skus?: number;
  /** limits.snapshotEveryEvents (BENCH_SNAPSHOT_EVENTS); default the engine's own. */
  readonly snapshotEveryEvents?: number;
  /** limits.snapshotCheckMs and snapshotEveryMs; default the engine's own (the smoke test snapshots often). */
  readonly snapshotCheckMs?: number;
  readonly snapshotEveryMs?: number;
}

export interface DurableThroughputResult {
  readonly kind: string;
  readonly options: DurableThroughputOptions;
  /** Saturation: durable commands/s of the closed loop. */
  readonly rate: number;
  /** The open loop's rate: half of saturation. */
  readonly target: number;
  readonly saturatedGc: string;
  readonly ack: WaveSummary;
  /** The waves a background snapshot overlapped (one started before the reply had not finished at the send), and the rest. */
  readonly snapshots: SnapshotSplit;
  /** Background snapshots completed during the whole run, and the last failure. */
  readonly snapshotsTaken: number;
  readonly snapshotError: string | null;
}

/**
 * Durable commands/s of a closed loop of `waveSize`-command waves (after a warm-up), then
 * the acknowledgement round trip at half that rate, open loop; the open loop's waves are
 * also split by whether a background snapshot was running.
 */
export async function durableThroughput(
  kind: string,
  options: DurableThroughputOptions,
  databaseUrl = defaultDatabaseUrl,
): Promise<DurableThroughputResult> {
  const { seconds, waveSize, shards } = options;
  const opened = await freshStore(kind, databaseUrl);
  const limits: Limits = {
    ...defaultLimits,
    snapshotEveryEvents: options.snapshotEveryEvents ?? defaultLimits.snapshotEveryEvents,
    snapshotCheckMs: options.snapshotCheckMs ?? defaultLimits.snapshotCheckMs,
    snapshotEveryMs: options.snapshotEveryMs ?? defaultLimits.snapshotEveryMs,
  };
  const engine = await Engine.start({ store: opened.store, shards, limits, gc: benchGcProfile() });
  try {
    // The engine benchmark's workload and loops, on a durable store.
    const workload: ThroughputOptions = {
      shards,
      skus: options.skus ?? 10_000,
      hotSku: false,
      seconds,
      waveSize,
      latencyWaveSize: waveSize,
      wavesInFlight: 4,
      loadFraction: 0.5,
    };
    await seedStock(engine, workload);
    const waves = new Workload(workload);
    await closedLoop(engine, waves, workload, Math.min(1, seconds / 3));
    const saturatedGc = threadGc();
    const { rate } = await closedLoop(engine, waves, workload, seconds);
    const gc = formatGcPauses(await saturatedGc());
    const target = rate * workload.loadFraction;
    const acks = await openLoop(engine, waves, workload, target, seconds, {
      activity: () => engine.snapshots,
    });
    const result: DurableThroughputResult = {
      kind,
      options,
      rate,
      target,
      saturatedGc: gc,
      ack: waveSummary(acks.all)!,
      snapshots: snapshotSplitOf(acks),
      snapshotsTaken: engine.snapshots.taken.length,
      snapshotError: engine.snapshots.lastError,
    };
    acks.destroy();
    return result;
  } finally {
    await engine.stop();
    await opened.dispose();
  }
}

export function formatDurableThroughput(r: DurableThroughputResult): string {
  const n = (value: number): string => Math.round(value).toLocaleString('en-US');
  return (
    `throughput ${r.kind.padEnd(8)} shards=${r.options.shards} wave=${String(r.options.waveSize).padStart(5)}  ` +
    `${n(r.rate).padStart(9)} durable commands/s   ack at ${n(r.target)}/s: ${formatWaves(r.ack)}\n` +
    `           ${formatSnapshotSplit(r.snapshots, r.ack.waves)}\n` +
    `           saturated: ${r.saturatedGc}`
  );
}

/** BENCH_YOUNG_MB overrides the shard workers' young generation (limits.workerYoungGenerationMb). */
function withYoungGeneration(limits: Limits): Limits {
  const mb = process.env.BENCH_YOUNG_MB;
  return mb === undefined ? limits : { ...limits, workerYoungGenerationMb: Number(mb) };
}

export interface RecoveryResult {
  readonly kind: string;
  readonly shards: number;
  readonly records: number;
  /** WAL events replayed by the restart from the WAL alone. */
  readonly replayed: number;
  readonly loadSeconds: number;
  readonly fromWalSeconds: number;
  readonly fromSnapshotSeconds: number;
}

/**
 * Writes `records` stock records and then commands up to `walEvents` events, and restarts
 * twice: from the WAL alone, then from a snapshot. Both must give the state written.
 */
export async function recovery(
  kind: string,
  records: number,
  walEvents: number,
  shards: number,
  databaseUrl = defaultDatabaseUrl,
): Promise<RecoveryResult> {
  const opened = await freshStore(kind, databaseUrl);
  try {
    // No periodic snapshots while loading: the first restart must replay the WAL alone.
    const noSnapshots = {
      ...withYoungGeneration(defaultLimits),
      snapshotEveryEvents: Number.MAX_SAFE_INTEGER,
      snapshotEveryMs: Number.MAX_SAFE_INTEGER,
    };
    let engine = await Engine.start({
      store: opened.store,
      shards,
      limits: noSnapshots,
      gc: benchGcProfile(),
    });
    const loadStarted = performance.now();
    await seedStock(engine, { hotSku: false, skus: records });
    const workload = new Workload({ hotSku: false, skus: records });
    let events = records;
    while (events < walEvents) {
      const replies = await engine.executeMany(workload.wave(4_000));
      events += replies.length;
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const digest = await engine.digest();
    await engine.stop();
    let store = await opened.reopen();
    let started = performance.now();
    engine = await Engine.start({ store, shards, limits: noSnapshots, gc: benchGcProfile() });
    const fromWal = (performance.now() - started) / 1000;
    const replayed = engine.recovery.reduce((sum, r) => sum + r.eventsApplied, 0);
    if ((await engine.digest()) !== digest) throw new Error('recovered state differs');
    await engine.snapshotInBackground();
    await engine.stop();
    store = await opened.reopen();
    started = performance.now();
    engine = await Engine.start({
      store,
      shards,
      limits: withYoungGeneration(defaultLimits),
      gc: benchGcProfile(),
    });
    const fromSnapshot = (performance.now() - started) / 1000;
    if ((await engine.digest()) !== digest) throw new Error('state recovered from the snapshot differs');
    await engine.stop();
    return {
      kind,
      shards,
      records,
      replayed,
      loadSeconds,
      fromWalSeconds: fromWal,
      fromSnapshotSeconds: fromSnapshot,
    };
  } finally {
    await opened.dispose();
  }
}

export function formatRecovery(r: RecoveryResult): string {
  return (
    `recovery   ${r.kind.padEnd(8)} shards=${r.shards} ${r.records.toLocaleString('en-US')} records, ${r.replayed.toLocaleString('en-US')} WAL events ` +
    `(written in ${r.loadSeconds.toFixed(1)} s): ready from the WAL alone in ${r.fromWalSeconds.toFixed(2)} s ` +
    `(${Math.round(r.replayed / r.fromWalSeconds).toLocaleString('en-US')} events/s), from a snapshot in ${r.fromSnapshotSeconds.toFixed(2)} s`
  );
}

/** What a snapshot costs a shard at `records` records (see the header): one formatted line. */
export async function stall(
  kind: string,
  records: number,
  databaseUrl = defaultDatabaseUrl,
): Promise<string> {
  const opened = await freshStore(kind, databaseUrl);
  const engine = await Engine.start({ store: opened.store, shards: 1, gc: benchGcProfile() });
  try {
    await seedStock(engine, { hotSku: false, skus: records });
    const probe = async (during: Promise<unknown>): Promise<hdr.Histogram> => {
      const histogram = hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: 60_000_000,
        numberOfSignificantValueDigits: 3,
      });
      let finished = false;
      void during.finally(() => {
        finished = true;
      });
      let i = 0;
      while (!finished) {
        const sent = performance.now();
        await engine.execute({
          type: 'adjust',
          sku: `SKU-${i % records}`,
          location: 'WH1',
          delta: 1,
          reason: 'probe',
          key: `probe-${i++}-${sent}`,
        });
        histogram.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)));
        await new Promise((r) => setTimeout(r, 1));
      }
      return histogram;
    };
    // The background snapshot first, while the WAL alone holds the records: it replays them
    // and writes the image. (After another snapshot it would find nothing new to write.)
    const backgroundStarted = performance.now();
    const background = engine.snapshotInBackground();
    const whileBackground = await probe(background);
    const [built] = await background;
    const backgroundMs = performance.now() - backgroundStarted;
    if (built!.bytes === 0) throw new Error('the background snapshot wrote nothing: it measured no snapshot');
    // The same probe for as long again with no snapshot: what the round trips are anyway
    // (GC, the machine's own noise), so the difference is what the snapshot costs.
    const baseline = await probe(new Promise((resolve) => setTimeout(resolve, backgroundMs)));
    const inWorker = engine.snapshotNow();
    const whileImaging = await probe(inWorker);
    const [image] = await inWorker;
    return (
      `stall      ${kind.padEnd(8)} ${records.toLocaleString('en-US')} records: in-worker image stalls the mailbox ${image!.stallMs.toFixed(1)} ms ` +
      `(probe max ${ms(whileImaging, 100)} ms); background snapshot (${(built!.bytes / 1e6).toFixed(1)} MB) from the WAL took ${(built!.millis / 1000).toFixed(2)} s ` +
      `(${(backgroundMs / 1000).toFixed(2)} s with its thread's start), ` +
      `shard round trips meanwhile p50 ${ms(whileBackground, 50)} p99 ${ms(whileBackground, 99)} max ${ms(whileBackground, 100)} ms ` +
      `(${whileBackground.totalCount} probes); with no snapshot, as long: p50 ${ms(baseline, 50)} p99 ${ms(baseline, 99)} max ${ms(baseline, 100)} ms ` +
      `(${baseline.totalCount} probes)`
    );
  } finally {
    await engine.stop();
    await opened.dispose();
  }
}

/** The snapshot image's phases, timed one by one on this thread (see the header). */
export function imageCost(records: number, walEvents: number, rounds = 3): string {
  const core = new ShardCore(defaultLimits);
  let now = Date.now();
  for (let i = 0; i < records; i += 10_000) {
    const sets = [];
    for (let j = i; j < Math.min(records, i + 10_000); j++)
      sets.push({ type: 'set' as const, sku: `SKU-${j}`, location: 'WH1', onHand: 1_000_000_000 });
    core.process(sets, now);
  }
  const workload = new Workload({ hotSku: false, skus: records });
  let events = records;
  while (events < walEvents) {
    now += 1;
    events += core.process(workload.wave(4_000), now).events.length;
  }
  const state = core.state;
  const phases = {
    image: [] as number[],
    encode: [] as number[],
    compress: [] as number[],
    checksum: [] as number[],
    inflate: [] as number[],
    decode: [] as number[],
    merge: [] as number[],
  };
  let packedBytes = 0;
  let bytes = 0;
  for (let round = 0; round < rounds; round++) {
    (globalThis as { gc?: () => void }).gc?.();
    let t = performance.now();
    const lap = (phase: keyof typeof phases): void => {
      const at = performance.now();
      phases[phase].push(at - t);
      t = at;
    };
    const image = imageOf(state);
    lap('image');
    const packed = encode(image);
    lap('encode');
    const payload = compressSnapshot(packed);
    lap('compress');
    checksumOf(payload);
    lap('checksum');
    const inflated = inflateSnapshot(payload);
    lap('inflate');
    const decoded = decode<StateImage>(inflated);
    lap('decode');
    mergeImage(new ShardState(defaultLimits), decoded);
    lap('merge');
    packedBytes = packed.byteLength;
    bytes = payload.byteLength;
  }
  const median = (values: number[]): number => values.sort((a, b) => a - b)[values.length >> 1]!;
  const total = Object.values(phases).reduce((sum, values) => sum + median(values), 0);
  return (
    `image      ${records.toLocaleString('en-US')} records, ${state.reservations.size.toLocaleString('en-US')} reservations ` +
    `(${state.heldCount.toLocaleString('en-US')} held), ${(packedBytes / 1e6).toFixed(1)} MB, ${(bytes / 1e6).toFixed(1)} MB compressed: ` +
    Object.entries(phases)
      .map(([phase, values]) => `${phase} ${median(values).toFixed(0)} ms`)
      .join(', ') +
    `; ${total.toFixed(0)} ms in all (median of ${rounds})`
  );
}

export async function main(): Promise<void> {
  const only = list('BENCH_ONLY', 'throughput,recovery,stall,image');
  const stores = list('BENCH_STORES', 'postgres,pglite');
  const shards = envNumber('BENCH_SHARDS', 1);
  console.log(`durability (gc ${benchGcProfile()}) — ${describeMachine()}`);
  for (const kind of stores) {
    if (only.includes('throughput')) {
      for (const waveSize of list('BENCH_WAVES', '100,1000,4000').map(Number)) {
        const result = await durableThroughput(kind, {
          seconds: envNumber('BENCH_SECONDS', 3),
          waveSize,
          shards,
          snapshotEveryEvents: envNumber('BENCH_SNAPSHOT_EVENTS', defaultLimits.snapshotEveryEvents),
        });
        console.log(formatDurableThroughput(result));
      }
    }
    if (only.includes('recovery')) {
      const records = envNumber('BENCH_RECORDS', 1_000_000);
      console.log(
        formatRecovery(await recovery(kind, records, envNumber('BENCH_WAL_EVENTS', 5_000_000), shards)),
      );
    }
    if (only.includes('stall')) console.log(await stall(kind, envNumber('BENCH_RECORDS', 1_000_000)));
  }
  if (only.includes('image'))
    console.log(imageCost(envNumber('BENCH_RECORDS', 1_000_000), envNumber('BENCH_WAL_EVENTS', 5_000_000)));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
