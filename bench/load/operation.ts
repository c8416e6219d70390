/**
 * The unit of load: an operation is what one client sends at once — one request to one
 * route, or a batch of commands in one POST /v1/batch. It is written as engine requests, so
 * one workload drives every transport: mapped onto the HTTP contract (http-codec.ts), or
 * handed to `execute` / `executeMany` of an engine-shaped target without HTTP.
 */
import type { Request, SetStock } from '../../src/actors/types.js';
import { type ErrorCode, errorDefinitions } from '../../src/errors.js';

export interface Operation {
  /** One request (`batch` false) or the commands of one batch. */
  readonly requests: readonly Request[];
  readonly batch: boolean;
}

export function single(request: Request): Operation {
  return { requests: [request], batch: false };
}

/**
 * What came back for one command: `ok`, a problem code (`INSUFFICIENT_STOCK`, …), or what
 * the client saw without a problem body: `HTTP_<status>`, `TRANSPORT_ERROR`, `TIMEOUT`.
 */
export type Outcome = string;
export const okOutcome = 'ok';

/** A failure of the target rather than a business answer: 5xx codes and transport trouble. */
export function isFailure(outcome: Outcome): boolean {
  if (outcome === okOutcome) return false;
  const definition = errorDefinitions[outcome as ErrorCode] as { status: number } | undefined;
  if (definition !== undefined) return definition.status >= 500;
  if (outcome.startsWith('HTTP_')) return Number(outcome.slice(5)) >= 500;
  return true;
}

export const scenarioNames = [
  'uniform',
  'zipf',
  'flash-sale',
  'storefront',
  'lifecycle',
  'wms-resync',
] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/** The stock levels a check reads back after a run. */
export interface StockLevel {
  readonly location: string;
  readonly onHand: number;
  readonly reserved: number;
}

/** A verdict a scenario gives after its run (e.g. the flash sale: no oversell). */
export interface ScenarioCheck {
  readonly name: string;
  readonly passed: boolean;
  readonly detail: string;
}

/**
 * A workload. The load generators call `next` for each operation to send (null: a finite
 * workload is done) and `observe` with what came back, which is how the order lifecycle
 * learns which reservations are held and may be committed or released.
 */
export interface Scenario {
  readonly name: ScenarioName;
  readonly description: string;
  /** Records to create before measuring (absolute sets; loaded, not measured). */
  seed(): SetStock[];
  next(): Operation | null;
  observe(operation: Operation, outcomes: readonly Outcome[]): void;
  /** Operations in all for a finite workload (the resync); null: it runs for a duration. */
  readonly finiteOperations: number | null;
  /** Checks after the run, reading stock levels back from the target. */
  verify?(read: (sku: string) => Promise<StockLevel[]>): Promise<ScenarioCheck[]>;
}
