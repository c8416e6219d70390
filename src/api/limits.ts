/**
 * The HTTP API's own limits. The engine's limits (lines per reservation, id bytes,
 * quantities, TTLs) live in src/config.ts and are enforced by the schemas built from
 * them; these bound what only the API sees: bodies, list lengths, pages, streams.
 * docs/api.md lists every one of them.
 */

export interface ApiLimits {
  /** Bytes in a request body, JSON or msgpack, on every route but /v1/batch. */
  readonly bodyBytesMax: number;
  /** Bytes in a /v1/batch body. */
  readonly batchBodyBytesMax: number;
  /** Commands in one /v1/batch request. */
  readonly batchCommandsMax: number;
  /** Items in one POST /v1/stock/adjustments. */
  readonly adjustmentsMax: number;
  /** SKUs in one POST /v1/atp/query. */
  readonly atpQuerySkusMax: number;
  /** Events in one GET /v1/events page, and the default when `limit` is absent. */
  readonly eventsPageMax: number;
  readonly eventsPageDefault: number;
  /** Open SSE streams (`Accept: text/event-stream`) at once. */
  readonly sseClientsMax: number;
  /** An SSE stream with nothing to send writes a comment this often, so proxies keep it open. */
  readonly sseHeartbeatMs: number;
  /** Characters of one path parameter as sent (percent-encoded); longer is INVALID_REQUEST. */
  readonly pathParamLengthMax: number;
  /** Characters of an adjustment's `reason` (the engine's own bound). */
  readonly reasonLengthMax: number;
  /** Recent WAL rows per stream the change feed keeps decoded for live tails. */
  readonly feedRecentRowsMax: number;
}

export const defaultApiLimits: ApiLimits = Object.freeze({
  bodyBytesMax: 1_048_576,
  batchBodyBytesMax: 16 * 1_048_576,
  batchCommandsMax: 10_000,
  adjustmentsMax: 1_000,
  atpQuerySkusMax: 1_000,
  eventsPageMax: 1_000,
  eventsPageDefault: 100,
  sseClientsMax: 256,
  sseHeartbeatMs: 15_000,
  pathParamLengthMax: 1_024,
  reasonLengthMax: 256,
  feedRecentRowsMax: 256,
});

/** Merges overrides onto the defaults and checks them, like assertLimits does for the engine. */
export function apiLimitsWith(overrides: Partial<ApiLimits> = {}): ApiLimits {
  const limits: ApiLimits = { ...defaultApiLimits, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new Error(`invalid API limits: ${name} must be a positive integer, got ${value}`);
    }
  }
  if (limits.eventsPageDefault > limits.eventsPageMax) {
    throw new Error('invalid API limits: eventsPageDefault must be <= eventsPageMax');
  }
  return Object.freeze(limits);
}
