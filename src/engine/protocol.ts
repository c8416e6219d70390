/**
 * Messages between the engine (main thread) and a shard worker.
 *
 * Data plane: one raw MessagePort per shard. The engine sends a batch of requests encoded
 * with msgpackr in a transferred buffer; the worker answers each batch with one message
 * holding the replies in order, after the batch's events are durable.
 *
 *   engine ──{id, now, payload: Request[]}──▶ worker
 *   engine ◀──{id, payload: Reply[]}──────── worker     (or {id, unavailable})
 *   engine ◀──{id: 0, fenced}──────────────── worker     (once: another process is the writer)
 *
 * Control plane (comlink over the worker's parentPort): ShardControl below.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Limits } from '../config.js';
import type { StoreLink } from '../persistence/store-link.js';
import type { Layout } from '../persistence/wal.js';
import type { LatencyCounts } from './latency-counts.js';

export interface WorkerInit {
  readonly shard: number;
  readonly layout: Layout;
  readonly previous: Layout | null;
  readonly limits: Limits;
  /** How this worker reaches the WAL store (src/persistence/store-link.ts). */
  readonly store: StoreLink;
  readonly dataPort: MessagePort;
}

export interface BatchMessage {
  readonly id: number;
  /** The batch's time, from the engine's clock (ms). */
  readonly now: number;
  /** Requests in the batch. */
  readonly count: number;
  /** msgpackr-encoded Request[]; empty batches are expiry ticks. */
  readonly payload: Uint8Array;
}

export interface ReplyMessage {
  readonly id: number;
  /** msgpackr-encoded Reply[], one per request, in order. */
  readonly payload?: Uint8Array;
  /** The WAL seq of the row holding this batch's events (absent when it made none): durable. */
  readonly seq?: number;
  /** Set when the shard could not make the batch durable or is not ready: no reply is trustworthy. */
  readonly unavailable?: string;
  /**
   * With id 0 (no batch): the shard is fenced for good (another process is the writer now);
   * the text says by whom. Sent once, after the batches it failed were answered.
   */
  readonly fenced?: string;
}

export interface RecoveryInfo {
  readonly shard: number;
  readonly seq: number;
  readonly rowsApplied: number;
  readonly eventsApplied: number;
  readonly snapshotsLoaded: number;
  readonly records: number;
  readonly millis: number;
}

export interface ShardStats {
  readonly shard: number;
  readonly lifecycle: string;
  readonly seq: number;
  readonly records: number;
  readonly reservations: number;
  readonly held: number;
  readonly batches: number;
  readonly commands: number;
  readonly appends: number;
  /** Events made durable by this worker (since it started). */
  readonly eventsAppended: number;
  readonly appendFailures: number;
  readonly lastAppendMs: number;
  /** Durations of this worker's WAL appends (since it started). */
  readonly appendLatency: LatencyCounts;
}

export interface ShardControl {
  /** Resolves when recovery is done (rejects if it failed). */
  ready(): Promise<RecoveryInfo>;
  stats(): Promise<ShardStats>;
  /**
   * Images the state between two batches, then writes it while batches go on; resolves
   * once written, with the seq it covers and how long imaging held the shard (`stallMs`).
   */
  snapshotNow(): Promise<{ seq: number; bytes: number; stallMs: number }>;
  /** [reservation id, body hash] of every remembered reservation (cross-shard idempotency). */
  reservationIndex(): Promise<Array<[string, number]>>;
  /** State digest and invariant violations (tests, simulation, verify). */
  inspect(): Promise<{ digest: string; violations: string[] }>;
  /** Canonical lines of the state (src/actors/digest.ts), to compare states across layouts. */
  canonical(): Promise<string[]>;
  /** Finishes queued batches, then stops accepting; the engine terminates the worker after. */
  drain(): Promise<void>;
}
