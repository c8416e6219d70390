/**
 * The command line of the scenario suite: `node dist/bench/scenarios.js [options]`.
 * Every option is also an environment variable (BENCH_…), the way the other benchmarks
 * take their parameters; `--help` lists them all with their defaults.
 *
 * Ctrl-C stops the run in progress and writes the results so far, marked partial; a
 * second Ctrl-C exits at once.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { defaultShardCount } from '../../src/config.js';
import { pgRowDefaults } from '../baselines/pg-row.js';
import { redisLuaDefaults } from '../baselines/redis-lua.js';
import { describeMachine } from '../machine.js';
import { defaultSizes, type LifecycleShares, type ScenarioSizes } from '../scenarios.js';
import { type ScenarioName, scenarioNames } from './operation.js';
import { type Mode, timestampName } from './results.js';
import { formatComparison, runSuite, type SuiteConfig } from './suite.js';
import { parseTargets } from './targets.js';

const modes: readonly Mode[] = ['closed', 'open', 'step'];

function positiveNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a number > 0');
  return parsed;
}

function nonNegativeNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw new InvalidArgumentError('expected a number >= 0');
  return parsed;
}

function wholeNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1)
    throw new InvalidArgumentError('expected a whole number >= 1');
  return parsed;
}

function share(value: string): number {
  const parsed = Number(value);
  if (!(parsed >= 0 && parsed <= 1)) throw new InvalidArgumentError('expected a share within 0..1');
  return parsed;
}

function scenarioList(value: string): ScenarioName[] {
  const names = value === 'all' ? [...scenarioNames] : value.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!scenarioNames.includes(name as ScenarioName)) {
      throw new InvalidArgumentError(`unknown scenario ${name}; one of ${scenarioNames.join(', ')} or all`);
    }
  }
  return names as ScenarioName[];
}

/** `70/20/10` (percent or shares) → shares of 1. */
function lifecycleShares(value: string): LifecycleShares {
  const parts = value.split('/').map(Number);
  if (parts.length !== 3 || parts.some((part) => !(part >= 0))) {
    throw new InvalidArgumentError('expected commit/release/expire, e.g. 70/20/10');
  }
  const sum = parts[0]! + parts[1]! + parts[2]!;
  if (sum <= 0) throw new InvalidArgumentError('the shares must not all be 0');
  return { commit: parts[0]! / sum, release: parts[1]! / sum, expire: parts[2]! / sum };
}

function option(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

export function buildCommand(): Command {
  const cores = availableParallelism();
  return new Command('scenarios')
    .description(
      'stockd against the alternatives (PostgreSQL row update, Redis Lua) under the six workloads; writes results.json',
    )
    .addOption(
      option(
        '--targets <list>',
        'targets as name:transport (stockd, pg-row, redis-lua; direct or http)',
        'BENCH_TARGETS',
      ).default('stockd:direct,stockd:http,pg-row:http,redis-lua:http'),
    )
    .addOption(
      option('--scenarios <list>', `comma-separated, or all: ${scenarioNames.join(', ')}`, 'BENCH_SCENARIOS')
        .default([...scenarioNames], 'all')
        .argParser(scenarioList),
    )
    .addOption(
      option('--mode <mode>', 'closed, open (fixed rate) or step (find the knee)', 'BENCH_MODE')
        .choices(modes)
        .default('closed'),
    )
    .addOption(
      option('--seconds <n>', 'measured seconds per run', 'BENCH_SECONDS')
        .default(10)
        .argParser(positiveNumber),
    )
    .addOption(
      option('--warmup <n>', 'unrecorded warm-up seconds per run', 'BENCH_WARMUP')
        .default(2)
        .argParser(nonNegativeNumber),
    )
    .addOption(
      option('--connections <n>', 'concurrent clients', 'BENCH_CONNECTIONS')
        .default(64)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--flash-connections <n>', 'concurrent buyers in the flash sale', 'BENCH_FLASH_CONNECTIONS')
        .default(1_000)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--batch-connections <n>', 'concurrent batches in the resync', 'BENCH_BATCH_CONNECTIONS')
        .default(4)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--rate <n>', 'open mode: operations per second offered', 'BENCH_RATE').argParser(
        positiveNumber,
      ),
    )
    .addOption(
      option(
        '--step-start <n>',
        'step mode: first offered rate (default: 20% of a closed-loop probe)',
        'BENCH_STEP_START',
      ).argParser(positiveNumber),
    )
    .addOption(
      option('--step-factor <n>', 'step mode: rate multiplier per step', 'BENCH_STEP_FACTOR')
        .default(1.25)
        .argParser(positiveNumber),
    )
    .addOption(
      option('--step-seconds <n>', 'step mode: seconds per step', 'BENCH_STEP_SECONDS')
        .default(3)
        .argParser(positiveNumber),
    )
    .addOption(
      option('--max-steps <n>', 'step mode: most steps', 'BENCH_MAX_STEPS')
        .default(16)
        .argParser(wholeNumber),
    )
    .addOption(
      option(
        '--objective-p99-ms <n>',
        'step mode: the p99 objective that defines the knee',
        'BENCH_OBJECTIVE_P99_MS',
      )
        .default(15)
        .argParser(positiveNumber),
    )
    .addOption(
      option(
        '--max-in-flight <n>',
        'open loop: outstanding operations before a run counts as saturated',
        'BENCH_MAX_IN_FLIGHT',
      )
        .default(20_000)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--drain <n>', 'open loop: seconds to wait for answers after the schedule', 'BENCH_DRAIN')
        .default(10)
        .argParser(nonNegativeNumber),
    )
    .addOption(
      option('--timeout <n>', 'seconds before an answer counts as a TIMEOUT', 'BENCH_TIMEOUT')
        .default(30)
        .argParser(positiveNumber),
    )
    .addOption(
      option('--skus <n>', 'SKUs in the catalogue', 'BENCH_SKUS')
        .default(defaultSizes.skus)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--locations <n>', 'locations per SKU', 'BENCH_LOCATIONS')
        .default(defaultSizes.locations)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--lines <n>', 'lines per reservation', 'BENCH_LINES')
        .default(defaultSizes.linesPerOrder)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--zipf-s <n>', 'Zipf exponent', 'BENCH_ZIPF_S')
        .default(defaultSizes.zipfS)
        .argParser(nonNegativeNumber),
    )
    .addOption(
      option('--flash-stock <n>', 'units of the flash-sale SKU', 'BENCH_FLASH_STOCK')
        .default(defaultSizes.flashStock)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--read-share <n>', 'storefront share of ATP reads', 'BENCH_READ_SHARE')
        .default(defaultSizes.readShare)
        .argParser(share),
    )
    .addOption(
      option('--lifecycle <shares>', 'lifecycle commit/release/expire shares', 'BENCH_LIFECYCLE')
        .default(defaultSizes.lifecycleShares, '70/20/10')
        .argParser(lifecycleShares),
    )
    .addOption(
      option('--expire-ttl <n>', 'TTL (s) of lifecycle reservations left to expire', 'BENCH_EXPIRE_TTL')
        .default(defaultSizes.expireTtlSeconds)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--resync-sets <n>', 'stock sets in the WMS resync', 'BENCH_RESYNC_SETS')
        .default(defaultSizes.resyncSets)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--batch-size <n>', 'commands per /v1/batch in the resync', 'BENCH_BATCH_SIZE')
        .default(defaultSizes.batchSize)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--seed <n>', 'seed of the workloads', 'BENCH_SEED')
        .default(defaultSizes.seed)
        .argParser(wholeNumber),
    )
    .addOption(
      option('--shards <n>', "stockd's shard workers", 'BENCH_SHARDS')
        .default(defaultShardCount(cores))
        .argParser(wholeNumber),
    )
    .addOption(
      option('--store <store>', 'where stockd keeps its WAL', 'BENCH_STORE')
        .choices(['postgres', 'memory'])
        .default('postgres'),
    )
    .addOption(
      option('--database-url <url>', 'PostgreSQL for stockd’s WAL and pg-row', 'DATABASE_URL').default(
        'postgres://postgres@127.0.0.1:5432/postgres',
      ),
    )
    .addOption(
      option('--redis-url <url>', 'Redis for redis-lua', 'REDIS_URL').default('redis://127.0.0.1:6379'),
    )
    .addOption(
      option('--pg-pool <n>', 'pg-row pooled connections', 'BENCH_PG_POOL')
        .default(pgRowDefaults.poolSize)
        .argParser(wholeNumber),
    )
    .addOption(
      option(
        '--coalesce',
        'direct transport: one executeMany per tick instead of execute per request',
        'BENCH_COALESCE',
      ),
    )
    .addOption(
      option('--out <dir>', 'directory of results.json (default bench/results/<timestamp>)', 'BENCH_OUT'),
    )
    .addOption(new Option('--no-progress', 'no progress bars'))
    .allowExcessArguments(false);
}

interface CliOptions {
  targets: string;
  scenarios: ScenarioName[];
  mode: Mode;
  seconds: number;
  warmup: number;
  connections: number;
  flashConnections: number;
  batchConnections: number;
  rate?: number;
  stepStart?: number;
  stepFactor: number;
  stepSeconds: number;
  maxSteps: number;
  objectiveP99Ms: number;
  maxInFlight: number;
  drain: number;
  timeout: number;
  skus: number;
  locations: number;
  lines: number;
  zipfS: number;
  flashStock: number;
  readShare: number;
  lifecycle: LifecycleShares;
  expireTtl: number;
  resyncSets: number;
  batchSize: number;
  seed: number;
  shards: number;
  store: 'postgres' | 'memory';
  databaseUrl: string;
  redisUrl: string;
  pgPool: number;
  coalesce?: boolean;
  out?: string;
  progress: boolean;
}

export function configFromOptions(options: CliOptions): SuiteConfig {
  const sizes: ScenarioSizes = {
    ...defaultSizes,
    skus: options.skus,
    locations: options.locations,
    linesPerOrder: options.lines,
    zipfS: options.zipfS,
    flashStock: options.flashStock,
    readShare: options.readShare,
    lifecycleShares: options.lifecycle,
    expireTtlSeconds: options.expireTtl,
    resyncSets: options.resyncSets,
    batchSize: options.batchSize,
    seed: options.seed,
  };
  return {
    targets: parseTargets(options.targets),
    scenarios: options.scenarios,
    mode: options.mode,
    seconds: options.seconds,
    warmupSeconds: options.warmup,
    connections: options.connections,
    flashConnections: options.flashConnections,
    batchConnections: options.batchConnections,
    rate: options.rate ?? null,
    step: {
      startRate: options.stepStart ?? null,
      factor: options.stepFactor,
      stepSeconds: options.stepSeconds,
      maxSteps: options.maxSteps,
      objectiveP99Ms: options.objectiveP99Ms,
    },
    maxInFlight: options.maxInFlight,
    drainSeconds: options.drain,
    timeoutSeconds: options.timeout,
    sizes,
    backend: {
      shards: options.shards,
      store: options.store,
      databaseUrl: options.databaseUrl,
      redisUrl: options.redisUrl,
      pgPoolSize: options.pgPool,
      engineSchema: 'stockd_bench_engine',
      pgSchema: pgRowDefaults.schema,
      redisNamespace: redisLuaDefaults.namespace,
    },
    coalesce: options.coalesce === true,
    outDir: resolve(options.out ?? `bench/results/${timestampName()}`),
    progress: options.progress,
  };
}

/** Runs the suite; resolves with the process exit code (1: a run failed or a check did not pass). */
export async function runCli(argv: readonly string[]): Promise<number> {
  const command = buildCommand();
  command.parse([...argv], { from: 'user' });
  const config = configFromOptions(command.opts<CliOptions>());
  if (config.mode === 'open' && config.rate === null) {
    console.error('open mode needs --rate');
    return 2;
  }
  const controller = new AbortController();
  const onSigint = (): void => {
    if (controller.signal.aborted) process.exit(130);
    console.error(
      '\ninterrupted: finishing the run in progress and writing partial results (Ctrl-C again to quit)',
    );
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  console.log(describeMachine());
  try {
    const { results, path } = await runSuite(config, {
      argv,
      signal: controller.signal,
      log: (line) => console.log(line),
    });
    const comparison = formatComparison(results);
    if (comparison.length > 0)
      console.log(['stockd against the alternatives (ok commands/s):', ...comparison].join('\n  '));
    console.log(`results: ${path}${results.partial ? ' (partial)' : ''}`);
    if (controller.signal.aborted) return 130;
    const failed = results.runs.some(
      (run) => run.error !== undefined || run.checks.some((check) => !check.passed),
    );
    return failed ? 1 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
