/**
 * The process the crash test kills: a durable engine (PostgreSQL) under concurrent writes.
 * It reports on stdout, one line each:
 *
 *   READY                          recovered, about to write
 *   SENT <json op>                 before a command is handed to the engine
 *   ACK <json op> <json outcome>   after its reply (only then is it acknowledged)
 *
 * The driver (bench/crash/driver.ts) SIGKILLs it at a random moment and checks that every
 * acknowledged write survived. Configuration comes from the environment (see driver).
 */
import { Engine } from '../../src/engine/engine.js';
import { PgWalStore } from '../../src/persistence/pg-store.js';
import { type CrashOp, crashSkus, initialOnHand, opToRequest, outcomeOf } from './ops.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};
const cycle = Number(env('STOCKD_CRASH_CYCLE'));
const shards = Number(env('STOCKD_CRASH_SHARDS'));
const clients = Number(process.env.STOCKD_CRASH_CLIENTS ?? 8);
let seed = Number(process.env.STOCKD_CRASH_SEED ?? 1) * 7919 + cycle;

/** Deterministic per cycle (mulberry32), so a failing cycle's workload can be rerun. */
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const store = await PgWalStore.open({
  connectionString: env('STOCKD_CRASH_DATABASE_URL'),
  schema: env('STOCKD_CRASH_SCHEMA'),
});
const engine = await Engine.start({ store, shards });
if (cycle === 0) {
  await engine.executeMany(
    crashSkus.map((sku) => ({ type: 'set', sku, location: 'dc-1', onHand: initialOnHand })),
  );
}
process.stdout.write('READY\n');

let counter = 0;
async function client(index: number): Promise<never> {
  const held: string[] = [];
  for (;;) {
    const roll = random();
    let op: CrashOp;
    const id = `c${cycle}-${index}-${counter++}`;
    if (roll < 0.5 || held.length === 0) {
      const lineCount = 1 + Math.floor(random() * 3);
      const lines = Array.from({ length: lineCount }, () => ({
        sku: pick(crashSkus),
        qty: 1 + Math.floor(random() * 3),
      }));
      op = { op: 'reserve', id, lines };
    } else if (roll < 0.7) {
      op = { op: 'commit', id: held.splice(Math.floor(random() * held.length), 1)[0]! };
    } else if (roll < 0.85) {
      op = { op: 'release', id: held.splice(Math.floor(random() * held.length), 1)[0]! };
    } else {
      op = { op: 'adjust', key: id, sku: pick(crashSkus), delta: 1 + Math.floor(random() * 5) };
    }
    process.stdout.write(`SENT ${JSON.stringify(op)}\n`);
    const reply = await engine.execute(opToRequest(op));
    const outcome = outcomeOf(reply);
    process.stdout.write(`ACK ${JSON.stringify(op)} ${JSON.stringify(outcome)}\n`);
    if (op.op === 'reserve' && outcome.ok) held.push(op.id);
  }
}
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
