/**
 * Every request and response shape of the HTTP API, as TypeBox schemas: one definition
 * gives the TypeScript types, the request validation, the response serializer and the
 * OpenAPI document. They are built from the engine's limits, so a limit changed in
 * src/config.ts changes the validation and the documentation together.
 *
 * Request bodies refuse unknown fields (a typo must not silently drop a constraint);
 * properties whose violation means a specific rejection carry its code (see validation.ts).
 */
import { type Static, type TSchema, Type } from 'typebox';
import type { Limits } from '../config.js';
import { errorCodes } from '../errors.js';
import type { ApiLimits } from './limits.js';
import { internalErrorCode, problemContentType } from './problem.js';
import { codeKeyword, optionalBodyKeyword } from './validation.js';

const closed = { additionalProperties: false } as const;

/** A string or null, as one JSON Schema type (cheap for the serializer, valid OpenAPI 3.1). */
function nullableString(description: string) {
  return Type.Unsafe<string | null>({ type: ['string', 'null'], description });
}

export function buildSchemas(engine: Limits, api: ApiLimits) {
  const id = (description: string) =>
    Type.String({
      minLength: 1,
      maxLength: engine.idBytesMax,
      description: `${description} (1..${engine.idBytesMax} UTF-8 bytes)`,
    });
  const quantity = (description: string) =>
    Type.Integer({ minimum: 1, maximum: engine.quantityMax, description, [codeKeyword]: 'INVALID_QUANTITY' });
  const level = (description: string) =>
    Type.Integer({ minimum: 0, maximum: engine.quantityMax, description, [codeKeyword]: 'INVALID_QUANTITY' });
  const ttl = (description: string) =>
    Type.Integer({
      minimum: engine.ttlSecondsMin,
      maximum: engine.ttlSecondsMax,
      description,
      [codeKeyword]: 'INVALID_TTL',
    });
  const epochMs = (description: string) => Type.Integer({ minimum: 0, description });

  const Sku = id('SKU');
  const Location = id('location id');
  const Strategy = Type.Enum(['priority', 'most_available', 'split'], {
    description:
      'How lines without a location are sourced: first channel location that can fill the line (priority, default), the location with most available, or split across locations in channel order.',
  });

  /* ------------------------------------------------------------------------ stock */

  const StockParams = Type.Object({ sku: Sku, location: Location });
  const SkuParams = Type.Object({ sku: Sku });
  const SetStockBody = Type.Object(
    {
      onHand: level('units on hand'),
      safetyStock: Type.Optional(level('units held back from every channel at this location')),
      ifVersion: Type.Optional(
        Type.Integer({
          minimum: 0,
          description: 'apply only if the record is at this version (0: must not exist)',
        }),
      ),
      sourceTs: Type.Optional(
        epochMs('source system timestamp (ms); older than the last one applied is STALE_UPDATE'),
      ),
    },
    closed,
  );
  const StockRecord = Type.Object({
    sku: Type.String(),
    location: Type.String(),
    onHand: Type.Integer(),
    reserved: Type.Integer(),
    safetyStock: Type.Integer(),
    available: Type.Integer({ description: 'max(0, onHand − reserved − safetyStock)' }),
    version: Type.Integer({ description: 'bumped by every change; the ifVersion target' }),
  });
  const StockLocation = Type.Object({
    location: Type.String(),
    onHand: Type.Integer(),
    reserved: Type.Integer(),
    safetyStock: Type.Integer(),
    available: Type.Integer(),
    version: Type.Integer(),
  });
  const StockOfSku = Type.Object({
    sku: Type.String(),
    locations: Type.Array(StockLocation),
    totals: Type.Object({ onHand: Type.Integer(), reserved: Type.Integer(), available: Type.Integer() }),
  });
  const Adjustment = Type.Object(
    {
      sku: Sku,
      location: Location,
      delta: Type.Integer({
        minimum: -engine.quantityMax,
        maximum: engine.quantityMax,
        description: 'non-zero change of on-hand',
        [codeKeyword]: 'INVALID_QUANTITY',
      }),
      reason: Type.String({ maxLength: api.reasonLengthMax, description: 'free text, kept in the log' }),
      key: id('idempotency key, unique per SKU for 24 h'),
    },
    closed,
  );
  const AdjustmentsBody = Type.Object(
    { adjustments: Type.Array(Adjustment, { minItems: 1, maxItems: api.adjustmentsMax }) },
    closed,
  );
  const AdjustmentResult = Type.Object({
    sku: Type.String(),
    location: Type.String(),
    key: Type.String(),
    status: Type.Enum(['applied', 'duplicate', 'rejected']),
    stock: Type.Optional(StockRecord),
    error: Type.Optional(Type.Unsafe({ $ref: 'Problem#' })),
  });
  const AdjustmentsReply = Type.Object({ results: Type.Array(AdjustmentResult) });

  /* --------------------------------------------------------------------- channels */

  const ChannelParams = Type.Object({ channel: id('channel id') });
  const ChannelBody = Type.Object(
    {
      locations: Type.Array(Location, {
        minItems: 1,
        maxItems: engine.channelLocationsMax,
        description: 'locations the channel sells from, in priority order',
      }),
      buffer: Type.Optional(level('units held back from this channel (default 0)')),
    },
    closed,
  );
  const Channel = Type.Object({
    channel: Type.String(),
    locations: Type.Array(Type.String()),
    buffer: Type.Integer(),
  });
  const ChannelList = Type.Object({ channels: Type.Array(Channel) });

  /* -------------------------------------------------------------------------- ATP */

  const AtpQuery = Type.Object(
    { channel: Type.Optional(id('channel id')), location: Type.Optional(Location) },
    closed,
  );
  const Atp = Type.Object({
    sku: Type.String(),
    available: Type.Integer({ description: 'channel ATP: Σ available over its locations − buffer, ≥ 0' }),
    byLocation: Type.Record(Type.String(), Type.Integer()),
  });
  const AtpBulkBody = Type.Object(
    {
      skus: Type.Array(Sku, { minItems: 1, maxItems: api.atpQuerySkusMax }),
      channel: Type.Optional(id('channel id')),
    },
    closed,
  );
  const AtpBulk = Type.Object({
    items: Type.Array(Type.Object({ sku: Type.String(), available: Type.Integer() })),
  });

  /* ----------------------------------------------------------------- reservations */

  const LineRequest = Type.Object(
    { sku: Sku, qty: quantity('units'), location: Type.Optional(Location) },
    closed,
  );
  const reserveFields = {
    orderId: Type.Optional(id('order id')),
    channel: Type.Optional(id('channel id; without one, all of the SKU’s locations and no buffer')),
    ttlSeconds: Type.Optional(
      ttl(
        `hold time, ${engine.ttlSecondsMin}..${engine.ttlSecondsMax} (default ${engine.ttlSecondsDefault})`,
      ),
    ),
    strategy: Type.Optional(Strategy),
    lines: Type.Array(LineRequest, {
      minItems: 1,
      maxItems: engine.reservationLinesMax,
      description: 'lines of one SKU are summed before the check; all or nothing',
    }),
  };
  const ReserveBody = Type.Object(
    {
      reservationId: Type.Optional(id('the idempotency key; the Idempotency-Key header serves when absent')),
      ...reserveFields,
    },
    closed,
  );
  const ReserveHeaders = Type.Object({
    'idempotency-key': Type.Optional(id('reservation id when the body has none')),
  });
  const ReservationParams = Type.Object({ id: id('reservation id') });
  const ReservationStatus = Type.Enum(['held', 'committed', 'released', 'expired']);
  const ReservationCreated = Type.Object({
    reservationId: Type.String(),
    status: ReservationStatus,
    expiresAt: Type.Integer({ description: 'ms since the Unix epoch' }),
    lines: Type.Array(Type.Object({ sku: Type.String(), location: Type.String(), qty: Type.Integer() })),
  });
  const Reservation = Type.Object({
    reservationId: Type.String(),
    orderId: nullableString('order id, or null'),
    channel: nullableString('channel, or null'),
    status: ReservationStatus,
    createdAt: Type.Integer({ description: 'ms since the Unix epoch' }),
    expiresAt: Type.Integer({ description: 'ms since the Unix epoch' }),
    lines: Type.Array(
      Type.Object({
        sku: Type.String(),
        location: Type.String(),
        qty: Type.Integer({ description: 'units allocated' }),
        held: Type.Integer({ description: 'units still held' }),
        committed: Type.Integer({ description: 'units shipped' }),
      }),
    ),
  });
  const CommitLine = Type.Object(
    {
      sku: Sku,
      location: Type.Optional(Location),
      qty: Type.Optional(quantity('units shipped (default: all held); the rest of the line is released')),
    },
    closed,
  );
  const commitLines = Type.Array(CommitLine, {
    minItems: 1,
    maxItems: engine.reservationLinesMax,
    description: 'partial commit: the named lines are settled; unnamed lines stay held',
  });
  const CommitBody = Type.Object(
    { lines: Type.Optional(commitLines) },
    { ...closed, [optionalBodyKeyword]: true, description: 'optional; without it every held line ships' },
  );
  const ExtendBody = Type.Object({ ttlSeconds: ttl('new hold time from now') }, closed);

  /* ------------------------------------------------------------------------ batch */

  const op = <T extends string>(name: T) => Type.Literal(name);
  const BatchCommands = {
    reserve: Type.Object(
      { op: op('reserve'), reservationId: id('reservation id'), ...reserveFields },
      closed,
    ),
    commit: Type.Object(
      { op: op('commit'), reservationId: id('reservation id'), lines: Type.Optional(commitLines) },
      closed,
    ),
    release: Type.Object({ op: op('release'), reservationId: id('reservation id') }, closed),
    extend: Type.Object(
      { op: op('extend'), reservationId: id('reservation id'), ttlSeconds: ttl('new hold time from now') },
      closed,
    ),
    adjust: Type.Object({ op: op('adjust'), ...Adjustment.properties }, closed),
    set: Type.Object({ op: op('set'), sku: Sku, location: Location, ...SetStockBody.properties }, closed),
    atp: Type.Object({ op: op('atp'), sku: Sku, ...AtpQuery.properties }, closed),
  };
  const BatchCommand = Type.Union(Object.values(BatchCommands));
  /** What the route documents: the commands and their union. */
  const BatchBody = Type.Object(
    { commands: Type.Array(BatchCommand, { minItems: 1, maxItems: api.batchCommandsMax }) },
    closed,
  );
  /** What the route checks up front: the envelope. Each command is checked on its own, so one bad command fails alone. */
  const BatchEnvelope = Type.Object(
    {
      commands: Type.Array(Type.Object({ op: Type.String() }), {
        minItems: 1,
        maxItems: api.batchCommandsMax,
      }),
    },
    closed,
  );
  const BatchReply = Type.Object({
    results: Type.Array(
      Type.Object({
        status: Type.Integer({ description: 'the HTTP status the single route would have answered' }),
        body: Type.Unsafe({
          description: 'the body the single route would have answered (a problem on error)',
        }),
      }),
    ),
  });

  /* ----------------------------------------------------------------------- events */

  const EventsQuery = Type.Object(
    {
      after: Type.Optional(
        Type.String({
          maxLength: 65_536,
          description:
            'cursor from a previous page (`next`) or an SSE id; `latest` for the current end; absent: the beginning',
        }),
      ),
      limit: Type.Optional(
        Type.Integer({ minimum: 1, maximum: api.eventsPageMax, default: api.eventsPageDefault }),
      ),
    },
    closed,
  );
  const FeedEvent = Type.Object(
    {
      shard: Type.Integer({ description: 'WAL stream (the shard that wrote it)' }),
      seq: Type.Integer({ description: 'WAL row within the stream' }),
      index: Type.Integer({ description: 'event within the row' }),
      epoch: Type.Integer({ description: 'layout epoch the row was written under' }),
      type: Type.String({ description: 'StockSet, StockAdjusted, ReservationHeld, …' }),
      at: Type.Integer({ description: 'ms since the Unix epoch' }),
    },
    { additionalProperties: true, description: 'a committed domain event; its own fields follow `at`' },
  );
  const EventsPage = Type.Object({
    events: Type.Array(FeedEvent),
    next: Type.String({ description: 'cursor for the next page (opaque)' }),
  });

  /* --------------------------------------------------------------------- problems */

  const Problem = Type.Object(
    {
      type: Type.String({ description: 'urn:stockd:error:<code>' }),
      title: Type.String(),
      status: Type.Integer(),
      code: Type.Enum([...errorCodes, internalErrorCode]),
      detail: Type.String(),
      shortages: Type.Optional(
        Type.Array(Type.Object({ sku: Type.String(), requested: Type.Integer(), available: Type.Integer() })),
      ),
      currentVersion: Type.Optional(Type.Integer()),
    },
    { $id: 'Problem', description: 'RFC 9457 problem details with a stable code (docs/errors.md)' },
  );

  return {
    Sku,
    StockParams,
    SkuParams,
    SetStockBody,
    StockRecord,
    StockOfSku,
    AdjustmentsBody,
    AdjustmentsReply,
    ChannelParams,
    ChannelBody,
    Channel,
    ChannelList,
    AtpQuery,
    Atp,
    AtpBulkBody,
    AtpBulk,
    ReserveBody,
    ReserveHeaders,
    ReservationParams,
    ReservationCreated,
    Reservation,
    CommitBody,
    ExtendBody,
    BatchCommands,
    BatchBody,
    BatchEnvelope,
    BatchReply,
    EventsQuery,
    EventsPage,
    Problem,
  };
}

export type Schemas = ReturnType<typeof buildSchemas>;
export type ReserveBody = Static<Schemas['ReserveBody']>;
export type BatchCommandBodies = {
  [K in keyof Schemas['BatchCommands']]: Static<Schemas['BatchCommands'][K]>;
};

/** Error responses of a route, for the OpenAPI document (problems are sent pre-serialized). */
export function problemResponses(...statuses: number[]): Record<string, TSchema> {
  const out: Record<string, TSchema> = {};
  for (const status of statuses) {
    out[String(status)] = {
      description: describeStatus(status),
      content: { [problemContentType.split(';')[0]!]: { schema: { $ref: 'Problem#' } } },
    } as unknown as TSchema;
  }
  return out;
}

function describeStatus(status: number): string {
  switch (status) {
    case 400:
      return 'malformed request (INVALID_REQUEST)';
    case 401:
      return 'no valid API key (UNAUTHORIZED)';
    case 403:
      return 'the key lacks the scope (FORBIDDEN)';
    case 404:
      return 'not found';
    case 409:
      return 'conflict with the current state';
    case 413:
      return 'a limit was exceeded (LIMIT_EXCEEDED)';
    case 410:
      return 'the cursor’s next events were removed by WAL retention (CURSOR_EXPIRED)';
    case 415:
      return 'unsupported Content-Type (UNSUPPORTED_MEDIA_TYPE)';
    case 422:
      return 'well-formed but invalid (quantities, TTL, channel, idempotency key reuse)';
    case 429:
      return 'rate limited (RATE_LIMITED); see Retry-After';
    case 503:
      return 'overloaded or unavailable; retry after Retry-After with the same id or key';
    default:
      return 'error';
  }
}
