/**
 * What one measurement counts: a latency per sent operation in an HDR histogram
 * (hdr-histogram-js, microseconds, 3 significant digits, up to 60 s), and per command its
 * kind and outcome. The histogram travels into the results file compressed, so the report
 * layer can merge runs or read any percentile later.
 */
import * as hdr from 'hdr-histogram-js';
import { isFailure, type Operation, type Outcome, okOutcome } from './operation.js';

export interface LatencySummaryMs {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export interface KindCounts {
  ok: number;
  /** Business refusals (4xx codes: INSUFFICIENT_STOCK, RESERVATION_NOT_HELD, …). */
  refused: number;
  /** Target failures (5xx codes, transport errors, timeouts). */
  failed: number;
}

/** A measurement as it is written to results.json (documented in bench/README.md). */
export interface Measurement {
  readonly elapsedSeconds: number;
  /** Operations sent and answered: HTTP requests, or execute/executeMany calls without HTTP. */
  readonly requests: number;
  /** Commands inside them (a batch counts each of its commands). */
  readonly operations: KindCounts & { readonly total: number };
  /** Commands per kind: reserve, commit, release, atp, set, … */
  readonly byKind: Readonly<Record<string, KindCounts>>;
  /** Every outcome that was not `ok`, by code. */
  readonly codes: Readonly<Record<string, number>>;
  readonly requestsPerSecond: number;
  readonly operationsPerSecond: number;
  readonly okOperationsPerSecond: number;
  /** Per request (a batch is one), from send — or, open loop, from the scheduled send — to the answer. */
  readonly latencyMs: LatencySummaryMs;
  /** The latency histogram in µs, HdrHistogram compressed base64 (decodeFromCompressedBase64). */
  readonly latencyHistogram: string;
}

export class Recorder {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  private requests = 0;
  private readonly byKind = new Map<string, KindCounts>();
  private readonly codes = new Map<string, number>();
  /** Commands answered so far (progress display). */
  operations = 0;

  /** Requests answered so far (progress display). */
  get answeredRequests(): number {
    return this.requests;
  }

  /** One answered operation: its latency and each command's outcome. */
  record(operation: Operation, latencyMs: number, outcomes: readonly Outcome[]): void {
    this.latency(latencyMs);
    this.outcomes(operation, outcomes);
  }

  latency(latencyMs: number): void {
    this.requests++;
    this.histogram.recordValue(Math.min(60_000_000, Math.max(1, Math.round(latencyMs * 1000))));
  }

  outcomes(operation: Operation, outcomes: readonly Outcome[]): void {
    const requests = operation.requests;
    for (let i = 0; i < requests.length; i++) {
      const kind = requests[i]!.type;
      let counts = this.byKind.get(kind);
      if (counts === undefined) {
        counts = { ok: 0, refused: 0, failed: 0 };
        this.byKind.set(kind, counts);
      }
      const outcome = outcomes[i] ?? 'MISSING_OUTCOME';
      if (outcome === okOutcome) counts.ok++;
      else {
        if (isFailure(outcome)) counts.failed++;
        else counts.refused++;
        this.codes.set(outcome, (this.codes.get(outcome) ?? 0) + 1);
      }
    }
    this.operations += requests.length;
  }

  /**
   * A request lost without an answer — a connection error or a timeout that autocannon
   * reports without saying which operation it was: counted as one failed command of kind `lost`.
   */
  lost(code: 'TRANSPORT_ERROR' | 'TIMEOUT'): void {
    let counts = this.byKind.get('lost');
    if (counts === undefined) {
      counts = { ok: 0, refused: 0, failed: 0 };
      this.byKind.set('lost', counts);
    }
    counts.failed++;
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }

  result(elapsedSeconds: number): Measurement {
    const totals = { total: 0, ok: 0, refused: 0, failed: 0 };
    const byKind: Record<string, KindCounts> = {};
    for (const [kind, counts] of [...this.byKind].sort(([a], [b]) => a.localeCompare(b))) {
      byKind[kind] = { ...counts };
      totals.ok += counts.ok;
      totals.refused += counts.refused;
      totals.failed += counts.failed;
    }
    totals.total = totals.ok + totals.refused + totals.failed;
    const seconds = Math.max(elapsedSeconds, 1e-9);
    const h = this.histogram;
    const ms = (us: number) => Math.round(us) / 1000;
    const empty = h.totalCount === 0;
    return {
      elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
      requests: this.requests,
      operations: totals,
      byKind,
      codes: Object.fromEntries([...this.codes].sort(([a], [b]) => a.localeCompare(b))),
      requestsPerSecond: Math.round(this.requests / seconds),
      operationsPerSecond: Math.round(totals.total / seconds),
      okOperationsPerSecond: Math.round(totals.ok / seconds),
      latencyMs: {
        count: h.totalCount,
        min: empty ? 0 : ms(h.minNonZeroValue),
        mean: empty ? 0 : ms(h.mean),
        p50: ms(h.getValueAtPercentile(50)),
        p90: ms(h.getValueAtPercentile(90)),
        p99: ms(h.getValueAtPercentile(99)),
        p999: ms(h.getValueAtPercentile(99.9)),
        max: ms(h.maxValue),
      },
      latencyHistogram: hdr.encodeIntoCompressedBase64(h),
    };
  }

  destroy(): void {
    this.histogram.destroy();
  }
}
