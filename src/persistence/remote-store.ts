/**
 * A WalStore used from another thread: `exposeStore` serves a store over a MessagePort
 * with comlink, `remoteStore` is the client. Used for the in-memory store (which lives in
 * the main thread so that it outlives a crashed shard worker) and for PGlite (which owns
 * a worker thread of its own).
 *
 *   remoteStore ── call(method, args) ──▶ exposeStore ──▶ store.method(...args)
 *               ◀── {ok, value} | {ok: false, error: {name, message, code}} ──
 *
 * Errors travel as values so that their `code` survives the trip (comlink would keep only
 * name and message). If the serving side goes away — its thread died or terminated — the
 * port closes and every call in flight rejects with STORE_UNAVAILABLE instead of waiting
 * forever.
 */
import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { StoreError } from './store-errors.js';
import { type WalStore, type WalStoreMethod, walStoreMethods } from './wal.js';

/** The methods a bridge forwards: all but `close`, which stays local (the hosted store has one owner). */
type BridgedMethod = Exclude<WalStoreMethod, 'close'>;
const bridgedMethods = walStoreMethods.filter((method): method is BridgedMethod => method !== 'close');

interface RemoteError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
}

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: RemoteError };

interface StoreBridge {
  call(method: BridgedMethod, args: unknown[]): Promise<Outcome>;
}

export function exposeStore(store: WalStore, port: MessagePort): void {
  const allowed = new Set<string>(bridgedMethods);
  const bridge: StoreBridge = {
    async call(method, args) {
      try {
        if (!allowed.has(method)) throw new Error(`${String(method)} is not a store method`);
        const fn = store[method] as (...a: unknown[]) => Promise<unknown>;
        return { ok: true, value: await fn.apply(store, args) };
      } catch (error) {
        return { ok: false, error: toRemoteError(error) };
      }
    },
  };
  Comlink.expose(bridge, nodeEndpoint(port));
}

export function remoteStore(port: MessagePort): WalStore {
  const remote = Comlink.wrap<StoreBridge>(nodeEndpoint(port));
  let closedLocally = false;
  let rejectGone!: (error: Error) => void;
  // Settles only if the port closes under us; every call races it.
  const gone = new Promise<never>((_, reject) => {
    rejectGone = reject;
  });
  gone.catch(() => undefined);
  port.on('close', () =>
    rejectGone(
      new StoreError(
        'STORE_UNAVAILABLE',
        'the thread serving the store went away; the outcome of calls in flight is unknown',
      ),
    ),
  );

  const call = async <T>(method: BridgedMethod, args: unknown[]): Promise<T> => {
    if (closedLocally) throw new StoreError('STORE_CLOSED', 'this store client is closed');
    const outcome = await Promise.race([remote.call(method, args), gone]);
    if (!outcome.ok) throw fromRemoteError(outcome.error);
    return outcome.value as T;
  };

  return {
    readLayout: () => call('readLayout', []),
    writeLayout: (layout) => call('writeLayout', [layout]),
    append: (row) => call('append', [row]),
    read: (stream, afterSeq, limit) => call('read', [stream, afterSeq, limit]),
    lastSeq: (stream) => call('lastSeq', [stream]),
    streams: () => call('streams', []),
    writeSnapshot: (snapshot) => call('writeSnapshot', [snapshot]),
    latestSnapshot: (shard, epoch) => call('latestSnapshot', [shard, epoch]),
    snapshotAtOrBefore: (shard, epoch, seq) => call('snapshotAtOrBefore', [shard, epoch, seq]),
    listSnapshots: (shard, epoch) => call('listSnapshots', [shard, epoch]),
    prune: (stream, epoch, throughSeq) => call('prune', [stream, epoch, throughSeq]),
    async close() {
      if (closedLocally) return;
      closedLocally = true;
      remote[Comlink.releaseProxy]();
      port.close();
    },
  };
}

function toRemoteError(error: unknown): RemoteError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(error) };
}

function fromRemoteError(remote: RemoteError): Error {
  const error = new Error(remote.message);
  error.name = remote.name;
  if (remote.code !== undefined) Object.assign(error, { code: remote.code });
  return error;
}
