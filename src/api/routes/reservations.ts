/**
 * Reservations: hold (idempotent by reservation id), read, commit (all or some lines),
 * release, extend. The hot path of the API: one schema check, one engine call, one
 * compiled serializer; a refusal is answered without an exception.
 */
import type { Commit, Reserve } from '../../actors/types.js';
import type { ApiContext } from '../context.js';
import { ProblemError } from '../problem.js';
import { reservationBody, reservationCreatedBody, unexpectedReply } from '../replies.js';
import { problemResponses, type ReserveBody } from '../schemas.js';
import { type ApiApp, keyed } from './types.js';

/** The engine command for a reserve body; only the fields the contract defines are copied. */
export function reserveCommand(reservationId: string, body: Omit<ReserveBody, 'reservationId'>): Reserve {
  const command: { -readonly [K in keyof Reserve]: Reserve[K] } = {
    type: 'reserve',
    reservationId,
    lines: body.lines,
  };
  if (body.orderId !== undefined) command.orderId = body.orderId;
  if (body.channel !== undefined) command.channel = body.channel;
  if (body.ttlSeconds !== undefined) command.ttlSeconds = body.ttlSeconds;
  if (body.strategy !== undefined) command.strategy = body.strategy;
  return command;
}

export function reservationRoutes(app: ApiApp, ctx: ApiContext): void {
  const s = ctx.schemas;

  app.post(
    '/v1/reservations',
    {
      onRequest: ctx.auth('write'),
      schema: {
        tags: ['reservations'],
        summary: 'Hold stock for an order (idempotent)',
        description:
          'All or nothing across lines and shards. The reservation id is the idempotency key: give it in the body or as the `Idempotency-Key` header (both: they must agree). The same request again answers 200 with `Idempotent-Replayed: true` and the reservation as it is now; the same id with another body is 422 IDEMPOTENCY_KEY_REUSED. A refused request holds nothing, so its id stays free.',
        security: keyed,
        headers: s.ReserveHeaders,
        body: s.ReserveBody,
        response: {
          201: s.ReservationCreated,
          200: s.ReservationCreated,
          ...problemResponses(400, 401, 403, 409, 413, 415, 422, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const header = request.headers['idempotency-key'];
      let reservationId = body.reservationId;
      if (header !== undefined) {
        if (reservationId === undefined) reservationId = header;
        else if (reservationId !== header) {
          throw new ProblemError('INVALID_REQUEST', 'the Idempotency-Key header and reservationId differ');
        }
      }
      if (reservationId === undefined) {
        throw new ProblemError(
          'INVALID_REQUEST',
          'a reservationId (body) or an Idempotency-Key header is required',
        );
      }
      const result = await ctx.ready().execute(reserveCommand(reservationId, body));
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      if (result.replayed) reply.code(200).header('idempotent-replayed', 'true');
      else reply.code(201);
      return reservationCreatedBody(result.reservation);
    },
  );

  app.get(
    '/v1/reservations/:id',
    {
      onRequest: ctx.auth('read'),
      schema: {
        tags: ['reservations'],
        summary: 'A reservation and its lines',
        security: keyed,
        params: s.ReservationParams,
        response: { 200: s.Reservation, ...problemResponses(400, 401, 403, 404, 429, 503) },
      },
    },
    async (request, reply) => {
      const result = await ctx.ready().execute({ type: 'get', reservationId: request.params.id });
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      return reservationBody(result.reservation);
    },
  );

  app.post(
    '/v1/reservations/:id/commit',
    {
      onRequest: ctx.auth('write'),
      schema: {
        tags: ['reservations'],
        summary: 'Commit (ship) a reservation, or some of its lines',
        description:
          'Without a body every held line ships. With `{lines}` only the named lines are settled: `qty` units ship and the rest of that line is released; unnamed lines stay held. Committing a committed reservation again answers 200 with its state; after release or expiry it is 409 RESERVATION_NOT_HELD.',
        security: keyed,
        params: s.ReservationParams,
        body: s.CommitBody,
        response: {
          200: s.Reservation,
          ...problemResponses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const command: { -readonly [K in keyof Commit]: Commit[K] } = {
        type: 'commit',
        reservationId: request.params.id,
      };
      const lines = request.body?.lines;
      if (lines !== undefined) command.lines = lines;
      const result = await ctx.ready().execute(command);
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      return reservationBody(result.reservation);
    },
  );

  app.post(
    '/v1/reservations/:id/release',
    {
      onRequest: ctx.auth('write'),
      schema: {
        tags: ['reservations'],
        summary: 'Release a reservation',
        description:
          'Releasing a released reservation again answers 200 with its state; after commit or expiry it is 409 RESERVATION_NOT_HELD.',
        security: keyed,
        params: s.ReservationParams,
        response: { 200: s.Reservation, ...problemResponses(400, 401, 403, 404, 409, 429, 503) },
      },
    },
    async (request, reply) => {
      const result = await ctx.ready().execute({ type: 'release', reservationId: request.params.id });
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      return reservationBody(result.reservation);
    },
  );

  app.post(
    '/v1/reservations/:id/extend',
    {
      onRequest: ctx.auth('write'),
      schema: {
        tags: ['reservations'],
        summary: 'Extend a held reservation',
        description: 'Sets `expiresAt` to now + `ttlSeconds`.',
        security: keyed,
        params: s.ReservationParams,
        body: s.ExtendBody,
        response: {
          200: s.Reservation,
          ...problemResponses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const result = await ctx
        .ready()
        .execute({ type: 'extend', reservationId: request.params.id, ttlSeconds: request.body.ttlSeconds });
      if (!result.ok) return ctx.reject(reply, result);
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      return reservationBody(result.reservation);
    },
  );
}
