/**
 * What the report says, section by section, from the runs, the capacity plans and the
 * rendered charts:
 *
 *   summary → machine and configuration → targets → throughput bars → per scenario
 *   (tables with ratios, checks, curves) → seed floor → knees → capacity → how to read it
 */
import type { Mode } from '../load/results.js';
import type { SuiteConfig } from '../load/suite.js';
import { type ScenarioName, scenarioDescriptions } from '../scenarios.js';
import type { CapacityPlan, CapacityTarget } from './capacity.js';
import { DocumentBuilder, type ReportDocument } from './document.js';
import {
  alternatives,
  type ComparisonRow,
  comparisonRows,
  rateUnits,
  seedFloor,
  seedFloorRows,
} from './figures.js';
import { ms, plural, times, whole, yesNo } from './format.js';
import type { LoadedResults, SeriesRun } from './results-input.js';

export interface RenderedChart {
  readonly file: string;
  readonly title: string;
  readonly svg: string;
}

export interface ComposeInput {
  readonly loaded: readonly LoadedResults[];
  readonly runs: readonly SeriesRun[];
  readonly scenarios: readonly ScenarioName[];
  readonly target: CapacityTarget;
  readonly plans: readonly CapacityPlan[];
  readonly headline: CapacityPlan | null;
  /** Rendered charts by file name; a chart absent here is left out. */
  readonly charts: ReadonlyMap<string, RenderedChart>;
  /** What the bars show (closed-loop maxima, knees, …). */
  readonly barsShow: string;
}

const alternativeNames: Readonly<Record<(typeof alternatives)[number], string>> = {
  'pg-row': 'PostgreSQL row update',
  'redis-lua': 'Redis Lua',
};

const modeNames: Readonly<Record<Mode, string>> = {
  closed: 'Closed loop (the most each target answers)',
  open: 'Open loop (a fixed offered rate)',
  step: 'Step mode (the knee: the highest offered load within the p99 objective)',
};

type RecordedConfig = Partial<Omit<SuiteConfig, 'backend' | 'sizes' | 'step'>> & {
  readonly backend?: Partial<SuiteConfig['backend']>;
  readonly sizes?: Partial<SuiteConfig['sizes']>;
  readonly step?: Partial<SuiteConfig['step']>;
};

function configOf(loaded: LoadedResults): RecordedConfig {
  return (loaded.results.config ?? {}) as RecordedConfig;
}

function ratioCell(value: number | 'unmeasured' | null, mode: Mode): string {
  if (value === 'unmeasured') return mode === 'step' ? 'it has no knee' : 'it failed';
  return value === null ? '—' : times(value);
}

/** Extrapolation past which the summary warns: ×4 the shards measured, or ×2 the rate one process reached. */
function farBeyond(plan: CapacityPlan): boolean {
  const measuredShards = Math.max(...plan.knees.map((k) => k.shards));
  const highest = plan.context.highestMeasuredRate;
  return (
    (plan.shards !== null && plan.shards > 4 * measuredShards) ||
    (highest !== null && plan.target.rate > 2 * highest)
  );
}

function addSummary(doc: DocumentBuilder, input: ComposeInput): void {
  const items: string[] = [];
  const plan = input.headline;
  if (plan !== null) {
    const { target } = plan;
    const unit = plan.context.unit;
    items.push(
      plan.shards === null
        ? `**Capacity**: no recommendation for ${whole(target.rate)} ${unit} at p99 ≤ ${target.objectiveP99Ms} ms from ${plan.context.scenario} — ${plan.derivation.at(-1)}`
        : `**Capacity**: for ${whole(target.rate)} ${unit} at p99 ≤ ${target.objectiveP99Ms} ms, **${plural(plan.shards, 'shard')} on ${plural(plan.cores!, 'core')}** (from the ${plan.context.scenario} scenario over ${plan.context.transport}, at ≤ ${Math.round(target.headroom * 100)}% of the knee; derivation below)${farBeyond(plan) ? ' — **extrapolated far beyond what was measured: read where it is weakest before using it**' : ''}.`,
    );
  } else {
    items.push(
      '**Capacity**: no step-mode runs of stockd, so no knee to plan from (run `stockd bench --modes step`).',
    );
  }
  for (const mode of ['closed', 'step'] as const) {
    const rows = comparisonRows(input.runs, 'flash-sale', mode);
    for (const row of rows.filter((r) => r.name === 'stockd' && r.headline !== null)) {
      const versus = alternatives
        .map((alt) => {
          const other = rows.find((r) => r.name === alt && r.transport === row.transport);
          const ratio = row.ratios[alt];
          if (other?.headline == null || typeof ratio !== 'number') return null;
          return `${times(ratio)} ${alternativeNames[alt]} (${whole(other.headline.rate)}/s, p99 ${ms(other.headline.measurement.latencyMs.p99)} ms${other.durable === false ? ', not durable' : ''})`;
        })
        .filter((text): text is string => text !== null);
      if (versus.length === 0) continue;
      items.push(
        `**Flash sale** (${mode === 'closed' ? 'closed loop' : 'knee'}, ${row.transport}): ${row.series} ${whole(row.headline!.rate)} reservations/s at p99 ${ms(row.headline!.measurement.latencyMs.p99)} ms, ${row.durable ? 'durable' : '**not durable**'}: ${versus.join(', ')}.`,
      );
    }
  }
  const floor = seedFloorRows(input.runs, input.scenarios);
  if (floor.length > 0) {
    const lowest = floor.reduce((a, b) => (b.multiple < a.multiple ? b : a));
    const allMeet = floor.every((row) => row.meetsLatency && row.multiple >= 1);
    items.push(
      `**Seed floor** (${whole(seedFloor.eventsPerSecond)} events/s at < ${seedFloor.meanLatencyMsMax} ms mean latency): ${
        allMeet ? 'every scenario is above it' : '**not every scenario clears it**'
      }; the lowest is ${lowest.scenario} on ${lowest.series} at ${times(lowest.multiple)} (${whole(lowest.eventsPerSecond)} events/s, mean ${ms(lowest.meanLatencyMs)} ms).`,
    );
  }
  for (const transport of ['http', 'direct']) {
    const spans = alternatives
      .map((alt) => {
        const ratios = input.scenarios
          .flatMap((scenario) => comparisonRows(input.runs, scenario, 'closed'))
          .filter((row) => row.name === 'stockd' && row.transport === transport)
          .map((row) => row.ratios[alt])
          .filter((ratio): ratio is number => typeof ratio === 'number');
        if (ratios.length === 0) return null;
        return `${times(Math.min(...ratios))} to ${times(Math.max(...ratios))} ${alternativeNames[alt]}’s`;
      })
      .filter((text): text is string => text !== null);
    if (spans.length > 0) {
      items.push(
        `**Across the scenarios** (closed loop, ${transport}): stockd’s rate is ${spans.join(', and ')}.`,
      );
    }
  }
  const targets = new Map<string, { durable: boolean; durability: string }>();
  for (const { results } of input.loaded) {
    for (const t of results.targets) targets.set(t.name, { durable: t.durable, durability: t.durability });
  }
  const notDurable = [...targets].filter(([, t]) => !t.durable).map(([name]) => `\`${name}\``);
  if (targets.size > 0) {
    items.push(
      `**Durability**: ${notDurable.length === 0 ? 'every target was durable in these runs' : `**not durable**: ${notDurable.join(', ')} (a reply may leave before the change is on disk; see Targets)`}.`,
    );
  }
  doc.heading(2, 'Summary').list(items);
}

function addMachine(doc: DocumentBuilder, input: ComposeInput): void {
  const first = input.loaded[0]!;
  const info = first.results.runInfo;
  const config = configOf(first);
  const commit = `${info.commit.sha.slice(0, 12)}${info.commit.dirty === true ? ' (uncommitted changes)' : info.commit.dirty === null ? '' : ' (clean)'}`;
  const shards = [
    ...new Set(input.loaded.map((l) => configOf(l).backend?.shards).filter((s) => s !== undefined)),
  ];
  const rows: string[][] = [
    ['CPU', `${info.machine.cpu}, ${plural(info.machine.cores, 'core')}`],
    ['memory', `${info.machine.memoryGiB} GiB`],
    ['platform', `${info.machine.platform}, Node ${info.node}`],
    ['load average at start', info.machine.loadAverage.join(' / ')],
    ['PostgreSQL', info.services.postgresql ?? 'not used'],
    ['Redis', info.services.redis ?? 'not used'],
    ['commit', commit],
    ['started', first.results.startedAt],
    ['finished', input.loaded.at(-1)!.results.finishedAt ?? 'not finished (partial)'],
    [
      'stockd',
      `${shards.map((s) => plural(s!, 'shard')).join(', ')}; WAL in ${config.backend?.store ?? '?'}`,
    ],
  ];
  if (config.sizes !== undefined) {
    const s = config.sizes;
    rows.push([
      'sizes',
      `${whole(s.skus ?? 0)} SKUs × ${s.locations} locations, ${s.linesPerOrder} line(s) per reservation, Zipf s = ${s.zipfS}, resync ${whole(s.resyncSets ?? 0)} sets in batches of ${whole(s.batchSize ?? 0)}`,
    ]);
  }
  rows.push([
    'clients',
    `${whole(config.connections ?? 0)} connections, ${whole(config.flashConnections ?? 0)} flash-sale buyers, ${whole(config.batchConnections ?? 0)} resync batches at once`,
  ]);
  rows.push(['duration', `${config.seconds} s per run after ${config.warmupSeconds} s warm-up`]);
  const stepped = input.loaded.map(configOf).find((c) => c.mode === 'step');
  if (stepped?.step !== undefined) {
    rows.push([
      'step mode',
      `p99 objective ${stepped.step.objectiveP99Ms} ms, × ${stepped.step.factor} per step of ${stepped.step.stepSeconds} s, at most ${stepped.step.maxSteps} steps`,
    ]);
  }
  for (const loaded of input.loaded) {
    const c = configOf(loaded);
    const argv = loaded.results.argv.join(' ');
    rows.push([
      `suite run: ${c.mode ?? '?'}, ${plural(c.backend?.shards ?? 1, 'shard')}${loaded.results.partial ? ' (partial)' : ''}`,
      argv === '' ? '(defaults)' : `\`${argv}\``,
    ]);
  }
  doc.heading(2, 'Machine and configuration').table(['', 'value'], rows, ['left', 'left']);
}

function addTargets(doc: DocumentBuilder, input: ComposeInput): void {
  const seen = new Map<string, string[]>();
  for (const { results } of input.loaded) {
    for (const t of results.targets) {
      if (!seen.has(t.label)) seen.set(t.label, [`\`${t.label}\``, yesNo(t.durable), t.server, t.durability]);
    }
  }
  if (seen.size === 0) return;
  doc
    .heading(2, 'Targets')
    .paragraph(
      '`direct`: the target in the benchmark process, called as a library. `http`: the target behind stockd’s own HTTP server in a child process — same routes, validation and error codes for all three, only what answers differs.',
    )
    .table(
      ['target', 'durable', 'what answered', 'when the reply leaves'],
      [...seen.values()],
      ['left', 'left', 'left', 'left'],
    );
}

function comparisonTable(
  doc: DocumentBuilder,
  rows: readonly ComparisonRow[],
  mode: Mode,
  unit: string,
): void {
  const step = mode === 'step';
  const header = [
    'target',
    'durable',
    step ? `knee (${unit})` : unit,
    'p50 ms',
    'p99 ms',
    'p999 ms',
    ...(step ? ['stopped because'] : ['refused', 'failed']),
    '÷ pg-row',
    '÷ redis-lua',
  ];
  const body = rows.map((row) => {
    const h = row.headline;
    const latency =
      h === null
        ? ['—', '—', '—']
        : [h.measurement.latencyMs.p50, h.measurement.latencyMs.p99, h.measurement.latencyMs.p999].map(ms);
    const extra = step
      ? [row.note !== '' ? row.note : row.stepEnding]
      : h === null
        ? [row.note, '']
        : [whole(h.measurement.operations.refused), whole(h.measurement.operations.failed)];
    return [
      `\`${row.series}\``,
      yesNo(row.durable),
      h === null ? '—' : whole(h.rate),
      ...latency,
      ...extra,
      ratioCell(row.ratios['pg-row'], mode),
      ratioCell(row.ratios['redis-lua'], mode),
    ];
  });
  const align = header.map(
    (_, i) => (i === 0 || i === 1 || (step && i === 6) ? 'left' : 'right') as 'left' | 'right',
  );
  doc.paragraph(`**${modeNames[mode]}**`).table(header, body, align);
}

function addScenarios(doc: DocumentBuilder, input: ComposeInput): void {
  doc.heading(2, 'Scenarios');
  doc.paragraph(
    'Rates are commands answered per second (a resync batch of 1,000 sets counts 1,000). Ratios divide stockd’s rate by the alternative’s on the **same transport and mode**; above ×1 stockd is ahead. Closed-loop latencies are those of a saturated target, each at its own maximum rate: compare latency at equal load in the step charts.',
  );
  for (const scenario of input.scenarios) {
    const unit = rateUnits[scenario];
    const description = scenarioDescriptions[scenario];
    doc.heading(3, scenario).paragraph(`${description.charAt(0).toUpperCase()}${description.slice(1)}.`);
    for (const mode of ['closed', 'open', 'step'] as const) {
      const rows = comparisonRows(input.runs, scenario, mode);
      if (rows.length === 0) continue;
      comparisonTable(doc, rows, mode, unit);
    }
    doc.list(checkLines(input.runs.filter((r) => r.scenario === scenario)));
    for (const file of [`throughput-${scenario}.svg`, `latency-${scenario}.svg`]) {
      const chart = input.charts.get(file);
      if (chart !== undefined) doc.figure(chart.file, chart.title, chart.svg);
    }
  }
}

/** The scenario's checks: one line per check that passed everywhere, every failure in full. */
function checkLines(runs: readonly SeriesRun[]): string[] {
  const byName = new Map<string, Array<{ run: SeriesRun; passed: boolean; detail: string }>>();
  for (const run of runs) {
    for (const check of run.run.checks) {
      const list = byName.get(check.name) ?? [];
      list.push({ run, passed: check.passed, detail: check.detail });
      byName.set(check.name, list);
    }
  }
  const lines: string[] = [];
  for (const [name, results] of byName) {
    const failed = results.filter((r) => !r.passed);
    if (failed.length === 0) {
      const example = results.find((r) => r.run.name === 'stockd') ?? results[0]!;
      lines.push(
        `✓ ${name} in all ${plural(results.length, 'run')} (e.g. \`${example.run.series}\`, ${example.run.run.mode}: ${example.detail})`,
      );
    }
    for (const f of failed)
      lines.push(`✗ **${name} failed**: \`${f.run.series}\` (${f.run.run.mode}): ${f.detail}`);
  }
  return lines;
}

function addSeedFloor(doc: DocumentBuilder, input: ComposeInput): void {
  const rows = seedFloorRows(input.runs, input.scenarios);
  if (rows.length === 0) return;
  doc
    .heading(2, 'The seed floor')
    .paragraph(
      `The seed requirement — ${whole(seedFloor.eventsPerSecond)} events/s at < ${seedFloor.meanLatencyMsMax} ms average synchronous latency — is a floor. An event here is a command answered synchronously (durably, for a write), per second, from the best measurement of each scenario whose mean latency is within the bound. The storefront's commands are 95% reads: its writes/s shows what changed state.`,
    )
    .table(
      [
        'scenario',
        'target',
        'durable',
        'from',
        'events/s',
        'of which writes/s',
        'mean latency ms',
        'above the floor',
      ],
      rows.map((row) => [
        row.scenario,
        `\`${row.series}\``,
        yesNo(row.durable),
        row.mode === 'step' ? 'knee' : `${row.mode} loop`,
        whole(row.eventsPerSecond),
        whole(row.writesPerSecond),
        ms(row.meanLatencyMs),
        row.meetsLatency ? times(row.multiple) : `**mean ≥ ${seedFloor.meanLatencyMsMax} ms**`,
      ]),
      ['left', 'left', 'left', 'left', 'right', 'right', 'right', 'right'],
    );
}

function addKnees(doc: DocumentBuilder, input: ComposeInput): void {
  const rank = (r: SeriesRun): number => input.scenarios.indexOf(r.scenario);
  const stepped = input.runs
    .filter((r) => r.run.step !== undefined)
    .sort(
      (a, b) =>
        rank(a) - rank(b) ||
        Number(b.name === 'stockd') - Number(a.name === 'stockd') ||
        a.series.localeCompare(b.series),
    );
  if (stepped.length === 0) return;
  doc
    .heading(2, 'Knees')
    .paragraph(
      'Step mode raises the offered load step by step (open loop, latency from the scheduled send time) until a step breaks the p99 objective, answers less than 90% of what was offered, saturates or fails. The knee is the last step that held.',
    )
    .table(
      [
        'scenario',
        'target',
        'objective p99 ms',
        'knee (commands/s offered)',
        'answered',
        'p99 at the knee ms',
        'next step',
      ],
      stepped.map((r) => {
        const step = r.run.step!;
        const knee = step.knee;
        const failed = step.steps.find((s) => !s.passed);
        const perOp =
          knee === null || knee.measurement.requests === 0
            ? 1
            : knee.measurement.operations.total / knee.measurement.requests;
        return [
          r.scenario,
          `\`${r.series}\``,
          String(step.objectiveP99Ms),
          knee === null ? '**none**' : whole(knee.offeredRate * perOp),
          knee === null ? '—' : whole(knee.achievedRate * perOp),
          knee === null ? '—' : ms(knee.measurement.latencyMs.p99),
          failed === undefined ? 'none failed' : failed.reason,
        ];
      }),
      ['left', 'left', 'right', 'right', 'right', 'right', 'left'],
    );
}

function addCapacity(doc: DocumentBuilder, input: ComposeInput): void {
  const { target } = input;
  doc.heading(2, 'Capacity recommendation');
  doc.paragraph(
    `Target: **${whole(target.rate)} commands/s at p99 ≤ ${target.objectiveP99Ms} ms**, running at ≤ ${Math.round(target.headroom * 100)}% of the knee. In the reservation scenarios a command is a reservation. Change with \`--capacity-rate\`, \`--capacity-p99-ms\`, \`--headroom\`, \`--efficiency\`.`,
  );
  if (input.plans.length === 0) {
    doc.paragraph(
      'No step-mode runs of stockd in these results: there is no knee to derive capacity from. Run `stockd bench --modes step` (the default runs it).',
    );
    return;
  }
  doc.table(
    ['scenario', 'from', 'knees', 'per shard', 'efficiency', 'shards', 'cores', 'usable'],
    input.plans.map((p) => [
      p.context.scenario,
      `\`${p.context.label}\``,
      p.knees
        .map((k) =>
          k.rate > 0 ? `${whole(k.rate)}${k.lowerBound ? '+' : ''} @${k.shards}` : `none @${k.shards}`,
        )
        .join(', '),
      p.model === null ? '—' : whole(p.model.perShardRate),
      p.model === null
        ? '—'
        : p.model.scalesWithShards
          ? `${p.model.efficiency.toFixed(2)} (${p.model.efficiencySource})`
          : 'one hot SKU: n/a',
      p.model === null ? '**no knee**' : p.shards === null ? '**not reachable**' : String(p.shards),
      p.cores === null ? '—' : String(p.cores),
      p.usableRate === null ? '—' : whole(p.usableRate),
    ]),
    ['left', 'left', 'right', 'right', 'left', 'right', 'right', 'right'],
  );
  doc.paragraph(
    'Knees as commands/s @ shard count; `+`: at least (no step broke this objective before the run stopped).',
  );
  const plan = input.headline;
  if (plan === null) return;
  doc
    .heading(3, `How the recommendation was derived (${plan.context.scenario}, ${plan.context.label})`)
    .list(plan.derivation, true);
  if (plan.weakest.length > 0) doc.heading(3, 'Where the extrapolation is weakest').list(plan.weakest);
  for (const other of input.plans) {
    if (other === plan || other.model === null || other.model.scalesWithShards) continue;
    doc.paragraph(`**${other.context.scenario}**: ${other.derivation.slice(1).join(' ')}`);
  }
}

function addReading(doc: DocumentBuilder): void {
  doc
    .heading(2, 'How to read this report')
    .list([
      '**Closed loop** finds each target’s maximum: every client sends its next request when the previous one is answered. Its latencies are those of a saturated target.',
      '**Open loop and step mode** offer a fixed rate whatever the target does; latency runs from the scheduled send time, so stalls count in full (coordinated omission corrected).',
      '**refused** are business answers (e.g. `INSUFFICIENT_STOCK` in a sold-out flash sale); **failed** are the target’s failures (5xx, timeouts, transport errors).',
      '**Durable** means the reply left after the change was on disk (PostgreSQL commit with `synchronous_commit = on`). Redis here runs without AOF or snapshots: fast, and a crash loses acknowledged reservations.',
      'The load generator runs on the same machine as the targets and the databases, so every figure is lower than a dedicated server would give; the comparison between targets is like for like.',
      'The figures come from results.json (the raw data, with HDR histograms); `stockd bench report <dir>` rewrites this report from it, e.g. with another capacity target.',
    ]);
}

export function composeReport(input: ComposeInput): ReportDocument {
  const doc = new DocumentBuilder('stockd benchmark report');
  const partial = input.loaded.some((l) => l.results.partial);
  const runCount = input.runs.length;
  doc.paragraph(
    `${plural(runCount, 'run')} from ${plural(input.loaded.length, 'results file')}: stockd against the alternatives — PostgreSQL row update (\`pg-row\`) and Redis Lua (\`redis-lua\`) — under the same workloads, through the same HTTP front.`,
  );
  if (partial) {
    doc.paragraph(
      '**Partial results**: the suite was interrupted (or is still running); what was not measured is missing below.',
    );
  }
  addSummary(doc, input);
  addMachine(doc, input);
  addTargets(doc, input);
  const bars = input.charts.get('throughput-by-scenario.svg');
  if (bars !== undefined) {
    doc
      .heading(2, 'Throughput per scenario')
      .paragraph(`${input.barsShow}.`)
      .figure(bars.file, bars.title, bars.svg);
  }
  addScenarios(doc, input);
  addSeedFloor(doc, input);
  addKnees(doc, input);
  addCapacity(doc, input);
  addReading(doc);
  return doc.build();
}
