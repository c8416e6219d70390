/** Sales channels: the locations each one sells from, in priority order, and its buffer. */
import type { UpsertChannel } from '../../actors/types.js';
import type { ApiContext } from '../context.js';
import { channelBody, unexpectedReply } from '../replies.js';
import { problemResponses } from '../schemas.js';
import { type ApiApp, keyed } from './types.js';

export function channelRoutes(app: ApiApp, ctx: ApiContext): void {
  const s = ctx.schemas;

  app.put(
    '/v1/channels/:channel',
    {
      onRequest: ctx.auth('admin'),
      schema: {
        tags: ['channels'],
        summary: 'Create or replace a channel',
        description:
          'Configuration, logged like any other change. Channel ATP of a SKU = Σ available over the locations − buffer, floored at 0. Needs the admin scope.',
        security: keyed,
        params: s.ChannelParams,
        body: s.ChannelBody,
        response: { 200: s.Channel, ...problemResponses(400, 401, 403, 413, 415, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const command: { -readonly [K in keyof UpsertChannel]: UpsertChannel[K] } = {
        type: 'channel',
        channel: request.params.channel,
        locations: request.body.locations,
      };
      if (request.body.buffer !== undefined) command.buffer = request.body.buffer;
      const result = await ctx.ready().execute(command);
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'channel') throw unexpectedReply(result, 'channel');
      return channelBody(result.channel);
    },
  );

  app.get(
    '/v1/channels',
    {
      onRequest: ctx.auth('read'),
      schema: {
        tags: ['channels'],
        summary: 'List the channels',
        security: keyed,
        response: { 200: s.ChannelList, ...problemResponses(401, 403, 429, 503) },
      },
    },
    async (_request, reply) => {
      const result = await ctx.ready().execute({ type: 'channels' });
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'channels') throw unexpectedReply(result, 'channels');
      return { channels: result.channels.map(channelBody) };
    },
  );
}
