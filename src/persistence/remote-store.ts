/**
 * A WalStore used from another thread: `exposeStore` serves a store over a MessagePort,
 * `remoteStore` is the client. Used for the in-memory store (which lives in the main
 * thread so that it outlives a crashed shard worker) and for PGlite (which owns a worker
 * thread of its own).
 *
 *   remoteStore ── {id, method, args} ──▶ exposeStore ──▶ store.method(...args)
 *               ◀── {id, ok: true, value} | {id, ok: false, error: {name, message, code}} ──
 *
 * Every append of a shard goes this way, so it is plain messages and a map of the calls
 * in flight. (It was comlink: a fresh proxy per call, registered with a finalizer, and a
 * race against the port's closing that added a reaction to one never-settled promise per
 * call. Both outlived the young generation: in a shard worker at 8,000 appends/s they
 * were most of what the GC promoted, and the major collections that followed were the
 * worst pauses of an open-loop run.) Errors travel as values so that their `code`
 * survives the trip. If the serving side goes away (its thread died or terminated) the
 * port closes and every call in flight rejects with STORE_UNAVAILABLE instead of waiting
 * forever.
 */
import type { MessagePort, Transferable } from 'node:worker_threads';
import { ownBytes } from './codec.js';
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

interface CallMessage {
  readonly id: number;
  readonly method: string;
  readonly args: unknown[];
}

type OutcomeMessage =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: RemoteError };

export function exposeStore(store: WalStore, port: MessagePort): void {
  const allowed = new Set<string>(bridgedMethods);
  port.on('message', (message: CallMessage) => {
    const { id, method, args } = message;
    const answer = (outcome: OutcomeMessage): void => {
      try {
        port.postMessage(outcome);
      } catch (error) {
        // A value the port cannot carry: answer with the error instead of never.
        port.postMessage({ id, ok: false, error: toRemoteError(error) });
      }
    };
    let result: Promise<unknown>;
    try {
      if (!allowed.has(method)) throw new Error(`${String(method)} is not a store method`);
      const fn = store[method as BridgedMethod] as (...a: unknown[]) => Promise<unknown>;
      result = Promise.resolve(fn.apply(store, args));
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => answer({ id, ok: true, value }),
      (error: unknown) => answer({ id, ok: false, error: toRemoteError(error) }),
    );
  });
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

export function remoteStore(port: MessagePort): WalStore {
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let closedLocally = false;
  let gone: StoreError | null = null;

  port.on('message', (message: OutcomeMessage) => {
    const call = pending.get(message.id);
    if (call === undefined) return;
    pending.delete(message.id);
    if (message.ok) call.resolve(message.value);
    else call.reject(fromRemoteError(message.error));
  });
  port.on('close', () => {
    gone = new StoreError(
      'STORE_UNAVAILABLE',
      'the thread serving the store went away; the outcome of calls in flight is unknown',
    );
    for (const call of pending.values()) call.reject(gone);
    pending.clear();
  });

  const call = <T>(method: BridgedMethod, args: unknown[], transfer: Transferable[] = []): Promise<T> => {
    if (closedLocally) return Promise.reject(new StoreError('STORE_CLOSED', 'this store client is closed'));
    if (gone !== null) return Promise.reject(gone);
    return new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      const message: CallMessage = { id, method, args };
      try {
        port.postMessage(message, transfer);
      } catch (error) {
        pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  };

  return {
    readLayout: () => call('readLayout', []),
    writeLayout: (layout) => call('writeLayout', [layout]),
    append: (row) => call('append', [row]),
    read: (stream, afterSeq, limit) => call('read', [stream, afterSeq, limit]),
    lastSeq: (stream) => call('lastSeq', [stream]),
    streams: () => call('streams', []),
    // A snapshot's payload (tens of MB) is copied here, on the writer's thread, and moved:
    // the message carries it to the serving thread without a copy in between (the caller's
    // own buffer stays as it was).
    writeSnapshot: (snapshot) => {
      const payload = ownBytes(snapshot.payload);
      return call('writeSnapshot', [{ ...snapshot, payload }], [payload.buffer as ArrayBuffer]);
    },
    latestSnapshot: (shard, epoch) => call('latestSnapshot', [shard, epoch]),
    snapshotAtOrBefore: (shard, epoch, seq) => call('snapshotAtOrBefore', [shard, epoch, seq]),
    listSnapshots: (shard, epoch) => call('listSnapshots', [shard, epoch]),
    prune: (stream, epoch, throughSeq) => call('prune', [stream, epoch, throughSeq]),
    async close() {
      if (closedLocally) return;
      closedLocally = true;
      for (const call of pending.values())
        call.reject(new StoreError('STORE_CLOSED', 'this store client is closed'));
      pending.clear();
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
