/**
 * `stockd replay`: rebuild, verify, export and audit a stockd database from its WAL.
 *
 *   stockd replay                              state as of now: positions, counts, digest
 *   stockd replay --to-time 2026-11-20T18:00Z  state as of a time (also --to-seq)
 *   stockd replay --verify                     exit 1 if anything is wrong
 *   stockd replay --export state.ndjson        stock records, open reservations, channels
 *   stockd replay --sku SKU-1 --history        every event that touched a SKU
 *
 * Exit codes: 0 fine, 1 something is wrong (verify found problems, a target before the
 * earliest rebuildable point), 2 usage or connection errors. Opens the store read-only,
 * so it can run next to a serving stockd on PostgreSQL.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { SingleBar } from 'cli-progress';
import { Command, type CommanderError, InvalidArgumentError, Option } from 'commander';
import { Piscina } from 'piscina';
import {
  digestOf,
  EmptyDatabaseError,
  earliestPoint,
  exportLines,
  history,
  type ReplayProgress,
  ReplayRangeError,
  type ReplayTarget,
  rebuild,
  verify,
} from '../engine/replay.js';
import type { DecodeResult, DecodeTask } from '../engine/replay-decode-worker.js';
import { type DurableStore, openStore } from '../persistence/open-store.js';
import type { WalRow } from '../persistence/wal.js';

export const exitCodes = { ok: 0, problems: 1, usage: 2 } as const;

interface ReplayOptions {
  databaseUrl?: string;
  dataDir?: string;
  toSeq?: number | Map<number, number>;
  toTime?: number;
  verify?: boolean;
  export?: string;
  sku?: string;
  history?: boolean;
  json?: boolean;
  threads?: number;
  progress: boolean;
}

/** `--to-seq 500` (every stream) or `--to-seq 0:500,1:420` (per stream). */
export function parseToSeq(value: string): number | Map<number, number> {
  const whole = /^\d+$/;
  if (whole.test(value)) return Number(value);
  const map = new Map<number, number>();
  for (const part of value.split(',')) {
    const [stream, seq] = part.split(':');
    if (stream === undefined || seq === undefined || !whole.test(stream) || !whole.test(seq)) {
      throw new InvalidArgumentError('expected SEQ or STREAM:SEQ[,STREAM:SEQ…], e.g. 500 or 0:500,1:420');
    }
    map.set(Number(stream), Number(seq));
  }
  return map;
}

/** An ISO 8601 time or milliseconds since the epoch. */
export function parseTime(value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new InvalidArgumentError('expected an ISO 8601 time or milliseconds since the epoch');
  return ms;
}

function parseThreads(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1 || n > 64)
    throw new InvalidArgumentError('expected a whole number 1..64');
  return n;
}

export function replayCommand(): Command {
  const command = new Command('replay')
    .description('rebuild, verify, export or audit the state from the write-ahead log (read-only)')
    .addOption(
      new Option('--database-url <url>', 'PostgreSQL URL (otherwise the PGlite data directory)').env(
        'DATABASE_URL',
      ),
    )
    .addOption(
      new Option('--data-dir <dir>', 'PGlite data directory').env('STOCKD_DATA_DIR').default('./data'),
    )
    .option('--to-seq <seq>', 'rebuild as of this WAL seq: SEQ for every stream, or STREAM:SEQ,…', parseToSeq)
    .option('--to-time <time>', 'rebuild as of this time (ISO 8601 or ms since the epoch)', parseTime)
    .option(
      '--verify',
      'check rows, checksums, snapshots against the WAL and invariants; exit 1 on any problem',
    )
    .option(
      '--export <file>',
      'write stock records, open reservations and channels as NDJSON ("-" for stdout)',
    )
    .option('--sku <sku>', 'the SKU for --history')
    .option('--history', 'print every event that touched --sku, with time and cause')
    .option('--json', 'print the summary as JSON')
    .option('--threads <n>', 'threads decoding the WAL during --verify (default: cores − 1)', parseThreads)
    .option('--no-progress', 'no progress bar')
    .action(async (options: ReplayOptions) => {
      process.exitCode = await runReplay(options);
    });
  command.exitOverride((error: CommanderError) => {
    // Commander has printed the message; usage errors exit 2 (the tool's contract), --help 0.
    process.exit(error.exitCode === 0 ? exitCodes.ok : exitCodes.usage);
  });
  return command;
}

export async function runReplay(options: ReplayOptions): Promise<number> {
  if (options.history && options.sku === undefined) {
    console.error('stockd replay: --history needs --sku SKU');
    return exitCodes.usage;
  }
  if (options.verify && (options.toSeq !== undefined || options.toTime !== undefined)) {
    console.error('stockd replay: --verify checks the whole log; it takes no --to-seq or --to-time');
    return exitCodes.usage;
  }
  let store: DurableStore;
  try {
    store = await openStore({
      ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
      ...(options.dataDir ? { dataDir: options.dataDir } : {}),
      readOnly: true,
    });
  } catch (error) {
    console.error(`stockd replay: cannot open the store: ${messageOf(error)}`);
    return exitCodes.usage;
  }
  const bar = options.progress && process.stderr.isTTY ? new ProgressBar() : null;
  try {
    // History prints as it goes: a bar on the same terminal would interleave with it.
    if (options.history) return await printHistory(store, options.sku!, process.stdout.isTTY ? null : bar);
    if (options.verify) return await runVerify(store, options, bar);
    return await runRebuild(store, options, bar);
  } catch (error) {
    bar?.stop();
    if (error instanceof ReplayRangeError || error instanceof EmptyDatabaseError) {
      console.error(`stockd replay: ${error.message}`);
      return exitCodes.problems;
    }
    console.error(`stockd replay: ${messageOf(error)}`);
    return exitCodes.usage;
  } finally {
    bar?.stop();
    await store.close();
  }
}

async function runRebuild(
  store: DurableStore,
  options: ReplayOptions,
  bar: ProgressBar | null,
): Promise<number> {
  const target: ReplayTarget = {
    ...(options.toSeq !== undefined ? { toSeq: options.toSeq } : {}),
    ...(options.toTime !== undefined ? { toTime: options.toTime } : {}),
  };
  await bar?.start(store);
  const rebuilt = await rebuild(store, { ...target, ...(bar ? { onProgress: bar.update } : {}) });
  bar?.stop();
  const earliest = await Promise.all(
    rebuilt.positions.map(async (p) => (await earliestPoint(store, rebuilt.layout, p.stream)).description),
  );
  const summary = {
    store: store.describe(),
    layout: rebuilt.layout,
    target: {
      toSeq: options.toSeq instanceof Map ? Object.fromEntries(options.toSeq) : (options.toSeq ?? null),
      toTime: options.toTime === undefined ? null : new Date(options.toTime).toISOString(),
    },
    shards: rebuilt.positions.map((p, i) => ({
      shard: p.stream,
      seq: p.seq,
      at: p.at === 0 ? null : new Date(p.at).toISOString(),
      from: p.fromSnapshot ? `snapshot at seq ${p.fromSeq}` : 'start of the log',
      earliestPoint: earliest[i],
      records: rebuilt.shards[i]!.recordCount,
      heldReservations: rebuilt.shards[i]!.heldCount,
    })),
    rows: rebuilt.rows,
    events: rebuilt.events,
    eventsPerSecond: Math.round(rebuilt.events / Math.max(rebuilt.millis / 1000, 1e-3)),
    digest: digestOf(rebuilt.shards),
  };
  if (options.export !== undefined) {
    const lines = await writeLines(options.export, exportLines(rebuilt));
    if (options.export !== '-') console.error(`exported ${lines} lines to ${options.export}`);
  }
  if (options.export === '-') return exitCodes.ok;
  if (options.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(`store    ${summary.store}`);
    console.log(`layout   ${rebuilt.layout.shardCount} shard(s), epoch ${rebuilt.layout.epoch}`);
    for (const shard of summary.shards) {
      console.log(
        `shard ${shard.shard}  seq ${shard.seq} (${shard.at ?? 'nothing applied'}) from ${shard.from}; ` +
          `${shard.records} records, ${shard.heldReservations} held; earliest rebuildable point: ${shard.earliestPoint}`,
      );
    }
    console.log(
      `replayed ${summary.rows} rows, ${summary.events} events (${summary.eventsPerSecond.toLocaleString('en-US')} events/s)`,
    );
    console.log(`digest   ${summary.digest}`);
  }
  return exitCodes.ok;
}

async function runVerify(
  store: DurableStore,
  options: ReplayOptions,
  bar: ProgressBar | null,
): Promise<number> {
  const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
  const pool =
    threads > 1
      ? new Piscina<DecodeTask, DecodeResult[]>({
          filename: decodeWorkerUrl.href,
          maxThreads: threads,
          minThreads: 1,
        })
      : null;
  try {
    await bar?.start(store);
    const decodeRows = pool
      ? (rows: WalRow[]) => pool.run({ seqs: rows.map((r) => r.seq), payloads: rows.map((r) => r.payload) })
      : undefined;
    const report = await verify(store, {
      ...(decodeRows ? { decodeRows } : {}),
      ...(bar ? { onProgress: bar.update } : {}),
    });
    bar?.stop();
    if (options.json) console.log(JSON.stringify({ store: store.describe(), ...report }, null, 2));
    else {
      console.log(`store    ${store.describe()}`);
      for (const s of report.streams)
        console.log(
          `stream ${s.stream}  rows ${s.rows} (seq ${s.firstSeq ?? '-'}..${s.lastSeq}), ${s.events} events`,
        );
      for (const s of report.snapshots)
        console.log(
          `snapshot shard ${s.shard} seq ${s.seq}: checksum ${s.checksumOk ? 'ok' : 'BAD'}, ` +
            `WAL agreement ${s.agreesWithWal === null ? 'not checked' : s.agreesWithWal ? 'ok' : 'DIFFERS'}`,
        );
      for (const note of report.notes) console.log(`note     ${note}`);
      for (const problem of report.problems) console.log(`PROBLEM  ${problem}`);
      console.log(
        report.ok ? `verify   ok, digest ${report.digest}` : `verify   ${report.problems.length} problem(s)`,
      );
    }
    return report.ok ? exitCodes.ok : exitCodes.problems;
  } finally {
    await pool?.destroy();
  }
}

async function printHistory(store: DurableStore, sku: string, bar: ProgressBar | null): Promise<number> {
  await bar?.start(store);
  let count = 0;
  for await (const entry of history(store, sku, bar ? { onProgress: bar.update } : {})) {
    count++;
    console.log(
      `${entry.at}  ${String(entry.stream).padStart(2)}:${entry.seq}  ${entry.event.padEnd(20)}` +
        `${entry.location === undefined ? '' : ` @${entry.location}`}  ${entry.cause}`,
    );
  }
  bar?.stop();
  if (count === 0) console.error(`no event touched ${sku}`);
  return exitCodes.ok;
}

async function writeLines(file: string, lines: Iterable<string>): Promise<number> {
  const out = file === '-' ? process.stdout : createWriteStream(file);
  let count = 0;
  for (const line of lines) {
    count++;
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  }
  if (out !== process.stdout) {
    out.end();
    await once(out, 'finish');
  }
  return count;
}

/** A progress bar over the WAL rows to read (stderr, only on a terminal). */
class ProgressBar {
  private readonly bar = new SingleBar({
    format: 'replay [{bar}] {percentage}% | {value}/{total} rows | {events} events | stream {stream}',
    stream: process.stderr,
    hideCursor: true,
  });
  private started = false;

  async start(store: DurableStore): Promise<void> {
    const layout = await store.readLayout();
    let total = 0;
    for (let stream = 0; stream < (layout?.shardCount ?? 0); stream++) total += await store.lastSeq(stream);
    this.bar.start(Math.max(total, 1), 0, { events: 0, stream: 0 });
    this.started = true;
  }

  readonly update: ReplayProgress = ({ rows, events, stream }) => {
    if (this.started) this.bar.update(rows, { events, stream });
  };

  stop(): void {
    if (this.started) this.bar.stop();
    this.started = false;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Compiled worker script; when running from the TypeScript sources, the built copy. */
const decodeWorkerUrl: URL = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/src/engine/replay-decode-worker.js', import.meta.url)
  : new URL('../engine/replay-decode-worker.js', import.meta.url);
