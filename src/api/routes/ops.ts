/**
 * Operations: liveness, readiness, Prometheus metrics. Health routes need no key (load
 * balancers and orchestrators call them); metrics need the read scope.
 */
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { withTimeout } from '../metrics.js';
import { ProblemError } from '../problem.js';
import { problemResponses } from '../schemas.js';
import { type ApiApp, keyed } from './types.js';

/** Readiness waits at most this long for the shards to report (a hung worker is not ready). */
const readinessTimeoutMs = 1_000;

export function opsRoutes(app: ApiApp, ctx: ApiContext): void {
  app.get(
    '/healthz',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['ops'],
        summary: 'Liveness: the process is up and serving HTTP',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['ops'],
        summary: 'Readiness: every shard recovered and its WAL reachable',
        description:
          '503 UNAVAILABLE while the engine recovers from its log, while any shard is not `ready` (recovering, degraded after a failed WAL append, fenced because another process became the writer, restarting, stopping), and while the WAL store does not answer.',
        response: {
          200: Type.Object({
            status: Type.Literal('ready'),
            shards: Type.Array(
              Type.Object({ shard: Type.Integer(), lifecycle: Type.String(), seq: Type.Integer() }),
            ),
          }),
          ...problemResponses(503),
        },
      },
    },
    async () => {
      const engine = ctx.ready();
      const notRunning = engine.shards.findIndex((shard) => shard.phase !== 'ready');
      if (notRunning !== -1) {
        throw new ProblemError('UNAVAILABLE', `shard ${notRunning} is ${engine.shards[notRunning]!.phase}`);
      }
      const stats = await withTimeout(engine.stats(), readinessTimeoutMs);
      if (stats === null) throw new ProblemError('UNAVAILABLE', 'the shards did not report in time');
      const degraded = stats.find((stat) => stat.lifecycle !== 'ready');
      if (degraded !== undefined) {
        throw new ProblemError('UNAVAILABLE', `shard ${degraded.shard} is ${degraded.lifecycle}`);
      }
      // An idle shard only learns of an unreachable WAL at its next append; ask the store.
      const store = ctx.store;
      if (
        store !== null &&
        (await withTimeout(
          store.lastSeq(0).then(() => true),
          readinessTimeoutMs,
        )) !== true
      ) {
        throw new ProblemError('UNAVAILABLE', 'the WAL store does not answer');
      }
      return {
        status: 'ready' as const,
        shards: stats.map((stat) => ({ shard: stat.shard, lifecycle: stat.lifecycle, seq: stat.seq })),
      };
    },
  );

  app.get(
    '/metrics',
    {
      onRequest: ctx.auth('read'),
      config: { rateLimit: false },
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics',
        security: keyed,
        produces: ['text/plain'],
        response: { 200: Type.String(), ...problemResponses(401, 403) },
      },
    },
    async (_request, reply) => {
      const text = await ctx.metrics.render();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    },
  );
}
