/**
 * The numbers the report shows, derived from the runs and nothing else: per scenario the
 * rate and latency of every target with stockd's ratio to each alternative, the knee of
 * each step run, the curves for the charts, and how far stockd is above the seed floor.
 *
 * Rates are in commands per second (a /v1/batch of 1,000 sets counts 1,000), so the WMS
 * resync compares with the others; each scenario names its unit (`rateUnits`).
 */

import type { LatencySummaryMs, Measurement } from '../load/recorder.js';
import type { Mode } from '../load/results.js';
import type { StepResult } from '../load/step.js';
import type { ScenarioName } from '../scenarios.js';
import type { SeriesRun } from './results-input.js';

/** The seed requirement stockd must clear in every scenario: a floor, not a target. */
export const seedFloor = { eventsPerSecond: 5_000, meanLatencyMsMax: 200 } as const;

/** What one command of each scenario is, for table headers and chart axes. */
export const rateUnits: Readonly<Record<ScenarioName, string>> = {
  uniform: 'reservations/s',
  zipf: 'reservations/s',
  'flash-sale': 'reservations/s',
  storefront: 'requests/s',
  lifecycle: 'commands/s',
  'wms-resync': 'stock sets/s',
};

/** The alternatives stockd is compared with, in column order. */
export const alternatives = ['pg-row', 'redis-lua'] as const;

/** Request kinds that read: they change nothing, so they write no event. */
const readKinds: ReadonlySet<string> = new Set(['atp', 'stock', 'get', 'channels', 'lost']);

/** Commands per operation of a measurement (1, or the batch size of the resync). */
export function commandsPerOperation(m: Measurement): number {
  return m.requests > 0 ? m.operations.total / m.requests : 1;
}

/** Accepted commands that change state, per second (each writes one event to the WAL; reads write none). */
export function writesPerSecondOf(m: Measurement): number {
  let events = 0;
  for (const [kind, counts] of Object.entries(m.byKind)) if (!readKinds.has(kind)) events += counts.ok;
  return events / Math.max(m.elapsedSeconds, 1e-9);
}

/** A step's offered load in commands per second. */
export function offeredCommandsOf(step: StepResult): number {
  return step.offeredRate * commandsPerOperation(step.measurement);
}

/** The measurement a run stands for in the tables: its closed or open loop, or its knee. */
export interface Headline {
  readonly mode: Mode;
  /** Ok commands per second (closed, open), or the knee's offered commands per second (step). */
  readonly rate: number;
  readonly measurement: Measurement;
  /** Step mode: the knee (null: no step met the objective). */
  readonly knee: StepResult | null;
}

export function headlineOf(run: SeriesRun['run']): Headline | null {
  if (run.error !== undefined) return null;
  if (run.mode === 'step' && run.step !== undefined) {
    const knee = run.step.knee;
    if (knee === null) return null;
    return { mode: 'step', rate: offeredCommandsOf(knee), measurement: knee.measurement, knee };
  }
  const measurement = run.mode === 'open' ? run.open : run.closed;
  if (measurement === undefined) return null;
  return { mode: run.mode, rate: measurement.okOperationsPerSecond, measurement, knee: null };
}

export interface ComparisonRow {
  readonly series: string;
  readonly name: string;
  readonly transport: string;
  readonly durable: boolean | null;
  readonly shards: number | null;
  readonly headline: Headline | null;
  /**
   * stockd rows: stockd's rate ÷ the alternative's, same transport and mode; `unmeasured`
   * when the alternative ran but has no rate (no knee, or its run failed); null otherwise.
   */
  readonly ratios: Readonly<Record<(typeof alternatives)[number], number | 'unmeasured' | null>>;
  /** Why there is no headline (the run failed, or no step met the objective). */
  readonly note: string;
  /** Step mode: how many steps ran and why the next one after the knee failed ('' otherwise). */
  readonly stepEnding: string;
}

function stepEndingOf(run: SeriesRun['run']): string {
  const steps = run.step?.steps;
  if (steps === undefined) return '';
  const failed = steps.find((s) => !s.passed);
  const count = `${steps.length} step${steps.length === 1 ? '' : 's'}`;
  return `${count}; ${failed === undefined ? 'none failed (last step reached)' : failed.reason}`;
}

function noteOf(run: SeriesRun['run']): string {
  if (run.error !== undefined) return `failed: ${run.error}`;
  if (run.mode === 'step' && run.step !== undefined && run.step.knee === null) {
    const first = run.step.steps[0];
    return first === undefined ? 'no step ran' : `no step met the objective (first: ${first.reason})`;
  }
  return '';
}

/** Rows of one scenario in one mode: every series, stockd first, with ratios on stockd's rows. */
export function comparisonRows(
  runs: readonly SeriesRun[],
  scenario: ScenarioName,
  mode: Mode,
): ComparisonRow[] {
  const here = runs.filter((r) => r.scenario === scenario && r.run.mode === mode);
  const ordered = [...here].sort(
    (a, b) => Number(b.name === 'stockd') - Number(a.name === 'stockd') || a.series.localeCompare(b.series),
  );
  return ordered.map((r) => {
    const headline = headlineOf(r.run);
    const ratio = (alternative: string): number | 'unmeasured' | null => {
      if (r.name !== 'stockd' || headline === null) return null;
      const other = here.find((o) => o.name === alternative && o.transport === r.transport);
      if (other === undefined) return null;
      const otherHeadline = headlineOf(other.run);
      return otherHeadline === null || otherHeadline.rate <= 0
        ? 'unmeasured'
        : headline.rate / otherHeadline.rate;
    };
    return {
      series: r.series,
      name: r.name,
      transport: r.transport,
      durable: r.durable,
      shards: r.shards,
      headline,
      ratios: { 'pg-row': ratio('pg-row'), 'redis-lua': ratio('redis-lua') },
      note: noteOf(r.run),
      stepEnding: stepEndingOf(r.run),
    };
  });
}

/** One point of a load curve: a step of a step run, or an open-loop run. */
export interface LoadPoint {
  readonly series: string;
  readonly scenario: ScenarioName;
  /** Commands per second offered. */
  readonly offered: number;
  /** Commands per second answered. */
  readonly achieved: number;
  readonly latencyMs: LatencySummaryMs;
  /** Within the step objective (open loop: not saturated and no failures). */
  readonly passed: boolean;
}

export function loadPoints(runs: readonly SeriesRun[]): LoadPoint[] {
  const points: LoadPoint[] = [];
  for (const r of runs) {
    if (r.run.step !== undefined) {
      for (const step of r.run.step.steps) {
        const perOperation = commandsPerOperation(step.measurement);
        points.push({
          series: r.series,
          scenario: r.scenario,
          offered: step.offeredRate * perOperation,
          achieved: step.achievedRate * perOperation,
          latencyMs: step.measurement.latencyMs,
          passed: step.passed,
        });
      }
    }
    const open = r.run.open;
    if (open !== undefined) {
      const perOperation = commandsPerOperation(open);
      points.push({
        series: r.series,
        scenario: r.scenario,
        offered: open.offeredRate * perOperation,
        achieved: open.achievedRate * perOperation,
        latencyMs: open.latencyMs,
        passed: !open.saturated && open.operations.failed === 0,
      });
    }
  }
  return points.sort((a, b) => a.series.localeCompare(b.series) || a.offered - b.offered);
}

export interface FloorRow {
  readonly scenario: ScenarioName;
  readonly series: string;
  readonly durable: boolean | null;
  readonly mode: Mode;
  /** Commands answered per second, each synchronously: the events of the seed requirement. */
  readonly eventsPerSecond: number;
  /** Of those, the writes (state changes) per second; the storefront's are few, its commands mostly reads. */
  readonly writesPerSecond: number;
  readonly meanLatencyMs: number;
  /** eventsPerSecond ÷ the floor's 5,000/s. */
  readonly multiple: number;
  /** Mean latency under the floor's 200 ms. */
  readonly meetsLatency: boolean;
}

/**
 * Per scenario and stockd series, the measurement with the most events per second whose
 * mean latency is within the floor's bound (or, if none is, the one with the most events).
 * An event is a command answered synchronously, read or write: the storefront offers 95%
 * reads, and counting only its writes would measure the mix, not stockd.
 */
export function seedFloorRows(runs: readonly SeriesRun[], order: readonly ScenarioName[] = []): FloorRow[] {
  const best = new Map<string, FloorRow>();
  for (const r of runs) {
    if (r.name !== 'stockd') continue;
    const headline = headlineOf(r.run);
    if (headline === null) continue;
    const m = headline.measurement;
    const eventsPerSecond = m.okOperationsPerSecond;
    const row: FloorRow = {
      scenario: r.scenario,
      series: r.series,
      durable: r.durable,
      mode: headline.mode,
      eventsPerSecond,
      writesPerSecond: writesPerSecondOf(m),
      meanLatencyMs: m.latencyMs.mean,
      multiple: eventsPerSecond / seedFloor.eventsPerSecond,
      meetsLatency: m.latencyMs.mean < seedFloor.meanLatencyMsMax,
    };
    const key = `${r.scenario}\u0000${r.series}`;
    const prior = best.get(key);
    const better =
      prior === undefined ||
      (row.meetsLatency && !prior.meetsLatency) ||
      (row.meetsLatency === prior.meetsLatency && row.eventsPerSecond > prior.eventsPerSecond);
    if (better) best.set(key, row);
  }
  const rank = (scenario: ScenarioName): number => {
    const index = order.indexOf(scenario);
    return index === -1 ? order.length : index;
  };
  return [...best.values()].sort(
    (a, b) => rank(a.scenario) - rank(b.scenario) || a.series.localeCompare(b.series),
  );
}

/** The scenarios present in the runs, in the suite's order. */
export function scenariosOf(runs: readonly SeriesRun[], order: readonly ScenarioName[]): ScenarioName[] {
  const present = new Set(runs.map((r) => r.scenario));
  return order.filter((name) => present.has(name));
}
