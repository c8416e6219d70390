/**
 * The six workloads of the benchmark suite. Each is a generator of operations
 * (load/operation.ts): the same generator feeds autocannon over HTTP, the open-loop
 * scheduler, and the engine directly — so stockd and the alternatives get the same offered
 * load, drawn from the same seeded sequence.
 *
 *   uniform      reserve 1 unit of `linesPerOrder` SKUs drawn uniformly from `skus`
 *   zipf         the same, SKUs drawn Zipf(s): a few best sellers take most orders
 *   flash-sale   every buyer reserves 1 unit of one hot SKU (run it with thousands of connections)
 *   storefront   `readShare` (95%) ATP reads, the rest reserves, both Zipf-skewed
 *   lifecycle    reserve, then commit / release / let expire in `lifecycleShares` (70/20/10)
 *   wms-resync   `resyncSets` (100,000) absolute stock sets in batches of `batchSize` via /v1/batch
 *
 * Every run gets its own `tag`: its SKUs and reservation ids carry it, so several runs
 * against one long-lived target never see each other's records. Each line names its
 * location (the alternatives reserve at a named location only; see bench/baselines).
 *
 * Run the suite: `node dist/bench/scenarios.js --help` (parameters as flags or BENCH_* variables).
 */
import { fileURLToPath } from 'node:url';
import type { LineRequest, Request, Reserve, SetStock } from '../src/actors/types.js';
import { defaultLimits } from '../src/config.js';
import {
  type Operation,
  type Outcome,
  okOutcome,
  type Scenario,
  type ScenarioCheck,
  type ScenarioName,
  type StockLevel,
  single,
} from './load/operation.js';
import { Random, ZipfSampler } from './load/random.js';

export { type ScenarioName, scenarioNames } from './load/operation.js';

export interface LifecycleShares {
  readonly commit: number;
  readonly release: number;
  readonly expire: number;
}

export interface ScenarioSizes {
  /** SKUs in the catalogue (uniform, zipf, storefront, lifecycle, wms-resync). */
  readonly skus: number;
  /** Locations per SKU; every SKU is stocked at each. */
  readonly locations: number;
  /** Lines (distinct SKUs) per reservation in uniform, zipf and lifecycle. */
  readonly linesPerOrder: number;
  /** Zipf exponent for zipf and storefront (0 = uniform, 1 = classic retail skew). */
  readonly zipfS: number;
  /** Units per record at the start; the default never runs out during a run. */
  readonly stockPerRecord: number;
  /** Units of the flash-sale SKU; the default never sells out (the figure is then the rate of successful holds). */
  readonly flashStock: number;
  /** Share of ATP reads in the storefront workload. */
  readonly readShare: number;
  /** What becomes of the lifecycle's reservations; shares of 1. */
  readonly lifecycleShares: LifecycleShares;
  /** TTL of reservations that are meant to be committed or released. */
  readonly holdTtlSeconds: number;
  /** TTL of the lifecycle's reservations that are left to expire. */
  readonly expireTtlSeconds: number;
  /** Absolute stock sets of one WMS resync. */
  readonly resyncSets: number;
  /** Commands per /v1/batch request in the resync. */
  readonly batchSize: number;
  /** Seed of every random draw. */
  readonly seed: number;
}

export const defaultSizes: ScenarioSizes = Object.freeze({
  skus: 10_000,
  locations: 2,
  linesPerOrder: 1,
  zipfS: 1,
  stockPerRecord: defaultLimits.quantityMax,
  flashStock: defaultLimits.quantityMax,
  readShare: 0.95,
  lifecycleShares: Object.freeze({ commit: 0.7, release: 0.2, expire: 0.1 }),
  holdTtlSeconds: 900,
  expireTtlSeconds: 1,
  resyncSets: 100_000,
  batchSize: 1_000,
  seed: 42,
});

export const scenarioDescriptions: Readonly<Record<ScenarioName, string>> = {
  uniform: 'reservations of SKUs drawn uniformly from the catalogue',
  zipf: 'reservations of SKUs drawn Zipf-skewed: a few best sellers take most orders',
  'flash-sale': 'every buyer reserves one unit of one hot SKU',
  storefront: 'storefront traffic: mostly ATP reads, some reservations, Zipf-skewed',
  lifecycle: 'full order lifecycle: reserve, then commit, release or let expire',
  'wms-resync': 'WMS bulk resync: absolute stock sets in batches via /v1/batch',
};

export function checkSizes(sizes: ScenarioSizes): void {
  const positive = (name: string, value: number) => {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new Error(`${name} must be a whole number >= 1, got ${value}`);
  };
  positive('skus', sizes.skus);
  positive('locations', sizes.locations);
  positive('linesPerOrder', sizes.linesPerOrder);
  positive('resyncSets', sizes.resyncSets);
  positive('batchSize', sizes.batchSize);
  positive('holdTtlSeconds', sizes.holdTtlSeconds);
  positive('expireTtlSeconds', sizes.expireTtlSeconds);
  if (sizes.linesPerOrder > defaultLimits.reservationLinesMax) {
    throw new Error(`linesPerOrder must be <= ${defaultLimits.reservationLinesMax}`);
  }
  if (!(sizes.readShare >= 0 && sizes.readShare <= 1)) throw new Error('readShare must be within 0..1');
  const { commit, release, expire } = sizes.lifecycleShares;
  if (
    ![commit, release, expire].every((share) => share >= 0) ||
    Math.abs(commit + release + expire - 1) > 1e-9
  ) {
    throw new Error('lifecycle shares must be >= 0 and add up to 1');
  }
}

/** The SKUs of one run and the reservations made of them. */
class Catalogue {
  private reservations = 0;
  readonly random: Random;

  constructor(
    readonly sizes: ScenarioSizes,
    readonly tag: string,
  ) {
    this.random = new Random(sizes.seed);
  }

  sku(index: number): string {
    return `${this.tag}-${index}`;
  }

  location(index: number): string {
    return `L${index}`;
  }

  /** Every SKU at every location, at `stockPerRecord` units. */
  records(): SetStock[] {
    const sets: SetStock[] = [];
    for (let s = 0; s < this.sizes.skus; s++) {
      for (let l = 0; l < this.sizes.locations; l++) {
        sets.push({
          type: 'set',
          sku: this.sku(s),
          location: this.location(l),
          onHand: this.sizes.stockPerRecord,
        });
      }
    }
    return sets;
  }

  nextReservationId(): string {
    return `${this.tag}-r${this.reservations++}`;
  }

  /** A reservation of 1 unit of each of `lines` distinct SKUs picked by `pick`, at a random location each. */
  reserve(pick: () => number, ttlSeconds: number): Reserve {
    const count = Math.min(this.sizes.linesPerOrder, this.sizes.skus);
    const lines: LineRequest[] = [];
    const chosen = new Set<number>();
    // A skewed pick repeats the best sellers; a few redraws find distinct ones, then take any.
    for (let attempt = 0; lines.length < count; attempt++) {
      let index = pick();
      if (chosen.has(index)) {
        if (attempt < count * 8) continue;
        while (chosen.has(index)) index = (index + 1) % this.sizes.skus;
      }
      chosen.add(index);
      lines.push({
        sku: this.sku(index),
        qty: 1,
        location: this.location(this.random.int(this.sizes.locations)),
      });
    }
    return { type: 'reserve', reservationId: this.nextReservationId(), ttlSeconds, lines };
  }
}

/** Reservations only: the SKU distribution is the variable (uniform and zipf). */
function reservations(name: 'uniform' | 'zipf', sizes: ScenarioSizes, tag: string): Scenario {
  const catalogue = new Catalogue(sizes, tag);
  const zipf = name === 'zipf' ? new ZipfSampler(sizes.skus, sizes.zipfS) : null;
  const pick = zipf === null ? () => catalogue.random.int(sizes.skus) : () => zipf.sample(catalogue.random);
  return {
    name,
    description: scenarioDescriptions[name],
    finiteOperations: null,
    seed: () => catalogue.records(),
    next: () => single(catalogue.reserve(pick, sizes.holdTtlSeconds)),
    observe: () => {},
  };
}

/** One hot SKU; checks afterwards that what was held never exceeds what was there. */
function flashSale(sizes: ScenarioSizes, tag: string): Scenario {
  const catalogue = new Catalogue(sizes, tag);
  const sku = `${tag}-flash`;
  const location = catalogue.location(0);
  let acceptedUnits = 0;
  return {
    name: 'flash-sale',
    description: scenarioDescriptions['flash-sale'],
    finiteOperations: null,
    seed: () => [{ type: 'set', sku, location, onHand: sizes.flashStock }],
    next: () =>
      single({
        type: 'reserve',
        reservationId: catalogue.nextReservationId(),
        ttlSeconds: sizes.holdTtlSeconds,
        lines: [{ sku, qty: 1, location }],
      }),
    observe: (_operation, outcomes) => {
      if (outcomes[0] === okOutcome) acceptedUnits++;
    },
    verify: async (read) => {
      const level = (await read(sku)).find((record) => record.location === location);
      if (level === undefined)
        return [{ name: 'no oversell', passed: false, detail: `${sku} was not found` }];
      // Replies still in flight when a closed-loop run stops were held but never seen: reserved ≥ seen.
      const checks: ScenarioCheck[] = [
        {
          name: 'no oversell',
          passed: level.reserved <= level.onHand && level.onHand === sizes.flashStock,
          detail: `reserved ${level.reserved} of ${level.onHand} units (stocked ${sizes.flashStock})`,
        },
        {
          name: 'every acknowledged hold is counted',
          passed: level.reserved >= acceptedUnits,
          detail: `${acceptedUnits} holds acknowledged, ${level.reserved} units reserved`,
        },
      ];
      return checks;
    },
  };
}

function storefront(sizes: ScenarioSizes, tag: string): Scenario {
  const catalogue = new Catalogue(sizes, tag);
  const zipf = new ZipfSampler(sizes.skus, sizes.zipfS);
  const pick = () => zipf.sample(catalogue.random);
  return {
    name: 'storefront',
    description: scenarioDescriptions.storefront,
    finiteOperations: null,
    seed: () => catalogue.records(),
    next: () =>
      catalogue.random.next() < sizes.readShare
        ? single({ type: 'atp', sku: catalogue.sku(pick()) })
        : single(catalogue.reserve(pick, sizes.holdTtlSeconds)),
    observe: () => {},
  };
}

/**
 * Reserve, then settle. Each reservation's fate is drawn when it is made; those meant to
 * expire get the short TTL and are never touched again, the others wait in `pending` until
 * their hold is acknowledged and are then committed or released, oldest first.
 */
function lifecycle(sizes: ScenarioSizes, tag: string): Scenario {
  const catalogue = new Catalogue(sizes, tag);
  const pick = () => catalogue.random.int(sizes.skus);
  const { commit, release } = sizes.lifecycleShares;
  const fates = new Map<string, 'commit' | 'release'>();
  const pending: Array<{ id: string; fate: 'commit' | 'release' }> = [];
  let head = 0;
  // Per reservation, (commit + release) follow-ups: this share of operations keeps the backlog level.
  const followShare = (commit + release) / (1 + commit + release);
  /** Past this backlog only follow-ups are sent, so held reservations never pile up. */
  const backlogMax = 10_000;
  return {
    name: 'lifecycle',
    description: scenarioDescriptions.lifecycle,
    finiteOperations: null,
    seed: () => catalogue.records(),
    next: () => {
      const backlog = pending.length - head;
      if (backlog > 0 && (backlog >= backlogMax || catalogue.random.next() < followShare)) {
        const { id, fate } = pending[head++]!;
        if (head > 4_096 && head * 2 > pending.length) {
          pending.splice(0, head);
          head = 0;
        }
        return single({ type: fate, reservationId: id });
      }
      const roll = catalogue.random.next();
      const fate = roll < commit ? 'commit' : roll < commit + release ? 'release' : 'expire';
      const request = catalogue.reserve(
        pick,
        fate === 'expire' ? sizes.expireTtlSeconds : sizes.holdTtlSeconds,
      );
      if (fate !== 'expire') fates.set(request.reservationId, fate);
      return single(request);
    },
    observe: (operation, outcomes) => {
      const request = operation.requests[0]!;
      if (request.type !== 'reserve') return;
      const fate = fates.get(request.reservationId);
      if (fate === undefined) return;
      fates.delete(request.reservationId);
      if (outcomes[0] === okOutcome) pending.push({ id: request.reservationId, fate });
    },
  };
}

/** Absolute levels for every record, round after round, in batches (finite). */
function wmsResync(sizes: ScenarioSizes, tag: string): Scenario {
  const catalogue = new Catalogue(sizes, tag);
  const records = sizes.skus * sizes.locations;
  const batches = Math.ceil(sizes.resyncSets / sizes.batchSize);
  let sent = 0;
  let batch = 0;
  return {
    name: 'wms-resync',
    description: scenarioDescriptions['wms-resync'],
    finiteOperations: batches,
    seed: () => catalogue.records(),
    next: () => {
      if (batch >= batches) return null;
      batch++;
      const size = Math.min(sizes.batchSize, sizes.resyncSets - sent);
      const requests: Request[] = new Array(size);
      for (let i = 0; i < size; i++) {
        const record = (sent + i) % records;
        requests[i] = {
          type: 'set',
          sku: catalogue.sku(Math.floor(record / sizes.locations)),
          location: catalogue.location(record % sizes.locations),
          onHand: catalogue.random.int(1_000),
        };
      }
      sent += size;
      return { requests, batch: true };
    },
    observe: () => {},
  };
}

export function createScenario(name: ScenarioName, sizes: ScenarioSizes, tag: string): Scenario {
  checkSizes(sizes);
  switch (name) {
    case 'uniform':
    case 'zipf':
      return reservations(name, sizes, tag);
    case 'flash-sale':
      return flashSale(sizes, tag);
    case 'storefront':
      return storefront(sizes, tag);
    case 'lifecycle':
      return lifecycle(sizes, tag);
    case 'wms-resync':
      return wmsResync(sizes, tag);
    default: {
      const unknown: never = name;
      throw new Error(`unknown scenario ${JSON.stringify(unknown)}`);
    }
  }
}

export type { Operation, Outcome, Scenario, StockLevel };

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  // Not a top-level await: the command line imports this module, which must finish loading first.
  void import('./load/cli.js')
    .then(({ runCli }) => runCli(process.argv.slice(2)))
    .then((code) => {
      process.exitCode = code;
    });
}
