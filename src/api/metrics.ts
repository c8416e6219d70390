/**
 * Prometheus metrics (prom-client), one registry per server so several servers in one
 * process (tests) never collide.
 *
 *   stockd_http_request_duration_seconds{method,route,status}  histogram, every request
 *   stockd_batch_commands                                       histogram, /v1/batch sizes
 *   stockd_rejections_total{code}                               every problem answered (items too)
 *   stockd_shard_mailbox_depth{shard}                           commands queued or in flight
 *   stockd_shard_ready{shard}                                   1 when the shard serves
 *   stockd_shard_wal_append_seconds{shard}                      histogram, WAL appends (group commits)
 *   stockd_shard_wal_last_append_seconds{shard}                 duration of the shard's last WAL append
 *   stockd_shard_wal_appends{shard}, _append_failures{shard}, _commands{shard}, _batches{shard},
 *   stockd_shard_held_reservations{shard}
 *   + the process metrics of prom-client (event loop lag, heap, GC)
 *
 * The per-request cost is a bucket search and three additions on counters made once per
 * (route, status): prom-client's own Histogram hashes its labels on every observation,
 * so request latency is kept in `RouteLatency` and rendered at scrape time. Shard figures
 * are read only when /metrics is scraped.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import {
  type LatencyCounts,
  latencyBoundsMs,
  newLatencyCounts,
  recordLatency,
} from '../engine/latency-counts.js';
import type { ShardStats } from '../engine/protocol.js';

/** What metrics read of the engine (Engine satisfies it). */
export interface ShardSource {
  readonly shards: readonly { readonly depth: number }[];
  stats(): Promise<ShardStats[]>;
}

type MetricValue = { value: number; labels: Record<string, string | number>; metricName: string };

/** Appends one histogram series (cumulative buckets in seconds, sum, count) to `values`. */
function pushHistogram(
  values: MetricValue[],
  name: string,
  histogram: LatencyCounts,
  labels: Record<string, string>,
): void {
  let cumulative = 0;
  latencyBoundsMs.forEach((boundMs, i) => {
    cumulative += histogram.counts[i]!;
    values.push({
      value: cumulative,
      labels: { le: boundMs / 1000, ...labels },
      metricName: `${name}_bucket`,
    });
  });
  values.push({ value: histogram.count, labels: { le: '+Inf', ...labels }, metricName: `${name}_bucket` });
  values.push({ value: histogram.sumMs / 1000, labels, metricName: `${name}_sum` });
  values.push({ value: histogram.count, labels, metricName: `${name}_count` });
}

/** One (method, route, status) series. */
interface LatencySeries {
  readonly labels: { method: string; route: string; status: string };
  readonly histogram: LatencyCounts;
}

/**
 * stockd_http_request_duration_seconds, recorded without allocation: a prom-client metric
 * object (name, help, type, get) whose values are built only when scraped.
 */
class RouteLatency {
  readonly name = 'stockd_http_request_duration_seconds';
  readonly help = 'HTTP request latency by route (the route template, not the path)';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series: LatencySeries[] = [];

  /** A recorder for one route; its series per status are created on first use. */
  recorder(method: string, route: string): (status: number, elapsedMs: number) => void {
    const byStatus = new Map<number, LatencySeries>();
    return (status, elapsedMs) => {
      let series = byStatus.get(status);
      if (series === undefined) {
        series = { labels: { method, route, status: String(status) }, histogram: newLatencyCounts() };
        byStatus.set(status, series);
        this.series.push(series);
      }
      recordLatency(series.histogram, elapsedMs);
    };
  }

  async get() {
    const values: MetricValue[] = [];
    for (const series of this.series) pushHistogram(values, this.name, series.histogram, series.labels);
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const { histogram } of this.series) {
      histogram.counts.fill(0);
      histogram.sumMs = 0;
      histogram.count = 0;
    }
  }
}

/**
 * stockd_shard_wal_append_seconds{shard}: the durations of each shard's WAL appends, as its
 * worker counted them (since it started: a restarted worker starts from zero, which
 * Prometheus reads as a counter reset). Rendered from the stats read at scrape time.
 */
class ShardAppendLatency {
  readonly name = 'stockd_shard_wal_append_seconds';
  readonly help = 'Duration of the shard’s WAL appends (group commits): the wait of every reply in the group';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly byShard = new Map<string, LatencyCounts>();

  update(shard: string, counts: LatencyCounts): void {
    this.byShard.set(shard, counts);
  }

  async get() {
    const values: MetricValue[] = [];
    for (const [shard, histogram] of this.byShard) pushHistogram(values, this.name, histogram, { shard });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.byShard.clear();
  }
}

/** A scrape waits at most this long for the shards' stats (a restarting worker must not hang it). */
const statsTimeoutMs = 1_000;

export class ApiMetrics {
  readonly registry = new Registry();
  private readonly latency = new RouteLatency();
  private readonly appendLatency = new ShardAppendLatency();
  private readonly rejections: Counter<'code'>;
  private readonly rejectionChildren = new Map<string, Counter.Internal>();
  private readonly batchCommands: Histogram;
  private readonly mailboxDepth: Gauge<'shard'>;
  private readonly shardReady: Gauge<'shard'>;
  private readonly walLastAppend: Gauge<'shard'>;
  private readonly walAppends: Gauge<'shard'>;
  private readonly walAppendFailures: Gauge<'shard'>;
  private readonly shardCommands: Gauge<'shard'>;
  private readonly shardBatches: Gauge<'shard'>;
  private readonly shardHeld: Gauge<'shard'>;

  constructor(private readonly source: () => ShardSource | null) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'stockd_' });
    this.registry.registerMetric(this.latency as unknown as Metric);
    this.registry.registerMetric(this.appendLatency as unknown as Metric);
    this.rejections = new Counter({
      name: 'stockd_rejections_total',
      help: 'Problems answered, by code (batch and list items included)',
      labelNames: ['code'],
      registers,
    });
    this.batchCommands = new Histogram({
      name: 'stockd_batch_commands',
      help: 'Commands per /v1/batch request',
      buckets: [1, 10, 100, 1_000, 10_000],
      registers,
    });
    const shardGauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ['shard'] as const, registers });
    this.mailboxDepth = new Gauge({
      name: 'stockd_shard_mailbox_depth',
      help: 'Commands queued for or in flight to a shard',
      labelNames: ['shard'],
      registers,
      collect: () => this.collectDepth(),
    });
    this.shardReady = shardGauge(
      'stockd_shard_ready',
      '1 when the shard serves, 0 while recovering, degraded or stopping',
    );
    this.walLastAppend = shardGauge(
      'stockd_shard_wal_last_append_seconds',
      'Duration of the shard’s most recent WAL append (group commit)',
    );
    this.walAppends = shardGauge(
      'stockd_shard_wal_appends',
      'WAL rows appended by the shard since it started',
    );
    this.walAppendFailures = shardGauge('stockd_shard_wal_append_failures', 'WAL appends that failed');
    this.shardCommands = shardGauge('stockd_shard_commands', 'Commands the shard processed since it started');
    this.shardBatches = shardGauge(
      'stockd_shard_batches',
      'Batches the shard processed since it started (commands ÷ batches = the engine’s batch size)',
    );
    this.shardHeld = shardGauge('stockd_shard_held_reservations', 'Reservations held on the shard');
  }

  /** A function that records one request of a route (made once per route, at registration). */
  routeObserver(method: string, route: string): (status: number, elapsedMs: number) => void {
    return this.latency.recorder(method, route);
  }

  rejection(code: string): void {
    let child = this.rejectionChildren.get(code);
    if (child === undefined) {
      child = this.rejections.labels(code);
      this.rejectionChildren.set(code, child);
    }
    child.inc();
  }

  batch(size: number): void {
    this.batchCommands.observe(size);
  }

  private collectDepth(): void {
    const engine = this.source();
    if (engine === null) return;
    engine.shards.forEach((shard, index) => {
      this.mailboxDepth.set({ shard: String(index) }, shard.depth);
    });
  }

  /** The exposition text; reads the shards' stats first (bounded by a timeout). */
  async render(): Promise<string> {
    const engine = this.source();
    if (engine !== null) {
      const stats = await withTimeout(engine.stats(), statsTimeoutMs);
      if (stats !== null) this.setShardStats(stats);
    }
    return this.registry.metrics();
  }

  private setShardStats(stats: readonly ShardStats[]): void {
    for (const stat of stats) {
      const shard = String(stat.shard);
      this.shardReady.set({ shard }, stat.lifecycle === 'ready' ? 1 : 0);
      this.walLastAppend.set({ shard }, stat.lastAppendMs / 1000);
      this.appendLatency.update(shard, stat.appendLatency);
      this.walAppends.set({ shard }, stat.appends);
      this.walAppendFailures.set({ shard }, stat.appendFailures);
      this.shardCommands.set({ shard }, stat.commands);
      this.shardBatches.set({ shard }, stat.batches);
      this.shardHeld.set({ shard }, stat.held);
    }
  }
}

/** The promise's value, or null when it takes longer than `ms` (or fails). */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise.catch(() => null), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
