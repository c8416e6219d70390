/**
 * The report's pictures, as vega-lite specifications rendered to SVG without a browser
 * (vega's headless View): nothing is drawn by hand, so every axis, scale and legend is the
 * library's.
 *
 *   throughput-<scenario>.svg   answered against offered load, one line per target
 *                               (step and open-loop runs), with the ideal y = x dashed
 *   latency-<scenario>.svg      p50 and p99 against offered load (log scale), one colour
 *                               per target, the p99 objective as a rule
 *   throughput-by-scenario.svg  bars: each target's rate in each scenario
 *
 * One colour per target across every chart (a fixed colour domain), so stockd is the same
 * colour everywhere.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { ScenarioName } from '../scenarios.js';
import type { LoadPoint } from './figures.js';

export interface Chart {
  /** File name in the report directory. */
  readonly file: string;
  readonly title: string;
  readonly spec: TopLevelSpec;
}

const schema = 'https://vega.github.io/schema/vega-lite/v6.json';
/** Legends long enough for `stockd:direct ×2 shards`. */
const config = { legend: { labelLimit: 320 } };
const width = 460;
const height = 260;

function colour(seriesDomain: readonly string[]) {
  return {
    field: 'series',
    type: 'nominal' as const,
    title: 'target',
    scale: { domain: [...seriesDomain], scheme: 'tableau10' },
  };
}

export function throughputChart(
  scenario: ScenarioName,
  unit: string,
  points: readonly LoadPoint[],
  seriesDomain: readonly string[],
): Chart {
  const values = points.map((p) => ({
    series: p.series,
    offered: Math.round(p.offered),
    achieved: Math.round(p.achieved),
    within: p.passed ? 'within the objective' : 'beyond it',
  }));
  const top = Math.max(1, ...values.map((v) => Math.max(v.offered, v.achieved)));
  const spec: TopLevelSpec = {
    $schema: schema,
    config,
    title: { text: `${scenario}: throughput against offered load`, subtitle: unit },
    width,
    height,
    layer: [
      {
        data: {
          values: [
            { offered: 0, achieved: 0, what: 'answered = offered' },
            { offered: top, achieved: top, what: 'answered = offered' },
          ],
        },
        mark: { type: 'line', strokeDash: [4, 4], color: '#9e9e9e' },
        encoding: {
          x: { field: 'offered', type: 'quantitative' },
          y: { field: 'achieved', type: 'quantitative' },
        },
      },
      {
        data: { values },
        mark: { type: 'line', point: { filled: true, size: 50 } },
        encoding: {
          x: { field: 'offered', type: 'quantitative', title: `offered (${unit})` },
          y: { field: 'achieved', type: 'quantitative', title: `answered (${unit})` },
          color: colour(seriesDomain),
          tooltip: [{ field: 'series' }, { field: 'offered' }, { field: 'achieved' }, { field: 'within' }],
        },
      },
    ],
  };
  return { file: `throughput-${scenario}.svg`, title: `${scenario}: throughput against offered load`, spec };
}

export function latencyChart(
  scenario: ScenarioName,
  unit: string,
  points: readonly LoadPoint[],
  objectiveP99Ms: number | null,
  seriesDomain: readonly string[],
): Chart {
  const values = points.flatMap((p) =>
    (['p50', 'p99'] as const)
      .map((percentile) => ({
        series: p.series,
        offered: Math.round(p.offered),
        percentile,
        latencyMs: p.latencyMs[percentile],
      }))
      // A log scale has no place for 0 (an empty histogram).
      .filter((v) => v.latencyMs > 0),
  );
  const layer: NonNullable<Extract<TopLevelSpec, { layer: unknown }>['layer']> = [
    {
      data: { values },
      mark: { type: 'line', point: { filled: true, size: 40 } },
      encoding: {
        x: { field: 'offered', type: 'quantitative', title: `offered (${unit})` },
        y: {
          field: 'latencyMs',
          type: 'quantitative',
          title: 'latency (ms, log scale)',
          scale: { type: 'log' },
        },
        color: colour(seriesDomain),
        strokeDash: {
          field: 'percentile',
          type: 'nominal',
          title: 'percentile',
          sort: ['p50', 'p99'],
          // A dash legend would borrow no colour (the colour is the target's): the subtitle says it.
          legend: null,
        },
        detail: { field: 'percentile' },
        tooltip: [{ field: 'series' }, { field: 'percentile' }, { field: 'offered' }, { field: 'latencyMs' }],
      },
    },
  ];
  if (objectiveP99Ms !== null) {
    layer.push({
      data: { values: [{ objective: objectiveP99Ms, label: `p99 objective ${objectiveP99Ms} ms` }] },
      mark: { type: 'rule', color: '#c62828', strokeDash: [2, 3] },
      encoding: { y: { field: 'objective', type: 'quantitative' } },
    });
  }
  const spec: TopLevelSpec = {
    $schema: schema,
    config,
    title: {
      text: `${scenario}: latency against offered load`,
      subtitle: `solid: p50, dashed: p99, from the scheduled send time${objectiveP99Ms === null ? '' : `; red: the p99 objective (${objectiveP99Ms} ms)`}`,
    },
    width,
    height,
    layer,
  };
  return { file: `latency-${scenario}.svg`, title: `${scenario}: latency against offered load`, spec };
}

export interface BarValue {
  readonly scenario: ScenarioName;
  readonly series: string;
  /** Commands per second. */
  readonly rate: number;
}

export function throughputBars(
  values: readonly BarValue[],
  what: string,
  seriesDomain: readonly string[],
  scenarioOrder: readonly ScenarioName[],
): Chart {
  const spec: TopLevelSpec = {
    $schema: schema,
    config,
    title: { text: 'Throughput per scenario and target', subtitle: `${what}; each panel has its own scale` },
    data: { values: values.map((v) => ({ ...v, rate: Math.round(v.rate) })) },
    facet: { column: { field: 'scenario', type: 'nominal', title: null, sort: [...scenarioOrder] } },
    spec: {
      width: 110,
      height: 220,
      mark: 'bar',
      encoding: {
        x: {
          field: 'series',
          type: 'nominal',
          title: null,
          axis: { labelAngle: -40 },
          sort: [...seriesDomain],
        },
        y: { field: 'rate', type: 'quantitative', title: 'commands/s' },
        color: { ...colour(seriesDomain), legend: null },
        tooltip: [{ field: 'scenario' }, { field: 'series' }, { field: 'rate' }],
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
  return { file: 'throughput-by-scenario.svg', title: 'Throughput per scenario and target', spec };
}

/** Renders a vega-lite specification to an SVG document, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec as vega.Spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
