/**
 * Every limit in stockd, in one place (TigerBeetle style: put a limit on everything).
 *
 * Names end in their unit or qualifier (`ttlSeconds`, `walBatchEventsMax`). Relationships
 * between limits are asserted by `assertLimits()`, which every process runs at start-up,
 * so a misconfiguration fails loudly instead of deadlocking a mailbox under load.
 */

export interface Limits {
  /** Hash slots of the SKU space. Fixed for the life of a database: state is owned per partition. */
  readonly partitionCount: number;
  /** Commands queued for one shard (main-thread mailbox + in flight) before OVERLOADED. */
  readonly mailboxDepthMax: number;
  /**
   * Commands in one batch sent to a shard worker. A worker decodes a whole batch before it
   * decides it and encodes its replies after, so a batch's objects live as long as the
   * batch takes: at 4,096 they outlived the worker's scavenges and were copied and
   * promoted; at 512, side by side in engine-throughput.js's saturation phase, the worker's
   * scavenge time fell from 672–743 ms to 211–319 ms and what it promoted from 110–119 MB
   * to 38–48 MB (with 4 and with 16 batches in flight alike).
   * Many batches still go into one WAL row (walBatchEventsMax), so group commit is as
   * large as before.
   */
  readonly batchCommandsMax: number;
  /**
   * Batches a shard may have in flight (sent, not yet replied) at once; with
   * batchCommandsMax, the window of commands a busy shard has to work on: 512 × 32 =
   * 16,384, what 4,096 × 4 gave before batches were made smaller. What is in flight
   * together can share one WAL row, so a slow store (PostgreSQL) wants the window large.
   */
  readonly inflightBatchesMax: number;
  /**
   * While a shard has a batch in flight, a further batch is sent only once this many
   * commands wait; fewer wait for the reply and go together in the next batch. The shard
   * appends one group at a time anyway, so waiting costs them little (the deciding of the
   * next group, which a second batch overlaps with the append), while small batches to a
   * shard that is already busy cost the main thread a message and a wake-up each: with
   * single HTTP reserves (about a dozen per batch) this sends ~40% fewer batches and saves
   * about 5% of server CPU per request (bench/http.ts, side by side). 1 sends every batch at once (up to inflightBatchesMax); a full batch
   * (batchCommandsMax) always goes.
   */
  readonly pipelineCommandsMin: number;
  /** Events in one group-committed WAL row. A batch that produces more is split. */
  readonly walBatchEventsMax: number;
  /** Lines in one reservation. */
  readonly reservationLinesMax: number;
  /** Locations in one channel. */
  readonly channelLocationsMax: number;
  /** Channels configured at once. */
  readonly channelsMax: number;
  /** UTF-8 bytes in a SKU, a location id, a channel id, a reservation id, an order id or a key. */
  readonly idBytesMax: number;
  /** Units in one line, one stock level or one adjustment (keeps arithmetic exact in doubles). */
  readonly quantityMax: number;
  /** Reservation TTL bounds and default. */
  readonly ttlSecondsMin: number;
  readonly ttlSecondsMax: number;
  readonly ttlSecondsDefault: number;
  /** How long a finished (committed/released/expired) reservation is remembered for idempotent replies. */
  readonly reservationRetentionSeconds: number;
  /** Finished reservations remembered per shard; the oldest are forgotten first past this. */
  readonly finishedReservationsMax: number;
  /** Adjustment keys are deduplicated within this window ... */
  readonly adjustmentKeyWindowSeconds: number;
  /** ... and at most this many keys per shard (oldest forgotten first). */
  readonly adjustmentKeysMax: number;
  /** Expiries processed per batch, so a mass expiry never stalls the mailbox. */
  readonly expiriesPerBatchMax: number;
  /** Idle shard wakes up this often to expire reservations. */
  readonly expiryTickMs: number;
  /** A shard is snapshotted (in the background, from the WAL) after this many events ... */
  readonly snapshotEveryEvents: number;
  /** ... or after this long with anything new. */
  readonly snapshotEveryMs: number;
  /** How often the engine checks whether a snapshot is due. */
  readonly snapshotCheckMs: number;
  /**
   * WAL retention: rows and snapshots older than this are removed once a snapshot older
   * than it exists (that snapshot becomes the earliest point the replay tool can rebuild).
   */
  readonly walRetentionMs: number;
  /**
   * Young generation (MB) of a shard worker's heap: a trade between tail latency and
   * recovery speed. Nearly everything a shard keeps (records, reservations) outlives a
   * scavenge, so a large young generation means long scavenge pauses in steady state (V8's
   * default, about 48 MB, gave p99 round trips of 11-32 ms at 20k commands/s where 4 MB
   * gave ~5 ms), while a small one makes recovery, which allocates garbage as fast as it
   * can decode, scavenge constantly (5M events: 18 s at 4 MB, 12-13 s at 16 MB, 12 s at
   * 32 MB). Measured with BENCH_YOUNG_MB (bench/README.md, "GC and the shard heap"),
   * when reservation ids were still strings on the heap; a shard now promotes far less
   * per command, so the trade is worth measuring again before changing this.
   */
  readonly workerYoungGenerationMb: number;
}

export const defaultLimits: Limits = Object.freeze({
  partitionCount: 1024,
  mailboxDepthMax: 65_536,
  batchCommandsMax: 512,
  inflightBatchesMax: 32,
  pipelineCommandsMin: 256,
  walBatchEventsMax: 65_536,
  reservationLinesMax: 100,
  channelLocationsMax: 64,
  channelsMax: 1_024,
  idBytesMax: 128,
  quantityMax: 1_000_000_000,
  ttlSecondsMin: 1,
  ttlSecondsMax: 30 * 24 * 3600,
  ttlSecondsDefault: 15 * 60,
  reservationRetentionSeconds: 24 * 3600,
  finishedReservationsMax: 1_000_000,
  adjustmentKeyWindowSeconds: 24 * 3600,
  adjustmentKeysMax: 1_000_000,
  expiriesPerBatchMax: 4_096,
  expiryTickMs: 100,
  snapshotEveryEvents: 1_000_000,
  snapshotEveryMs: 10 * 60_000,
  snapshotCheckMs: 1_000,
  walRetentionMs: 7 * 24 * 3600 * 1000,
  workerYoungGenerationMb: 16,
});

/** Throws (a programmer/operator error, not a business outcome) when limits contradict each other. */
export function assertLimits(limits: Limits): void {
  const fail = (why: string): never => {
    throw new Error(`invalid limits: ${why}`);
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) fail(`${name} must be a positive integer, got ${value}`);
  }
  if (limits.partitionCount > 65_536) fail('partitionCount must fit in 16 bits');
  if (limits.batchCommandsMax > limits.mailboxDepthMax) fail('batchCommandsMax must be <= mailboxDepthMax');
  if (limits.batchCommandsMax * limits.inflightBatchesMax > limits.mailboxDepthMax) {
    fail('batchCommandsMax * inflightBatchesMax must be <= mailboxDepthMax');
  }
  // A batch must fit one WAL row: a command yields at most two events (an expiry of the
  // reservation it touches, then its own), and the timer adds up to expiriesPerBatchMax.
  if (2 * limits.batchCommandsMax + limits.expiriesPerBatchMax > limits.walBatchEventsMax) {
    fail('2 * batchCommandsMax + expiriesPerBatchMax must be <= walBatchEventsMax');
  }
  if (limits.ttlSecondsMin > limits.ttlSecondsDefault || limits.ttlSecondsDefault > limits.ttlSecondsMax) {
    fail('ttlSecondsMin <= ttlSecondsDefault <= ttlSecondsMax');
  }
  if (limits.quantityMax * limits.reservationLinesMax > Number.MAX_SAFE_INTEGER / 1024) {
    fail('quantityMax * reservationLinesMax must stay far inside exact double arithmetic');
  }
}

/** Default shard count: one fewer than the cores, at least one. */
export function defaultShardCount(cores: number): number {
  return Math.max(1, cores - 1);
}
