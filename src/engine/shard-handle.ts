/**
 * The main thread's end of one shard: its mailbox, its batches in flight, and the
 * supervisor that restarts the worker when it dies.
 *
 *   execute() ─▶ pending[] ─(setImmediate / on reply)─▶ batch ≤ batchCommandsMax ─▶ worker
 *                  ▲ bounded: mailboxDepthMax           in flight ≤ inflightBatchesMax; while one
 *                                                       is in flight, the next only once
 *                                                       pipelineCommandsMin commands wait
 *                  └─ full: OVERLOADED at once, never queued without bound
 *
 * A request's reply is delivered to a Sink at an index, so a bulk caller gets one
 * callback array instead of a promise per command.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { Reply, Request } from '../actors/types.js';
import type { Limits } from '../config.js';
import { reject } from '../errors.js';
import { linkStore, type WorkerLink } from '../persistence/store-link.js';
import type { Layout, WalStore } from '../persistence/wal.js';
import type { BatchMessage, RecoveryInfo, ReplyMessage, ShardControl, WorkerInit } from './protocol.js';
import { decodeReplies, encodeRequests } from './wire.js';

export interface Sink {
  deliver(index: number, reply: Reply): void;
}

/** Compiled worker script; tests run the TypeScript sources, so they load the built copy. */
export const shardWorkerUrl: URL = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/src/engine/shard-worker.js', import.meta.url)
  : new URL('./shard-worker.js', import.meta.url);

export interface ShardHandleOptions {
  readonly shard: number;
  readonly layout: Layout;
  readonly limits: Limits;
  readonly store: WalStore;
  readonly now: () => number;
  /** Called when the worker died unexpectedly and has been restarted (or failed to). */
  readonly onRestart?: (shard: number, error: unknown) => void;
  /**
   * Called when a WAL row of this shard is durable (its seq), before the replies of its
   * batches are delivered; once per row. The change feed wakes its tails on it.
   */
  readonly onDurable?: (shard: number, seq: number) => void;
  /** Called once when the shard is fenced: another process is the writer of its database now. */
  readonly onFenced?: (shard: number, detail: string) => void;
}

/** `fenced` is final until stop(): every request is answered UNAVAILABLE at once. */
type Phase = 'starting' | 'ready' | 'fenced' | 'restarting' | 'stopping' | 'stopped';

interface InflightBatch {
  readonly sinks: Sink[];
  readonly indexes: number[];
}

export class ShardHandle {
  readonly shard: number;
  private readonly limits: Limits;
  private worker!: Worker;
  private dataPort!: MessagePort;
  private storeLink: WorkerLink | null = null;
  control!: Comlink.Remote<ShardControl>;
  phase: Phase = 'starting';
  private pendingRequests: Request[] = [];
  private pendingSinks: Sink[] = [];
  private pendingIndexes: number[] = [];
  private readonly inflight = new Map<number, InflightBatch>();
  private nextBatchId = 1;
  private flushScheduled = false;
  /** Commands queued or in flight. */
  depth = 0;
  restarts = 0;
  /** Seq of the newest row reported durable (onDurable). */
  private durableSeq = 0;
  /** Why the shard is fenced (phase 'fenced'). */
  fencedBecause: string | null = null;

  constructor(private readonly options: ShardHandleOptions) {
    this.shard = options.shard;
    this.limits = options.limits;
  }

  /** Spawns the worker and waits for its recovery. `previous` is the layout stored before this start. */
  async start(previous: Layout | null): Promise<RecoveryInfo> {
    const data = new MessageChannel();
    // The worker's own line to the store: a direct connection where the store offers one.
    const storeLink = await linkStore(this.options.store);
    this.storeLink = storeLink;
    this.dataPort = data.port1;
    const init: WorkerInit = {
      shard: this.shard,
      layout: this.options.layout,
      previous,
      limits: this.limits,
      store: storeLink.link,
      dataPort: data.port2,
    };
    this.worker = new Worker(shardWorkerUrl, {
      workerData: init,
      transferList: [...storeLink.transfer, data.port2],
      name: `stockd-shard-${this.shard}`,
      resourceLimits: { maxYoungGenerationSizeMb: this.limits.workerYoungGenerationMb },
    });
    this.control = Comlink.wrap<ShardControl>(nodeEndpoint(this.worker));
    this.dataPort.on('message', (message: ReplyMessage) => this.onReply(message));
    const worker = this.worker;
    worker.on('error', (error) => this.onWorkerDied(worker, error));
    worker.on('exit', (code) => this.onWorkerDied(worker, new Error(`worker exited with code ${code}`)));
    const info = await this.control.ready();
    this.phase = 'ready';
    this.scheduleFlush();
    return info;
  }

  /**
   * Queues a request. `internal` marks the router's compensating aborts: they are exempt
   * from the bound (their number is bounded by the cross-shard reservations in flight).
   */
  execute(request: Request, sink: Sink, index: number, internal = false): void {
    if (this.phase === 'stopping' || this.phase === 'stopped') {
      sink.deliver(index, reject('UNAVAILABLE', `shard ${this.shard} is stopping`));
      return;
    }
    if (this.phase === 'fenced') {
      sink.deliver(index, reject('UNAVAILABLE', `shard ${this.shard} is fenced: ${this.fencedBecause}`));
      return;
    }
    if (!internal && this.depth >= this.limits.mailboxDepthMax) {
      sink.deliver(index, reject('OVERLOADED', `shard ${this.shard} has ${this.depth} commands queued`));
      return;
    }
    this.depth++;
    this.pendingRequests.push(request);
    this.pendingSinks.push(sink);
    this.pendingIndexes.push(index);
    this.scheduleFlush();
  }

  /** An empty batch: carries the time so the shard expires what is due when otherwise idle. */
  tick(): void {
    if (this.phase !== 'ready' || this.inflight.size > 0 || this.pendingRequests.length > 0) return;
    this.send([], [], []);
  }

  get idle(): boolean {
    return this.inflight.size === 0 && this.pendingRequests.length === 0;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const max = this.limits.batchCommandsMax;
    const pipelineMin = Math.min(this.limits.pipelineCommandsMin, max);
    while (
      this.phase === 'ready' &&
      this.pendingRequests.length > 0 &&
      this.inflight.size < this.limits.inflightBatchesMax
    ) {
      // A busy shard gets another batch only when enough waits for it (pipelineCommandsMin);
      // fewer go with the next reply.
      if (this.inflight.size > 0 && this.pendingRequests.length < pipelineMin) return;
      if (this.pendingRequests.length <= max) {
        const requests = this.pendingRequests;
        const sinks = this.pendingSinks;
        const indexes = this.pendingIndexes;
        this.pendingRequests = [];
        this.pendingSinks = [];
        this.pendingIndexes = [];
        this.send(requests, sinks, indexes);
      } else {
        this.send(
          this.pendingRequests.splice(0, max),
          this.pendingSinks.splice(0, max),
          this.pendingIndexes.splice(0, max),
        );
      }
    }
  }

  private send(requests: Request[], sinks: Sink[], indexes: number[]): void {
    const id = this.nextBatchId++;
    const payload = encodeRequests(requests); // bytes of its own: transferable
    this.inflight.set(id, { sinks, indexes });
    const message: BatchMessage = { id, now: this.options.now(), count: requests.length, payload };
    this.dataPort.postMessage(message, [payload.buffer as ArrayBuffer]);
  }

  private onReply(message: ReplyMessage): void {
    if (message.fenced !== undefined) {
      this.onFenced(message.fenced);
      return;
    }
    if (message.seq !== undefined && message.seq !== this.durableSeq) {
      this.durableSeq = message.seq;
      this.options.onDurable?.(this.shard, message.seq);
    }
    const batch = this.inflight.get(message.id);
    if (batch === undefined) return;
    this.inflight.delete(message.id);
    const { sinks, indexes } = batch;
    this.depth -= sinks.length;
    if (message.payload !== undefined) {
      const replies = decodeReplies(message.payload);
      for (let i = 0; i < sinks.length; i++) sinks[i]!.deliver(indexes[i]!, replies[i]!);
    } else {
      const failure = reject(
        'UNAVAILABLE',
        `${message.unavailable}; the outcome is unknown, retry with the same key`,
      );
      for (let i = 0; i < sinks.length; i++) sinks[i]!.deliver(indexes[i]!, failure);
    }
    this.flush();
  }

  private onFenced(detail: string): void {
    if (this.phase !== 'ready') return;
    this.phase = 'fenced';
    this.fencedBecause = detail;
    // Queued requests never reached the worker: nothing of theirs is in the WAL.
    const failure = reject('UNAVAILABLE', `shard ${this.shard} is fenced: ${detail}`);
    const sinks = this.pendingSinks;
    const indexes = this.pendingIndexes;
    this.pendingRequests = [];
    this.pendingSinks = [];
    this.pendingIndexes = [];
    this.depth -= sinks.length;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.deliver(indexes[i]!, failure);
    this.options.onFenced?.(this.shard, detail);
  }

  /** Supervisor: a worker that dies is replaced by one that recovers from the WAL. */
  private onWorkerDied(worker: Worker, error: unknown): void {
    if (worker !== this.worker || this.phase === 'stopping' || this.phase === 'stopped') return;
    // A fenced shard stays fenced: a new worker could not append either.
    if (this.phase === 'fenced') return;
    if (this.phase === 'restarting') return;
    this.phase = 'restarting';
    this.restarts++;
    this.storeLink?.release();
    this.dataPort.close();
    // Batches in flight may or may not be durable: their senders must retry (idempotently).
    const failure = reject('UNAVAILABLE', `shard ${this.shard} restarted; the outcome is unknown, retry`);
    for (const { sinks, indexes } of this.inflight.values()) {
      this.depth -= sinks.length;
      for (let i = 0; i < sinks.length; i++) sinks[i]!.deliver(indexes[i]!, failure);
    }
    this.inflight.clear();
    void worker.terminate();
    const restart = (attempt: number): void => {
      this.start(this.options.layout).then(
        () => this.options.onRestart?.(this.shard, error),
        (startError) => {
          this.phase = 'restarting';
          this.options.onRestart?.(this.shard, startError);
          setTimeout(() => restart(attempt + 1), Math.min(5_000, 100 * 2 ** attempt)).unref();
        },
      );
    };
    restart(0);
  }

  /** Test hook: kills the worker abruptly, as a crash would. */
  async crash(): Promise<void> {
    await this.worker.terminate();
  }

  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    while (!this.idle && this.phase !== 'restarting') await new Promise((resolve) => setTimeout(resolve, 1));
    this.phase = 'stopping';
    try {
      await this.control.drain();
    } finally {
      this.control[Comlink.releaseProxy]();
      await this.worker.terminate();
      this.storeLink?.release();
      this.dataPort.close();
      this.phase = 'stopped';
    }
  }
}
