/**
 * The capacity model: for a target rate R at a p99 objective P, how many shards and cores.
 *
 *   knee(N)      the highest offered load (commands/s) whose step held p99 ≤ P, achieved
 *                ≥ 90% of what was offered, with no failures — measured at N shards
 *   per shard    knee(1) when measured, else knee(N) ÷ N
 *   efficiency   e = knee(N) ÷ (N × knee(1)) when both were measured (capped at 1),
 *                else assumed 1 (stated), or given (--efficiency)
 *   capacity(s)  per shard × (s = 1 ? 1 : s × e)        one hot SKU: per shard, whatever s
 *   usable(s)    headroom × capacity(s)                  headroom 0.7: run at ≤ 70% of the knee
 *   shards       the least s with usable(s) ≥ R
 *   cores        shards + 1 (the main thread: HTTP, routing, replies)
 *
 * Why a headroom: near the knee, queueing makes latency climb steeply (waiting grows like
 * ρ/(1−ρ) with utilisation ρ), and a knee measured for a few seconds on a quiet machine
 * does not include bursts, garbage collection, background snapshots or the backlog a shard
 * restart leaves. 30% below the knee absorbs those.
 *
 * The model is linear in shards because shards share nothing but the main thread and the
 * database; where that stops being true is listed with every plan (`weakest`).
 */
import { judgeStep, type StepResult } from '../load/step.js';
import type { ScenarioName } from '../scenarios.js';
import { offeredCommandsOf } from './figures.js';
import type { SeriesRun } from './results-input.js';

export interface CapacityTarget {
  /** Commands per second to serve (reservations/s in the reservation scenarios). */
  readonly rate: number;
  readonly objectiveP99Ms: number;
  /** Share of the knee to run at, within (0, 1]. */
  readonly headroom: number;
  /** Scaling efficiency to use instead of the measured or assumed one; null: measure or assume. */
  readonly efficiency: number | null;
}

export const capacityDefaults: CapacityTarget = Object.freeze({
  rate: 50_000,
  objectiveP99Ms: 15,
  headroom: 0.7,
  efficiency: null,
});

/** No plan recommends more shards than partitions (a shard owns at least one partition). */
export const shardsMaxDefault = 1_024;

export function checkTarget(target: CapacityTarget): void {
  if (!(target.rate > 0)) throw new Error(`the capacity rate must be > 0, got ${target.rate}`);
  if (!(target.objectiveP99Ms > 0))
    throw new Error(`the p99 objective must be > 0 ms, got ${target.objectiveP99Ms}`);
  if (!(target.headroom > 0 && target.headroom <= 1))
    throw new Error(`the headroom must be within (0, 1], got ${target.headroom}`);
  if (target.efficiency !== null && !(target.efficiency > 0 && target.efficiency <= 1))
    throw new Error(`the efficiency must be within (0, 1], got ${target.efficiency}`);
}

/* ------------------------------------------------------------------------ the knee */

export interface KneeAtObjective {
  /** The last step that held the objective before the first that did not; null: none did. */
  readonly step: StepResult | null;
  /** Its offered load in commands per second (0 when none held). */
  readonly rate: number;
  /**
   * No step broke *this* objective: the run stopped for another reason (its own, stricter
   * objective, or its last step), so the knee at this objective is at least `rate`.
   */
  readonly lowerBound: boolean;
}

/**
 * The knee of a step run judged against `objectiveP99Ms`, which may differ from the
 * objective the run stepped against: a step passes by the run's own rule (judgeStep: p99,
 * ≥ 90% achieved, no failures, not saturated) with this objective in place of the run's.
 */
export function kneeAt(steps: readonly StepResult[], objectiveP99Ms: number): KneeAtObjective {
  let knee: StepResult | null = null;
  for (const step of steps) {
    if (judgeStep(step, step.measurement, objectiveP99Ms) !== '') {
      return { step: knee, rate: knee === null ? 0 : offeredCommandsOf(knee), lowerBound: false };
    }
    knee = step;
  }
  return { step: knee, rate: knee === null ? 0 : offeredCommandsOf(knee), lowerBound: knee !== null };
}

/* -------------------------------------------------------------------- the scaling */

export interface MeasuredKnee {
  readonly shards: number;
  /** Commands per second at the knee. */
  readonly rate: number;
  readonly lowerBound: boolean;
}

export interface ScalingModel {
  /** Knee commands/s of one shard: knee(1), or knee(N) ÷ N. */
  readonly perShardRate: number;
  /** The shard count the per-shard rate was measured at. */
  readonly baseShards: number;
  readonly efficiency: number;
  readonly efficiencySource: 'measured' | 'assumed' | 'given';
  /** knee(N) ÷ (N × knee(1)) before capping at 1; null when not both were measured. */
  readonly measuredEfficiency: number | null;
  /** The larger shard count the efficiency was measured at. */
  readonly efficiencyShards: number | null;
  /**
   * Knees at 1 and N shards exist but one is only a lower bound (its steps stopped before
   * the objective broke): their ratio means nothing, so the efficiency is assumed instead.
   */
  readonly efficiencyUnmeasurable: boolean;
  /** False for one hot SKU: it lives on one shard, so more shards add nothing. */
  readonly scalesWithShards: boolean;
}

export function scalingModel(
  knees: readonly MeasuredKnee[],
  options: { readonly efficiency: number | null; readonly scalesWithShards: boolean },
): ScalingModel | null {
  const usable = knees.filter((k) => k.rate > 0);
  if (usable.length === 0) return null;
  const byShards = new Map<number, number>();
  const boundOnly = new Set<number>();
  for (const k of usable) {
    if (k.rate < (byShards.get(k.shards) ?? 0)) continue;
    byShards.set(k.shards, k.rate);
    if (k.lowerBound) boundOnly.add(k.shards);
    else boundOnly.delete(k.shards);
  }
  const counts = [...byShards.keys()].sort((a, b) => a - b);
  const largest = counts.at(-1)!;
  if (!options.scalesWithShards) {
    // The hot SKU's shard does all the work; the best knee at any shard count is its ceiling.
    const best = Math.max(...byShards.values());
    return {
      perShardRate: best,
      baseShards: counts.find((n) => byShards.get(n) === best)!,
      efficiency: 1,
      efficiencySource: options.efficiency === null ? 'assumed' : 'given',
      measuredEfficiency: null,
      efficiencyShards: null,
      efficiencyUnmeasurable: false,
      scalesWithShards: false,
    };
  }
  const one = byShards.get(1);
  const both = one !== undefined && largest > 1;
  const efficiencyUnmeasurable = both && (boundOnly.has(1) || boundOnly.has(largest));
  const measuredEfficiency =
    both && !efficiencyUnmeasurable ? byShards.get(largest)! / (largest * one) : null;
  const perShardRate = one ?? byShards.get(largest)! / largest;
  const baseShards = one === undefined ? largest : 1;
  if (options.efficiency !== null) {
    return {
      perShardRate,
      baseShards,
      efficiency: options.efficiency,
      efficiencySource: 'given',
      measuredEfficiency,
      efficiencyShards: measuredEfficiency === null ? null : largest,
      efficiencyUnmeasurable,
      scalesWithShards: true,
    };
  }
  return {
    perShardRate,
    baseShards,
    // Super-linear scaling is noise or a one-shard bottleneck elsewhere; never plan on it.
    efficiency: measuredEfficiency === null ? 1 : Math.min(1, measuredEfficiency),
    efficiencySource: measuredEfficiency === null ? 'assumed' : 'measured',
    measuredEfficiency,
    efficiencyShards: measuredEfficiency === null ? null : largest,
    efficiencyUnmeasurable,
    scalesWithShards: true,
  };
}

/** Commands per second at the knee with `shards` shards. */
export function capacityAt(model: ScalingModel, shards: number): number {
  if (!model.scalesWithShards || shards === 1) return model.perShardRate;
  return model.perShardRate * shards * model.efficiency;
}

/** The least shard count whose usable capacity reaches the rate; null when none up to `shardsMax` does. */
export function shardsFor(
  model: ScalingModel,
  target: Pick<CapacityTarget, 'rate' | 'headroom'>,
  shardsMax = shardsMaxDefault,
): number | null {
  const usable = (shards: number): number => target.headroom * capacityAt(model, shards);
  if (usable(1) >= target.rate) return 1;
  if (!model.scalesWithShards) return null;
  let shards = Math.max(
    2,
    Math.ceil(target.rate / (target.headroom * model.perShardRate * model.efficiency)),
  );
  // The closed form in floating point; settle it against the definition.
  while (shards > 2 && usable(shards - 1) >= target.rate) shards--;
  while (usable(shards) < target.rate) shards++;
  return shards <= shardsMax ? shards : null;
}

/* ------------------------------------------------------------------------ the plan */

export interface PlanContext {
  readonly scenario: ScenarioName;
  /** The stockd target the knees come from, e.g. `stockd:http`. */
  readonly label: string;
  readonly transport: string;
  readonly unit: string;
  /** The most commands/s any stockd run of this scenario and transport answered. */
  readonly highestMeasuredRate: number | null;
  /** Cores of the machine the runs were measured on (the load generator ran there too). */
  readonly machineCores: number | null;
  readonly durable: boolean | null;
  readonly shardsMax?: number;
}

export interface CapacityPlan {
  readonly target: CapacityTarget;
  readonly context: PlanContext;
  readonly knees: readonly MeasuredKnee[];
  readonly model: ScalingModel | null;
  /** null: not reachable (one hot SKU beyond one shard, more shards than partitions, or no knee). */
  readonly shards: number | null;
  readonly cores: number | null;
  /** headroom × capacity(shards), commands/s. */
  readonly usableRate: number | null;
  /** How the figure was derived, step by step, in sentences. */
  readonly derivation: readonly string[];
  /** Where the extrapolation is weakest, most important first. */
  readonly weakest: readonly string[];
}

const whole = (value: number): string => Math.round(value).toLocaleString('en-US');
const fixed = (value: number, digits = 2): string => value.toFixed(digits);
const shardWord = (n: number): string => `${n} shard${n === 1 ? '' : 's'}`;

export function planCapacity(
  target: CapacityTarget,
  knees: readonly MeasuredKnee[],
  context: PlanContext,
): CapacityPlan {
  checkTarget(target);
  const scalesWithShards = context.scenario !== 'flash-sale';
  const model = scalingModel(knees, { efficiency: target.efficiency, scalesWithShards });
  const derivation: string[] = [];
  const weakest: string[] = [];
  const { unit } = context;
  if (model === null) {
    derivation.push(
      knees.length === 0
        ? `No step-mode run of ${context.label} in ${context.scenario}: the knee is what the model starts from (run \`stockd bench --modes step\`).`
        : `No step of ${context.label} in ${context.scenario} held p99 ≤ ${target.objectiveP99Ms} ms, not even the first: there is no knee to plan from at this objective (start lower with --step-start, or relax --capacity-p99-ms).`,
    );
    return {
      target,
      context,
      knees,
      model,
      shards: null,
      cores: null,
      usableRate: null,
      derivation,
      weakest,
    };
  }

  // 1. The knee(s).
  const measured = [...knees]
    .filter((k) => k.rate > 0)
    .sort((a, b) => a.shards - b.shards)
    .map((k) => `${whole(k.rate)} ${unit} at ${shardWord(k.shards)}${k.lowerBound ? ' (at least)' : ''}`);
  derivation.push(
    `Knee of ${context.label} in ${context.scenario}, the highest offered load whose step held p99 ≤ ${target.objectiveP99Ms} ms with ≥ 90% of it answered and no failures: ${measured.join('; ')}.`,
  );
  // 2. Per shard and the scaling.
  if (!model.scalesWithShards) {
    derivation.push(
      `One hot SKU lives on one shard, so more shards add no capacity for it: its ceiling is the best knee, ${whole(model.perShardRate)} ${unit}.`,
    );
  } else {
    derivation.push(
      model.baseShards === 1
        ? `Per shard: the knee at 1 shard, ${whole(model.perShardRate)} ${unit}.`
        : `Per shard: ${whole(model.perShardRate * model.baseShards)} ÷ ${model.baseShards} = ${whole(model.perShardRate)} ${unit}.`,
    );
    if (model.efficiencySource === 'measured') {
      const capped = model.measuredEfficiency! > 1 ? ' (super-linear, capped at 1: never plan on it)' : '';
      derivation.push(
        `Scaling efficiency, measured: knee at ${model.efficiencyShards} shards ÷ (${model.efficiencyShards} × knee at 1 shard) = ${fixed(model.measuredEfficiency!)}${capped}.`,
      );
    } else if (model.efficiencySource === 'given') {
      derivation.push(
        `Scaling efficiency ${fixed(model.efficiency)}, as given (--efficiency)${model.measuredEfficiency === null ? '' : `; measured ${fixed(model.measuredEfficiency)}`}.`,
      );
    } else if (model.efficiencyUnmeasurable) {
      derivation.push(
        'Scaling efficiency assumed 1: there are knees at 1 shard and more, but at least one is only a lower bound (its steps stopped before p99 broke this objective), so their ratio measures nothing. Step further (--max-steps, --objective-p99-ms) to measure it, or pass --efficiency.',
      );
    } else {
      derivation.push(
        `Scaling efficiency assumed 1 beyond ${shardWord(model.baseShards)}: the results hold no knee at both 1 shard and more (run \`stockd bench --shards 1,${Math.max(2, model.baseShards)}\` to measure it, or pass --efficiency to be conservative).`,
      );
    }
  }
  // 3. Headroom.
  derivation.push(
    `Headroom: run at ≤ ${Math.round(target.headroom * 100)}% of the knee, ${whole(target.headroom * model.perShardRate)} ${unit} per shard.`,
  );
  // 4. Shards and cores.
  const shards = shardsFor(model, target, context.shardsMax);
  const cores = shards === null ? null : shards + 1;
  const usableRate = shards === null ? null : target.headroom * capacityAt(model, shards);
  if (shards === null) {
    derivation.push(
      model.scalesWithShards
        ? `${whole(target.rate)} ${unit} would need more than ${context.shardsMax ?? shardsMaxDefault} shards: beyond one node.`
        : `${whole(target.rate)} ${unit} on one SKU is above what its shard serves within the objective (${whole(target.headroom * model.perShardRate)} ${unit} with headroom): no shard count reaches it. Spread the hot item over several SKUs or locations, or relax the objective.`,
    );
  } else {
    const formula = !model.scalesWithShards
      ? `${whole(target.rate)} ≤ ${whole(target.headroom * model.perShardRate)}`
      : shards === 1
        ? `${whole(target.rate)} ≤ ${fixed(target.headroom)} × ${whole(model.perShardRate)}`
        : `⌈${whole(target.rate)} ÷ (${fixed(target.headroom)} × ${whole(model.perShardRate)} × ${fixed(model.efficiency)})⌉ = ${shards}`;
    derivation.push(
      `Shards: ${formula} → ${shardWord(shards)}, usable ${whole(usableRate!)} ${unit}; cores = shards + 1 (the main thread: HTTP, routing, replies) = ${cores}.`,
    );
  }

  // Where the extrapolation is weakest.
  const largestMeasured = Math.max(...knees.map((k) => k.shards));
  const kneeless = [...new Set(knees.filter((k) => k.rate === 0).map((k) => k.shards))];
  if (kneeless.length > 0) {
    weakest.push(
      `At ${kneeless.map(shardWord).join(' and ')} no step held p99 ≤ ${target.objectiveP99Ms} ms: that measurement contradicts the scaling this plan assumes. Look at the curves before trusting the figure.`,
    );
  }
  if (!model.scalesWithShards) {
    weakest.push(
      'A single hot SKU is served by one shard: adding shards or cores does not raise its ceiling.',
    );
  }
  if (shards !== null && model.scalesWithShards && shards > largestMeasured) {
    weakest.push(
      `${shardWord(shards)} is ×${fixed(shards / largestMeasured, 1)} the largest shard count measured (${largestMeasured}); linear scaling beyond it is an assumption.`,
    );
  }
  if (context.highestMeasuredRate !== null && target.rate > context.highestMeasuredRate) {
    weakest.push(
      `${whole(target.rate)} ${unit} is ×${fixed(target.rate / context.highestMeasuredRate, 1)} the most one stockd process answered in these runs (${whole(context.highestMeasuredRate)} ${unit}). ${
        context.transport === 'http'
          ? 'The main thread parses HTTP, routes and replies for every shard and does not scale with them; well past that figure, send /v1/batch requests or split the load over several nodes (later work).'
          : 'The main thread routes for every shard and does not scale with them.'
      }`,
    );
  }
  if (context.transport === 'direct') {
    weakest.push(
      'Measured without HTTP (direct transport): behind the HTTP API the main thread also parses and serialises, so expect less.',
    );
  }
  if (model.efficiencySource === 'assumed' && model.scalesWithShards) {
    weakest.push('The scaling efficiency is assumed, not measured (see above).');
  }
  if (knees.some((k) => k.lowerBound)) {
    weakest.push(
      `No step broke p99 ${target.objectiveP99Ms} ms before the run stopped (its own objective or its last step), so a knee marked "at least" may be higher: the plan errs on the safe side.`,
    );
  }
  if (context.machineCores !== null) {
    weakest.push(
      `The load generator ran on the same ${context.machineCores} cores as stockd${context.durable ? ' and PostgreSQL' : ''}: a dedicated server has more to give per shard.`,
    );
  }
  if (context.durable) {
    weakest.push(
      'Every shard commits its own WAL stream to PostgreSQL (one append in flight per stream); more shards mean more concurrent commits, so size the database for the target rate too.',
    );
  }
  return { target, context, knees, model, shards, cores, usableRate, derivation, weakest };
}

/* -------------------------------------------------------------- from the results */

/** Scenarios whose commands are reservations: the headline recommendation is the most demanding of these. */
export const reservationScenarios: readonly ScenarioName[] = ['uniform', 'zipf', 'lifecycle'];

/**
 * A plan per scenario with stockd step runs: the knees of one stockd transport (HTTP when
 * measured, as deployed; else direct) at every shard count in the results.
 */
export function capacityPlans(
  runs: readonly SeriesRun[],
  target: CapacityTarget,
  scenarios: readonly ScenarioName[],
  unitOf: (scenario: ScenarioName) => string,
): CapacityPlan[] {
  const plans: CapacityPlan[] = [];
  for (const scenario of scenarios) {
    const stockd = runs.filter((r) => r.name === 'stockd' && r.scenario === scenario);
    const stepped = stockd.filter((r) => r.run.step !== undefined);
    if (stepped.length === 0) continue;
    const transport = stepped.some((r) => r.transport === 'http') ? 'http' : stepped[0]!.transport;
    const mine = stepped.filter((r) => r.transport === transport);
    const knees: MeasuredKnee[] = mine.map((r) => {
      const knee = kneeAt(r.run.step!.steps, target.objectiveP99Ms);
      return { shards: r.shards ?? 1, rate: knee.rate, lowerBound: knee.lowerBound };
    });
    let highest: number | null = null;
    for (const r of stockd.filter((s) => s.transport === transport)) {
      const rates = [
        r.run.closed?.okOperationsPerSecond ?? 0,
        r.run.open?.okOperationsPerSecond ?? 0,
        ...(r.run.step?.steps ?? []).map((s) => s.measurement.okOperationsPerSecond),
      ];
      highest = Math.max(highest ?? 0, ...rates);
    }
    const first = mine[0]!;
    plans.push(
      planCapacity(target, knees, {
        scenario,
        label: `stockd:${transport}`,
        transport,
        unit: unitOf(scenario),
        highestMeasuredRate: highest === null || highest === 0 ? null : highest,
        machineCores: first.source.results.runInfo?.machine?.cores ?? null,
        durable: first.durable,
      }),
    );
  }
  return plans;
}

/**
 * The plan to lead with: the named scenario's, else the most demanding reservation
 * scenario's (one without a knee, or beyond reach, is the most demanding: the planner
 * must see it), else the first plan with a knee.
 */
export function headlinePlan(
  plans: readonly CapacityPlan[],
  scenario: ScenarioName | null,
): CapacityPlan | null {
  if (scenario !== null) return plans.find((p) => p.context.scenario === scenario) ?? null;
  const candidates = plans.filter((p) => reservationScenarios.includes(p.context.scenario));
  if (candidates.length === 0) return plans.find((p) => p.model !== null) ?? plans[0] ?? null;
  const demand = (p: CapacityPlan): number => p.shards ?? Number.POSITIVE_INFINITY;
  return candidates.reduce((a, b) => (demand(b) > demand(a) ? b : a));
}
