/**
 * MessagePack on the wire (/v1/batch): `Content-Type: application/msgpack` in,
 * `Accept: application/msgpack` out. Plain MessagePack maps and arrays, without msgpackr's
 * record extension, so any client library can speak it. msgpackr renames a `__proto__`
 * key on decode, and every decoded value is checked against the same schemas as JSON,
 * so a Date, Map or binary where a string or number belongs is refused like a wrong type.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Packr } from 'msgpackr';
import { ProblemError } from './problem.js';

export const msgpackContentType = 'application/msgpack';
const msgpackTypes = [msgpackContentType, 'application/x-msgpack'];

const wire = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export function encodeMsgpack(value: unknown): Buffer {
  return wire.pack(value);
}

export function decodeMsgpack(bytes: Uint8Array): unknown {
  return wire.unpack(bytes);
}

/** Registers the msgpack body parser in this (encapsulated) scope only. */
export function acceptMsgpack(app: FastifyInstance, bodyLimit: number): void {
  app.addContentTypeParser(msgpackTypes, { parseAs: 'buffer', bodyLimit }, (_request, body, done) => {
    if ((body as Buffer).length === 0) {
      done(null, undefined);
      return;
    }
    try {
      done(null, decodeMsgpack(body as Buffer));
    } catch (error) {
      done(
        new ProblemError('INVALID_REQUEST', `the body is not valid MessagePack: ${(error as Error).message}`),
      );
    }
  });
}

/** True when the Accept header names msgpack; anything else gets JSON. */
export function wantsMsgpack(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  if (accept === undefined) return false;
  return accept.includes(msgpackContentType) || accept.includes('application/x-msgpack');
}
