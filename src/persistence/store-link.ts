/**
 * How a shard worker reaches the store, decided in the main thread and sent to the worker
 * in its workerData:
 *
 *   MemoryWalStore  ─ port ──▶ store bridge (remote-store.ts) to the store in the main thread
 *   PgliteWalStore  ─ port ──▶ store bridge straight to the PGlite worker (no main-thread hop)
 *   PgWalStore      ─ postgres ▶ the worker opens its own small pool, writing under the
 *                                 writer epoch the main thread claimed (fenced like it)
 *
 * A store that can offer a more direct path than the bridge implements LinkableStore.
 */
import { MessageChannel, type MessagePort, type Transferable } from 'node:worker_threads';
import { type PgConnectionSpec, PgWalStore } from './pg-store.js';
import { exposeStore, remoteStore } from './remote-store.js';
import type { WalStore } from './wal.js';

export type StoreLink =
  | { readonly kind: 'port'; readonly port: MessagePort }
  | { readonly kind: 'postgres'; readonly connection: PgConnectionSpec; readonly writerEpoch: number };

export interface WorkerLink {
  readonly link: StoreLink;
  /** Objects to list in the Worker's transferList. */
  readonly transfer: readonly Transferable[];
  /** Frees this link's resources in the main thread once the worker is gone. */
  release(): void;
}

export interface LinkableStore extends WalStore {
  linkForWorker(): Promise<WorkerLink>;
}

function isLinkable(store: WalStore): store is LinkableStore {
  return typeof (store as Partial<LinkableStore>).linkForWorker === 'function';
}

/** The link for one shard worker: the store's own if it offers one, else the store bridge. */
export async function linkStore(store: WalStore): Promise<WorkerLink> {
  if (isLinkable(store)) return store.linkForWorker();
  const channel = new MessageChannel();
  exposeStore(store, channel.port1);
  return {
    link: { kind: 'port', port: channel.port2 },
    transfer: [channel.port2],
    release: () => channel.port1.close(),
  };
}

/** In the worker: the store behind a link. Synchronous; connections open on first use. */
export function storeFromLink(link: StoreLink): WalStore {
  switch (link.kind) {
    case 'port':
      return remoteStore(link.port);
    case 'postgres':
      return PgWalStore.attach(link.connection, link.writerEpoch);
    default:
      throw new Error(`unknown store link ${JSON.stringify((link as { kind: unknown }).kind)}`);
  }
}
