/**
 * The engine: routes requests to shard actors and coordinates what spans shards.
 *
 *   execute(request)
 *     ├─ sku-keyed (set, adjust, safety, stock, atp) ─▶ shard of the SKU's partition
 *     ├─ channel upsert ──────────────────────────────▶ every shard (each keeps a copy)
 *     ├─ reserve on one shard ────────────────────────▶ that shard
 *     ├─ reserve across shards ───▶ hold on each; if any refuses, abort the others
 *     └─ by reservation id ───────▶ the shards that hold a part (directory), else all
 *
 * Cross-shard reservations are all-or-nothing without locks: each part is an ordinary
 * hold on its shard; a refusal anywhere aborts the parts that were held. If the process
 * dies in between, the held parts stay until the client retries with the same id (the
 * parts already held answer "replayed", the rest are held now) or until they expire.
 */
import { availableParallelism } from 'node:os';
import { reserveBodyHash, validateReserveShape } from '../actors/decide.js';
import { digestOfLines, mergeCanonicalLines } from '../actors/digest.js';
import { shardOf } from '../actors/hash.js';
import { combineOutcomes } from '../actors/reservation-machine.js';
import type { Abort, Commit, Reply, Request, ReservationView, Reserve } from '../actors/types.js';
import { assertLimits, defaultLimits, defaultShardCount, type Limits } from '../config.js';
import { type ErrorCode, type Rejection, reject } from '../errors.js';
import type { Layout, WalStore } from '../persistence/wal.js';
import { type Clock, systemClock } from './clock.js';
import { ReservationDirectory } from './directory.js';
import { applyGcProfile, type GcProfile } from './gc-profile.js';
import type { RecoveryInfo, ShardStats } from './protocol.js';
import { ShardHandle, type Sink } from './shard-handle.js';
import { type BackgroundSnapshot, type SnapshotInProgress, Snapshotter } from './snapshotter.js';

export interface EngineOptions {
  /** Where the WAL and snapshots live; hosted in this thread and shared with the workers. */
  readonly store: WalStore;
  /** Shard worker threads; default: cores − 1, at least 1. */
  readonly shards?: number;
  readonly limits?: Limits;
  readonly clock?: Clock;
  readonly onShardRestart?: (shard: number, error: unknown) => void;
  /**
   * A shard found that another process has become the writer of the database (STORE_FENCED).
   * It answers UNAVAILABLE from then on and never retries; the owner should stop this
   * process (`stockd serve` exits 1).
   */
  readonly onShardFenced?: (shard: number, detail: string) => void;
  /**
   * Garbage-collector profile of the whole process (gc-profile.ts), applied before the
   * workers start. Absent: the process's V8 flags are left as they are (`stockd serve`
   * passes `latency` unless told otherwise).
   */
  readonly gc?: GcProfile;
}

/** See Engine.onDurable. */
export type DurableListener = (stream: number, seq: number) => void;

/**
 * What the router needs of a shard: a mailbox that eventually delivers one reply per
 * request. ShardHandle (a worker thread) is the real one; the deterministic simulation
 * supplies in-process lanes so it exercises this same routing and coordination code.
 */
export interface ShardLane {
  readonly shard: number;
  /** `internal`: the router's own compensation, exempt from the mailbox bound. */
  execute(request: Request, sink: Sink, index: number, internal?: boolean): void;
}

/** Attempts of a compensating abort whose outcome stays unknown (shard restarting). */
const compensationAttemptsMax = 8;

class PromiseSink implements Sink {
  resolve!: (reply: Reply) => void;
  readonly promise = new Promise<Reply>((resolve) => {
    this.resolve = resolve;
  });
  deliver(_index: number, reply: Reply): void {
    this.resolve(reply);
  }
}

/**
 * Collects a call's replies in request order and hands them to `done` with the last.
 *
 * No promise: a call's round trip can outlast two young-generation collections (a
 * saturated durable shard answers a large batch in tens of milliseconds), and an object
 * that old has been promoted. Whatever young is then stored into it — a promise's result,
 * an array's slot — is kept alive by it at every scavenge until the next full collection,
 * however soon the caller drops it; so each scavenge copied the replies and the next one
 * promoted them. For the same reason the array is made when the first reply arrives,
 * not with the call: it is then no older than the replies it holds.
 */
class CallbackSink implements Sink {
  private replies: Reply[] | null = null;
  private remaining: number;
  constructor(
    private readonly count: number,
    private readonly done: (replies: Reply[]) => void,
  ) {
    this.remaining = count;
    if (count === 0) done([]);
  }
  deliver(index: number, reply: Reply): void {
    if (this.replies === null) this.replies = new Array(this.count);
    this.replies[index] = reply;
    if (--this.remaining !== 0) return;
    // Let go of them first: this sink may be old, and would keep them (see above).
    const replies = this.replies;
    this.replies = null;
    try {
      this.done(replies);
    } catch (error) {
      // `done` runs inside a shard's reply loop: the other replies of the batch must still
      // go out. The error surfaces as it would have from a promise's continuation.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

export class Router {
  readonly limits: Limits;
  readonly layout: Layout;
  protected readonly lanes: readonly ShardLane[];
  protected readonly clock: Clock;
  /** Cross-shard idempotency: reservation id → body hash and the shards holding parts (shardCount > 1). */
  private readonly directory: ReservationDirectory;
  /** Coordinated work in progress per reservation id (see `serially`). */
  private readonly inProgress = new Map<string, Promise<void>>();
  protected stopped = false;

  /**
   * @param retryPause waits before the n-th retry of a compensating abort. The engine
   *   backs off on real timers; the default (no wait) keeps an in-process driver such as
   *   the deterministic simulation free of wall-clock time.
   */
  constructor(
    lanes: readonly ShardLane[],
    layout: Layout,
    limits: Limits,
    clock: Clock,
    private readonly retryPause: (attempt: number) => Promise<void> = () => Promise.resolve(),
  ) {
    this.lanes = lanes;
    this.layout = layout;
    this.directory = new ReservationDirectory(layout.shardCount);
    this.limits = limits;
    this.clock = clock;
  }

  get shardCount(): number {
    return this.layout.shardCount;
  }

  shardOfSku(sku: string): number {
    return shardOf(sku, this.layout.partitionCount, this.layout.shardCount);
  }

  /** Executes one request: a command or a query. Never throws for business outcomes. */
  execute(request: Request): Promise<Reply> {
    if (this.stopped) return Promise.resolve(reject('UNAVAILABLE', 'the engine is stopping'));
    if (request === null || typeof request !== 'object') {
      return Promise.resolve(reject('INVALID_REQUEST', 'a request must be an object'));
    }
    switch (request.type) {
      case 'set':
      case 'adjust':
      case 'safety':
      case 'stock':
      case 'atp':
        return this.toShard(this.skuShard(request.sku), request);
      case 'channel':
        return this.broadcastChannel(request);
      case 'channels':
        return this.toShard(0, request);
      case 'reserve':
        return this.reserve(request);
      case 'commit':
      case 'release':
      case 'extend':
      case 'abort':
      case 'expire':
      case 'get':
        return this.byReservation(request);
      default:
        return Promise.resolve(
          reject('INVALID_REQUEST', `unknown request type ${JSON.stringify((request as Request).type)}`),
        );
    }
  }

  /**
   * Executes many independent requests; replies come back in order. Single-shard requests
   * go straight into the shard mailboxes with no promise per request, which is what makes
   * bulk traffic cheap.
   */
  executeMany(requests: readonly Request[]): Promise<Reply[]> {
    return new Promise((resolve) => this.submitMany(requests, resolve));
  }

  /**
   * executeMany without its promise: `done` gets the replies, in request order, when the
   * last is in, exactly once; refusals are replies. It may run before submitMany returns
   * (no requests, or a stopping engine that refuses at once), and should not throw: it runs
   * inside a shard's reply loop (an error it throws is rethrown from a microtask).
   *
   * For callers that keep many large batches in flight: a promise that waited out a long
   * round trip has been promoted to the old generation, and resolving it with the replies
   * kept them alive through the next scavenges, which copied and then promoted every reply
   * (bench/README.md, "Replies and promises").
   */
  submitMany(requests: readonly Request[], done: (replies: Reply[]) => void): void {
    const sink = new CallbackSink(requests.length, done);
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i]!;
      const shard = this.directShard(request);
      if (shard >= 0 && !this.stopped) this.lanes[shard]!.execute(request, sink, i);
      else if (shard === -2 && !this.stopped) this.reserveOnOneShard(request as Reserve, sink, i);
      else void this.execute(request).then((reply) => sink.deliver(i, reply));
    }
  }

  /**
   * A reservation whose lines all live on one shard, queued at once so it keeps its place
   * in that shard's mailbox order. Its id is entered in the directory before it is queued,
   * so a second body for the same id — in this call or any later one — is refused. If
   * coordinated work for the id is in progress, it waits its turn on the coordinated path.
   */
  private reserveOnOneShard(request: Reserve, sink: Sink, index: number): void {
    const id = request.reservationId;
    if (this.inProgress.has(id)) {
      void this.execute(request).then((reply) => sink.deliver(index, reply));
      return;
    }
    const checked = this.precheck(request);
    if ('rejection' in checked) {
      void checked.rejection.then((reply) => sink.deliver(index, reply));
      return;
    }
    const { bodyHash, known } = checked;
    const shard = this.shardOfSku(request.lines[0]!.sku);
    const serial = known ? this.directory.serialOf(id) : this.remember(id, bodyHash, [shard]);
    const recorder: Sink = {
      deliver: (i, reply) => {
        // A definite refusal created nothing: free the id unless something else claimed it since.
        if (!reply.ok && reply.code !== 'UNAVAILABLE' && !known && this.directory.serialOf(id) === serial) {
          this.directory.delete(id);
        }
        sink.deliver(i, reply);
      },
    };
    this.lanes[shard]!.execute({ ...request, bodyHash }, recorder, index);
  }

  /**
   * The shard a request can go to without coordination, or -1; -2 for a reservation whose
   * lines all live on one shard (see reserveOnOneShard). With several shards, any other
   * reservation takes the coordinated path.
   */
  private directShard(request: Request): number {
    if (request === null || typeof request !== 'object') return -1;
    switch (request.type) {
      case 'set':
      case 'adjust':
      case 'safety':
      case 'stock':
      case 'atp':
        return this.skuShard(request.sku);
      case 'reserve': {
        if (this.shardCount === 1) return 0;
        const lines = request.lines;
        if (!Array.isArray(lines) || lines.length === 0 || typeof request.reservationId !== 'string')
          return -1;
        let shard = -1;
        for (const line of lines) {
          if (typeof line?.sku !== 'string') return -1;
          const owner = this.shardOfSku(line.sku);
          if (shard !== -1 && owner !== shard) return -1;
          shard = owner;
        }
        return -2;
      }
      case 'commit':
      case 'release':
      case 'extend':
      case 'get': {
        if (this.shardCount === 1) return 0;
        if (request.type === 'commit' && request.lines !== undefined) return -1;
        const slot =
          typeof request.reservationId === 'string' ? this.directory.find(request.reservationId) : -1;
        if (slot === -1) return -1;
        const shards = this.directory.shardsAt(slot);
        return shards.length === 1 ? shards[0]! : -1;
      }
      default:
        return -1;
    }
  }

  private skuShard(sku: unknown): number {
    // An invalid SKU is rejected by whichever shard gets it; shard 0 will do.
    return typeof sku === 'string' ? this.shardOfSku(sku) : 0;
  }

  protected toShard(shard: number, request: Request): Promise<Reply> {
    const sink = new PromiseSink();
    this.lanes[shard]!.execute(request, sink, 0);
    return sink.promise;
  }

  private async broadcastChannel(request: Request): Promise<Reply> {
    // Every shard applies the same channel command in the same mailbox order, so the
    // copies agree; shard 0's reply speaks for all.
    const replies = await Promise.all(this.lanes.map((lane) => this.toShard(lane.shard, request)));
    const failed = replies.find((reply) => !reply.ok);
    return failed ?? replies[0]!;
  }

  /* ------------------------------------------------------------------ reservations */

  private reserve(request: Reserve): Promise<Reply> {
    if (this.shardCount === 1) return this.toShard(0, request);
    // All lines on one shard and nothing coordinated under way for the id: the same
    // direct path as executeMany, without the cross-shard machinery.
    if (this.directShard(request) === -2 && !this.inProgress.has(request.reservationId)) {
      const sink = new PromiseSink();
      this.reserveOnOneShard(request, sink, 0);
      return sink.promise;
    }
    if (!Array.isArray(request.lines) || request.lines.some((line) => typeof line?.sku !== 'string')) {
      return this.toShard(0, request); // let the domain say what is wrong
    }
    return this.serially(request.reservationId, () => this.reserveAcrossShards(request));
  }

  /**
   * Runs coordinated work for one reservation id after any earlier work for that id, so
   * two attempts of the same reservation never interleave (one could abort a part the
   * other just answered for).
   */
  private serially<T>(id: string, work: () => Promise<T>): Promise<T> {
    const key = String(id);
    const before = this.inProgress.get(key) ?? Promise.resolve();
    const result = before.then(work, work);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.inProgress.set(key, settled);
    void settled.then(() => {
      if (this.inProgress.get(key) === settled) this.inProgress.delete(key);
    });
    return result;
  }

  private async reserveAcrossShards(request: Reserve): Promise<Reply> {
    const checked = this.precheck(request);
    if ('rejection' in checked) return checked.rejection;
    const { bodyHash } = checked;
    const parts = new Map<number, Reserve['lines'][number][]>();
    for (const line of request.lines) {
      const shard = this.shardOfSku(line.sku);
      const lines = parts.get(shard);
      if (lines === undefined) parts.set(shard, [line]);
      else lines.push(line);
    }
    const shards = [...parts.keys()].sort((a, b) => a - b);
    const replies = await Promise.all(
      shards.map((shard) => this.toShard(shard, { ...request, lines: parts.get(shard)!, bodyHash })),
    );
    const failures = replies.filter((reply): reply is Rejection => !reply.ok);
    if (failures.length === 0) {
      this.remember(request.reservationId, bodyHash, shards);
      return mergeReservationReplies(replies);
    }
    // All or nothing. A reservation is acknowledged only once every part holds, so if this
    // attempt had to create a part, or a part was refused outright (a part that existed
    // would have answered "replayed"), the reservation was never complete: abort every
    // part that may hold — held now, or unknown because its shard failed (abort is
    // idempotent). If every part replayed or is unknown, it may have been acknowledged:
    // abort nothing, answer UNAVAILABLE, and let the retry find out.
    const neverComplete = replies.some(
      (reply) =>
        (reply.ok && reply.kind === 'reservation' && !reply.replayed) ||
        (!reply.ok && reply.code !== 'UNAVAILABLE'),
    );
    const abort: Abort = { type: 'abort', reservationId: request.reservationId };
    await Promise.all(
      shards.map((shard, i) => {
        const reply = replies[i]!;
        const heldNow = reply.ok && reply.kind === 'reservation' && reply.reservation.status === 'held';
        const unknown = !reply.ok && reply.code === 'UNAVAILABLE';
        return neverComplete && (heldNow || unknown) ? this.compensate(shard, abort) : undefined;
      }),
    );
    return combineFailures(failures);
  }

  /**
   * What the router checks before any shard sees a reservation: the checks one shard makes
   * before it looks at stock, in the same order (so the answer does not depend on how the
   * lines are spread over shards), then the id against the directory.
   */
  private precheck(
    request: Reserve,
  ): { rejection: Promise<Rejection> } | { bodyHash: number; known: boolean } {
    const invalid = validateReserveShape(request, this.limits);
    if (invalid !== null) return { rejection: Promise.resolve(invalid) };
    const bodyHash = reserveBodyHash(request);
    const slot = this.directory.find(request.reservationId);
    if (slot !== -1 && this.directory.bodyHashAt(slot) !== bodyHash) {
      return { rejection: this.keyReused(request, this.directory.shardsAt(slot)[0] ?? 0) };
    }
    return { bodyHash, known: slot !== -1 };
  }

  /**
   * The answer to a reservation id reused with another body. A shard checks the channel
   * before the id, so an unknown channel is reported first here too; channels live in the
   * shards, so ask one that holds a part (this path is rare): the one whose answer a single
   * shard would give. Another shard may disagree while a channel upsert that failed on it
   * has not been retried.
   */
  private async keyReused(request: Reserve, holder: number): Promise<Rejection> {
    if (typeof request.channel === 'string') {
      const reply = await this.toShard(holder, { type: 'channels' });
      if (
        reply.ok &&
        reply.kind === 'channels' &&
        !reply.channels.some((c) => c.channel === request.channel)
      ) {
        return reject('UNKNOWN_CHANNEL', `channel ${request.channel} is not configured`);
      }
    }
    return reject(
      'IDEMPOTENCY_KEY_REUSED',
      `reservation ${request.reservationId} exists with a different body`,
    );
  }

  /**
   * Sends a compensating abort. It bypasses the mailbox bound (a full mailbox must not
   * strand a hold the client was told did not happen) and is retried while its outcome
   * is unknown; if the shard stays down, expiry releases the part.
   */
  private async compensate(shard: number, abort: Abort): Promise<void> {
    for (let attempt = 0; attempt < compensationAttemptsMax; attempt++) {
      const sink = new PromiseSink();
      this.lanes[shard]!.execute(abort, sink, 0, true);
      const reply = await sink.promise;
      if (reply.ok || reply.code !== 'UNAVAILABLE') return;
      await this.retryPause(attempt);
    }
  }

  /** Enters the reservation in the directory; returns its entry's serial. */
  protected remember(id: string, bodyHash: number, shards: readonly number[]): number {
    const now = this.clock.now();
    const serial = this.directory.set(id, bodyHash, shards, now);
    // A shard remembers a reservation at most its longest TTL plus the retention window.
    this.directory.evictAddedBefore(
      now - (this.limits.ttlSecondsMax + this.limits.reservationRetentionSeconds) * 1000,
    );
    return serial;
  }

  private byReservation(request: Exclude<Request, Reserve> & { reservationId: string }): Promise<Reply> {
    if (this.shardCount === 1) return this.toShard(0, request);
    return this.serially(request.reservationId, () => this.byReservationOnShards(request));
  }

  private async byReservationOnShards(
    request: Exclude<Request, Reserve> & { reservationId: string },
  ): Promise<Reply> {
    const slot = typeof request.reservationId === 'string' ? this.directory.find(request.reservationId) : -1;
    const shards = slot === -1 ? this.lanes.map((lane) => lane.shard) : this.directory.shardsAt(slot);
    if (request.type === 'commit' && request.lines !== undefined && Array.isArray(request.lines)) {
      return this.partialCommit(request, shards);
    }
    const replies = await Promise.all(shards.map((shard) => this.toShard(shard, request)));
    if (request.type === 'release' || request.type === 'extend') {
      return this.pastSettledParts(request.reservationId, shards, replies);
    }
    return mergeReservationReplies(replies);
  }

  /**
   * A release or an extension of a cross-shard reservation whose lines on some parts were
   * all committed by partial commits: those parts refuse (RESERVATION_NOT_HELD, committed),
   * while one shard holding every line would release or extend the lines still held. When
   * another part took the command, the settled parts' views join the answer in place of
   * their refusals; when none did, the reservation is over and the refusal stands.
   */
  private async pastSettledParts(
    reservationId: string,
    shards: readonly number[],
    replies: readonly Reply[],
  ): Promise<Reply> {
    const settled = (reply: Reply) =>
      !reply.ok && reply.code === 'RESERVATION_NOT_HELD' && reply.reservationStatus === 'committed';
    if (!replies.some(settled) || !replies.some((reply) => reply.ok)) return mergeReservationReplies(replies);
    const views = await Promise.all(
      shards
        .filter((_, i) => settled(replies[i]!))
        .map((shard) => this.toShard(shard, { type: 'get', reservationId })),
    );
    // Whether the command was a repeat is for the parts that took it to say.
    return mergeReservationReplies([...replies.filter((reply) => !settled(reply)), ...asRepeats(views)]);
  }

  /**
   * A commit of named lines of a reservation with parts on several shards, all or nothing,
   * answered as one shard holding every line would answer it. First the parts tell where
   * the whole reservation stands: committed answers "replayed" whatever the lines, released
   * or expired refuses, and only a held one goes on. Each line then goes to the part that
   * has its SKU; a SKU no part has goes to a part still holding, which refuses it as a
   * line the reservation does not have (as one shard would). With lines on several parts,
   * each part first checks its lines (a commit `check`: no events) and nothing is
   * committed unless every check passed; the calls on one reservation are serialised
   * (`serially`), so only an expiry falling due between the check and the commit can
   * still split the outcome, as it can for a whole commit.
   */
  private async partialCommit(request: Commit, shards: readonly number[]): Promise<Reply> {
    const reservationId = request.reservationId;
    const parts = await Promise.all(
      shards.map((shard) => this.toShard(shard, { type: 'get', reservationId })),
    );
    const whole = mergeReservationReplies(parts);
    if (!whole.ok || whole.kind !== 'reservation') return whole;
    const status = whole.reservation.status;
    if (status === 'committed') return { ...whole, replayed: true };
    if (status !== 'held') {
      return reject('RESERVATION_NOT_HELD', `reservation ${reservationId} is ${status}`, {
        reservationStatus: status,
      });
    }
    // Which part has which SKU: a line goes to the part with its SKU; a SKU no part has
    // goes to a part still holding, which refuses it (a settled part would answer "replayed").
    const partOf = new Map<string, number>();
    let holding = shards[0]!;
    parts.forEach((reply, i) => {
      if (!reply.ok || reply.kind !== 'reservation') return;
      if (reply.reservation.status === 'held') holding = shards[i]!;
      for (const line of reply.reservation.lines) partOf.set(line.sku, shards[i]!);
    });
    const byShard = new Map<number, NonNullable<Commit['lines']>[number][]>();
    for (const line of request.lines!) {
      const shard = (typeof line?.sku === 'string' ? partOf.get(line.sku) : undefined) ?? holding;
      const lines = byShard.get(shard);
      if (lines === undefined) byShard.set(shard, [line]);
      else lines.push(line);
    }
    if (byShard.size > 1) {
      const checks = await Promise.all(
        [...byShard].map(([shard, lines]) => this.toShard(shard, { ...request, lines, check: true })),
      );
      const refused = checks.filter((reply): reply is Rejection => !reply.ok);
      if (refused.length > 0) return firstByCode(refused, commitRefusalPrecedence) ?? refused[0]!;
    }
    const replies = await Promise.all(
      [...byShard].map(([shard, lines]) => this.toShard(shard, { ...request, lines })),
    );
    // Parts not named by the commit keep their lines held; report the whole reservation.
    // Whether the commit was a repeat is for the named parts to say.
    if (replies.every((reply) => reply.ok)) {
      const views = await Promise.all(
        shards
          .filter((shard) => !byShard.has(shard))
          .map((shard) => this.toShard(shard, { type: 'get', reservationId })),
      );
      return mergeReservationReplies([...replies, ...asRepeats(views)]);
    }
    return mergeReservationReplies(replies);
  }

  /** Rebuilds the cross-shard idempotency directory from the shards' reservation indexes. */
  loadDirectoryFrom(indexes: ReadonlyArray<ReadonlyArray<readonly [string, number]>>): void {
    const now = this.clock.now();
    const found = new Map<string, { bodyHash: number; shards: number[] }>();
    indexes.forEach((index, shard) => {
      for (const [id, bodyHash] of index) {
        const entry = found.get(id);
        if (entry === undefined) found.set(id, { bodyHash, shards: [shard] });
        else entry.shards.push(shard);
      }
    });
    for (const [id, entry] of found) this.directory.set(id, entry.bodyHash, entry.shards, now);
  }
}

/** The engine: a Router over shard worker threads, with their supervisors and the expiry ticks. */
export class Engine extends Router {
  readonly shards: ShardHandle[];
  private tickTimer: NodeJS.Timeout | null = null;
  private snapshotTimer: NodeJS.Timeout | null = null;
  private snapshotter!: Snapshotter;
  recovery: RecoveryInfo[] = [];
  private readonly durableListeners: Set<DurableListener>;

  private constructor(options: EngineOptions, layout: Layout, limits: Limits, clock: Clock) {
    const durableListeners = new Set<DurableListener>();
    const shards = Array.from(
      { length: layout.shardCount },
      (_, shard) =>
        new ShardHandle({
          shard,
          layout,
          limits,
          store: options.store,
          now: () => clock.now(),
          onRestart: options.onShardRestart,
          onFenced: options.onShardFenced,
          onDurable: (stream, seq) => {
            for (const listener of durableListeners) listener(stream, seq);
          },
        }),
    );
    super(
      shards,
      layout,
      limits,
      clock,
      (attempt) => new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt)),
    );
    this.shards = shards;
    this.durableListeners = durableListeners;
  }

  /**
   * Calls `listener(stream, seq)` each time a WAL row this engine appended is durable, before
   * the replies of its requests are delivered. Returns the unsubscribe. The change feed
   * wakes its tails on it, so it needs no polling whoever performs the appends.
   */
  onDurable(listener: DurableListener): () => void {
    this.durableListeners.add(listener);
    return () => this.durableListeners.delete(listener);
  }

  /**
   * Starts every shard worker and waits until each has recovered. With a shard count
   * different from the stored layout, each shard rebuilds its SKUs from all old streams
   * and snapshots under a new epoch before the new layout is recorded.
   */
  static async start(options: EngineOptions): Promise<Engine> {
    const limits = options.limits ?? defaultLimits;
    assertLimits(limits);
    const shardCount = options.shards ?? defaultShardCount(availableParallelism());
    if (!Number.isSafeInteger(shardCount) || shardCount < 1 || shardCount > limits.partitionCount) {
      throw new Error(`shards must be a whole number 1..${limits.partitionCount}, got ${shardCount}`);
    }
    if (options.gc !== undefined) applyGcProfile(options.gc);
    const previous = await options.store.readLayout();
    const epoch =
      previous === null ? 1 : previous.shardCount === shardCount ? previous.epoch : previous.epoch + 1;
    const layout: Layout = { shardCount, partitionCount: limits.partitionCount, epoch };
    const engine = new Engine(options, layout, limits, options.clock ?? systemClock);
    try {
      engine.recovery = await Promise.all(engine.shards.map((shard) => shard.start(previous)));
    } catch (error) {
      await Promise.allSettled(engine.shards.map((shard) => shard.stop()));
      throw error;
    }
    if (previous === null || previous.epoch !== epoch) await options.store.writeLayout(layout);
    if (shardCount > 1) {
      engine.loadDirectoryFrom(
        await Promise.all(engine.shards.map((shard) => shard.control.reservationIndex())),
      );
    }
    engine.tickTimer = setInterval(() => engine.tick(), limits.expiryTickMs);
    engine.tickTimer.unref();
    engine.snapshotter = new Snapshotter(
      options.store,
      layout,
      limits,
      () => engine.clock.now(),
      engine.recovery,
    );
    engine.snapshotTimer = setInterval(() => {
      engine.stats().then(
        (stats) => engine.snapshotter.poll(stats),
        () => undefined, // a shard restarting: ask again at the next tick
      );
    }, limits.snapshotCheckMs);
    engine.snapshotTimer.unref();
    return engine;
  }

  private tick(): void {
    for (const shard of this.shards) shard.tick();
  }

  async stats(): Promise<ShardStats[]> {
    return Promise.all(this.shards.map((shard) => shard.control.stats()));
  }

  async snapshotNow(): Promise<Array<{ seq: number; bytes: number; stallMs: number }>> {
    return Promise.all(this.shards.map((shard) => shard.control.snapshotNow()));
  }

  /**
   * Snapshots every shard from the WAL on a background thread, one shard after another,
   * then applies WAL retention: the shards keep serving throughout (the periodic
   * snapshots work the same way).
   */
  async snapshotInBackground(): Promise<BackgroundSnapshot[]> {
    // In the snapshotter's one slot: no periodic snapshot starts alongside.
    return this.snapshotter.exclusive(async () => {
      const taken: BackgroundSnapshot[] = [];
      for (const shard of this.shards) {
        taken.push(await this.snapshotter.take(shard.shard));
        await this.snapshotter.applyRetention(shard.shard);
      }
      await this.snapshotter.applyRetiredRetention();
      return taken;
    });
  }

  /**
   * Background snapshots: the ones taken lately by the periodic check (newest last), the
   * one running now (periodic or on demand; one at a time), how many jobs started and
   * finished since start (failed ones included), and the last failure. For stats and ops.
   */
  get snapshots(): {
    readonly taken: readonly BackgroundSnapshot[];
    readonly running: SnapshotInProgress | null;
    readonly started: number;
    readonly finished: number;
    readonly lastError: string | null;
  } {
    const { started, finished } = this.snapshotter.jobs;
    return {
      taken: this.snapshotter.taken,
      running: this.snapshotter.inProgress,
      started,
      finished,
      lastError: this.snapshotter.lastError,
    };
  }

  async inspect(): Promise<Array<{ digest: string; violations: string[] }>> {
    return Promise.all(this.shards.map((shard) => shard.control.inspect()));
  }

  /** Test hook: kills a shard's worker as a crash would; its supervisor restarts it. */
  async crashShard(shard: number): Promise<void> {
    await this.shards[shard]!.crash();
  }

  /** Resolves once every shard is ready again (after restarts). */
  async whenReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // The main thread knows a worker restarted; only the worker knows it is degraded.
    for (;;) {
      if (this.shards.every((shard) => shard.phase === 'ready')) {
        const stats = await Promise.all(this.shards.map((shard) => shard.control.stats()));
        if (stats.every((stat) => stat.lifecycle === 'ready')) return;
      }
      if (Date.now() > deadline) throw new Error('shards did not become ready in time');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Finishes what is queued, drains every shard and stops the workers. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    await this.snapshotter?.idle();
    await Promise.all(this.shards.map((shard) => shard.stop()));
  }

  /** One digest of the whole engine's state (all shards; channels counted once). */
  async digest(): Promise<string> {
    const perShard = await Promise.all(this.shards.map((shard) => shard.control.canonical()));
    return digestOfLines(mergeCanonicalLines(perShard.flat()));
  }
}

/** Views of parts that did not take a command: they leave "replayed" to the parts that did. */
function asRepeats(views: readonly Reply[]): Reply[] {
  return views.map((view) => (view.ok && view.kind === 'reservation' ? { ...view, replayed: true } : view));
}

/** One view of a reservation from its parts on several shards. */
export function mergeReservationReplies(replies: readonly Reply[]): Reply {
  const views: ReservationView[] = [];
  let replayed = true;
  let notFound: Rejection | null = null;
  for (const reply of replies) {
    if (!reply.ok) {
      if (reply.code === 'RESERVATION_NOT_FOUND') {
        notFound = reply;
        continue;
      }
      return reply;
    }
    if (reply.kind !== 'reservation') return reply;
    views.push(reply.reservation);
    replayed &&= reply.replayed;
  }
  if (views.length === 0) return notFound ?? reject('RESERVATION_NOT_FOUND', 'no such reservation');
  if (views.length === 1) return { ok: true, kind: 'reservation', reservation: views[0]!, replayed };
  // What one shard holding every line would say: held while a part holds, else the
  // status (and expiry) of the part that finished last.
  const outcome = views
    .map((v) => ({
      status: v.status,
      finishedAt: v.finishedAt ?? 0,
      expiresAt: v.expiresAt,
      extensions: v.extensions ?? 0,
    }))
    .reduce(combineOutcomes);
  const first = views[0]!;
  return {
    ok: true,
    kind: 'reservation',
    replayed,
    reservation: {
      reservationId: first.reservationId,
      orderId: first.orderId,
      channel: first.channel,
      status: outcome.status,
      createdAt: Math.min(...views.map((v) => v.createdAt)),
      expiresAt: outcome.expiresAt,
      finishedAt: outcome.finishedAt,
      extensions: outcome.extensions,
      lines: views.flatMap((v) => v.lines),
    },
  };
}

function combineFailures(failures: readonly Rejection[]): Rejection {
  // An unknown outcome anywhere makes the whole outcome unknown: the client must retry.
  const unavailable = failures.find((failure) => failure.code === 'UNAVAILABLE');
  if (unavailable !== undefined) return unavailable;
  // Otherwise the code one shard would give for the whole request: its checks run in this order.
  const first = firstByCode(failures, refusalPrecedence);
  if (first !== undefined) return first;
  const shortages = failures.flatMap((failure) => failure.shortages ?? []);
  if (shortages.length > 0) {
    const skus = shortages.map((s) => s.sku).join(', ');
    return reject('INSUFFICIENT_STOCK', `not enough available stock for ${skus}`, { shortages });
  }
  return failures[0]!;
}

/** A commit's refusals in the order one shard checks them (the unknown outcome first). */
const commitRefusalPrecedence: readonly ErrorCode[] = [
  'UNAVAILABLE',
  'RESERVATION_NOT_FOUND',
  'RESERVATION_NOT_HELD',
  'INVALID_REQUEST',
  'INVALID_QUANTITY',
];

/** The failure whose code comes first in `precedence`, if any has one of those codes. */
function firstByCode(
  failures: readonly Rejection[],
  precedence: readonly ErrorCode[],
): Rejection | undefined {
  for (const code of precedence) {
    const found = failures.find((failure) => failure.code === code);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Refusals a shard gives before it looks at stock, in the order it checks them. */
const refusalPrecedence: readonly ErrorCode[] = [
  'INVALID_REQUEST',
  'INVALID_TTL',
  'LIMIT_EXCEEDED',
  'INVALID_QUANTITY',
  'UNKNOWN_CHANNEL',
  'IDEMPOTENCY_KEY_REUSED',
  'LOCATION_NOT_IN_CHANNEL',
];
