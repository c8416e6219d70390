/**
 * A shard worker thread: one single-writer actor owning every SKU of its partitions.
 *
 * Mailbox loop (one at a time, no locks):
 *
 *   port 'message' ──▶ inbox[] ──▶ step(): take every queued batch (group commit)
 *                                   ├─ core.process(batch) for each  (decide + evolve)
 *                                   ├─ await store.append(one row)   (durable)
 *                                   └─ post replies for each batch
 *
 * While an append is in flight new batches wait in the inbox, so under load each append
 * carries many batches: durability costs one round trip per group, not per command.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { createActor } from 'xstate';
import type { ShardCore } from '../actors/core.js';
import { canonicalLines, stateDigest } from '../actors/digest.js';
import { invariantViolations } from '../actors/invariants.js';
import { shardLifecycleMachine } from '../actors/shard-lifecycle.js';
import { imageOf } from '../actors/snapshot.js';
import type { DomainEvent, Reply, Request } from '../actors/types.js';
import { assertLimits } from '../config.js';
import { checksumOf, decode, encode, encodeEvents } from '../persistence/codec.js';
import { remoteStore } from '../persistence/remote-store.js';
import type {
  BatchMessage,
  RecoveryInfo,
  ReplyMessage,
  ShardControl,
  ShardStats,
  WorkerInit,
} from './protocol.js';
import { recoverShard } from './recovery.js';

const init = workerData as WorkerInit;
const { shard, layout, limits, dataPort } = init;
assertLimits(limits);
const store = remoteStore(init.storePort);
const lifecycle = createActor(shardLifecycleMachine).start();
let lifecycleState = lifecycle.getSnapshot().value as string;
lifecycle.subscribe((snapshot) => {
  lifecycleState = snapshot.value as string;
});

let core: ShardCore;
let seq = 0;
let lastNow = 0;
const inbox: BatchMessage[] = [];
let running = false;
let chain: Promise<unknown> = Promise.resolve();
const counters = { batches: 0, commands: 0, appends: 0, appendFailures: 0, lastAppendMs: 0 };

/** Runs `task` after every earlier mailbox task: the one place state changes happen. */
function exclusive<T>(task: () => Promise<T>): Promise<T> {
  const result = chain.then(task);
  chain = result.catch(() => undefined);
  return result;
}

async function recover(previous = init.previous): Promise<RecoveryInfo> {
  const started = performance.now();
  const result = await recoverShard(store, { shard, layout, previous, limits });
  core = result.core;
  seq = result.seq;
  lastNow = result.lastAt;
  const violations = invariantViolations(core.state);
  if (violations.length > 0)
    throw new Error(`state after recovery breaks invariants: ${violations.join('; ')}`);
  if (previous !== null && previous.shardCount !== layout.shardCount) {
    // New layout: snapshot now, so the next recovery needs only this epoch (see wal.ts).
    await writeSnapshot();
  }
  lifecycle.send({ type: 'RECOVERED' });
  return {
    shard,
    seq,
    rowsApplied: result.rowsApplied,
    eventsApplied: result.eventsApplied,
    snapshotsLoaded: result.snapshotsLoaded,
    records: core.state.recordCount,
    millis: performance.now() - started,
  };
}

async function writeSnapshot(): Promise<{ seq: number; bytes: number; stallMs: number }> {
  const started = performance.now();
  const payload = encode(imageOf(core.state));
  const stallMs = performance.now() - started;
  await store.writeSnapshot({
    shard,
    epoch: layout.epoch,
    seq,
    at: lastNow,
    payload,
    checksum: checksumOf(payload),
  });
  return { seq, bytes: payload.byteLength, stallMs };
}

const recovered = exclusive(() => recover());

function post(message: ReplyMessage): void {
  if (message.payload) dataPort.postMessage(message, [message.payload.buffer as ArrayBuffer]);
  else dataPort.postMessage(message);
}

dataPort.on('message', (message: BatchMessage) => {
  inbox.push(message);
  if (!running) {
    running = true;
    void exclusive(step);
  }
});

/** One group: every batch queued now, one WAL row, then the replies. */
async function step(): Promise<void> {
  try {
    while (inbox.length > 0) {
      if (lifecycleState !== 'ready') {
        for (const batch of inbox.splice(0))
          post({ id: batch.id, unavailable: `shard ${shard} is ${lifecycleState}` });
        return;
      }
      const group = takeGroup();
      const events: DomainEvent[] = [];
      const replies: Reply[][] = [];
      for (const batch of group) {
        lastNow = Math.max(lastNow, batch.now);
        const requests = decode<Request[]>(batch.payload);
        const result = core.process(requests, lastNow);
        for (const event of result.events) events.push(event);
        replies.push(result.replies);
        counters.batches++;
        counters.commands += requests.length;
      }
      if (events.length > 0) {
        const started = performance.now();
        try {
          await store.append({
            stream: shard,
            seq: seq + 1,
            epoch: layout.epoch,
            at: lastNow,
            eventCount: events.length,
            payload: encodeEvents(events),
          });
        } catch (error) {
          counters.appendFailures++;
          // The state already contains the group, whose durability is unknown: answer
          // UNAVAILABLE (safe to retry), and rebuild from the WAL before serving again.
          for (const batch of group)
            post({ id: batch.id, unavailable: `WAL append failed: ${String(error)}` });
          lifecycle.send({ type: 'WAL_FAILED', error: String(error) });
          scheduleRetry();
          continue;
        }
        seq++;
        counters.appends++;
        counters.lastAppendMs = performance.now() - started;
      }
      group.forEach((batch, i) => {
        post({ id: batch.id, payload: encode(replies[i]) });
      });
    }
  } finally {
    running = false;
  }
}

function takeGroup(): BatchMessage[] {
  // Bound the row: each command yields at most two events (an expiry and its own), plus
  // the timer's expiries per batch.
  const group: BatchMessage[] = [];
  let budget = limits.walBatchEventsMax;
  while (inbox.length > 0) {
    const cost = 2 * inbox[0]!.count + limits.expiriesPerBatchMax;
    if (group.length > 0 && cost > budget) break;
    budget -= cost;
    group.push(inbox.shift()!);
  }
  return group;
}

function scheduleRetry(attempt = 1): void {
  const delayMs = Math.min(5_000, 50 * 2 ** attempt);
  setTimeout(() => {
    lifecycle.send({ type: 'RETRY' });
    exclusive(() => recover(layout)).catch(() => {
      lifecycle.send({ type: 'WAL_FAILED', error: 'recovery failed' });
      scheduleRetry(attempt + 1);
    });
  }, delayMs).unref();
}

const control: ShardControl = {
  ready: () => recovered,
  async stats(): Promise<ShardStats> {
    return {
      shard,
      lifecycle: lifecycleState,
      seq,
      records: core?.state.recordCount ?? 0,
      reservations: core?.state.reservations.size ?? 0,
      held: core?.state.heldCount ?? 0,
      ...counters,
    };
  },
  snapshotNow: () =>
    exclusive(async () => {
      // Degraded means the state may hold a group whose append failed: never image it.
      if (lifecycleState !== 'ready') throw new Error(`shard ${shard} is ${lifecycleState}: no snapshot`);
      return writeSnapshot();
    }),
  reservationIndex: () =>
    exclusive(async () =>
      [...core.state.reservations.values()].map((r): [string, number] => [r.id, r.bodyHash]),
    ),
  inspect: () =>
    exclusive(async () => ({
      digest: stateDigest([core.state]),
      violations: invariantViolations(core.state),
    })),
  canonical: () => exclusive(async () => canonicalLines([core.state])),
  async drain() {
    // The engine has stopped sending; wait until the mailbox is empty and idle.
    do await exclusive(async () => undefined);
    while (running || inbox.length > 0);
    lifecycle.send({ type: 'STOP' });
    await store.close();
    lifecycle.send({ type: 'STOPPED' });
  },
};

Comlink.expose(control, nodeEndpoint(parentPort!));
