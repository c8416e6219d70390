/**
 * Runs the deterministic simulation (bench/simulation.ts) for as long as you like:
 *
 *   npm run build && node dist/bench/simulate.js --steps 200000
 *   node dist/bench/simulate.js --seeds 50 --steps 100000          # 50 seeds from a random one
 *   node dist/bench/simulate.js --seed 1234 --shards 3 --steps 8000  # replay one run exactly
 *
 * --seed is the first seed (default: a random one, printed), --seeds how many consecutive
 * seeds to run (default 1), --steps the steps of each run (default 100,000), --shards the
 * shard count (default: 1, 2, 3 in turn by seed). On a failure it prints the seed and the
 * command that replays it, and exits with status 1.
 *
 * Every check is on by default; --tolerate <issue> (repeatable) skips the check of a bug
 * parked in `knownIssues` (bench/simulation.ts) while it is being fixed. --limit name=value (repeatable) overrides
 * one of the simulation's limits, e.g. --limit finishedReservationsMax=15. Process restarts
 * sometimes come back with another shard count; --no-reshard keeps it fixed. --verbose prints
 * every action and reply, for following a replayed seed.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  type KnownIssue,
  knownIssues,
  replayCommand,
  runSimulation,
  type SimulationReport,
  simulationLimits,
} from './simulation.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string', default: '1' },
    steps: { type: 'string', default: '100000' },
    shards: { type: 'string' },
    tolerate: { type: 'string', multiple: true },
    strict: { type: 'boolean', default: false },
    'no-reshard': { type: 'boolean', default: false },
    limit: { type: 'string', multiple: true, default: [] },
    verbose: { type: 'boolean', short: 'v', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (values.help) {
  console.log(
    'usage: node dist/bench/simulate.js [--seed N] [--seeds COUNT] [--steps N] [--shards N]' +
      ' [--limit name=value]... [--strict | --tolerate issue...] [--no-reshard] [--verbose]',
  );
  process.exit(0);
}

function wholeNumber(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    console.error(`--${name} must be a whole number ${min}..${max}, got ${text}`);
    process.exit(2);
  }
  return value;
}

// A random first seed when none is given: this is the one place randomness enters, and the
// seed is printed, so every run can be replayed.
const firstSeed = wholeNumber('seed', values.seed, 0, 0xffff_ffff) ?? randomInt(0, 0xffff_ffff);
const seedCount = wholeNumber('seeds', values.seeds, 1, 1_000_000)!;
const steps = wholeNumber('steps', values.steps, 1, 1_000_000_000)!;
const fixedShards = wholeNumber('shards', values.shards, 1, 64);
const limits: Record<string, number> = {};
for (const text of values.limit) {
  const [name, value] = text.split('=');
  if (name === undefined || !(name in simulationLimits) || value === undefined) {
    console.error(`--limit takes name=value with a name from src/config.ts Limits; got ${text}`);
    process.exit(2);
  }
  limits[name] = Number(value);
}
// Every check is on unless --tolerate names a bug parked in knownIssues,
// so that a long run keeps looking for new ones.
const tolerate = values.strict ? [] : ((values.tolerate ?? []) as KnownIssue[]);
for (const issue of tolerate) {
  if (!knownIssues.includes(issue)) {
    console.error(`--tolerate takes one of ${knownIssues.join(', ')}; got ${issue}`);
    process.exit(2);
  }
}

const reshard = !values['no-reshard'];
const totals = new Map<string, number>();
const started = performance.now();
let totalSteps = 0;

console.log(`simulating ${seedCount} seed(s) from ${firstSeed}, ${steps} steps each`);
if (tolerate.length > 0)
  console.log(`tolerating known src bugs: ${tolerate.join(', ')} (--strict checks them)`);
for (let i = 0; i < seedCount; i++) {
  const seed = (firstSeed + i) % 0x1_0000_0000;
  const shards = fixedShards ?? 1 + (seed % 3);
  const runStarted = performance.now();
  let report: SimulationReport;
  try {
    report = await runSimulation({
      seed,
      steps,
      shards,
      tolerate,
      limits,
      reshard,
      ...(values.verbose ? { log: (line: string) => console.log(line) } : {}),
      progressEvery: 50_000,
      onProgress: (partial) => {
        const seconds = (performance.now() - runStarted) / 1000;
        console.log(
          `  seed=${seed} shards=${shards} step ${partial.counters.steps}/${steps} ` +
            `(${Math.round(partial.counters.steps / seconds)} steps/s)`,
        );
      },
    });
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    console.error(`\nFAILED: seed=${seed} shards=${shards} steps=${steps}`);
    console.error(`replay: ${replayCommand({ seed, shards, steps, limits, tolerate, reshard })}`);
    process.exit(1);
  }
  const seconds = (performance.now() - runStarted) / 1000;
  totalSteps += steps;
  for (const [name, value] of Object.entries(report.counters))
    totals.set(name, (totals.get(name) ?? 0) + value);
  const c = report.counters;
  console.log(
    `ok seed=${seed} shards=${shards} steps=${steps} in ${seconds.toFixed(1)}s ` +
      `(${Math.round(steps / seconds)} steps/s) digest=${report.digest} ` +
      `crashes=${c.crashesBeforeAppend + c.crashesAfterAppend} appendFailures=${c.appendFailures} ` +
      `restarts=${c.processRestarts} reshards=${c.reshards} expiries=${c.expiries} crossShard=${c.crossShardReservations}`,
  );
}

const seconds = (performance.now() - started) / 1000;
console.log(
  `\n${seedCount} seed(s), ${totalSteps} steps in ${seconds.toFixed(1)}s ` +
    `(${Math.round(totalSteps / seconds)} steps/s), no failures`,
);
console.log(
  [...totals]
    .filter(([name]) => name !== 'steps')
    .map(([name, value]) => `${name}=${value}`)
    .join(' '),
);
