/**
 * Errors as RFC 9457 problem details (`application/problem+json`):
 *
 *   { type, title, status, code, detail }   (+ shortages, currentVersion when the engine gave them)
 *
 * Every error the API answers has a stable `code` from src/errors.ts, whatever raised it:
 * an engine rejection, a schema violation, a body the parser refused, an unknown route, a
 * missing key, the rate limiter. `type` is a URN made from the code, so it is stable and
 * needs no web site; `title` and `status` come from the one error table.
 */
import type { FastifyError, FastifyReply } from 'fastify';
import { type ErrorCode, errorDefinitions, type Rejection, type Shortage } from '../errors.js';

export const problemContentType = 'application/problem+json; charset=utf-8';

/** Code for an unexpected exception: a bug, never the input's fault (docs/errors.md). */
export const internalErrorCode = 'INTERNAL_ERROR';

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode | typeof internalErrorCode;
  readonly detail: string;
  readonly shortages?: readonly Shortage[];
  readonly currentVersion?: number;
}

/** Seconds a client should wait before retrying a 503 (OVERLOADED, UNAVAILABLE). */
export const retryAfterSeconds = 1;

export function problemTypeOf(code: string): string {
  return `urn:stockd:error:${code}`;
}

/** An error that already knows its problem; thrown by hooks, validators and handlers alike. */
export class ProblemError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly shortages: readonly Shortage[] | undefined;
  readonly currentVersion: number | undefined;
  /** Sent as Retry-After (seconds) when set. */
  readonly retryAfter: number | undefined;

  constructor(
    code: ErrorCode,
    detail: string,
    extra: Partial<Pick<Rejection, 'shortages' | 'currentVersion'>> & { retryAfter?: number } = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
    this.code = code;
    this.statusCode = errorDefinitions[code].status;
    this.shortages = extra.shortages;
    this.currentVersion = extra.currentVersion;
    this.retryAfter = extra.retryAfter;
  }
}

export function problemOf(
  code: ErrorCode,
  detail: string,
  extra?: Partial<Pick<Rejection, 'shortages' | 'currentVersion'>>,
): Problem {
  const definition = errorDefinitions[code];
  const problem: {
    type: string;
    title: string;
    status: number;
    code: ErrorCode;
    detail: string;
    shortages?: readonly Shortage[];
    currentVersion?: number;
  } = { type: problemTypeOf(code), title: definition.title, status: definition.status, code, detail };
  if (extra?.shortages !== undefined) problem.shortages = extra.shortages;
  if (extra?.currentVersion !== undefined) problem.currentVersion = extra.currentVersion;
  return problem;
}

export function problemOfRejection(rejection: Rejection): Problem {
  return problemOf(rejection.code, rejection.detail, rejection);
}

/**
 * Any error thrown in a request's lifecycle as a problem. Fastify's own errors (parser,
 * body limit, media type, closing) keep their meaning under our codes; anything else is a
 * bug and becomes INTERNAL_ERROR, which the caller logs.
 */
export function problemOfError(error: unknown): Problem {
  if (error instanceof ProblemError) {
    return problemOf(error.code, error.message, error);
  }
  const fastifyError = error as Partial<FastifyError> | null;
  const status = typeof fastifyError?.statusCode === 'number' ? fastifyError.statusCode : 500;
  const detail = typeof fastifyError?.message === 'string' ? fastifyError.message : 'unexpected error';
  switch (fastifyError?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problemOf('LIMIT_EXCEEDED', detail);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problemOf('UNSUPPORTED_MEDIA_TYPE', detail);
    default:
      break;
  }
  if (status === 404) return problemOf('ROUTE_NOT_FOUND', detail);
  if (status === 413) return problemOf('LIMIT_EXCEEDED', detail);
  if (status === 415) return problemOf('UNSUPPORTED_MEDIA_TYPE', detail);
  if (status === 429) return problemOf('RATE_LIMITED', detail);
  if (status === 503) return problemOf('UNAVAILABLE', detail);
  if (status >= 400 && status < 500) return problemOf('INVALID_REQUEST', detail);
  return {
    type: problemTypeOf(internalErrorCode),
    title: 'Internal error',
    status: 500,
    code: internalErrorCode,
    detail: 'unexpected error; it has been logged',
  };
}

/**
 * Writes a problem. Strings are sent as they are, so no response schema of the route can
 * reshape the body; 503 gets Retry-After (a rate limiter's own header is kept).
 */
export function sendProblem(reply: FastifyReply, problem: Problem, retryAfter?: number): FastifyReply {
  reply.code(problem.status).type(problemContentType);
  if (retryAfter !== undefined) reply.header('retry-after', retryAfter);
  else if (problem.status === 503 && !reply.hasHeader('retry-after'))
    reply.header('retry-after', retryAfterSeconds);
  return reply.send(JSON.stringify(problem));
}
