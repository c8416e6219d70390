/** What a benchmark ran on, printed with every result (undici/pino habit). */
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { constants, type PerformanceEntry, PerformanceObserver, performance } from 'node:perf_hooks';
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

/** This thread's garbage-collection pauses over a stretch of a run (see threadGc). */
export interface GcPauses {
  readonly seconds: number;
  readonly scavenges: number;
  readonly scavengeMs: number;
  readonly majors: number;
  readonly majorMs: number;
}

/**
 * Starts recording this thread's GC pauses (`gc` performance entries); the function it
 * returns stops and reports them. In a benchmark this is the main thread: the router, the
 * reply decoding and the load generator share it. Entries are delivered after their GC,
 * so the report waits one turn of the event loop for the last ones.
 */
export function threadGc(): () => Promise<GcPauses> {
  const started = performance.now();
  let scavenges = 0;
  let scavengeMs = 0;
  let majors = 0;
  let majorMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        scavenges++;
        scavengeMs += entry.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        majors++;
        majorMs += entry.duration;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return async () => {
    const seconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setImmediate(resolve));
    observer.disconnect();
    return { seconds, scavenges, scavengeMs, majors, majorMs };
  };
}

export function formatGcPauses(gc: GcPauses): string {
  const perSecond = (ms: number): string => Math.round(ms / gc.seconds).toString();
  const average = gc.scavenges === 0 ? 0 : gc.scavengeMs / gc.scavenges;
  return (
    `main-thread GC ${perSecond(gc.scavengeMs + gc.majorMs)} ms/s: ${gc.scavenges} scavenges ` +
    `(${average.toFixed(1)} ms each), ${gc.majors} full (${Math.round(gc.majorMs)} ms)`
  );
}
