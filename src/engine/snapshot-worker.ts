/**
 * A background snapshot of one shard, built from the WAL on its own thread.
 *
 *   main ──{link, layout, limits, shard}──▶ this worker
 *            latest snapshot + rows after it ─▶ state at seq S ─▶ image ─▶ checksummed row
 *   main ◀──{seq, bytes, rows, events, millis} or {error}
 *
 * The shard's own thread never stops for it: the WAL already holds everything durable,
 * and replaying it with the same `evolve` gives exactly the state the shard had at S. The
 * thread runs at the lowest CPU priority (thread-priority.ts), so on a small machine the
 * replay takes time slices from the serving threads only when they leave a core idle.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { imageOf } from '../actors/snapshot.js';
import type { Limits } from '../config.js';
import { checksumOf, encodeSnapshot } from '../persistence/codec.js';
import { type StoreLink, storeFromLink } from '../persistence/store-link.js';
import type { Layout } from '../persistence/wal.js';
import { rebuildShard } from './replay.js';
import { lowerThreadPriority } from './thread-priority.js';

export interface SnapshotJob {
  readonly link: StoreLink;
  readonly layout: Layout;
  readonly limits: Limits;
  readonly shard: number;
}

export type SnapshotJobResult =
  | {
      readonly ok: true;
      readonly seq: number;
      readonly bytes: number;
      readonly rows: number;
      readonly events: number;
      readonly millis: number;
    }
  | { readonly ok: false; readonly error: string };

// Background work: it runs on the time the shard workers and the API thread leave idle.
lowerThreadPriority();
const job = workerData as SnapshotJob;
const store = storeFromLink(job.link);
const started = performance.now();
try {
  const rebuilt = await rebuildShard(store, job.layout, job.shard, { limits: job.limits });
  let bytes = 0;
  // Nothing new since the last snapshot: writing another would only cost space.
  if (rebuilt.rows > 0 || !rebuilt.position.fromSnapshot) {
    // Compressed here, at this thread's low priority (codec.ts, encodeSnapshot).
    const payload = encodeSnapshot(imageOf(rebuilt.core.state));
    bytes = payload.byteLength;
    await store.writeSnapshot({
      shard: job.shard,
      epoch: job.layout.epoch,
      seq: rebuilt.position.seq,
      at: rebuilt.position.at,
      payload,
      checksum: checksumOf(payload),
    });
  }
  const result: SnapshotJobResult = {
    ok: true,
    seq: rebuilt.position.seq,
    bytes,
    rows: rebuilt.rows,
    events: rebuilt.events,
    millis: performance.now() - started,
  };
  parentPort!.postMessage(result);
} catch (error) {
  parentPort!.postMessage({
    ok: false,
    error: error instanceof Error ? error.message : String(error),
  } satisfies SnapshotJobResult);
} finally {
  await store.close();
}
