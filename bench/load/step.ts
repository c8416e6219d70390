/**
 * Step mode: open-loop steps at rising offered load until the latency objective breaks,
 * to find the knee — the highest offered rate the target serves within its p99 objective.
 *
 *   rate = start; repeat: run the open loop for stepSeconds at rate
 *     pass = p99 ≤ objective ∧ achieved ≥ 90% of offered ∧ not saturated ∧ no failures
 *     pass → knee = this step; rate × = factor      fail → stop
 *
 * Each step has its own histogram, so the results hold latency percentiles against offered
 * load — the curve the report draws.
 */
import { type OpenLoopStats, openLoop } from './open-loop.js';
import type { Scenario } from './operation.js';
import { type Measurement, Recorder } from './recorder.js';
import type { Sender } from './senders.js';

export interface StepOptions {
  readonly scenario: Scenario;
  readonly sender: Sender;
  readonly startRate: number;
  readonly factor: number;
  readonly stepSeconds: number;
  readonly maxSteps: number;
  readonly objectiveP99Ms: number;
  readonly maxInFlight: number;
  readonly drainSeconds: number;
  readonly signal?: AbortSignal;
  /** Called after each step (progress display). */
  readonly onStep?: (step: StepResult) => void;
}

export interface StepResult extends OpenLoopStats {
  readonly passed: boolean;
  /** Why a step failed ('' when it passed). */
  readonly reason: string;
  readonly measurement: Measurement;
}

export interface StepOutcome {
  readonly steps: StepResult[];
  /** The last step that met the objective; null if even the first did not. */
  readonly knee: StepResult | null;
}

/** Offered rate an achieved rate must reach for a step to pass. */
const achievedShareMin = 0.9;

export function judgeStep(stats: OpenLoopStats, measurement: Measurement, objectiveP99Ms: number): string {
  if (stats.saturated) return `more than the in-flight bound outstanding`;
  if (measurement.operations.failed > 0) return `${measurement.operations.failed} failed operations`;
  if (stats.timedOut > 0) return `${stats.timedOut} operations timed out`;
  if (stats.achievedRate < stats.offeredRate * achievedShareMin) {
    return `achieved ${stats.achievedRate}/s of ${stats.offeredRate}/s offered`;
  }
  if (measurement.latencyMs.p99 > objectiveP99Ms)
    return `p99 ${measurement.latencyMs.p99} ms > ${objectiveP99Ms} ms`;
  return '';
}

export async function stepLoad(options: StepOptions): Promise<StepOutcome> {
  if (!(options.factor > 1)) throw new Error(`the step factor must be > 1, got ${options.factor}`);
  const steps: StepResult[] = [];
  let knee: StepResult | null = null;
  let rate = options.startRate;
  for (let k = 0; k < options.maxSteps && options.signal?.aborted !== true; k++) {
    const recorder = new Recorder();
    const stats = await openLoop({
      scenario: options.scenario,
      recorder,
      sender: options.sender,
      rate,
      seconds: options.stepSeconds,
      maxInFlight: options.maxInFlight,
      drainSeconds: options.drainSeconds,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    // A finite workload (the resync) that has run out ends the steps.
    if (stats.sent === 0) {
      recorder.destroy();
      break;
    }
    const measurement = recorder.result(stats.elapsedSeconds);
    recorder.destroy();
    const reason = judgeStep(stats, measurement, options.objectiveP99Ms);
    const step: StepResult = { ...stats, passed: reason === '', reason, measurement };
    steps.push(step);
    options.onStep?.(step);
    if (!step.passed) break;
    knee = step;
    rate = Math.round(rate * options.factor * 10) / 10;
  }
  return { steps, knee };
}
