/**
 * The report's input: one or more results.json files of the scenario suite (bench/load),
 * flattened into runs that each know their series — the target, and for stockd the shard
 * count it ran with, since `stockd bench --shards 1,2` runs stockd once per count and the
 * capacity model needs to tell those runs apart.
 *
 *   results.json (closed)  ─┐
 *   results.json (step)    ─┼─▶ SeriesRun[]  (target label, shards, mode, scenario, run)
 *   results.json (step, 1) ─┘
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ScenarioName } from '../load/operation.js';
import { type ResultsFile, type RunResult, resultsFileName, resultsFormat } from '../load/results.js';
import type { TargetInfo } from '../load/targets.js';

export interface LoadedResults {
  readonly path: string;
  readonly results: ResultsFile;
}

/** Directory levels searched below a directory given as input (out/<mode>/<shards>/results.json). */
const searchDepthMax = 3;

async function findResultsFiles(dir: string, depth: number): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const found: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isFile() && entry.name === resultsFileName) found.push(path);
    else if (entry.isDirectory() && depth < searchDepthMax)
      found.push(...(await findResultsFiles(path, depth + 1)));
  }
  return found;
}

/** Reads results files; a directory stands for every results.json in it and below it. */
export async function loadResults(paths: readonly string[]): Promise<LoadedResults[]> {
  const files: string[] = [];
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) files.push(...(await findResultsFiles(path, 0)));
    else files.push(path);
  }
  if (files.length === 0) throw new Error(`no ${resultsFileName} found in ${paths.join(', ')}`);
  const loaded: LoadedResults[] = [];
  for (const path of files) {
    const results = JSON.parse(await readFile(path, 'utf8')) as ResultsFile;
    if (results?.format !== resultsFormat) {
      throw new Error(
        `${path}: format ${JSON.stringify(results?.format)} is not ${resultsFormat}; this report reads that format only`,
      );
    }
    loaded.push({ path, results });
  }
  return loaded;
}

/** One run with what the report needs to place it. */
export interface SeriesRun {
  /** `stockd:http`, or `stockd:http ×2 shards` when the input holds stockd at several shard counts. */
  readonly series: string;
  readonly label: string;
  readonly name: string;
  readonly transport: string;
  readonly durable: boolean | null;
  /** stockd's shard workers in this run; null for the alternatives. */
  readonly shards: number | null;
  readonly scenario: ScenarioName;
  readonly run: RunResult;
  readonly source: LoadedResults;
}

/** The shard count a results file ran stockd with (config.backend.shards), or null. */
export function shardsOf(results: ResultsFile): number | null {
  const config = results.config as { backend?: { shards?: unknown } } | null;
  const shards = config?.backend?.shards;
  return typeof shards === 'number' && Number.isSafeInteger(shards) && shards > 0 ? shards : null;
}

export function seriesRuns(loaded: readonly LoadedResults[]): SeriesRun[] {
  const stockdShardCounts = new Set<number>();
  for (const { results } of loaded) {
    const shards = shardsOf(results);
    if (shards !== null && results.runs.some((run) => run.target.startsWith('stockd:'))) {
      stockdShardCounts.add(shards);
    }
  }
  const showShards = stockdShardCounts.size > 1;
  const runs: SeriesRun[] = [];
  for (const source of loaded) {
    const infos = new Map<string, TargetInfo>(source.results.targets.map((info) => [info.label, info]));
    for (const run of source.results.runs) {
      const [name = run.target, transport = ''] = run.target.split(':');
      const shards = name === 'stockd' ? shardsOf(source.results) : null;
      const plural = shards === 1 ? '' : 's';
      runs.push({
        series: showShards && shards !== null ? `${run.target} ×${shards} shard${plural}` : run.target,
        label: run.target,
        name,
        transport,
        durable: infos.get(run.target)?.durable ?? null,
        shards,
        scenario: run.scenario,
        run,
        source,
      });
    }
  }
  return runs;
}
