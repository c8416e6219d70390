/**
 * Crash test against the real PostgreSQL: kill a writing stockd with SIGKILL at a random
 * moment, restart, and check that nothing acknowledged was lost.
 *
 *   cycle n: spawn child (bench/crash/child.ts, shard count varies by cycle)
 *            ─ READY ─ concurrent writes ─ SIGKILL after a random delay
 *            restart an engine on the same database (another shard count again) and check:
 *              · every acknowledged reserve exists; an acknowledged commit/release shows it
 *              · every acknowledged adjustment is known (re-sending it is a duplicate)
 *              · an unacknowledged reserve is whole or absent (a cross-shard one cut in
 *                half is completed by the client's retry with the same id, as documented)
 *              · every shard keeps its invariants, and `replay --verify` passes
 *
 * `npm run crash -- --cycles 300` runs many on demand; `npm test` runs a few
 * (test/crash.int.test.ts).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { ReservationView } from '../../src/actors/types.js';
import { Engine } from '../../src/engine/engine.js';
import { verify } from '../../src/engine/replay.js';
import { PgWalStore } from '../../src/persistence/pg-store.js';
import { errorCode } from '../../src/persistence/store-errors.js';
import { type CrashOp, type Outcome, opToRequest } from './ops.js';

export interface CrashOptions {
  readonly databaseUrl: string;
  /** Schema to use (created by the first writer); one per run. */
  readonly schema: string;
  readonly cycles: number;
  readonly seed: number;
  /** The child writes for a random time in [minRunMs, maxRunMs] before it is killed. */
  readonly minRunMs: number;
  readonly maxRunMs: number;
  readonly clients: number;
  readonly log?: (line: string) => void;
}

export interface CycleReport {
  readonly cycle: number;
  readonly childShards: number;
  readonly checkShards: number;
  readonly ranMs: number;
  readonly acknowledged: number;
  readonly unacknowledged: number;
  readonly partialCompletedByRetry: number;
}

const childUrl: URL = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/bench/crash/child.js', import.meta.url)
  : new URL('./child.js', import.meta.url);

/** What the driver knows from the child's output, across cycles. */
class Ledger {
  /** Reserves acknowledged as held, and the status their last acknowledged change gave. */
  readonly reserved = new Map<
    string,
    { lines: CrashOp & { op: 'reserve' }; status: 'held' | 'committed' | 'released' }
  >();
  readonly adjusted = new Map<string, CrashOp & { op: 'adjust' }>();
  /** Reserves sent but never acknowledged (any cycle): whole or absent after restart. */
  readonly unacknowledgedReserves = new Map<string, CrashOp & { op: 'reserve' }>();

  /** Commits and releases sent but not acknowledged: each may or may not have happened. */
  readonly pendingChanges = new Map<string, Set<string>>();

  onSent(op: CrashOp): void {
    if (op.op === 'reserve') this.unacknowledgedReserves.set(op.id, op);
    if (op.op === 'commit' || op.op === 'release') {
      const pending = this.pendingChanges.get(op.id) ?? new Set<string>();
      pending.add(op.op === 'commit' ? 'committed' : 'released');
      this.pendingChanges.set(op.id, pending);
    }
  }

  onAck(op: CrashOp, outcome: Outcome): void {
    if (op.op === 'reserve') {
      this.unacknowledgedReserves.delete(op.id);
      if (outcome.ok) this.reserved.set(op.id, { lines: op, status: 'held' });
    } else if (op.op === 'commit' || op.op === 'release') {
      this.pendingChanges.delete(op.id);
      const entry = this.reserved.get(op.id);
      if (entry !== undefined && outcome.ok) entry.status = op.op === 'commit' ? 'committed' : 'released';
    } else if (outcome.ok) {
      this.adjusted.set(op.key, op);
    }
  }
}

export async function runCrashCycles(options: CrashOptions): Promise<CycleReport[]> {
  const ledger = new Ledger();
  const reports: CycleReport[] = [];
  let seed = options.seed;
  const random = (): number => {
    seed = (Math.imul(seed ^ (seed >>> 15), 2246822519) + 0x9e3779b9) | 0;
    return ((seed >>> 0) % 1_000_000) / 1_000_000;
  };
  for (let cycle = 0; cycle < options.cycles; cycle++) {
    const childShards = 1 + (cycle % 3);
    const checkShards = 1 + ((cycle + 1) % 3);
    const runMs = options.minRunMs + Math.floor(random() * (options.maxRunMs - options.minRunMs));
    const before = { acked: countAcks(ledger) };
    const ran = await runChild(options, cycle, childShards, runMs, ledger);
    const partial = await check(options, ledger, checkShards);
    const report: CycleReport = {
      cycle,
      childShards,
      checkShards,
      ranMs: ran,
      acknowledged: countAcks(ledger) - before.acked,
      unacknowledged: ledger.unacknowledgedReserves.size,
      partialCompletedByRetry: partial,
    };
    reports.push(report);
    options.log?.(
      `cycle ${cycle}: ${childShards} shard(s) killed after ${ran} ms, ${report.acknowledged} new acknowledged writes; ` +
        `checked on ${checkShards} shard(s): all present, ${partial} cut reservation(s) completed by retry`,
    );
  }
  return reports;
}

function countAcks(ledger: Ledger): number {
  return ledger.reserved.size + ledger.adjusted.size;
}

/** Runs the child until READY + runMs, then SIGKILLs it. Returns how long it wrote. */
async function runChild(
  options: CrashOptions,
  cycle: number,
  shards: number,
  runMs: number,
  ledger: Ledger,
): Promise<number> {
  const child = spawn(process.execPath, [childUrl.pathname], {
    env: {
      ...process.env,
      STOCKD_CRASH_DATABASE_URL: options.databaseUrl,
      STOCKD_CRASH_SCHEMA: options.schema,
      STOCKD_CRASH_CYCLE: String(cycle),
      STOCKD_CRASH_SHARDS: String(shards),
      STOCKD_CRASH_CLIENTS: String(options.clients),
      STOCKD_CRASH_SEED: String(options.seed),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let readyAt = 0;
  const ready = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (line === 'READY') {
        readyAt = performance.now();
        resolve();
      } else if (line.startsWith('SENT ')) {
        ledger.onSent(JSON.parse(line.slice(5)) as CrashOp);
      } else if (line.startsWith('ACK ')) {
        // ACK <op> <outcome>: the op's JSON has no top-level space-separated tail, so split at the last '} {'.
        const body = line.slice(4);
        const cut = body.lastIndexOf(' {');
        ledger.onAck(JSON.parse(body.slice(0, cut)) as CrashOp, JSON.parse(body.slice(cut + 1)) as Outcome);
      }
    });
    void exited.then(() => reject(new Error(`crash child exited before READY:\n${stderr}`)));
  });
  await ready;
  await new Promise((resolve) => setTimeout(resolve, runMs));
  child.kill('SIGKILL');
  await exited;
  // Let readline deliver what the child wrote before it died.
  await new Promise((resolve) => setImmediate(resolve));
  return Math.round(performance.now() - readyAt);
}

/** Restarts on the database the child was writing and checks the ledger. Returns how many cut reserves a retry completed. */
async function check(options: CrashOptions, ledger: Ledger, shards: number): Promise<number> {
  const spec = { connectionString: options.databaseUrl, schema: options.schema };
  const store = await openWhenFree(spec);
  const engine = await Engine.start({ store, shards });
  let partial = 0;
  try {
    for (const [id, entry] of ledger.reserved) {
      const view = await reservation(engine, id);
      if (view === null) throw new Error(`acknowledged reservation ${id} is lost`);
      // An unacknowledged commit or release may have happened, or not.
      const mayBe = ledger.pendingChanges.get(id);
      if (view.status !== entry.status && !(entry.status === 'held' && mayBe?.has(view.status))) {
        throw new Error(`reservation ${id} is ${view.status}, acknowledged ${entry.status}`);
      }
      assertWhole(view, entry.lines, 'acknowledged');
      entry.status = view.status as typeof entry.status;
    }
    ledger.pendingChanges.clear();
    for (const [key, op] of ledger.adjusted) {
      const reply = await engine.execute(opToRequest(op));
      if (!reply.ok || reply.kind !== 'stock' || reply.duplicate !== true) {
        throw new Error(`acknowledged adjustment ${key} is lost (re-sending it was not a duplicate)`);
      }
    }
    for (const [id, op] of ledger.unacknowledgedReserves) {
      let view = await reservation(engine, id);
      if (view !== null && !isWhole(view, op)) {
        // A cross-shard reservation cut by the crash: the client's retry completes it.
        partial++;
        const retry = await engine.execute(opToRequest(op));
        if (!retry.ok) throw new Error(`retry of cut reservation ${id} refused: ${retry.code}`);
        view = await reservation(engine, id);
      }
      if (view !== null) {
        assertWhole(view, op, partial > 0 ? 'retried' : 'unacknowledged');
        // Now acknowledged to the driver: later cycles check it too.
        ledger.reserved.set(id, {
          lines: op,
          status: view.status === 'held' ? 'held' : (view.status as 'committed'),
        });
      }
    }
    ledger.unacknowledgedReserves.clear();
    for (const [shard, result] of (await engine.inspect()).entries()) {
      if (result.violations.length > 0)
        throw new Error(`shard ${shard} breaks invariants: ${result.violations.join('; ')}`);
    }
  } finally {
    await engine.stop();
    await store.close();
  }
  const reader = await PgWalStore.openForRead(spec);
  try {
    const report = await verify(reader);
    if (!report.ok) throw new Error(`replay --verify failed: ${report.problems.join('; ')}`);
  } finally {
    await reader.close();
  }
  return partial;
}

/** The killed child's session may take a moment to end; its writer lock goes with it. */
async function openWhenFree(spec: { connectionString: string; schema: string }): Promise<PgWalStore> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await PgWalStore.open(spec);
    } catch (error) {
      if (errorCode(error) !== 'STORE_LOCKED' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function reservation(engine: Engine, id: string): Promise<ReservationView | null> {
  const reply = await engine.execute({ type: 'get', reservationId: id });
  if (reply.ok && reply.kind === 'reservation') return reply.reservation;
  if (!reply.ok && reply.code === 'RESERVATION_NOT_FOUND') return null;
  throw new Error(`get ${id}: ${JSON.stringify(reply)}`);
}

function totalsBySku(lines: ReadonlyArray<{ sku: string; qty: number }>): Map<string, number> {
  const totals = new Map<string, number>();
  for (const line of lines) totals.set(line.sku, (totals.get(line.sku) ?? 0) + line.qty);
  return totals;
}

function isWhole(view: ReservationView, op: CrashOp & { op: 'reserve' }): boolean {
  const want = totalsBySku(op.lines);
  const have = totalsBySku(view.lines);
  return want.size === have.size && [...want].every(([sku, qty]) => have.get(sku) === qty);
}

function assertWhole(view: ReservationView, op: CrashOp & { op: 'reserve' }, what: string): void {
  if (!isWhole(view, op)) {
    throw new Error(
      `${what} reservation ${op.id} holds ${JSON.stringify(view.lines)}, requested ${JSON.stringify(op.lines)}`,
    );
  }
}

/* ------------------------------------------------------------------ command line */

async function main(): Promise<void> {
  const { Command } = await import('commander');
  const { randomBytes } = await import('node:crypto');
  const program = new Command('crash')
    .description('kill a writing stockd with SIGKILL again and again; check nothing acknowledged is lost')
    .option(
      '--database-url <url>',
      'PostgreSQL',
      process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    )
    .option('--cycles <n>', 'kill/restart cycles', '100')
    .option('--seed <n>', 'workload and timing seed', String(Date.now() % 1_000_000))
    .option('--min-run-ms <ms>', 'shortest run before the kill', '100')
    .option('--max-run-ms <ms>', 'longest run before the kill', '1500')
    .option('--clients <n>', 'concurrent writers in the child', '16')
    .option('--keep', 'keep the schema afterwards (for stockd replay)')
    .parse();
  const o = program.opts();
  const schema = `stockd_crash_${randomBytes(4).toString('hex')}`;
  console.log(`crash test: schema ${schema}, seed ${o.seed}, ${o.cycles} cycles`);
  const started = performance.now();
  try {
    const reports = await runCrashCycles({
      databaseUrl: o.databaseUrl,
      schema,
      cycles: Number(o.cycles),
      seed: Number(o.seed),
      minRunMs: Number(o.minRunMs),
      maxRunMs: Number(o.maxRunMs),
      clients: Number(o.clients),
      log: (line) => console.log(line),
    });
    const acked = reports.reduce((sum, r) => sum + r.acknowledged, 0);
    console.log(
      `ok: ${reports.length} cycles in ${((performance.now() - started) / 1000).toFixed(1)} s, ` +
        `${acked} acknowledged writes, none lost`,
    );
  } finally {
    if (!o.keep) {
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: o.databaseUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    } else console.log(`kept: stockd replay --database-url '${o.databaseUrl}' … (schema ${schema})`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
