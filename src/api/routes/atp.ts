/** Available-to-promise: one SKU (optionally per channel and location), or many at once. */
import type { GetAtp } from '../../actors/types.js';
import type { ApiContext } from '../context.js';
import { unexpectedReply } from '../replies.js';
import { problemResponses } from '../schemas.js';
import { type ApiApp, keyed } from './types.js';

export function atpRoutes(app: ApiApp, ctx: ApiContext): void {
  const s = ctx.schemas;

  app.get(
    '/v1/atp/:sku',
    {
      onRequest: ctx.auth('read'),
      schema: {
        tags: ['atp'],
        summary: 'ATP of a SKU',
        description:
          'Without a channel: every location of the SKU, no buffer. With `location`: that location only (it must belong to the channel when one is given).',
        security: keyed,
        params: s.SkuParams,
        querystring: s.AtpQuery,
        response: { 200: s.Atp, ...problemResponses(400, 401, 403, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const query: { -readonly [K in keyof GetAtp]: GetAtp[K] } = { type: 'atp', sku: request.params.sku };
      if (request.query.channel !== undefined) query.channel = request.query.channel;
      if (request.query.location !== undefined) query.location = request.query.location;
      const result = await ctx.ready().execute(query);
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'atp') throw unexpectedReply(result, 'atp');
      return { sku: result.sku, available: result.available, byLocation: result.byLocation };
    },
  );

  app.post(
    '/v1/atp/query',
    {
      onRequest: ctx.auth('read'),
      schema: {
        tags: ['atp'],
        summary: 'ATP of many SKUs in one channel',
        description:
          'Items come back in the order asked. A refusal (e.g. an unknown channel) answers the whole request.',
        security: keyed,
        body: s.AtpBulkBody,
        response: { 200: s.AtpBulk, ...problemResponses(400, 401, 403, 413, 415, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const { skus, channel } = request.body;
      const queries: GetAtp[] = skus.map((sku) =>
        channel === undefined ? { type: 'atp', sku } : { type: 'atp', sku, channel },
      );
      const replies = await ctx.ready().executeMany(queries);
      const items: Array<{ sku: string; available: number }> = new Array(replies.length);
      for (let i = 0; i < replies.length; i++) {
        const result = replies[i]!;
        if (!result.ok) return ctx.reject(reply, result);
        if (result.kind !== 'atp') throw unexpectedReply(result, 'atp');
        items[i] = { sku: result.sku, available: result.available };
      }
      return { items };
    },
  );
}
