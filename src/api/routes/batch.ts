/**
 * POST /v1/batch: many independent commands in one request, JSON or MessagePack.
 *
 *   {commands: [{op, ...}, …]} ──envelope check──▶ per command: schema check ──▶ Request
 *        │ a bad command becomes its own problem result; the others go on
 *        ▼
 *   engine.submitMany(requests, answer)  (straight into the shard mailboxes: no promise each,
 *        │                               and none for the call)
 *        ▼
 *   {results: [{status, body}, …]} in command order, each what the single route answers
 *
 * Commands are independent: there is no transaction across them, and their order only
 * matters per shard (the engine keeps each shard's mailbox order).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Reply, Request } from '../../actors/types.js';
import type { ApiContext } from '../context.js';
import { acceptMsgpack, encodeMsgpack, msgpackContentType, wantsMsgpack } from '../msgpack.js';
import { type Problem, ProblemError, problemOf, problemOfError, problemOfRejection } from '../problem.js';
import { reservationBody, reservationCreatedBody, stockBody, unexpectedReply } from '../replies.js';
import { type BatchCommandBodies, problemResponses } from '../schemas.js';
import { compileCheck } from '../validation.js';
import { reserveCommand } from './reservations.js';
import { type ApiApp, keyed } from './types.js';

type Op = keyof BatchCommandBodies;
type AnyCommand = BatchCommandBodies[Op];

interface Result {
  status: number;
  body: unknown;
}

export function batchRoutes(app: ApiApp, ctx: ApiContext): void {
  const s = ctx.schemas;
  const checks = new Map<string, (value: unknown) => ProblemError | null>(
    Object.entries(s.BatchCommands).map(([op, schema]) => [op, compileCheck(schema, '')]),
  );
  const ops = [...checks.keys()].join(', ');
  const envelope = compileCheck(s.BatchEnvelope, 'body');
  acceptMsgpack(app, ctx.limits.batchBodyBytesMax);

  const problemResult = (problem: Problem): Result => {
    ctx.metrics.rejection(problem.code);
    return { status: problem.status, body: problem };
  };

  app.post(
    '/v1/batch',
    {
      onRequest: ctx.auth('write'),
      bodyLimit: ctx.limits.batchBodyBytesMax,
      // The documented schema is the union of every command; what is checked up front is
      // only the envelope, so that one bad command fails alone (see checks above).
      validatorCompiler: ({ httpPart }) =>
        httpPart === 'body'
          ? (value: unknown) => {
              const problem = envelope(value ?? undefined);
              return problem === null ? { value } : { error: problem };
            }
          : (value: unknown) => ({ value }),
      schema: {
        tags: ['batch'],
        summary: 'Many independent commands in one request (JSON or MessagePack)',
        description: `op is one of ${ops}. Send \`Content-Type: application/msgpack\` for a MessagePack body and \`Accept: application/msgpack\` for a MessagePack answer. Each result is \`{status, body}\`: the status and body the single route would have answered (reserve: 201, or 200 for a replay). \`atp\` commands need the read scope as well.`,
        security: keyed,
        body: s.BatchBody,
        response: { 200: s.BatchReply, ...problemResponses(400, 401, 403, 413, 415, 429, 503) },
      },
    },
    (request, reply) => {
      const engine = ctx.ready();
      const commands = request.body.commands as unknown as readonly AnyCommand[];
      const count = commands.length;
      ctx.metrics.batch(count);
      const canRead = request.principal?.scopes.has('read') === true;
      // The commands' own problems, by index; null while there are none.
      let problems: Map<number, Result> | null = null;
      const refuse = (i: number, problem: Problem): void => {
        problems ??= new Map();
        problems.set(i, problemResult(problem));
      };
      const requests: Request[] = [];
      // What each answer needs of its request, kept for the round trip instead of the
      // request itself: the request holds the decoded body's lines and strings.
      const answers: Answer[] = [];
      for (let i = 0; i < count; i++) {
        const command = commands[i]!;
        const check = checks.get(command.op);
        if (check === undefined) {
          refuse(i, problemOf('INVALID_REQUEST', `commands/${i}/op must be one of ${ops}`));
          continue;
        }
        const invalid = check(command);
        if (invalid !== null) {
          const problem = problemOfError(invalid);
          refuse(i, { ...problem, detail: `commands/${i}${problem.detail}` });
          continue;
        }
        if (command.op === 'atp' && !canRead) {
          refuse(i, problemOf('FORBIDDEN', `commands/${i}: atp needs the read scope`));
          continue;
        }
        const sent = toRequest(command);
        requests.push(sent);
        answers.push(answerOf(sent));
      }
      // Answered from submitMany's callback, and the results made only then: an object
      // made now and kept for the round trip (a promise, a results array) would be old by
      // the time the replies arrive, and keep them alive through the next scavenges
      // (bench/README.md, "Replies and promises"). What the answer needs of a command is
      // in `answers`. For the same reason the decoded body is let go now (no hook of this
      // server reads it later): Fastify's request would keep every command alive until
      // the answer, and each scavenge meanwhile copied and promoted them.
      (request as { body: unknown }).body = undefined;
      engine.submitMany(requests, (replies) => {
        try {
          const results = resultsOf(count, answers, replies, problems, request.log);
          if (wantsMsgpack(request)) {
            // A Buffer is sent as it is; the JSON response schema only types the JSON answer.
            reply
              .type(msgpackContentType)
              .send(encodeMsgpack({ results }) as unknown as { results: Result[] });
          } else reply.send({ results });
        } catch (error) {
          // Nothing is left to throw to: answer here, as the error handler would.
          request.log.error({ err: error }, 'a batch answer failed');
          ctx.problem(reply, problemOfError(error));
        }
      });
    },
  );

  /** Every command's result in command order: its own problem, or what its reply says. */
  function resultsOf(
    count: number,
    answers: readonly Answer[],
    replies: readonly Reply[],
    problems: ReadonlyMap<number, Result> | null,
    log: FastifyBaseLogger,
  ): Result[] {
    const results: Result[] = new Array(count);
    for (let i = 0, j = 0; i < count; i++) {
      const problem = problems?.get(i);
      if (problem !== undefined) {
        results[i] = problem;
        continue;
      }
      const result = replies[j]!;
      const answer = answers[j++]!;
      if (!result.ok) results[i] = problemResult(problemOfRejection(result));
      else {
        try {
          results[i] = outcomeOf(answer, result);
        } catch (error) {
          // A reply of the wrong kind is an engine bug. The other commands took effect,
          // so answer them and mark this one, rather than fail the whole request.
          log.error({ err: error }, 'unexpected engine reply in a batch');
          results[i] = problemResult(problemOfError(error));
        }
      }
    }
    return results;
  }
}

function toRequest(command: AnyCommand): Request {
  switch (command.op) {
    case 'reserve':
      // reserveCommand copies only the contract's fields, so `op` stays behind.
      return reserveCommand(command.reservationId, command);
    case 'commit':
      return command.lines === undefined
        ? { type: 'commit', reservationId: command.reservationId }
        : { type: 'commit', reservationId: command.reservationId, lines: command.lines };
    case 'release':
      return { type: 'release', reservationId: command.reservationId };
    case 'extend':
      return { type: 'extend', reservationId: command.reservationId, ttlSeconds: command.ttlSeconds };
    case 'adjust':
      return {
        type: 'adjust',
        sku: command.sku,
        location: command.location,
        delta: command.delta,
        reason: command.reason,
        key: command.key,
      };
    case 'set': {
      const { op: _op, ...fields } = command;
      return { type: 'set', ...fields };
    }
    case 'atp': {
      const { op: _op, ...fields } = command;
      return { type: 'atp', ...fields };
    }
    default: {
      const unknown: never = command;
      throw new ProblemError('INVALID_REQUEST', `unknown op ${JSON.stringify(unknown)}`);
    }
  }
}

/** A request's kind, or for an adjustment what its answer repeats. */
type Answer =
  | Exclude<Request['type'], 'adjust'>
  | { readonly sku: string; readonly location: string; readonly key: string };

function answerOf(request: Request): Answer {
  return request.type === 'adjust'
    ? { sku: request.sku, location: request.location, key: request.key }
    : request.type;
}

function outcomeOf(answer: Answer, result: Extract<Reply, { ok: true }>): Result {
  if (typeof answer !== 'string') {
    if (result.kind !== 'stock') throw unexpectedReply(result, 'stock');
    return {
      status: 200,
      body: {
        sku: answer.sku,
        location: answer.location,
        key: answer.key,
        status: result.duplicate === true ? 'duplicate' : 'applied',
        stock: stockBody(result.record),
      },
    };
  }
  switch (answer) {
    case 'reserve':
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      return { status: result.replayed ? 200 : 201, body: reservationCreatedBody(result.reservation) };
    case 'commit':
    case 'release':
    case 'extend':
      if (result.kind !== 'reservation') throw unexpectedReply(result, 'reservation');
      return { status: 200, body: reservationBody(result.reservation) };
    case 'set':
      if (result.kind !== 'stock') throw unexpectedReply(result, 'stock');
      return { status: 200, body: stockBody(result.record) };
    case 'atp':
      if (result.kind !== 'atp') throw unexpectedReply(result, 'atp');
      return {
        status: 200,
        body: { sku: result.sku, available: result.available, byLocation: result.byLocation },
      };
    default:
      throw new ProblemError('INVALID_REQUEST', 'unknown op');
  }
}
