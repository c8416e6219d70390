/**
 * results.json → report.md + report.html + charts (SVG), all in one directory.
 *
 *   loadResults ─▶ seriesRuns ─▶ figures ─┬─▶ charts (vega-lite → SVG)
 *                                         ├─▶ capacity plans
 *                                         └─▶ composeReport ─▶ Markdown, HTML
 *
 * Used after every `stockd bench` run (also after Ctrl-C: a partial report of what was
 * measured), and on its own by `stockd bench report <results…>`.
 */
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type ScenarioName, scenarioNames } from '../scenarios.js';
import {
  type CapacityPlan,
  type CapacityTarget,
  capacityDefaults,
  capacityPlans,
  headlinePlan,
} from './capacity.js';
import {
  type BarValue,
  type Chart,
  latencyChart,
  renderSvg,
  throughputBars,
  throughputChart,
} from './charts.js';
import { composeReport, type RenderedChart } from './compose.js';
import { headlineOf, loadPoints, rateUnits, scenariosOf } from './figures.js';
import { renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';
import { loadResults, type SeriesRun, seriesRuns } from './results-input.js';

export const reportFileNames = { markdown: 'report.md', html: 'report.html' } as const;

export interface ReportOptions {
  readonly target?: CapacityTarget;
  /** The scenario the headline recommendation comes from; null: the most demanding reservation scenario. */
  readonly capacityScenario?: ScenarioName | null;
  /** Where to write; default: the directory given, or the one holding the (first) results file. */
  readonly outDir?: string;
}

export interface WrittenReport {
  readonly outDir: string;
  readonly markdownPath: string;
  readonly htmlPath: string;
  readonly chartPaths: readonly string[];
  readonly plans: readonly CapacityPlan[];
  readonly headline: CapacityPlan | null;
  readonly partial: boolean;
}

/** Every series in a stable order, stockd first: the charts' colour domain. */
function seriesDomain(runs: readonly SeriesRun[]): string[] {
  return [...new Set(runs.map((r) => r.series))].sort(
    (a, b) => Number(b.startsWith('stockd:')) - Number(a.startsWith('stockd:')) || a.localeCompare(b),
  );
}

/** The bars: closed-loop maxima when there are any, else knees, else open-loop rates. */
function barValues(runs: readonly SeriesRun[]): { values: BarValue[]; what: string } {
  for (const [mode, what] of [
    ['closed', 'Closed loop: the most each target answered'],
    ['step', 'Step mode: each target’s knee'],
    ['open', 'Open loop: what each target answered at the offered rate'],
  ] as const) {
    const values: BarValue[] = [];
    for (const r of runs.filter((run) => run.run.mode === mode)) {
      const headline = headlineOf(r.run);
      if (headline !== null) values.push({ scenario: r.scenario, series: r.series, rate: headline.rate });
    }
    if (values.length > 0) return { values, what };
  }
  return { values: [], what: '' };
}

function chartsFor(
  runs: readonly SeriesRun[],
  scenarios: readonly ScenarioName[],
): { charts: Chart[]; barsShow: string } {
  const domain = seriesDomain(runs);
  const charts: Chart[] = [];
  const bars = barValues(runs);
  if (bars.values.length > 0) charts.push(throughputBars(bars.values, bars.what, domain, scenarios));
  const points = loadPoints(runs);
  for (const scenario of scenarios) {
    const mine = points.filter((p) => p.scenario === scenario);
    if (mine.length === 0) continue;
    const objective =
      runs.find((r) => r.scenario === scenario && r.run.step !== undefined)?.run.step?.objectiveP99Ms ?? null;
    charts.push(throughputChart(scenario, rateUnits[scenario], mine, domain));
    charts.push(latencyChart(scenario, rateUnits[scenario], mine, objective, domain));
  }
  return { charts, barsShow: bars.what };
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

async function defaultOutDir(inputs: readonly string[]): Promise<string> {
  const first = resolve(inputs[0]!);
  return (await stat(first)).isDirectory() ? first : dirname(first);
}

export async function writeReport(
  inputs: readonly string[],
  options: ReportOptions = {},
): Promise<WrittenReport> {
  if (inputs.length === 0) throw new Error('no results given');
  const target = options.target ?? capacityDefaults;
  const loaded = await loadResults(inputs);
  const runs = seriesRuns(loaded);
  const scenarios = scenariosOf(runs, scenarioNames);
  const outDir = options.outDir ?? (await defaultOutDir(inputs));
  await mkdir(outDir, { recursive: true });

  const { charts, barsShow } = chartsFor(runs, scenarios);
  const rendered = new Map<string, RenderedChart>();
  const chartPaths: string[] = [];
  for (const chart of charts) {
    const svg = await renderSvg(chart.spec);
    const path = join(outDir, chart.file);
    await writeAtomically(path, svg);
    chartPaths.push(path);
    rendered.set(chart.file, { file: chart.file, title: chart.title, svg });
  }

  const plans = capacityPlans(runs, target, scenarios, (scenario) => rateUnits[scenario]);
  const headline = headlinePlan(plans, options.capacityScenario ?? null);
  const document = composeReport({
    loaded,
    runs,
    scenarios,
    target,
    plans,
    headline,
    charts: rendered,
    barsShow,
  });
  const markdownPath = join(outDir, reportFileNames.markdown);
  const htmlPath = join(outDir, reportFileNames.html);
  await writeAtomically(markdownPath, renderMarkdown(document));
  await writeAtomically(htmlPath, renderHtml(document));
  return {
    outDir,
    markdownPath,
    htmlPath,
    chartPaths,
    plans,
    headline,
    partial: loaded.some((l) => l.results.partial),
  };
}
