/**
 * results.json: everything a run measured, for the report layer (Markdown summary, charts,
 * capacity model) to build on. The shape is documented field by field in bench/README.md;
 * `format` names its version and changes whenever a field changes meaning.
 *
 * The file is rewritten after every run (write to a temporary file, then rename), so an
 * interrupted suite — Ctrl-C, a crash — leaves the runs done so far, marked `partial`.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ScenarioCheck, ScenarioName } from './operation.js';
import type { Measurement } from './recorder.js';
import type { RunInfo } from './run-info.js';
import type { StepResult } from './step.js';
import type { TargetInfo } from './targets.js';

export const resultsFormat = 'stockd-bench-results/1';
export const resultsFileName = 'results.json';

export type Mode = 'closed' | 'open' | 'step';

export interface RunResult {
  /** Target label, `<name>:<transport>` (an entry of `targets`). */
  readonly target: string;
  readonly scenario: ScenarioName;
  readonly mode: Mode;
  readonly startedAt: string;
  /** Closed loop: concurrent clients. Open loop and steps: connections of the HTTP pool (direct: unused). */
  readonly connections: number;
  /** Records loaded before measuring. */
  readonly seededRecords: number;
  /** `closed` mode, and the probe a step run starts from when no start rate was given. */
  readonly closed?: Measurement;
  /** `open` mode: the measurement at the offered rate. */
  readonly open?: Measurement & {
    readonly offeredRate: number;
    readonly achievedRate: number;
    readonly saturated: boolean;
    readonly timedOut: number;
  };
  /** `step` mode. */
  readonly step?: {
    readonly objectiveP99Ms: number;
    readonly startRate: number;
    readonly factor: number;
    readonly stepSeconds: number;
    readonly steps: StepResult[];
    /** Offered rate, achieved rate and latency of the last step within the objective; null if none was. */
    readonly knee: StepResult | null;
  };
  readonly checks: ScenarioCheck[];
  /** Set when the run failed; the other fields hold what was measured before. */
  readonly error?: string;
}

export interface ResultsFile {
  readonly format: typeof resultsFormat;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  /** True while the suite runs and when it was interrupted. */
  readonly partial: boolean;
  /** The command line arguments the suite ran with. */
  readonly argv: readonly string[];
  readonly runInfo: RunInfo;
  /** The suite's parameters (sizes, modes, connections, …), as resolved. */
  readonly config: unknown;
  readonly targets: TargetInfo[];
  readonly runs: RunResult[];
}

/** `2025-01-31T12-00-00Z`: sortable, and valid as a directory name everywhere. */
export function timestampName(date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
}

export async function writeResults(dir: string, results: ResultsFile): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, resultsFileName);
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(results, null, 2)}\n`);
  await rename(temporary, path);
  return path;
}
