/**
 * WAL append throughput of the durable stores, by payload size, measured the way shard
 * workers append: each stream in a worker thread of its own, one append in flight per
 * stream, each awaited until durable.
 *
 * Two paths per store, side by side:
 *   direct  — the worker's own line (PostgreSQL: its own pool; PGlite: a port straight to
 *             the PGlite thread). What the engine uses.
 *   bridge  — through the comlink bridge to the store in the main thread (one more hop,
 *             and work on the thread that routes every request).
 * `main ELU` is the main thread's event-loop utilisation during the run: the share of
 * the router's thread the path costs. After each store's cases, everything written is read
 * back in recovery's pages (the store side of replay speed).
 *
 * Parameters (environment):
 *   BENCH_STORES         postgres,pglite
 *   BENCH_PATHS          direct,bridge
 *   BENCH_SIZES          payload bytes, default 256,4096,65536,262144,1048576
 *   BENCH_STREAMS        concurrent streams (shard workers), default 2
 *   BENCH_SECONDS        per case, default 2
 *   STOCKD_BENCH_DATABASE_URL   default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_PGLITE_DIR     default: a fresh temporary directory, removed afterwards
 *
 *   npm run build && node dist/bench/store-append.js
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pg from 'pg';
import { PgWalStore } from '../src/persistence/pg-store.js';
import { PgliteWalStore } from '../src/persistence/pglite-store.js';
import { linkStore, type StoreLink, storeFromLink } from '../src/persistence/store-link.js';
import { delegatingStore, type WalStore, walReadPageRows } from '../src/persistence/wal.js';
import { describeMachine, envNumber } from './machine.js';

interface AppenderInit {
  readonly benchStoreAppend: true;
  readonly link: StoreLink;
  readonly stream: number;
  readonly payloadBytes: number;
  readonly seconds: number;
}

interface AppenderResult {
  readonly rows: number;
  readonly latenciesMs: number[];
}

export interface CaseResult {
  readonly store: string;
  readonly path: string;
  readonly streams: number;
  readonly payloadBytes: number;
  readonly rowsPerSecond: number;
  readonly megabytesPerSecond: number;
  readonly appendMsP50: number;
  readonly appendMsP99: number;
  readonly mainThreadUtilisation: number;
}

/** Worker side: append to one stream until the time is up. */
async function appender(init: AppenderInit): Promise<AppenderResult> {
  const store = storeFromLink(init.link);
  const payload = new Uint8Array(randomBytes(init.payloadBytes));
  let seq = await store.lastSeq(init.stream);
  const latenciesMs: number[] = [];
  const deadline = performance.now() + init.seconds * 1_000;
  while (performance.now() < deadline) {
    const started = performance.now();
    await store.append({
      stream: init.stream,
      seq: ++seq,
      epoch: 1,
      at: Date.now(),
      eventCount: Math.max(1, Math.round(init.payloadBytes / 64)),
      payload,
    });
    latenciesMs.push(performance.now() - started);
  }
  await store.close();
  return { rows: latenciesMs.length, latenciesMs };
}

/** A store with no direct line for workers: linkStore then bridges through this thread. */
function bridgedOnly(store: WalStore): WalStore {
  return delegatingStore(store, { close: async () => {} });
}

async function runCase(
  name: string,
  store: WalStore,
  path: string,
  streams: number,
  firstStream: number,
  payloadBytes: number,
  seconds: number,
): Promise<CaseResult> {
  const target = path === 'bridge' ? bridgedOnly(store) : store;
  const links = await Promise.all(Array.from({ length: streams }, () => linkStore(target)));
  const eluBefore = performance.eventLoopUtilization();
  const started = performance.now();
  const results = await Promise.all(
    links.map(
      (link, i) =>
        new Promise<AppenderResult>((resolve, reject) => {
          const init: AppenderInit = {
            benchStoreAppend: true,
            link: link.link,
            stream: firstStream + i,
            payloadBytes,
            seconds,
          };
          const worker = new Worker(new URL(import.meta.url), {
            workerData: init,
            transferList: [...link.transfer],
          });
          worker.once('message', (result: AppenderResult) => {
            resolve(result);
            void worker.terminate();
          });
          worker.once('error', reject);
          // A worker that ends without reporting must not leave the benchmark waiting.
          worker.once('exit', (code) =>
            reject(new Error(`appender of stream ${init.stream} exited with code ${code}`)),
          );
        }),
    ),
  );
  const elapsedSeconds = (performance.now() - started) / 1_000;
  const elu = performance.eventLoopUtilization(eluBefore);
  for (const link of links) link.release();
  const rows = results.reduce((sum, r) => sum + r.rows, 0);
  const latencies = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    store: name,
    path,
    streams,
    payloadBytes,
    rowsPerSecond: rows / elapsedSeconds,
    megabytesPerSecond: (rows * payloadBytes) / elapsedSeconds / 1e6,
    appendMsP50: at(0.5),
    appendMsP99: at(0.99),
    mainThreadUtilisation: elu.utilization,
  };
}

export function formatCase(result: CaseResult): string {
  const size =
    result.payloadBytes >= 1024 * 1024
      ? `${result.payloadBytes / 1024 / 1024} MiB`
      : result.payloadBytes >= 1024
        ? `${result.payloadBytes / 1024} KiB`
        : `${result.payloadBytes} B`;
  return [
    result.store.padEnd(9),
    result.path.padEnd(7),
    String(result.streams).padStart(7),
    size.padStart(9),
    Math.round(result.rowsPerSecond).toLocaleString('en-US').padStart(10),
    result.megabytesPerSecond.toFixed(1).padStart(8),
    result.appendMsP50.toFixed(2).padStart(8),
    result.appendMsP99.toFixed(2).padStart(8),
    `${Math.round(result.mainThreadUtilisation * 100)}%`.padStart(9),
  ].join(' ');
}

/** Reads every stream written back in recovery's pages (this thread): what replay gets from the store. */
async function readBack(
  store: WalStore,
  streams: number,
): Promise<{ rows: number; bytes: number; seconds: number }> {
  let rows = 0;
  let bytes = 0;
  const started = performance.now();
  for (let stream = 0; stream < streams; stream++) {
    for (let after = 0; ; ) {
      const page = await store.read(stream, after, walReadPageRows);
      if (page.length === 0) break;
      rows += page.length;
      for (const row of page) bytes += row.payload.byteLength;
      after = page.at(-1)!.seq;
    }
  }
  return { rows, bytes, seconds: (performance.now() - started) / 1_000 };
}

function formatRead(name: string, result: { rows: number; bytes: number; seconds: number }): string {
  const rate = (result.bytes / result.seconds / 1e6).toFixed(1);
  return `${name.padEnd(9)} read back ${result.rows.toLocaleString('en-US')} rows, ${(result.bytes / 1e6).toFixed(0)} MB in pages of ≤ ${walReadPageRows} rows: ${rate} MB/s`;
}

interface OpenedStore {
  readonly name: string;
  readonly store: WalStore;
  dispose(): Promise<void>;
}

async function openPostgres(): Promise<OpenedStore> {
  const connectionString = process.env.STOCKD_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `stockd_bench_${randomBytes(4).toString('hex')}`;
  const store = await PgWalStore.open({ connectionString, schema });
  return {
    name: 'postgres',
    store,
    async dispose() {
      await store.close();
      const client = new pg.Client({ connectionString });
      await client.connect();
      await client.query(`DROP SCHEMA "${schema}" CASCADE`);
      await client.end();
    },
  };
}

async function openPglite(): Promise<OpenedStore> {
  const given = process.env.BENCH_PGLITE_DIR;
  const dataDir = given ?? (await mkdtemp(join(tmpdir(), 'stockd-bench-')));
  const store = await PgliteWalStore.open({ dataDir, schema: `bench_${randomBytes(4).toString('hex')}` });
  return {
    name: 'pglite',
    store,
    async dispose() {
      await store.close();
      if (given === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function main(): Promise<void> {
  const stores = (process.env.BENCH_STORES ?? 'postgres,pglite').split(',');
  const paths = (process.env.BENCH_PATHS ?? 'direct,bridge').split(',');
  const sizes = (process.env.BENCH_SIZES ?? '256,4096,65536,262144,1048576').split(',').map(Number);
  const streams = envNumber('BENCH_STREAMS', 2);
  const seconds = envNumber('BENCH_SECONDS', 2);
  console.log(`WAL append, ${streams} streams, ${seconds} s per case — ${describeMachine()}`);
  console.log('store     path    streams   payload     rows/s     MB/s  p50 ms  p99 ms  main ELU');
  for (const kind of stores) {
    const opened = kind === 'postgres' ? await openPostgres() : await openPglite();
    let nextStream = 0;
    try {
      for (const payloadBytes of sizes) {
        for (const path of paths) {
          console.log(
            formatCase(
              await runCase(opened.name, opened.store, path, streams, nextStream, payloadBytes, seconds),
            ),
          );
          nextStream += streams;
        }
      }
      console.log(formatRead(opened.name, await readBack(opened.store, nextStream)));
    } finally {
      await opened.dispose();
    }
  }
}

if (!isMainThread && (workerData as Partial<AppenderInit> | null)?.benchStoreAppend === true) {
  parentPort!.postMessage(await appender(workerData as AppenderInit));
} else if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
