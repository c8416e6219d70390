/**
 * A shard worker thread: one single-writer actor owning every SKU of its partitions.
 *
 * Mailbox loop (one at a time, no locks):
 *
 *   port 'message' ──▶ inbox[] ──▶ step(): take every queued batch (group commit)
 *                                   ├─ core.process(batch) for each  (decide + evolve)
 *                                   ├─ store.append(one row)         (durable)
 *                                   └─ post replies for each batch once it resolved
 *
 * While an append is in flight the next group is decided (see step()), and batches that
 * arrive meanwhile wait in the inbox, so under load each append carries many batches:
 * durability costs one round trip per group, not per command.
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
import { assertLimits } from '../config.js';
import {
  checksumOf,
  compressSnapshotAsync,
  EventRowBuilder,
  encode,
  ownBytes,
} from '../persistence/codec.js';
import { errorCode } from '../persistence/store-errors.js';
import { storeFromLink } from '../persistence/store-link.js';
import type { SnapshotRow } from '../persistence/wal.js';
import { newLatencyCounts, recordLatency } from './latency-counts.js';
import type {
  BatchMessage,
  RecoveryInfo,
  ReplyMessage,
  ShardControl,
  ShardStats,
  WorkerInit,
} from './protocol.js';
import { recoverShard } from './recovery.js';
import { decodeRequests, encodeReplies } from './wire.js';

const init = workerData as WorkerInit;
const { shard, layout, limits, dataPort } = init;
assertLimits(limits);
const store = storeFromLink(init.store);
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
const counters = {
  batches: 0,
  commands: 0,
  appends: 0,
  eventsAppended: 0,
  appendFailures: 0,
  lastAppendMs: 0,
};
const appendLatency = newLatencyCounts();

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

interface Image {
  readonly seq: number;
  readonly at: number;
  /** The encoded image, not yet compressed. */
  readonly packed: Uint8Array;
  /** How long imaging and encoding held this thread. */
  readonly stallMs: number;
}

/** The state now, encoded: the part of a snapshot that needs the state to stand still. */
function imageNow(): Image {
  const started = performance.now();
  // A copy: the encoder reuses its buffer, and the compression reads this one later, on
  // another thread, while the shard goes on encoding.
  const packed = ownBytes(encode(imageOf(core.state)));
  return { seq, at: lastNow, packed, stallMs: performance.now() - started };
}

/** The snapshot writes of this worker, one after another in the order they were imaged. */
let snapshotWrites: Promise<unknown> = Promise.resolve();

/**
 * Compresses (on libuv's thread pool, so the shard serves meanwhile), checksums and writes
 * an image; the row stands for the image's own seq. Two overlapping calls compress side by
 * side but write in the order they imaged: the smaller image's compression may finish
 * first, and a store that keeps snapshots in the order written (the in-memory one) would
 * then hold the older seq as its latest.
 */
function storeImage({
  seq,
  at,
  packed,
  stallMs,
}: Image): Promise<{ seq: number; bytes: number; stallMs: number }> {
  const compressed = compressSnapshotAsync(packed);
  compressed.catch(() => undefined); // handled below, in its turn
  const written = snapshotWrites.then(async () => {
    const payload = await compressed;
    const row: SnapshotRow = { shard, epoch: layout.epoch, seq, at, payload, checksum: checksumOf(payload) };
    await store.writeSnapshot(row);
    return { seq, bytes: payload.byteLength, stallMs };
  });
  snapshotWrites = written.catch(() => undefined);
  return written;
}

function writeSnapshot(): Promise<{ seq: number; bytes: number; stallMs: number }> {
  return storeImage(imageNow());
}

const recovered = exclusive(() => recover());

function post(message: ReplyMessage): void {
  if (message.payload) dataPort.postMessage(message, [message.payload.buffer as ArrayBuffer]);
  else dataPort.postMessage(message);
}

/** Set while step() waits for an append with nothing decided behind it: a new batch wakes it. */
let wakeOnBatch: (() => void) | null = null;

dataPort.on('message', (message: BatchMessage) => {
  inbox.push(message);
  if (wakeOnBatch !== null) {
    wakeOnBatch();
    wakeOnBatch = null;
  }
  if (!running) {
    running = true;
    void exclusive(step);
  }
});

/**
 * A decided group, as it waits for its append: only bytes and numbers. Its events and
 * replies are encoded as soon as they are decided, so the objects die young; a group
 * that kept them across the append would have every scavenge in the meantime copy them
 * (and promote them to the old generation), which was most of a busy worker's GC.
 */
interface Group {
  /** The batches' ids, in order. */
  readonly ids: number[];
  /** Each batch's encoded replies, in its own buffer (transferred to the main thread). */
  readonly replies: Uint8Array[];
  readonly eventCount: number;
  /** The WAL row's payload; null when the group changed nothing. */
  readonly payload: Uint8Array | null;
}

/**
 * The mailbox loop, pipelined two deep: while group N's WAL append is in flight, group
 * N+1 is decided and evolved; N's replies leave only once its append resolved, and
 * N+1's append starts only then (rows stay in seq order, one in flight per stream).
 *
 *   decide N ─▶ append N ─────────▶ reply N
 *               decide N+1 ─(wait)─▶ append N+1 ─────▶ reply N+1
 *
 * If an append fails, the state already holds that group *and* the one decided behind
 * it: both are answered UNAVAILABLE (safe to retry) and the shard rebuilds from the WAL.
 */
async function step(): Promise<void> {
  let inflight: { group: Group; append: Promise<unknown> } | null = null;
  try {
    while (inbox.length > 0 || inflight !== null) {
      let next: Group | null = null;
      if (inbox.length > 0) {
        if (lifecycleState !== 'ready') {
          const why = lifecycleState === 'fenced' ? `: ${lifecycle.getSnapshot().context.lastError}` : '';
          for (const batch of inbox.splice(0))
            post({ id: batch.id, unavailable: `shard ${shard} is ${lifecycleState}${why}` });
        } else {
          next = decideGroup(takeGroup());
        }
      }
      if (inflight !== null) {
        const done = inflight;
        inflight = null;
        if (next === null) {
          // Nothing decided behind this append yet: decide what arrives while it is in flight.
          const batchArrived = new Promise<boolean>((resolve) => {
            wakeOnBatch = () => resolve(true);
          });
          const appended = done.append.then(
            () => false,
            () => false,
          );
          const arrived = await Promise.race([appended, batchArrived]);
          wakeOnBatch = null;
          if (arrived && inbox.length > 0 && lifecycleState === 'ready') next = decideGroup(takeGroup());
        }
        try {
          await done.append;
        } catch (error) {
          // The lifecycle is now degraded: the loop answers whatever else is queued.
          failGroups(next === null ? [done.group] : [done.group, next], error);
          continue;
        }
        const appended = done.group.payload !== null;
        if (appended) {
          seq++;
          counters.appends++;
          counters.eventsAppended += done.group.eventCount;
        }
        sendReplies(done.group, appended ? seq : undefined);
      }
      if (next !== null) {
        const append = appendGroup(next);
        // Its failure is handled where it is awaited (above, next time round); until then
        // it must not count as unhandled, or a rejection during the yield below would
        // kill the worker instead of failing the groups.
        append.catch(() => undefined);
        inflight = { group: next, append };
        // node-pg's pool hands a query to an idle connection only on process.nextTick, so
        // deciding the next group at once would hold the row in this thread for the whole
        // decision, and the append would start only after it: yield one turn first, so the
        // row leaves before the next decision. (Stores reached through a port post at
        // once; for them the turn costs a little and changes nothing.)
        if (inbox.length > 0) await ioTurn();
      }
    }
  } finally {
    running = false;
  }
}

/**
 * Resolves after one turn of the event loop: what the thread queued for process.nextTick
 * and microtasks has run, so a query handed to an idle connection has been written. (A
 * pool that must open a connection first takes longer: that append does not overlap.)
 */
function ioTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function decideGroup(batches: BatchMessage[]): Group {
  const row = new EventRowBuilder();
  const ids: number[] = new Array(batches.length);
  const replies: Uint8Array[] = new Array(batches.length);
  for (let i = 0; i < batches.length; i++) {
    const batch = batches[i]!;
    lastNow = Math.max(lastNow, batch.now);
    const requests = decodeRequests(batch.payload);
    const result = core.processForWire(requests, lastNow);
    row.add(result.events);
    ids[i] = batch.id;
    replies[i] = encodeReplies(result.replies);
    counters.batches++;
    counters.commands += requests.length;
  }
  // Each batch's events are encoded as soon as it is decided (EventRowBuilder), so a large
  // group never holds many batches' events at once.
  const eventCount = row.count;
  const payload = eventCount === 0 ? null : row.take();
  return { ids, replies, eventCount, payload };
}

/** Starts the group's append (the row after the last durable one); resolves when durable. */
function appendGroup(group: Group): Promise<unknown> {
  if (group.payload === null) return Promise.resolve();
  const started = performance.now();
  return store
    .append({
      stream: shard,
      seq: seq + 1,
      epoch: layout.epoch,
      at: lastNow,
      eventCount: group.eventCount,
      payload: group.payload,
    })
    .then(() => {
      counters.lastAppendMs = performance.now() - started;
      recordLatency(appendLatency, counters.lastAppendMs);
    });
}

function sendReplies(group: Group, durableSeq: number | undefined): void {
  for (let i = 0; i < group.ids.length; i++) {
    const id = group.ids[i]!;
    const payload = group.replies[i]!;
    post(durableSeq === undefined ? { id, payload } : { id, payload, seq: durableSeq });
  }
}

/**
 * The state holds groups whose durability is unknown: answer UNAVAILABLE (safe to retry),
 * and rebuild from the WAL before serving again.
 */
function failGroups(groups: readonly Group[], error: unknown): void {
  counters.appendFailures++;
  for (const group of groups)
    for (const id of group.ids) post({ id, unavailable: `WAL append failed: ${String(error)}` });
  if (isFenced(error)) fence(error);
  else {
    lifecycle.send({ type: 'WAL_FAILED', error: String(error) });
    scheduleRetry();
  }
}

/** Another process is the writer now: no append of ours can ever land, so no retry. */
function isFenced(error: unknown): boolean {
  return errorCode(error) === 'STORE_FENCED';
}

function fence(error: unknown): void {
  const detail = error instanceof Error ? error.message : String(error);
  lifecycle.send({ type: 'FENCED', error: detail });
  post({ id: 0, fenced: detail });
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
    exclusive(() => recover(layout)).catch((error: unknown) => {
      if (isFenced(error)) {
        fence(error);
        return;
      }
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
      appendLatency,
    };
  },
  async snapshotNow() {
    const image = await exclusive(async () => {
      // Degraded means the state may hold a group whose append failed: never image it.
      if (lifecycleState !== 'ready') throw new Error(`shard ${shard} is ${lifecycleState}: no snapshot`);
      return imageNow();
    });
    // Written after the mailbox's turn: the store takes its time (half a second for 55 MB
    // to PostgreSQL here) while the shard serves again; the row stands for its own seq.
    return storeImage(image);
  },
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
