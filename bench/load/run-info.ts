/**
 * What a benchmark run ran on, recorded in every results file: the machine (CPU, cores,
 * memory, load when it started), Node, the services' versions (PostgreSQL's `SELECT
 * version()`, Redis's INFO) and the git commit — `git rev-parse HEAD` of the checkout these
 * files live in, "unknown" outside one, and whether the tree had uncommitted changes.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { machineInfo } from '../machine.js';

export interface RunInfo {
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly platform: string;
    /** 1, 5 and 15 minute load averages when the run started: a busy machine shows here. */
    readonly loadAverage: readonly number[];
  };
  readonly node: string;
  readonly commit: { readonly sha: string; readonly dirty: boolean | null };
  /** Versions of the services the run used; null when not used or unreachable. */
  readonly services: { readonly postgresql: string | null; readonly redis: string | null };
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

export async function postgresVersion(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query<{ version: string }>('SELECT version()')).rows[0]?.version ?? null;
  } catch {
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function redisVersion(url: string): Promise<string | null> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const info = await redis.info('server');
    return `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'}`;
  } catch {
    return null;
  } finally {
    redis.disconnect();
  }
}

export async function collectRunInfo(services: {
  postgresUrl: string | null;
  redisUrl: string | null;
}): Promise<RunInfo> {
  const machine = machineInfo();
  const sha = git(['rev-parse', 'HEAD']);
  const status = sha === null ? null : git(['status', '--porcelain', '--untracked-files=no']);
  return {
    machine: {
      cpu: machine.cpu,
      cores: machine.cores,
      memoryGiB: machine.memoryGiB,
      platform: machine.platform,
      loadAverage: loadavg().map((value) => Math.round(value * 100) / 100),
    },
    node: machine.node,
    commit: { sha: sha ?? 'unknown', dirty: status === null ? null : status !== '' },
    services: {
      postgresql: services.postgresUrl === null ? null : await postgresVersion(services.postgresUrl),
      redis: services.redisUrl === null ? null : await redisVersion(services.redisUrl),
    },
  };
}
