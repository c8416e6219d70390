/**
 * The benchmark report (bench/report) from a hand-made results fixture, and the capacity
 * model's arithmetic.
 *
 * test/fixtures/bench-results holds three results files as `stockd bench --shards 1,2
 * --modes closed,step` writes them, with round numbers so every figure can be checked by
 * hand: flash sale closed loop stockd 12,000/s, pg-row 1,000/s, redis-lua 10,000/s; zipf
 * knees at p99 ≤ 15 ms of 4,000/s at 1 shard and 7,200/s at 2 (efficiency 0.9).
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Measurement } from '../bench/load/recorder.js';
import type { StepResult } from '../bench/load/step.js';
import {
  type CapacityPlan,
  capacityAt,
  capacityDefaults,
  headlinePlan,
  kneeAt,
  type MeasuredKnee,
  type PlanContext,
  planCapacity,
  scalingModel,
  shardsFor,
} from '../bench/report/capacity.js';
import { DocumentBuilder } from '../bench/report/document.js';
import { renderHtml, scopeSvgIds } from '../bench/report/html.js';
import { renderMarkdown } from '../bench/report/markdown.js';
import { type WrittenReport, writeReport } from '../bench/report/write-report.js';
import { elements, parseXml } from './support/xml.js';

const fixture = join(import.meta.dirname, 'fixtures', 'bench-results');

/* ------------------------------------------------------------------- the report */

describe('report from results.json', () => {
  let out: string;
  let written: WrittenReport;
  let markdown: string;
  let html: string;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'stockd-report-'));
    written = await writeReport([fixture], { outDir: out });
    markdown = await readFile(written.markdownPath, 'utf8');
    html = await readFile(written.htmlPath, 'utf8');
  }, 30_000);

  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('writes report.md, report.html and the charts into one directory', async () => {
    const files = (await readdir(out)).sort();
    expect(files).toEqual(
      [
        'latency-flash-sale.svg',
        'latency-zipf.svg',
        'report.html',
        'report.md',
        'throughput-by-scenario.svg',
        'throughput-flash-sale.svg',
        'throughput-zipf.svg',
      ].sort(),
    );
    expect(written.partial).toBe(false);
  });

  it('states the machine, the configuration and the commit', () => {
    expect(markdown).toContain('| CPU | Test CPU, 2 cores |');
    expect(markdown).toContain('| PostgreSQL | PostgreSQL 15.0 |');
    expect(markdown).toContain('| commit | 0123456789ab (clean) |');
    expect(markdown).toContain('1 shard, 2 shards');
    expect(markdown).toContain('`--mode step --shards 2`');
  });

  it('tabulates every target per scenario with stockd’s ratios to the alternatives', () => {
    const header =
      '| target | durable | reservations/s | p50 ms | p99 ms | p999 ms | refused | failed | ÷ pg-row | ÷ redis-lua |';
    expect(markdown).toContain(header);
    // Flash sale, closed loop: 12,000 ÷ 1,000 and 12,000 ÷ 10,000.
    expect(markdown).toContain(
      '| `stockd:http ×1 shard` | yes | 12,000 | 4.00 | 9.00 | 20.0 | 0 | 0 | ×12.0 | ×1.20 |',
    );
    expect(markdown).toContain('| `redis-lua:http` | **no** | 10,000 |');
    // Zipf knees: 4,000 ÷ 3,240 against redis-lua; pg-row has no knee to divide by.
    expect(markdown).toContain(
      '| `stockd:http ×1 shard` | yes | 4,000 | 3.00 | 9.00 | 13.5 | 4 steps; p99 30 ms > 15 ms | it has no knee | ×1.23 |',
    );
    expect(markdown).toMatch(
      /\*\*Flash sale\*\* \(closed loop, http\): stockd:http ×1 shard 12,000 reservations\/s .*×12\.0 PostgreSQL row update .*×1\.20 Redis Lua \(10,000\/s, p99 14\.0 ms, not durable\)/,
    );
  });

  it('sums up the ratios across the scenarios', () => {
    expect(markdown).toContain(
      '**Across the scenarios** (closed loop, http): stockd’s rate is ×4.00 to ×12.0 PostgreSQL row update’s, and ×0.80 to ×1.20 Redis Lua’s.',
    );
    expect(markdown).toContain('**not durable**: `redis-lua`');
  });

  it('says how far above the seed floor every scenario is, as a multiple', () => {
    expect(markdown).toContain('## The seed floor');
    expect(markdown).toContain(
      '| flash-sale | `stockd:http ×1 shard` | yes | closed loop | 12,000 | 12,000 | 4.80 | ×2.40 |',
    );
    expect(markdown).toContain(
      '| zipf | `stockd:http ×1 shard` | yes | closed loop | 8,000 | 8,000 | 6.00 | ×1.60 |',
    );
    expect(markdown).toMatch(
      /\*\*Seed floor\*\* .*every scenario is above it; the lowest is flash-sale on stockd:http ×2 shards at ×1\.28/,
    );
  });

  it('reports the knees and a capacity recommendation with its derivation', () => {
    expect(markdown).toContain(
      '| zipf | `stockd:http ×2 shards` | 15 | 7,200 | 7,128 | 9.00 | p99 40 ms > 15 ms |',
    );
    expect(markdown).toContain('**20 shards on 21 cores**');
    // 20 shards from runs at 1 and 2: the summary says the figure is a long extrapolation.
    expect(markdown).toMatch(/21 cores\*\* .* — \*\*extrapolated far beyond what was measured/);
    expect(markdown).toContain(
      '| zipf | `stockd:http` | 4,000 @1, 7,200 @2 | 4,000 | 0.90 (measured) | 20 | 21 | 50,400 |',
    );
    expect(markdown).toContain('knee at 2 shards ÷ (2 × knee at 1 shard) = 0.90');
    expect(markdown).toContain('⌈50,000 ÷ (0.70 × 4,000 × 0.90)⌉ = 20');
    expect(markdown).toContain('### Where the extrapolation is weakest');
    expect(markdown).toContain(
      '| flash-sale | `stockd:http` | 5,000 @1, 6,480 @2 | 6,480 | one hot SKU: n/a | **not reachable** |',
    );
  });

  it('links every chart from the Markdown, relative, and every linked file exists', async () => {
    const links = [...markdown.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.sort()).toEqual(written.chartPaths.map((p) => p.slice(out.length + 1)).sort());
    const files = await readdir(out);
    for (const link of links) {
      expect(link).not.toMatch(/^(\/|[a-z]+:)/);
      expect(files).toContain(link);
    }
  });

  it('draws each chart as well-formed SVG with data marks for every target', async () => {
    for (const path of written.chartPaths) {
      const svg = await readFile(path, 'utf8');
      const root = parseXml(svg);
      expect(root.name, path).toBe('svg');
      // Vega labels each data mark with its fields (axes, legends and titles carry no series).
      const dataMarks = [...elements(root)].filter(
        (e) => e.name === 'path' && /\bseries: /.test(e.attributes['aria-label'] ?? ''),
      );
      expect(dataMarks.length, path).toBeGreaterThan(0);
      for (const mark of dataMarks) expect(mark.attributes.d, path).toMatch(/^M/);
      const seriesDrawn = new Set(
        dataMarks.map((e) => /series: ([^;]+)/.exec(e.attributes['aria-label']!)![1]),
      );
      expect(seriesDrawn.size, path).toBeGreaterThanOrEqual(3);
    }
    const bars = parseXml(await readFile(join(out, 'throughput-by-scenario.svg'), 'utf8'));
    const rects = [...elements(bars)].filter((e) => e.attributes['aria-roledescription'] === 'bar');
    // 2 scenarios × 3 targets in the closed loop.
    expect(rects).toHaveLength(6);
  });

  it('writes one self-contained HTML page with the same content and the charts inlined', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<(img|link|script)\b/);
    expect(html).not.toMatch(/\b(src|href)="(?!#)/);
    const inlined = [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(inlined).toHaveLength(written.chartPaths.length);
    for (const svg of inlined) expect(parseXml(svg).name).toBe('svg');
    // Ids are scoped per figure, so no two inlined charts define the same one.
    const ids = inlined.flatMap((svg) => [...svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]));
    expect(new Set(ids).size).toBe(ids.length);
    expect(html).toContain('<td class="num">×12.0</td>');
    expect(html).toContain('<strong>20 shards on 21 cores</strong>');
  });
});

describe('renderers', () => {
  const doc = new DocumentBuilder('T')
    .paragraph('a `x|y` and **b** <c>')
    .table(['k', 'v'], [['a|b', '1']])
    .figure('chart one.svg', 'a [chart]', '<svg id="a"><clipPath id="c"/><g clip-path="url(#c)"/></svg>')
    .build();

  it('escapes table pipes in Markdown and links figures by relative path', () => {
    const md = renderMarkdown(doc);
    expect(md).toContain('| a\\|b | 1 |');
    expect(md).toContain('![a chart](chart%20one.svg)');
  });

  it('escapes HTML and renders inline markup', () => {
    const page = renderHtml(doc);
    expect(page).toContain('<p>a <code>x|y</code> and <strong>b</strong> &lt;c&gt;</p>');
  });

  it('scopes SVG ids and their references', () => {
    expect(scopeSvgIds('<svg id="a"><clipPath id="c"/><g clip-path="url(#c)"/></svg>', 'f1')).toBe(
      '<svg id="f1-a"><clipPath id="f1-c"/><g clip-path="url(#f1-c)"/></svg>',
    );
  });
});

/* ------------------------------------------------------------- capacity arithmetic */

function measurement(p99: number, failed = 0): Measurement {
  return {
    elapsedSeconds: 3,
    requests: 100,
    operations: { total: 100, ok: 100 - failed, refused: 0, failed },
    byKind: {},
    codes: {},
    requestsPerSecond: 33,
    operationsPerSecond: 33,
    okOperationsPerSecond: 33,
    latencyMs: { count: 100, min: 1, mean: 2, p50: 1, p90: 2, p99, p999: p99, max: p99 },
    latencyHistogram: '',
  };
}

function step(offeredRate: number, p99: number, objective = 15): StepResult {
  return {
    offeredRate,
    sent: offeredRate,
    achievedRate: offeredRate,
    elapsedSeconds: 3,
    saturated: false,
    timedOut: 0,
    passed: p99 <= objective,
    reason: p99 <= objective ? '' : `p99 ${p99} ms > ${objective} ms`,
    measurement: measurement(p99),
  };
}

const context: PlanContext = {
  scenario: 'zipf',
  label: 'stockd:http',
  transport: 'http',
  unit: 'reservations/s',
  highestMeasuredRate: 10_000,
  machineCores: 2,
  durable: true,
};

describe('capacity model', () => {
  it('finds the knee at another objective than the run stepped against', () => {
    const steps = [step(1_000, 4), step(2_000, 8), step(4_000, 12), step(8_000, 40)];
    expect(kneeAt(steps, 15)).toMatchObject({ rate: 4_000, lowerBound: false });
    expect(kneeAt(steps, 10)).toMatchObject({ rate: 2_000, lowerBound: false });
    expect(kneeAt(steps, 3)).toMatchObject({ step: null, rate: 0, lowerBound: false });
    // Every step holds 50 ms: the real knee at 50 ms is past the last step.
    expect(kneeAt(steps, 50)).toMatchObject({ rate: 8_000, lowerBound: true });
    // A step that failed for another reason than latency ends the knee whatever the objective.
    const broken = { ...step(4_000, 5), measurement: measurement(5, 3) };
    expect(kneeAt([step(1_000, 4), broken, step(8_000, 6)], 15).rate).toBe(1_000);
  });

  it('counts a batch step in commands', () => {
    const batch = {
      ...step(10, 5),
      measurement: {
        ...measurement(5),
        requests: 10,
        operations: { total: 10_000, ok: 10_000, refused: 0, failed: 0 },
      },
    };
    expect(kneeAt([batch], 15).rate).toBe(10_000);
  });

  it('measures the scaling efficiency from 1 and N shards, caps it at 1, or takes it as given', () => {
    const knees = (one: number, n: number, shards = 2): MeasuredKnee[] => [
      { shards: 1, rate: one, lowerBound: false },
      { shards, rate: n, lowerBound: false },
    ];
    expect(scalingModel(knees(4_000, 7_200), { efficiency: null, scalesWithShards: true })).toMatchObject({
      perShardRate: 4_000,
      efficiency: 0.9,
      efficiencySource: 'measured',
      efficiencyShards: 2,
    });
    // Super-linear (18,000 ÷ (4 × 4,000) = 1.125) is never planned on.
    expect(scalingModel(knees(4_000, 18_000, 4), { efficiency: null, scalesWithShards: true })).toMatchObject(
      {
        efficiency: 1,
        measuredEfficiency: 1.125,
      },
    );
    expect(scalingModel(knees(4_000, 7_200), { efficiency: 0.5, scalesWithShards: true })).toMatchObject({
      efficiency: 0.5,
      efficiencySource: 'given',
      measuredEfficiency: 0.9,
    });
    // A knee that is only a lower bound (no step broke the objective) measures no ratio.
    expect(
      scalingModel(
        [
          { shards: 1, rate: 400, lowerBound: true },
          { shards: 2, rate: 400, lowerBound: true },
        ],
        { efficiency: null, scalesWithShards: true },
      ),
    ).toMatchObject({
      efficiency: 1,
      efficiencySource: 'assumed',
      efficiencyUnmeasurable: true,
      measuredEfficiency: null,
    });
    // Only N shards measured: per shard = knee ÷ N, efficiency assumed 1.
    expect(
      scalingModel([{ shards: 4, rate: 12_000, lowerBound: false }], {
        efficiency: null,
        scalesWithShards: true,
      }),
    ).toMatchObject({ perShardRate: 3_000, baseShards: 4, efficiency: 1, efficiencySource: 'assumed' });
    expect(
      scalingModel([{ shards: 1, rate: 0, lowerBound: false }], { efficiency: null, scalesWithShards: true }),
    ).toBeNull();
  });

  it('recommends the least shards whose usable capacity reaches the rate, and one core more', () => {
    const model = scalingModel(
      [
        { shards: 1, rate: 4_000, lowerBound: false },
        { shards: 2, rate: 7_200, lowerBound: false },
      ],
      { efficiency: null, scalesWithShards: true },
    )!;
    expect(capacityAt(model, 1)).toBe(4_000);
    expect(capacityAt(model, 2)).toBe(7_200);
    expect(capacityAt(model, 20)).toBeCloseTo(72_000);
    // 0.7 × 4,000 × 0.9 = 2,520 per shard beyond the first.
    expect(shardsFor(model, { rate: 50_000, headroom: 0.7 })).toBe(20); // 20 × 2,520 = 50,400
    expect(shardsFor(model, { rate: 47_880, headroom: 0.7 })).toBe(19); // exactly 19 × 2,520
    expect(shardsFor(model, { rate: 47_881, headroom: 0.7 })).toBe(20);
    expect(shardsFor(model, { rate: 2_800, headroom: 0.7 })).toBe(1); // 0.7 × the one-shard knee
    expect(shardsFor(model, { rate: 2_801, headroom: 0.7 })).toBe(2);
    expect(shardsFor(model, { rate: 50_000, headroom: 0.7 }, 16)).toBeNull();

    const plan = planCapacity(
      { ...capacityDefaults },
      [
        { shards: 1, rate: 4_000, lowerBound: false },
        { shards: 2, rate: 7_200, lowerBound: false },
      ],
      context,
    );
    expect(plan).toMatchObject({ shards: 20, cores: 21 });
    expect(plan.usableRate).toBeCloseTo(50_400);
    expect(plan.derivation.join('\n')).toContain('= 0.90');
    expect(plan.weakest.join('\n')).toContain('×10.0 the largest shard count measured (2)');
    expect(plan.weakest.join('\n')).toContain('×5.0 the most one stockd process answered');
  });

  it('does not scale one hot SKU with shards', () => {
    const flash = { ...context, scenario: 'flash-sale' as const };
    const knees: MeasuredKnee[] = [
      { shards: 1, rate: 5_000, lowerBound: false },
      { shards: 2, rate: 6_000, lowerBound: false },
    ];
    expect(planCapacity({ ...capacityDefaults, rate: 4_200 }, knees, flash)).toMatchObject({
      shards: 1,
      cores: 2,
    });
    const beyond = planCapacity({ ...capacityDefaults, rate: 4_201 }, knees, flash);
    expect(beyond).toMatchObject({ shards: null, cores: null });
    expect(beyond.weakest[0]).toContain('single hot SKU');
  });

  it('says the efficiency was assumed, and plans nothing without a knee', () => {
    const assumed = planCapacity(
      { ...capacityDefaults, rate: 10_000 },
      [{ shards: 2, rate: 6_000, lowerBound: true }],
      context,
    );
    expect(assumed.shards).toBe(5); // ⌈10,000 ÷ (0.7 × 3,000)⌉
    expect(assumed.derivation.join('\n')).toContain('assumed 1');
    expect(assumed.weakest.join('\n')).toContain('may be higher');
    // A shard count where nothing held the objective contradicts the scaling: said first.
    const contradicted = planCapacity(
      capacityDefaults,
      [
        { shards: 1, rate: 4_000, lowerBound: false },
        { shards: 2, rate: 0, lowerBound: false },
      ],
      context,
    );
    expect(contradicted.weakest[0]).toContain('At 2 shards no step held p99 ≤ 15 ms');
    const none = planCapacity(capacityDefaults, [{ shards: 1, rate: 0, lowerBound: false }], context);
    expect(none).toMatchObject({ model: null, shards: null, cores: null });
    expect(none.derivation[0]).toContain('there is no knee to plan from');
  });

  it('rejects a headroom or efficiency outside (0, 1]', () => {
    expect(() => planCapacity({ ...capacityDefaults, headroom: 1.2 }, [], context)).toThrow(/headroom/);
    expect(() => planCapacity({ ...capacityDefaults, efficiency: 0 }, [], context)).toThrow(/efficiency/);
  });

  it('leads with the most demanding reservation scenario, or the one asked for', () => {
    const plan = (scenario: CapacityPlan['context']['scenario'], shards: number | null): CapacityPlan =>
      ({ context: { ...context, scenario }, shards, model: {} }) as unknown as CapacityPlan;
    const plans = [plan('uniform', 4), plan('zipf', 9), plan('storefront', 30), plan('flash-sale', null)];
    expect(headlinePlan(plans, null)?.context.scenario).toBe('zipf');
    expect(headlinePlan(plans, 'storefront')?.context.scenario).toBe('storefront');
    expect(headlinePlan([plan('storefront', 3)], null)?.context.scenario).toBe('storefront');
    expect(headlinePlan([...plans, plan('lifecycle', null)], null)?.context.scenario).toBe('lifecycle');
  });
});
