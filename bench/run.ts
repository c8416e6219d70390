/**
 * `stockd bench` (and `npm run bench`): the scenario suite, then the report — one command
 * from nothing to a report a capacity planner can show.
 *
 *   stockd bench [suite options] [--modes closed,step] [--shards 1,2] [--out DIR]
 *                [--capacity-rate 50000 --capacity-p99-ms 15 --headroom 0.7]
 *     for each shard count (the first runs every target, the others stockd's only)
 *       for each mode: the suite (bench/load/cli.ts) → DIR/[shards-N/]<mode>/results.json
 *     then the report from them all → DIR/report.md, DIR/report.html, DIR/*.svg
 *   stockd bench report <results…>    rewrite the report from results already measured
 *   stockd bench shadow …             replay a WAL range at k× speed (bench/shadow.ts)
 *   stockd bench --engine             the engine microbenchmarks (npm run bench:engine)
 *
 * Ctrl-C stops the run in progress (the suite writes its results, marked partial) and the
 * report is written from what was measured; a second Ctrl-C quits at once.
 */
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { defaultShardCount } from '../src/config.js';
import { buildCommand, runCli } from './load/cli.js';
import { type Mode, timestampName } from './load/results.js';
import { parseTargets, targetLabel } from './load/targets.js';
import type { CapacityOptions } from './report/cli.js';

const modes: readonly Mode[] = ['closed', 'open', 'step'];

/** Suite options `stockd bench` replaces with its own (a list of modes and of shard counts, and the output root). */
const replacedSuiteOptions = new Set(['--mode', '--shards', '--out']);

/** `stockd bench`'s own options: long name → takes a value. Stripped before the rest goes to the suite. */
const ownOptions: ReadonlyMap<string, boolean> = new Map([
  ['--modes', true],
  ['--shards', true],
  ['--out', true],
  ['--engine', false],
]);

function modeList(value: string): Mode[] {
  const list = value
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  for (const mode of list) {
    if (!modes.includes(mode as Mode))
      throw new InvalidArgumentError(`unknown mode ${mode}; one of ${modes.join(', ')}`);
  }
  if (list.length === 0) throw new InvalidArgumentError('expected at least one mode');
  return [...new Set(list)] as Mode[];
}

function shardList(value: string): number[] {
  const list = value.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isSafeInteger(n) || n < 1)) {
    throw new InvalidArgumentError('expected whole numbers >= 1, e.g. 1,2');
  }
  return [...new Set(list)];
}

/** The argv without the options named in `names` (long name → takes a value), in `--x v` or `--x=v` form. */
export function withoutOptions(argv: readonly string[], names: ReadonlyMap<string, boolean>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    const [name, inline] = token.split('=', 2) as [string, string | undefined];
    const takesValue = names.get(name);
    if (takesValue === undefined) {
      kept.push(token);
      continue;
    }
    if (takesValue && inline === undefined) i++;
  }
  return kept;
}

export interface BenchPlanStep {
  readonly mode: Mode;
  readonly shards: number;
  /** Arguments for the suite's runCli. */
  readonly argv: readonly string[];
  readonly outDir: string;
}

/**
 * The suite runs `stockd bench` makes: every mode at the first shard count with every
 * target, then every mode at each further shard count with stockd's targets only (the
 * alternatives have no shards; the capacity model needs stockd's knee at each count).
 */
export function benchPlan(options: {
  readonly suiteArgv: readonly string[];
  readonly modes: readonly Mode[];
  readonly shards: readonly number[];
  readonly targets: string;
  readonly outDir: string;
}): BenchPlanStep[] {
  const stockdTargets = parseTargets(options.targets).filter((t) => t.name === 'stockd');
  const several = options.shards.length > 1;
  const plan: BenchPlanStep[] = [];
  options.shards.forEach((shards, index) => {
    if (index > 0 && stockdTargets.length === 0) return;
    for (const mode of options.modes) {
      const outDir = several ? join(options.outDir, `shards-${shards}`, mode) : join(options.outDir, mode);
      const argv = [...options.suiteArgv, '--mode', mode, '--shards', String(shards), '--out', outDir];
      if (index > 0) argv.push('--targets', stockdTargets.map(targetLabel).join(','));
      plan.push({ mode, shards, argv, outDir });
    }
  });
  return plan;
}

interface BenchOptions extends CapacityOptions {
  modes: Mode[];
  shards: number[];
  out?: string;
  engine?: boolean;
  targets: string;
  rate?: number;
}

/** The engine microbenchmarks (heap per record, the bare shard core loop, engine throughput); run with --expose-gc for clean memory figures. */
export async function runEngineBenchmarks(): Promise<void> {
  const { main: memory } = await import('./memory.js');
  const { main: engineThroughput } = await import('./engine-throughput.js');
  const { main: coreLoop } = await import('./core-loop.js');
  await memory();
  await coreLoop();
  await engineThroughput();
}

async function runBench(argv: readonly string[], options: BenchOptions): Promise<number> {
  if (options.engine === true) {
    await runEngineBenchmarks();
    return 0;
  }
  if (options.modes.includes('open') && options.rate === undefined) {
    console.error('the open mode needs --rate');
    return 2;
  }
  // Loaded here, not at the top: vega and the report are not needed for --engine or --help.
  const { writeReport } = await import('./report/write-report.js');
  const { capacityOptionNames, capacityTargetOf, describeReport } = await import('./report/cli.js');
  const outDir = resolve(options.out ?? join('bench', 'results', timestampName()));
  const suiteArgv = withoutOptions(argv, new Map([...ownOptions, ...capacityOptionNames]));
  let plan: BenchPlanStep[];
  try {
    plan = benchPlan({
      suiteArgv,
      modes: options.modes,
      shards: options.shards,
      targets: options.targets,
      outDir,
    });
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  if (options.shards.length > 1 && plan.every((step) => step.shards === options.shards[0])) {
    console.log(
      `--shards ${options.shards.join(',')}: no stockd target, so only ${options.shards[0]} shard(s) run`,
    );
  }

  let interrupted = false;
  const onSigint = (): void => {
    // The suite's own handler stops the run in progress; this one stops the runs after it.
    if (interrupted) process.exit(130);
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  let code = 0;
  const written: string[] = [];
  try {
    for (const [index, step] of plan.entries()) {
      if (interrupted) break;
      console.log(
        `\n== run ${index + 1}/${plan.length}: ${step.mode} mode, ${step.shards} shard(s) → ${step.outDir}`,
      );
      const result = await runCli(step.argv);
      written.push(step.outDir);
      if (result === 130) interrupted = true;
      else if (result === 2) return 2;
      else code = Math.max(code, result);
    }
    if (written.length === 0) return interrupted ? 130 : code;
    const { target, scenario } = capacityTargetOf(options);
    try {
      // Exactly the results of this command, not older ones a reused --out may hold.
      const report = await writeReport(written, { target, capacityScenario: scenario, outDir });
      console.log('');
      for (const line of describeReport(report)) console.log(line);
    } catch (error) {
      // The results are on disk: `stockd bench report <dir>` can try again.
      console.error(
        `the report failed (${error instanceof Error ? error.message : String(error)}); results in ${outDir}`,
      );
      return 1;
    }
    return interrupted ? 130 : code;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export function benchCommand(): Command {
  const suite = buildCommand();
  const command = new Command('bench').description(
    'the scenario suite (stockd against PostgreSQL row update and Redis Lua), then the report: report.md, report.html and SVG charts with ratios and a capacity recommendation',
  );
  for (const option of suite.options) {
    if (!replacedSuiteOptions.has(option.long ?? '')) command.addOption(option);
  }
  command
    .addOption(
      new Option('--modes <list>', 'modes to run, in order: closed, open (needs --rate), step')
        .env('BENCH_MODES')
        .default(['closed', 'step'], 'closed,step')
        .argParser(modeList),
    )
    .addOption(
      new Option(
        '--shards <list>',
        "stockd's shard counts; with several (e.g. 1,2) the capacity model measures its scaling",
      )
        .env('BENCH_SHARDS')
        .default([defaultShardCount(availableParallelism())])
        .argParser(shardList),
    )
    .addOption(
      new Option('--out <dir>', 'output directory (default bench/results/<timestamp>)').env('BENCH_OUT'),
    )
    .addOption(new Option('--engine', 'run the engine microbenchmarks instead (npm run bench:engine)'));
  return command;
}

/** `stockd bench …`: resolves with the exit code. */
export async function runBenchCli(argv: readonly string[]): Promise<number> {
  let code = 0;
  const setCode = (value: number): void => {
    code = value;
  };
  const command = benchCommand();
  const { addCapacityOptions, reportCommand } = await import('./report/cli.js');
  const { shadowCommand } = await import('./shadow.js');
  addCapacityOptions(command);
  command.action(async (options: BenchOptions) => {
    code = await runBench(argv, options);
  });
  command.addCommand(reportCommand());
  command.addCommand(shadowCommand(setCode));
  // A parent only for the usage lines (`stockd bench …`); errors become exit codes, not exits.
  const program = new Command('stockd').enablePositionalOptions().addCommand(command);
  // Options after `report` or `shadow` are theirs (both have a --out or --shards of their own).
  command.enablePositionalOptions();
  for (const each of [program, command, ...command.commands]) each.exitOverride();
  try {
    await program.parseAsync(['bench', ...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    // A command that could not do its work (no results found, a store that will not open):
    // say why in one line; the stack is for bugs.
    console.error(`stockd bench: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  return code;
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  process.exitCode = await runBenchCli(process.argv.slice(2));
}
