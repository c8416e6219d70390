/**
 * `stockd bench` end to end, tiny: the command line from dist/ (`npm run build` first, as
 * `npm test` does) runs the scenario suite in two modes at two shard counts and writes the
 * report; Ctrl-C in the middle still leaves a (partial) report. stockd only, WAL in
 * memory, so it needs no service and takes seconds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';

const cli = fileURLToPath(new URL('../dist/src/cli/stockd.js', import.meta.url));
const roots: string[] = [];

afterAll(async () => {
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

const tiny = [
  '--targets',
  'stockd:direct',
  '--store',
  'memory',
  '--scenarios',
  'zipf,flash-sale',
  '--skus',
  '50',
  '--connections',
  '4',
  '--flash-connections',
  '16',
  // Warmed up, so a step does not pay for a fresh engine's first requests (see the step
  // smoke test in bench-scenarios.smoke.int.test.ts).
  '--warmup',
  '0.3',
  '--seconds',
  '0.3',
  '--step-start',
  '200',
  '--step-factor',
  '2',
  '--step-seconds',
  '0.3',
  '--max-steps',
  '2',
  '--drain',
  '2',
  '--objective-p99-ms',
  '1000',
  '--no-progress',
];

function run(args: readonly string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; output: string }>;
} {
  const child = spawn(process.execPath, [cli, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const done = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, output })),
  );
  return { child, done };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

describe('stockd bench', () => {
  it('runs the suite in each mode at each shard count, then writes the report', async () => {
    const out = await mkdtemp(join(tmpdir(), 'stockd-bench-'));
    roots.push(out);
    const { done } = run([
      ...tiny,
      '--modes',
      'closed,step',
      '--shards',
      '1,2',
      '--out',
      out,
      '--capacity-rate',
      '1000',
      '--capacity-p99-ms',
      '1000',
    ]);
    const { code, output } = await done;
    expect(code, output).toBe(0);
    for (const dir of ['shards-1/closed', 'shards-1/step', 'shards-2/closed', 'shards-2/step']) {
      expect(await exists(join(out, dir, 'results.json')), dir).toBe(true);
    }
    const files = await readdir(out);
    expect(files).toEqual(expect.arrayContaining(['report.md', 'report.html', 'throughput-by-scenario.svg']));
    expect(files).toEqual(expect.arrayContaining(['throughput-zipf.svg', 'latency-flash-sale.svg']));
    const markdown = await readFile(join(out, 'report.md'), 'utf8');
    expect(markdown).toContain('`stockd:direct ×2 shards`');
    // The capacity table names each shard count's knee, or `none` when even the first step
    // missed (on a loaded machine a 0.3 s step can: see bench-scenarios.smoke.int.test.ts).
    expect(markdown).toMatch(/\| zipf \| `stockd:direct` \| (?:[\d,+]+|none) @1, (?:[\d,+]+|none) @2 \|/);
    expect(markdown).toContain('## Capacity recommendation');
    expect(markdown).not.toContain('Partial results');
    expect(output).toContain(`report: ${join(out, 'report.md')}`);
  }, 90_000);

  it('writes a partial report when interrupted with Ctrl-C', async () => {
    const out = await mkdtemp(join(tmpdir(), 'stockd-bench-'));
    roots.push(out);
    const { child, done } = run([...tiny, '--seconds', '30', '--modes', 'closed,step', '--out', out]);
    // The suite writes results.json (partial) as soon as it starts; interrupt the run after that.
    await vi.waitFor(async () => expect(await exists(join(out, 'closed', 'results.json'))).toBe(true), {
      timeout: 20_000,
      interval: 100,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.kill('SIGINT');
    const { code, output } = await done;
    expect(code, output).toBe(130);
    expect(await exists(join(out, 'step'))).toBe(false);
    const markdown = await readFile(join(out, 'report.md'), 'utf8');
    expect(markdown).toContain('**Partial results**');
    expect(output).toContain('report (partial):');
  }, 60_000);
});
