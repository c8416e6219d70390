/**
 * The report's command line: `stockd bench report <results.json | dir>…` rewrites the report
 * from results already measured (e.g. for another capacity target), and the capacity
 * options `stockd bench` shares with it. Each option is also a BENCH_… variable.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { type ScenarioName, scenarioNames } from '../scenarios.js';
import { type CapacityPlan, type CapacityTarget, capacityDefaults } from './capacity.js';
import { plural, whole } from './format.js';
import { type WrittenReport, writeReport } from './write-report.js';

function positive(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a number > 0');
  return parsed;
}

function share(value: string): number {
  const parsed = Number(value);
  if (!(parsed > 0 && parsed <= 1)) throw new InvalidArgumentError('expected a share within (0, 1]');
  return parsed;
}

function scenario(value: string): ScenarioName {
  if (!scenarioNames.includes(value as ScenarioName)) {
    throw new InvalidArgumentError(`one of ${scenarioNames.join(', ')}`);
  }
  return value as ScenarioName;
}

export interface CapacityOptions {
  capacityRate: number;
  capacityP99Ms: number;
  headroom: number;
  efficiency?: number;
  capacityScenario?: ScenarioName;
}

/** Long names of the capacity options, and whether each takes a value (for stripping them from an argv). */
export const capacityOptionNames: ReadonlyMap<string, boolean> = new Map([
  ['--capacity-rate', true],
  ['--capacity-p99-ms', true],
  ['--headroom', true],
  ['--efficiency', true],
  ['--capacity-scenario', true],
]);

export function addCapacityOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--capacity-rate <n>', 'capacity target: commands (reservations) per second to serve')
        .env('BENCH_CAPACITY_RATE')
        .default(capacityDefaults.rate)
        .argParser(positive),
    )
    .addOption(
      new Option('--capacity-p99-ms <n>', 'capacity target: the p99 objective (ms)')
        .env('BENCH_CAPACITY_P99_MS')
        .default(capacityDefaults.objectiveP99Ms)
        .argParser(positive),
    )
    .addOption(
      new Option('--headroom <share>', 'run at most this share of the knee')
        .env('BENCH_HEADROOM')
        .default(capacityDefaults.headroom)
        .argParser(share),
    )
    .addOption(
      new Option(
        '--efficiency <share>',
        'scaling efficiency per added shard (default: measured at 1 and N shards, else 1)',
      )
        .env('BENCH_EFFICIENCY')
        .argParser(share),
    )
    .addOption(
      new Option(
        '--capacity-scenario <name>',
        'the scenario the recommendation comes from (default: the most demanding of uniform, zipf, lifecycle)',
      )
        .env('BENCH_CAPACITY_SCENARIO')
        .argParser(scenario),
    );
}

export function capacityTargetOf(options: CapacityOptions): {
  target: CapacityTarget;
  scenario: ScenarioName | null;
} {
  return {
    target: {
      rate: options.capacityRate,
      objectiveP99Ms: options.capacityP99Ms,
      headroom: options.headroom,
      efficiency: options.efficiency ?? null,
    },
    scenario: options.capacityScenario ?? null,
  };
}

function describePlan(plan: CapacityPlan): string {
  const { target } = plan;
  const goal = `${whole(target.rate)} ${plan.context.unit} at p99 ≤ ${target.objectiveP99Ms} ms`;
  return plan.shards === null
    ? `capacity: no recommendation for ${goal} (${plan.context.scenario}): ${plan.derivation.at(-1)}`
    : `capacity: ${goal} → ${plural(plan.shards, 'shard')}, ${plural(plan.cores!, 'core')} (${plan.context.scenario}, ${plan.context.label}, ≤ ${Math.round(target.headroom * 100)}% of the knee)`;
}

/** What the console says once a report is written. */
export function describeReport(written: WrittenReport): string[] {
  return [
    `report${written.partial ? ' (partial)' : ''}: ${written.markdownPath}`,
    `        ${written.htmlPath} (one page, charts inlined)`,
    `charts: ${plural(written.chartPaths.length, 'SVG file')} in ${written.outDir}`,
    written.headline === null
      ? 'capacity: no step-mode runs of stockd to plan from'
      : describePlan(written.headline),
  ];
}

export function reportCommand(): Command {
  const command = new Command('report')
    .description(
      'write report.md, report.html and the charts from results.json files (a directory: every results.json in it)',
    )
    .argument('<results...>', 'results.json files or directories holding them')
    .addOption(
      new Option('--out <dir>', 'where to write (default: beside the first results)').env('BENCH_REPORT_OUT'),
    );
  addCapacityOptions(command);
  return command.action(async (inputs: string[], options: CapacityOptions & { out?: string }) => {
    const { target, scenario: capacityScenario } = capacityTargetOf(options);
    const written = await writeReport(inputs, {
      target,
      capacityScenario,
      ...(options.out === undefined ? {} : { outDir: options.out }),
    });
    for (const line of describeReport(written)) console.log(line);
  });
}
