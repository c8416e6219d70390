/**
 * Operations as HTTP calls of the contract (issue 4, docs/api.md), and HTTP answers as
 * outcomes. Every target behind HTTP — stockd and the alternatives — is spoken to through
 * this one mapping, so they receive byte-for-byte the same requests.
 *
 *   set      PUT  /v1/stock/{sku}/{location}          {onHand, safetyStock?, ifVersion?, sourceTs?}
 *   reserve  POST /v1/reservations                    {reservationId, orderId?, channel?, ttlSeconds?, strategy?, lines}
 *   commit   POST /v1/reservations/{id}/commit        (no body, or {lines})
 *   release  POST /v1/reservations/{id}/release
 *   extend   POST /v1/reservations/{id}/extend        {ttlSeconds}
 *   get      GET  /v1/reservations/{id}
 *   atp      GET  /v1/atp/{sku}?channel=&location=
 *   stock    GET  /v1/stock/{sku}
 *   batch    POST /v1/batch                           {commands: [{op, …}]}
 */
import type { Request } from '../../src/actors/types.js';
import type { Operation, Outcome } from './operation.js';
import { okOutcome } from './operation.js';

export interface HttpCall {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly path: string;
  /** JSON text, or undefined for a bodiless request. */
  readonly body: string | undefined;
}

const enc = encodeURIComponent;

/** The JSON body fields a command shares between its own route and its /v1/batch form. */
function fieldsOf(request: Request): Record<string, unknown> {
  const { type: _type, ...fields } = request as Request & Record<string, unknown>;
  return fields;
}

function callOf(request: Request): HttpCall {
  switch (request.type) {
    case 'set': {
      const { sku, location, ...body } = fieldsOf(request);
      return {
        method: 'PUT',
        path: `/v1/stock/${enc(String(sku))}/${enc(String(location))}`,
        body: JSON.stringify(body),
      };
    }
    case 'reserve': {
      const { bodyHash: _bodyHash, ...body } = fieldsOf(request);
      return { method: 'POST', path: '/v1/reservations', body: JSON.stringify(body) };
    }
    case 'commit':
      return {
        method: 'POST',
        path: `/v1/reservations/${enc(request.reservationId)}/commit`,
        body: request.lines === undefined ? undefined : JSON.stringify({ lines: request.lines }),
      };
    case 'release':
      return {
        method: 'POST',
        path: `/v1/reservations/${enc(request.reservationId)}/release`,
        body: undefined,
      };
    case 'extend':
      return {
        method: 'POST',
        path: `/v1/reservations/${enc(request.reservationId)}/extend`,
        body: JSON.stringify({ ttlSeconds: request.ttlSeconds }),
      };
    case 'get':
      return { method: 'GET', path: `/v1/reservations/${enc(request.reservationId)}`, body: undefined };
    case 'atp': {
      const query = new URLSearchParams();
      if (request.channel !== undefined) query.set('channel', request.channel);
      if (request.location !== undefined) query.set('location', request.location);
      const search = query.size > 0 ? `?${query}` : '';
      return { method: 'GET', path: `/v1/atp/${enc(request.sku)}${search}`, body: undefined };
    }
    case 'stock':
      return { method: 'GET', path: `/v1/stock/${enc(request.sku)}`, body: undefined };
    default:
      throw new Error(`no HTTP route sends a ${request.type} request`);
  }
}

const batchOps = new Set(['reserve', 'commit', 'release', 'extend', 'adjust', 'set', 'atp']);

/** A command in its /v1/batch form: `{op, …the fields of its route}`. */
export function batchCommandOf(request: Request): Record<string, unknown> {
  if (!batchOps.has(request.type)) throw new Error(`/v1/batch has no ${request.type} op`);
  const { bodyHash: _bodyHash, ...fields } = fieldsOf(request);
  return { op: request.type, ...fields };
}

export function httpCallOf(operation: Operation): HttpCall {
  if (!operation.batch) return callOf(operation.requests[0]!);
  return {
    method: 'POST',
    path: '/v1/batch',
    body: JSON.stringify({ commands: operation.requests.map(batchCommandOf) }),
  };
}

/** The problem code of an error body, else `HTTP_<status>`. */
function codeOf(status: number, body: string): Outcome {
  try {
    const code = (JSON.parse(body) as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  } catch {
    // Not JSON (a proxy's page, an empty body): the status says what there is to say.
  }
  return `HTTP_${status}`;
}

/** One outcome per command of the operation. */
export function outcomesOf(operation: Operation, status: number, body: string): Outcome[] {
  if (!operation.batch) return [status >= 200 && status < 300 ? okOutcome : codeOf(status, body)];
  const count = operation.requests.length;
  if (status !== 200) return new Array<Outcome>(count).fill(codeOf(status, body));
  let results: Array<{ status: number; body?: { code?: string } }>;
  try {
    results = (JSON.parse(body) as { results: typeof results }).results;
  } catch {
    return new Array<Outcome>(count).fill('HTTP_BAD_BODY');
  }
  const outcomes: Outcome[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const result = results[i];
    if (result === undefined) outcomes[i] = 'HTTP_BAD_BODY';
    else if (result.status >= 200 && result.status < 300) outcomes[i] = okOutcome;
    else outcomes[i] = typeof result.body?.code === 'string' ? result.body.code : `HTTP_${result.status}`;
  }
  return outcomes;
}
