/**
 * buildServer(): the Fastify app of the HTTP API, built without listening (tests use
 * `app.inject()`; `stockd serve` listens).
 *
 *   request ─▶ onRequest: auth (key → scope) ─▶ rate limit (per key) ─▶ body parser (JSON,
 *              msgpack on /v1/batch; size-limited) ─▶ TypeBox check ─▶ handler ─▶ engine
 *              ─▶ compiled serializer, or problem+json
 *
 *   root scope:   error + not-found handlers (problem+json), validator, metrics, OpenAPI,
 *                 /healthz /readyz /metrics /docs
 *   /v1 scope:    rate limiter, every route of the contract
 *     batch scope: the msgpack parser
 *
 * Logging is off on the request path (no per-request log lines); errors that are bugs
 * are logged with the request id.
 */
import type { ServerResponse } from 'node:http';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { defaultLimits, type Limits } from '../config.js';
import { type ApiKey, KeyRing } from './auth.js';
import { ApiContext, type ApiEngine } from './context.js';
import { ChangeFeed, type NotifyingStore } from './events.js';
import { type ApiLimits, apiLimitsWith } from './limits.js';
import { ApiMetrics } from './metrics.js';
import {
  internalErrorCode,
  type Problem,
  ProblemError,
  problemContentType,
  problemOf,
  problemOfError,
} from './problem.js';
import { atpRoutes } from './routes/atp.js';
import { batchRoutes } from './routes/batch.js';
import { channelRoutes } from './routes/channels.js';
import { eventRoutes } from './routes/events.js';
import { opsRoutes } from './routes/ops.js';
import { reservationRoutes } from './routes/reservations.js';
import { stockRoutes } from './routes/stock.js';
import type { ApiApp } from './routes/types.js';
import { buildSchemas } from './schemas.js';
import { validatorCompiler } from './validation.js';

export interface RateLimitOptions {
  /** Requests per window per key (per client address when no keys are configured). A key's own limit wins. */
  readonly max: number;
  readonly timeWindowMs: number;
}

export interface ServerOptions {
  /** The engine, or the promise of it while it recovers: until it resolves the API answers 503 and /readyz says not ready. */
  readonly engine: ApiEngine | Promise<ApiEngine>;
  /** The store the engine was started with, wrapped in a NotifyingStore: enables GET /v1/events. */
  readonly store?: NotifyingStore;
  /** API keys; none: everything is allowed (the listen path then binds loopback only). */
  readonly keys?: readonly ApiKey[];
  /** Overrides of the API's limits (src/api/limits.ts). */
  readonly limits?: Partial<ApiLimits>;
  /** The engine's limits when `engine` is a promise (the schemas are built from them); default: src/config.ts. */
  readonly engineLimits?: Limits;
  /** A pino logger, or true for Fastify's own at `warn`; default: no logging. */
  readonly logger?: FastifyBaseLogger | boolean;
  /** Per-key rate limiting; default: off. */
  readonly rateLimit?: RateLimitOptions | false;
  /** Serve the OpenAPI document at /docs/json and Swagger UI at /docs; default: true. */
  readonly docs?: boolean;
}

export type ApiServer = FastifyInstance & { readonly stockd: ApiContext };

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function';
}

export async function buildServer(options: ServerOptions): Promise<ApiServer> {
  const engineLimits = isPromise(options.engine)
    ? (options.engineLimits ?? defaultLimits)
    : options.engine.limits;
  const limits = apiLimitsWith(options.limits);
  const schemas = buildSchemas(engineLimits, limits);
  const keys = new KeyRing(options.keys ?? []);
  // Metrics read the engine through the context only when scraped, after both exist.
  let context: ApiContext;
  const metrics = new ApiMetrics(() => context.engine);
  context = new ApiContext(engineLimits, limits, schemas, keys, metrics);
  context.store = options.store ?? null;

  const logger = options.logger;
  const app = Fastify({
    ...(typeof logger === 'object'
      ? { loggerInstance: logger }
      : { logger: logger === true ? { level: 'warn' } : false }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyBytesMax,
    routerOptions: {
      maxParamLength: limits.pathParamLengthMax,
      // The router answers these before any Fastify handler runs: raw problem+json.
      onMaxParamLength: (_path, _request, response) =>
        rawProblem(
          response,
          problemOf(
            'INVALID_REQUEST',
            `a path parameter is longer than ${limits.pathParamLengthMax} characters`,
          ),
          metrics,
        ),
      onBadUrl: (_path, _request, response) =>
        rawProblem(response, problemOf('INVALID_REQUEST', 'the path is not valid percent-encoding'), metrics),
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // A client that trickles its request cannot hold a connection forever.
    requestTimeout: 30_000,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.decorateRequest('principal', null);
  app.decorate('stockd', context);
  acceptEmptyJson(app);
  app.addSchema(schemas.Problem);

  app.setErrorHandler((error, request, reply) => {
    const problem = problemOfError(error);
    if (problem.code === internalErrorCode) request.log.error({ err: error }, 'unexpected error');
    return context.problem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) => {
    return context.problem(
      reply,
      problemOf('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
    );
  });

  // Latency per route: one observer per route, created when the route is registered.
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method.join(',') : route.method;
    const observe = metrics.routeObserver(methods, route.url);
    const hook = (
      _request: unknown,
      reply: { statusCode: number; elapsedTime: number },
      done: () => void,
    ): void => {
      observe(reply.statusCode, reply.elapsedTime);
      done();
    };
    const existing = route.onResponse;
    route.onResponse =
      existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook];
  });

  if (options.docs !== false) await registerDocs(app);

  opsRoutes(app, context);
  await app.register(async (v1) => {
    const scope = v1.withTypeProvider<TypeBoxTypeProvider>() as ApiApp;
    if (options.rateLimit !== undefined && options.rateLimit !== false) {
      await registerRateLimit(scope, options.rateLimit, keys);
    }
    stockRoutes(scope, context);
    channelRoutes(scope, context);
    atpRoutes(scope, context);
    reservationRoutes(scope, context);
    eventRoutes(scope, context);
    // Its own scope, so the msgpack parser applies to /v1/batch only.
    await scope.register(async (batch) =>
      batchRoutes(batch.withTypeProvider<TypeBoxTypeProvider>() as ApiApp, context),
    );
  });

  const attach = (engine: ApiEngine): void => {
    context.engine = engine;
    if (options.store !== undefined) {
      context.feed = new ChangeFeed(options.store, {
        shardCount: engine.layout.shardCount,
        recentRowsMax: limits.feedRecentRowsMax,
        ...(engine.onDurable === undefined ? {} : { notices: (listener) => engine.onDurable!(listener) }),
      });
    }
  };
  if (isPromise(options.engine)) {
    options.engine.then(attach, (error: unknown) =>
      app.log.error({ err: error }, 'the engine failed to start'),
    );
  } else {
    attach(options.engine);
  }
  app.addHook('onClose', (_instance, done) => {
    context.feed?.close();
    done();
  });

  await app.ready();
  return app as unknown as ApiServer;
}

function rawProblem(response: ServerResponse, problem: Problem, metrics: ApiMetrics): void {
  metrics.rejection(problem.code);
  response.writeHead(problem.status, { 'content-type': problemContentType });
  response.end(JSON.stringify(problem));
}

/** An empty body with a JSON content type is no body (clients send one on bodiless POSTs). */
function acceptEmptyJson(app: ApiApp): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // JSON only (and msgpack on /v1/batch): a text/plain body is 415, not a string to validate.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text === '' || text.trim() === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, done);
  });
}

async function registerRateLimit(app: ApiApp, config: RateLimitOptions, keys: KeyRing): Promise<void> {
  await app.register(fastifyRateLimit, {
    max: keys.hasCustomRateLimits ? (request) => request.principal?.rateLimitMax ?? config.max : config.max,
    timeWindow: config.timeWindowMs,
    // Auth runs first (an onRequest hook of the route), so the bucket is the key, not the address.
    keyGenerator: (request) =>
      request.principal?.id === undefined || request.principal.id === 'anonymous'
        ? request.ip
        : request.principal.id,
    // The plugin has set Retry-After and the X-RateLimit-* headers by now.
    errorResponseBuilder: (_request, context) =>
      new ProblemError(
        'RATE_LIMITED',
        `at most ${context.max} requests per window; retry in ${context.after}`,
      ),
  });
}

async function registerDocs(app: ApiApp): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'stockd HTTP API',
        version: 'v1',
        description:
          'One true stock count, reservations and available-to-promise for every sales channel. Every error is application/problem+json with a stable `code` (docs/errors.md). Limits and examples: docs/api.md.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <API key>' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        },
      },
      tags: [
        { name: 'stock', description: 'stock levels per SKU and location' },
        { name: 'channels', description: 'sales channels and their locations' },
        { name: 'atp', description: 'available to promise' },
        { name: 'reservations', description: 'hold, commit, release, extend' },
        { name: 'batch', description: 'many commands per request, JSON or MessagePack' },
        { name: 'events', description: 'the change feed from the WAL' },
        { name: 'ops', description: 'health, readiness, metrics' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
}
