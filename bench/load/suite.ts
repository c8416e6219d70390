/**
 * The suite: every target × every scenario, in one mode, one run at a time, into one
 * results file.
 *
 *   for each target (started once: in-process, or its server process)
 *     for each scenario
 *       seed its records (bulk, not measured) → warm up (closed loop, not recorded)
 *       → measure: closed loop | open loop at a rate | steps up to the knee
 *         (open and step first warm up the open loop's own sender at their first rate,
 *          not recorded: its connections and code paths are cold otherwise)
 *       → the scenario's checks (flash sale: no oversell) → rewrite results.json
 *
 * Runs are sequential on purpose: on a small machine two measurements at once would
 * measure each other. A run that fails is recorded with its error and the suite goes on.
 */
import { randomBytes } from 'node:crypto';
import { createScenario, type ScenarioSizes } from '../scenarios.js';
import type { BackendConfig } from './backends.js';
import { closedLoopDirect, closedLoopHttp } from './closed-loop.js';
import { openLoop } from './open-loop.js';
import { okOutcome, type Scenario, type ScenarioName } from './operation.js';
import { Progress } from './progress.js';
import { type Measurement, Recorder } from './recorder.js';
import { type Mode, type ResultsFile, type RunResult, resultsFormat, writeResults } from './results.js';
import { collectRunInfo } from './run-info.js';
import type { Sender } from './senders.js';
import { stepLoad } from './step.js';
import { type RunningTarget, startTarget, type TargetSpec, targetLabel } from './targets.js';

export interface StepConfig {
  /** Offered rate of the first step; null: 20% of a closed-loop probe's rate. */
  readonly startRate: number | null;
  readonly factor: number;
  readonly stepSeconds: number;
  readonly maxSteps: number;
  readonly objectiveP99Ms: number;
}

export interface SuiteConfig {
  readonly targets: readonly TargetSpec[];
  readonly scenarios: readonly ScenarioName[];
  readonly mode: Mode;
  /** Measured seconds per run (closed and open loop). */
  readonly seconds: number;
  /** Unrecorded closed-loop seconds before each measurement, so the JIT has warmed up. */
  readonly warmupSeconds: number;
  /** Concurrent clients (closed loop) or HTTP pool connections (open loop) … */
  readonly connections: number;
  /** … for the flash sale (thousands of buyers at once) … */
  readonly flashConnections: number;
  /** … and for the resync (a WMS sends a few batches at a time). */
  readonly batchConnections: number;
  /** Operations per second offered in open mode. */
  readonly rate: number | null;
  readonly step: StepConfig;
  /** Open loop: operations outstanding before a run counts as saturated. */
  readonly maxInFlight: number;
  /** Open loop: seconds outstanding operations get after the schedule ends. */
  readonly drainSeconds: number;
  /** An answer slower than this is a TIMEOUT. */
  readonly timeoutSeconds: number;
  readonly sizes: ScenarioSizes;
  readonly backend: BackendConfig;
  /** Direct transport: coalesce the requests of one tick into one executeMany. */
  readonly coalesce: boolean;
  readonly outDir: string;
  readonly progress: boolean;
}

export interface SuiteHooks {
  readonly argv?: readonly string[];
  /** Aborting stops the current run and the suite; the results are written as partial. */
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
}

function connectionsFor(config: SuiteConfig, scenario: ScenarioName): number {
  if (scenario === 'flash-sale') return config.flashConnections;
  if (scenario === 'wms-resync') return config.batchConnections;
  return config.connections;
}

/** A closed loop over the target's transport; returns its measurement. */
async function closedLoop(
  target: RunningTarget,
  scenario: Scenario,
  connections: number,
  seconds: number,
  config: SuiteConfig,
  recorder: Recorder,
  signal: AbortSignal | undefined,
): Promise<Measurement> {
  const common = { scenario, recorder, connections, seconds, ...(signal === undefined ? {} : { signal }) };
  let elapsed: number;
  if (target.origin !== null) {
    elapsed = await closedLoopHttp({
      ...common,
      origin: target.origin,
      headers: target.headers,
      timeoutSeconds: config.timeoutSeconds,
    });
  } else {
    const sender = target.sender(connections);
    try {
      elapsed = await closedLoopDirect({ ...common, sender });
    } finally {
      await sender.close();
    }
  }
  return recorder.result(elapsed);
}

/**
 * An unrecorded open loop through the sender that will measure, at the first rate: the
 * closed-loop warm-up goes through autocannon, so without this the measurement would open
 * its pool's connections and run the client's and the server's request paths cold. Seen:
 * p99 55-185 ms at 5,000/s on stockd and on the alternatives alike, every slow answer in
 * the first 0.5 s; p99 single-digit ms once warm.
 */
async function warmOpenLoop(
  scenario: Scenario,
  sender: Sender,
  rate: number,
  config: SuiteConfig,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (config.warmupSeconds <= 0 || scenario.finiteOperations !== null) return;
  const recorder = new Recorder();
  try {
    await openLoop({
      scenario,
      recorder,
      sender,
      rate,
      seconds: config.warmupSeconds,
      maxInFlight: config.maxInFlight,
      drainSeconds: config.drainSeconds,
      ...(signal === undefined ? {} : { signal }),
    });
  } finally {
    recorder.destroy();
  }
}

async function measure(
  target: RunningTarget,
  scenario: Scenario,
  config: SuiteConfig,
  connections: number,
  progress: Progress,
  signal: AbortSignal | undefined,
): Promise<Pick<RunResult, 'closed' | 'open' | 'step'>> {
  const label = `${target.info.label} ${scenario.name}`;
  const plan =
    scenario.finiteOperations === null
      ? { seconds: config.seconds }
      : { requests: scenario.finiteOperations };
  const abort = signal === undefined ? {} : { signal };
  if (config.mode === 'closed') {
    const recorder = new Recorder();
    progress.start(label, plan, () => recorder);
    try {
      return {
        closed: await closedLoop(target, scenario, connections, config.seconds, config, recorder, signal),
      };
    } finally {
      progress.stop();
      recorder.destroy();
    }
  }
  if (config.mode === 'open') {
    if (config.rate === null || !(config.rate > 0)) throw new Error('open mode needs a rate (--rate)');
    const recorder = new Recorder();
    const sender = target.sender(connections);
    try {
      await warmOpenLoop(scenario, sender, config.rate, config, signal);
      progress.start(`${label} @${config.rate}/s`, plan, () => recorder);
      const stats = await openLoop({
        scenario,
        recorder,
        sender,
        rate: config.rate,
        seconds: config.seconds,
        maxInFlight: config.maxInFlight,
        drainSeconds: config.drainSeconds,
        ...abort,
      });
      const { offeredRate, achievedRate, saturated, timedOut } = stats;
      return {
        open: { ...recorder.result(stats.elapsedSeconds), offeredRate, achievedRate, saturated, timedOut },
      };
    } finally {
      progress.stop();
      recorder.destroy();
      await sender.close();
    }
  }
  // Step mode: start from the given rate, or from a share of what a closed-loop probe reached.
  let closed: Measurement | undefined;
  let startRate = config.step.startRate;
  if (startRate === null) {
    const recorder = new Recorder();
    progress.start(`${label} probe`, { seconds: config.step.stepSeconds }, () => recorder);
    try {
      closed = await closedLoop(
        target,
        scenario,
        connections,
        config.step.stepSeconds,
        config,
        recorder,
        signal,
      );
    } finally {
      progress.stop();
      recorder.destroy();
    }
    startRate = Math.max(1, Math.round(closed.requestsPerSecond * 0.2));
  }
  const sender = target.sender(connections);
  try {
    await warmOpenLoop(scenario, sender, startRate, config, signal);
    const outcome = await stepLoad({
      scenario,
      sender,
      startRate,
      factor: config.step.factor,
      stepSeconds: config.step.stepSeconds,
      maxSteps: config.step.maxSteps,
      objectiveP99Ms: config.step.objectiveP99Ms,
      maxInFlight: config.maxInFlight,
      drainSeconds: config.drainSeconds,
      ...abort,
    });
    return {
      ...(closed === undefined ? {} : { closed }),
      step: {
        objectiveP99Ms: config.step.objectiveP99Ms,
        startRate,
        factor: config.step.factor,
        stepSeconds: config.step.stepSeconds,
        steps: outcome.steps,
        knee: outcome.knee,
      },
    };
  } finally {
    await sender.close();
  }
}

export async function runScenario(
  target: RunningTarget,
  name: ScenarioName,
  config: SuiteConfig,
  tag: string,
  progress: Progress,
  signal?: AbortSignal,
): Promise<RunResult> {
  const startedAt = new Date().toISOString();
  const connections = connectionsFor(config, name);
  const base = { target: target.info.label, scenario: name, mode: config.mode, startedAt, connections };
  let seededRecords = 0;
  try {
    const scenario = createScenario(name, config.sizes, tag);
    // 1. Seed (not measured).
    const seed = scenario.seed();
    const seeded = await target.load(seed);
    const failed = seeded.filter((outcome) => outcome !== okOutcome);
    if (failed.length > 0) throw new Error(`seeding refused ${failed.length} records (first: ${failed[0]})`);
    seededRecords = seed.length;
    // 2. Warm up (not recorded); a finite workload has nothing to spare.
    if (config.warmupSeconds > 0 && scenario.finiteOperations === null) {
      const recorder = new Recorder();
      await closedLoop(target, scenario, connections, config.warmupSeconds, config, recorder, signal);
      recorder.destroy();
    }
    // 3. Measure.
    const measured = await measure(target, scenario, config, connections, progress, signal);
    // 4. Check.
    const checks = scenario.verify === undefined ? [] : await scenario.verify((sku) => target.stockOf(sku));
    return { ...base, seededRecords, ...measured, checks };
  } catch (error) {
    progress.stop();
    return {
      ...base,
      seededRecords,
      checks: [],
      error: error instanceof Error ? error.message : String(error),
    };
  }
}

export function usesPostgres(config: SuiteConfig): boolean {
  return config.targets.some(
    (t) => t.name === 'pg-row' || (t.name === 'stockd' && config.backend.store === 'postgres'),
  );
}

export function usesRedis(config: SuiteConfig): boolean {
  return config.targets.some((t) => t.name === 'redis-lua');
}

/** A URL without its password, for files and logs. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** The configuration as results.json records it: connection passwords masked. */
function recordedConfig(config: SuiteConfig): SuiteConfig {
  return {
    ...config,
    backend: {
      ...config.backend,
      databaseUrl: withoutPassword(config.backend.databaseUrl),
      redisUrl: withoutPassword(config.backend.redisUrl),
    },
  };
}

export async function runSuite(
  config: SuiteConfig,
  hooks: SuiteHooks = {},
): Promise<{ results: ResultsFile; path: string }> {
  const log = hooks.log ?? (() => {});
  const signal = hooks.signal;
  // A function, so each check reads the signal afresh (it changes under the awaits).
  const aborted = (): boolean => signal?.aborted === true;
  const runTag = `b${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const runInfo = await collectRunInfo({
    postgresUrl: usesPostgres(config) ? config.backend.databaseUrl : null,
    redisUrl: usesRedis(config) ? config.backend.redisUrl : null,
  });
  const results: ResultsFile & { finishedAt: string | null; partial: boolean } = {
    format: resultsFormat,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    partial: true,
    argv: hooks.argv ?? [],
    runInfo,
    config: recordedConfig(config),
    targets: [],
    runs: [],
  };
  let path = await writeResults(config.outDir, results);
  const progress = new Progress(config.progress);
  for (const spec of config.targets) {
    if (aborted()) break;
    let target: RunningTarget;
    try {
      target = await startTarget(spec, {
        backend: config.backend,
        coalesce: config.coalesce,
        timeoutMs: config.timeoutSeconds * 1000,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log(`${targetLabel(spec)}: could not start (${message})`);
      for (const scenario of config.scenarios) {
        results.runs.push({
          target: targetLabel(spec),
          scenario,
          mode: config.mode,
          startedAt: new Date().toISOString(),
          connections: connectionsFor(config, scenario),
          seededRecords: 0,
          checks: [],
          error: `the target did not start: ${message}`,
        });
      }
      path = await writeResults(config.outDir, results);
      continue;
    }
    results.targets.push(target.info);
    log(
      `${target.info.label} — ${target.info.server}; ${target.info.durable ? 'durable' : 'NOT durable'}: ${target.info.durability}`,
    );
    try {
      for (const scenario of config.scenarios) {
        if (aborted()) break;
        const run = await runScenario(
          target,
          scenario,
          config,
          `${runTag}-${spec.name}-${scenario}`,
          progress,
          signal,
        );
        results.runs.push(run);
        log(formatRun(run));
        path = await writeResults(config.outDir, results);
      }
    } finally {
      await target.close();
    }
  }
  results.finishedAt = new Date().toISOString();
  results.partial = aborted();
  path = await writeResults(config.outDir, results);
  return { results, path };
}

const number = (value: number) => Math.round(value).toLocaleString('en-US');

function formatMeasurement(m: Measurement): string {
  const l = m.latencyMs;
  const codes = Object.entries(m.codes)
    .map(([code, count]) => `${code} ${number(count)}`)
    .join(', ');
  return (
    `${number(m.operationsPerSecond).padStart(9)} cmd/s (ok ${number(m.okOperationsPerSecond)}/s, ${number(m.requestsPerSecond)} req/s)` +
    `  p50 ${l.p50} ms  p99 ${l.p99} ms  p999 ${l.p999} ms  max ${l.max} ms${codes === '' ? '' : `  [${codes}]`}`
  );
}

export function formatRun(run: RunResult): string {
  const head = `${run.target.padEnd(16)} ${run.scenario.padEnd(11)} ${run.mode.padEnd(6)}`;
  if (run.error !== undefined) return `${head} FAILED: ${run.error}`;
  const checks = run.checks.map((c) => `${c.passed ? '✓' : '✗'} ${c.name}: ${c.detail}`).join('; ');
  let body = '';
  if (run.closed !== undefined && run.mode === 'closed') body = formatMeasurement(run.closed);
  if (run.open !== undefined) {
    body = `offered ${number(run.open.offeredRate)}/s achieved ${number(run.open.achievedRate)}/s${run.open.saturated ? ' SATURATED' : ''}  ${formatMeasurement(run.open)}`;
  }
  if (run.step !== undefined) {
    const knee = run.step.knee;
    body =
      knee === null
        ? `no step met p99 ≤ ${run.step.objectiveP99Ms} ms (first: ${run.step.steps[0]?.reason ?? 'none ran'})`
        : `knee ${number(knee.offeredRate)}/s offered (p99 ${knee.measurement.latencyMs.p99} ms ≤ ${run.step.objectiveP99Ms} ms) after ${run.step.steps.length} steps; ${formatMeasurement(knee.measurement)}`;
  }
  return `${head} ${body}${checks === '' ? '' : `  ${checks}`}`;
}

/** Per scenario and transport: each target's ok commands/s, and stockd's ratio to it. */
export function formatComparison(results: ResultsFile): string[] {
  const rate = (run: RunResult): number | null => {
    if (run.error !== undefined) return null;
    if (run.step !== undefined) return run.step.knee?.achievedRate ?? null;
    const m = run.open ?? run.closed;
    return m === undefined ? null : m.okOperationsPerSecond;
  };
  const lines: string[] = [];
  const scenarios = [...new Set(results.runs.map((run) => run.scenario))];
  for (const scenario of scenarios) {
    for (const transport of ['direct', 'http']) {
      const runs = results.runs.filter(
        (run) => run.scenario === scenario && run.target.endsWith(`:${transport}`),
      );
      const stockd = runs.find((run) => run.target.startsWith('stockd:'));
      const stockdRate = stockd === undefined ? null : rate(stockd);
      for (const run of runs) {
        if (run === stockd) continue;
        const other = rate(run);
        if (stockdRate === null || other === null || other === 0) continue;
        lines.push(
          `${scenario.padEnd(11)} ${transport.padEnd(6)} stockd ${number(stockdRate)}/s vs ${run.target} ${number(other)}/s: ×${(stockdRate / other).toFixed(2)}`,
        );
      }
    }
  }
  return lines;
}
