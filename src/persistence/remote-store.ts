/**
 * A WalStore used from another thread: `exposeStore` serves a store over a MessagePort
 * with comlink, `remoteStore` is the client. Used for the in-memory store (which lives in
 * the main thread so that it outlives a crashed shard worker) and for any store that must
 * own its thread.
 */
import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Layout, SnapshotRow, WalRow, WalStore } from './wal.js';

export function exposeStore(store: WalStore, port: MessagePort): void {
  Comlink.expose(store, nodeEndpoint(port));
}

export function remoteStore(port: MessagePort): WalStore {
  const remote = Comlink.wrap<WalStore>(nodeEndpoint(port));
  return {
    readLayout: () => remote.readLayout(),
    writeLayout: (layout: Layout) => remote.writeLayout(layout),
    append: (row: WalRow) => remote.append(row),
    read: (stream: number, afterSeq: number, limit: number) => remote.read(stream, afterSeq, limit),
    lastSeq: (stream: number) => remote.lastSeq(stream),
    writeSnapshot: (snapshot: SnapshotRow) => remote.writeSnapshot(snapshot),
    latestSnapshot: (shard: number, epoch: number) => remote.latestSnapshot(shard, epoch),
    async close() {
      remote[Comlink.releaseProxy]();
      port.close();
    },
  };
}
