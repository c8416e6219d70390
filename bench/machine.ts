/** What a benchmark ran on, printed with every result (undici/pino habit). */
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, totalmem } from 'node:os';
import type { GcProfile } from '../src/engine/gc-profile.js';

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly commit: string;
}

export function machineInfo(): MachineInfo {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    // Not a git checkout (an installed package): leave it unknown.
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    commit,
  };
}

export function describeMachine(info: MachineInfo = machineInfo()): string {
  return `${info.cpu} · ${info.cores} cores · ${info.memoryGiB} GiB · node ${info.node} · ${info.platform} · commit ${info.commit}`;
}

/** Reads a numeric parameter from the environment (benchmarks take their parameters from it). */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got ${raw}`);
  return value;
}

/**
 * The garbage-collector profile a benchmark starts its engines with: STOCKD_GC, as for
 * `stockd serve` (latency, the default, or v8; src/engine/gc-profile.ts). A V8 flag holds
 * for the whole process, so the two are compared in separate runs.
 */
export function benchGcProfile(): GcProfile {
  return (process.env.STOCKD_GC || 'latency') as GcProfile;
}

/**
 * Node flags for the target servers only (BENCH_SERVER_NODE_ARGS, space-separated), e.g.
 * `--cpu-prof --cpu-prof-dir=profiles` to profile the server side of a run; NODE_OPTIONS
 * refuses those flags and would reach the load generator too.
 */
export function serverNodeArgs(): string[] {
  return (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
}
