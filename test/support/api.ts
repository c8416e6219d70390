/**
 * An API server over a real Engine (worker threads from dist/, so `npm run build` first)
 * and an in-memory WAL, for `app.inject()` tests. `stopAll()` in afterAll/afterEach.
 */
import type { LightMyRequestResponse } from 'fastify';
import type { ApiKey } from '../../src/api/auth.js';
import { NotifyingStore } from '../../src/api/events.js';
import type { ApiLimits } from '../../src/api/limits.js';
import { type ApiServer, buildServer, type RateLimitOptions } from '../../src/api/server.js';
import type { Limits } from '../../src/config.js';
import type { Clock } from '../../src/engine/clock.js';
import { Engine } from '../../src/engine/engine.js';
import { MemoryWalStore } from '../../src/persistence/memory-store.js';

export interface TestApi {
  readonly app: ApiServer;
  readonly engine: Engine;
  readonly store: NotifyingStore;
  readonly memory: MemoryWalStore;
}

export interface TestApiOptions {
  readonly shards?: number;
  readonly keys?: readonly ApiKey[];
  readonly limits?: Partial<ApiLimits>;
  readonly engineLimits?: Limits;
  readonly clock?: Clock;
  readonly rateLimit?: RateLimitOptions;
  readonly memory?: MemoryWalStore;
}

const running: TestApi[] = [];

export async function startApi(options: TestApiOptions = {}): Promise<TestApi> {
  const memory = options.memory ?? new MemoryWalStore();
  const store = new NotifyingStore(memory);
  const engine = await Engine.start({
    store,
    shards: options.shards ?? 1,
    ...(options.engineLimits === undefined ? {} : { limits: options.engineLimits }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const app = await buildServer({
    engine,
    store,
    ...(options.keys === undefined ? {} : { keys: options.keys }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }),
  });
  const api = { app, engine, store, memory };
  running.push(api);
  return api;
}

/** Closes the server, then stops the engine (the order serve uses). */
export async function stopApi(api: TestApi): Promise<void> {
  const index = running.indexOf(api);
  if (index !== -1) running.splice(index, 1);
  await api.app.close();
  await api.engine.stop();
}

export async function stopAll(): Promise<void> {
  await Promise.all(
    running.splice(0).map(async (api) => {
      await api.app.close();
      await api.engine.stop();
    }),
  );
}

export function json<T = Record<string, unknown>>(response: LightMyRequestResponse): T {
  return JSON.parse(response.body) as T;
}

/** Asserts the response is problem+json with this status and code, and returns the problem. */
export function problem(
  response: LightMyRequestResponse,
  status: number,
  code: string,
): Record<string, unknown> {
  const body = json(response);
  if (response.statusCode !== status || body.code !== code) {
    throw new Error(`expected ${status} ${code}, got ${response.statusCode} ${response.body}`);
  }
  if (!String(response.headers['content-type']).startsWith('application/problem+json')) {
    throw new Error(`expected application/problem+json, got ${response.headers['content-type']}`);
  }
  for (const field of ['type', 'title', 'status', 'code', 'detail']) {
    if (!(field in body)) throw new Error(`problem without ${field}: ${response.body}`);
  }
  if (body.status !== status || body.type !== `urn:stockd:error:${code}`) {
    throw new Error(`problem fields disagree with the response: ${response.body}`);
  }
  return body;
}
