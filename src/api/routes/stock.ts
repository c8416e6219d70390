/**
 * Stock levels: set absolutely (compare-and-set, last-writer-wins by source time), adjust
 * by deltas with idempotency keys, read per SKU.
 */
import type { AdjustStock, SetStock } from '../../actors/types.js';
import type { ApiContext } from '../context.js';
import { problemOfRejection } from '../problem.js';
import { stockBody, stockOfSkuBody, unexpectedReply } from '../replies.js';
import { problemResponses } from '../schemas.js';
import { type ApiApp, keyed } from './types.js';

export function stockRoutes(app: ApiApp, ctx: ApiContext): void {
  const s = ctx.schemas;

  app.put(
    '/v1/stock/:sku/:location',
    {
      onRequest: ctx.auth('write'),
      schema: {
        tags: ['stock'],
        summary: 'Set the stock level of a SKU at a location',
        description:
          'Absolute level from the WMS/ERP. `ifVersion` makes it a compare-and-set; `sourceTs` (the source system’s time) refuses an update older than the last one applied.',
        security: keyed,
        params: s.StockParams,
        body: s.SetStockBody,
        response: { 200: s.StockRecord, ...problemResponses(400, 401, 403, 409, 413, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const { sku, location } = request.params;
      const body = request.body;
      const command: { -readonly [K in keyof SetStock]: SetStock[K] } = {
        type: 'set',
        sku,
        location,
        onHand: body.onHand,
      };
      if (body.safetyStock !== undefined) command.safetyStock = body.safetyStock;
      if (body.ifVersion !== undefined) command.ifVersion = body.ifVersion;
      if (body.sourceTs !== undefined) command.sourceTs = body.sourceTs;
      const result = await ctx.ready().execute(command);
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'stock') throw unexpectedReply(result, 'stock');
      return stockBody(result.record);
    },
  );

  app.post(
    '/v1/stock/adjustments',
    {
      onRequest: ctx.auth('write'),
      schema: {
        tags: ['stock'],
        summary: 'Adjust stock levels by deltas (idempotent by key)',
        description:
          'Each item is applied on its own and answered in order: `applied`, `duplicate` (the key was seen with the same body within 24 h; nothing changed) or `rejected` with its problem.',
        security: keyed,
        body: s.AdjustmentsBody,
        response: { 200: s.AdjustmentsReply, ...problemResponses(400, 401, 403, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const items = request.body.adjustments;
      const commands: AdjustStock[] = items.map((item) => ({
        type: 'adjust',
        sku: item.sku,
        location: item.location,
        delta: item.delta,
        reason: item.reason,
        key: item.key,
      }));
      const replies = await ctx.ready().executeMany(commands);
      const results = replies.map((result, i) => {
        const { sku, location, key } = items[i]!;
        if (!result.ok) {
          const error = problemOfRejection(result);
          ctx.metrics.rejection(error.code);
          return { sku, location, key, status: 'rejected' as const, error };
        }
        if (result.kind !== 'stock') throw unexpectedReply(result, 'stock');
        return {
          sku,
          location,
          key,
          status: result.duplicate === true ? ('duplicate' as const) : ('applied' as const),
          stock: stockBody(result.record),
        };
      });
      return { results };
    },
  );

  app.get(
    '/v1/stock/:sku',
    {
      onRequest: ctx.auth('read'),
      schema: {
        tags: ['stock'],
        summary: 'Stock of a SKU at every location, with totals',
        security: keyed,
        params: s.SkuParams,
        response: { 200: s.StockOfSku, ...problemResponses(400, 401, 403, 404, 429, 503) },
      },
    },
    async (request, reply) => {
      const result = await ctx.ready().execute({ type: 'stock', sku: request.params.sku });
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'stockList') throw unexpectedReply(result, 'stockList');
      return stockOfSkuBody(result.sku, result.locations);
    },
  );
}
