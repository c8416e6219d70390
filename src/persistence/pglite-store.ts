/**
 * The WalStore in embedded PGlite: PostgreSQL compiled to WebAssembly, in a data directory
 * (default ./data), so that stockd runs on a machine with no database server.
 *
 *   <dataDir>/pgdata/   PostgreSQL's files (PGDATA)
 *   <dataDir>/locks/    <host>-<pid>.json of the process that has the directory open
 *
 * PGlite runs in its own worker thread (pglite-host.ts); this class is the main thread's
 * handle on it. Shard workers get a port straight to that thread (`linkForWorker`), so an
 * append never passes through the main thread.
 *
 * Durability: PGlite writes with fsync off. A committed row is in the operating system's
 * page cache when `append` resolves: it survives a crash of the stockd process, not a
 * power loss or a kernel crash. Use PostgreSQL where that matters.
 *
 * One process per directory: PGlite cannot be shared, so the lock directory refuses a
 * second process (also a read-only one) while the first is alive (lock-file.ts).
 */
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { type DirectoryLock, lockDirectory } from './lock-file.js';
import type { HostOpenOutcome, PgliteHostControl, PgliteHostInit } from './pglite-host.js';
import { remoteStore } from './remote-store.js';
import { checkSchemaName } from './sql-session.js';
import { StoreError } from './store-errors.js';
import type { LinkableStore, WorkerLink } from './store-link.js';
import type { Layout, SnapshotInfo, SnapshotRow, WalRow, WalStore } from './wal.js';

/** Compiled host script; tests run the TypeScript sources, so they load the built copy. */
export const pgliteHostUrl: URL = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/src/persistence/pglite-host.js', import.meta.url)
  : new URL('./pglite-host.js', import.meta.url);

export interface PgliteStoreOptions {
  /** Directory holding the database; created if missing. Default ./data. */
  readonly dataDir?: string;
  /** Schema holding stockd's tables; default `public`. */
  readonly schema?: string;
  /** Replay tool: no migration, no writer epoch, every write refused. Still exclusive. */
  readonly readOnly?: boolean;
}

export const defaultDataDir = './data';

/** Opening a large database replays PostgreSQL's own WAL first: allow for it. */
const hostOpenTimeoutMs = 120_000;

export class PgliteWalStore implements LinkableStore {
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly worker: Worker,
    private readonly control: Comlink.Remote<PgliteHostControl>,
    private readonly store: WalStore,
    private readonly lock: DirectoryLock,
    private readonly where: string,
    readonly writerEpoch: number | null,
  ) {
    // A thread that dies later closes its ports, so every call in flight rejects with
    // STORE_UNAVAILABLE (remote-store.ts); the event itself needs a listener or it would
    // take the whole process down.
    worker.on('error', () => {});
  }

  static async open(options: PgliteStoreOptions = {}): Promise<PgliteWalStore> {
    const dataDir = options.dataDir ?? defaultDataDir;
    const schema = checkSchemaName(options.schema ?? 'public');
    const where = describePglite(dataDir, schema);
    const absolute = resolve(dataDir);
    await mkdir(absolute, { recursive: true });
    const lock = await lockDirectory(absolute, where);
    const channel = new MessageChannel();
    const init: PgliteHostInit = {
      pgdata: join(absolute, 'pgdata'),
      schema,
      readOnly: options.readOnly === true,
      where,
      storePort: channel.port2,
      pid: process.pid,
      host: hostname(),
    };
    let worker: Worker | null = null;
    try {
      worker = new Worker(pgliteHostUrl, {
        workerData: init,
        transferList: [channel.port2],
        name: 'stockd-pglite',
      });
      const control = Comlink.wrap<PgliteHostControl>(nodeEndpoint(worker));
      const outcome = await untilReady(worker, control);
      if (!outcome.ok) {
        const error = new Error(outcome.message);
        if (outcome.code !== undefined) Object.assign(error, { code: outcome.code });
        throw error;
      }
      return new PgliteWalStore(
        worker,
        control,
        remoteStore(channel.port1),
        lock,
        where,
        outcome.writerEpoch,
      );
    } catch (error) {
      channel.port1.close();
      await worker?.terminate();
      await lock.release();
      throw error;
    }
  }

  describe(): string {
    return this.where;
  }

  readLayout(): Promise<Layout | null> {
    return this.store.readLayout();
  }

  writeLayout(layout: Layout): Promise<void> {
    return this.store.writeLayout(layout);
  }

  append(row: WalRow): Promise<void> {
    return this.store.append(row);
  }

  read(stream: number, afterSeq: number, limit: number): Promise<WalRow[]> {
    return this.store.read(stream, afterSeq, limit);
  }

  lastSeq(stream: number): Promise<number> {
    return this.store.lastSeq(stream);
  }

  streams(): Promise<number[]> {
    return this.store.streams();
  }

  writeSnapshot(snapshot: SnapshotRow): Promise<void> {
    return this.store.writeSnapshot(snapshot);
  }

  latestSnapshot(shard: number, epoch: number): Promise<SnapshotRow | null> {
    return this.store.latestSnapshot(shard, epoch);
  }

  snapshotAtOrBefore(shard: number, epoch: number, atOrBeforeSeq: number): Promise<SnapshotRow | null> {
    return this.store.snapshotAtOrBefore(shard, epoch, atOrBeforeSeq);
  }

  listSnapshots(shard: number, epoch: number): Promise<SnapshotInfo[]> {
    return this.store.listSnapshots(shard, epoch);
  }

  prune(stream: number, epoch: number, throughSeq: number): Promise<{ rows: number; snapshots: number }> {
    return this.store.prune(stream, epoch, throughSeq);
  }

  /** A port straight to the PGlite thread for one shard worker. */
  async linkForWorker(): Promise<WorkerLink> {
    if (this.closing !== null) throw new StoreError('STORE_CLOSED', `the store of ${this.where} is closed`);
    const channel = new MessageChannel();
    await this.control.connect(Comlink.transfer(channel.port1, [channel.port1]));
    // Nothing to free here: when the shard worker goes, its end closes and so does ours.
    return { link: { kind: 'port', port: channel.port2 }, transfer: [channel.port2], release() {} };
  }

  /** Closes PGlite cleanly, stops its thread and frees the directory. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.store.close();
      try {
        await this.control.close();
      } finally {
        this.control[Comlink.releaseProxy]();
        await this.worker.terminate();
        await this.lock.release();
      }
    })();
    return this.closing;
  }
}

/** `pglite ./data` (as given, relative to the working directory when inside it). */
export function describePglite(dataDir: string, schema = 'public'): string {
  const absolute = resolve(dataDir);
  const shown = relative(process.cwd(), absolute);
  const path = shown === '' ? '.' : shown.startsWith('..') ? absolute : `./${shown}`;
  return `pglite ${path}${schema === 'public' ? '' : ` schema ${schema}`}`;
}

/** The host's open outcome, or a rejection if the thread dies or takes too long. */
function untilReady(worker: Worker, control: Comlink.Remote<PgliteHostControl>): Promise<HostOpenOutcome> {
  return new Promise((resolvePromise, reject) => {
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new StoreError('STORE_UNAVAILABLE', `PGlite did not open within ${hostOpenTimeoutMs} ms`)),
      hostOpenTimeoutMs,
    );
    worker.once('error', (error) => fail(error));
    worker.once('exit', (code) =>
      fail(new StoreError('STORE_UNAVAILABLE', `the PGlite thread exited with code ${code} while opening`)),
    );
    control.ready().then((outcome) => {
      clearTimeout(timer);
      resolvePromise(outcome);
    }, fail);
  });
}
