/**
 * GET /v1/events: the change feed (src/api/events.ts), as pages or as a live SSE tail.
 *
 *   page:  GET /v1/events?after=<cursor>&limit=100  →  {events, next}
 *   tail:  GET /v1/events  Accept: text/event-stream  [Last-Event-ID: <cursor>]
 *          → one SSE message per event: `id: <cursor after it>`, `event: <type>`, `data: <json>`;
 *            a `: heartbeat` comment when idle; reconnecting with Last-Event-ID resumes exactly;
 *            a cursor that cannot be resumed ends the stream with an `event: problem`.
 *
 * The tail reads pages while there is something to read and otherwise waits for the next
 * append (no polling). A slow client is paced by its socket: nothing more is read until
 * the socket drained, so a stalled client costs one page of memory, not the log.
 */
import type { ServerResponse } from 'node:http';
import type { ApiContext } from '../context.js';
import {
  beginning,
  type ChangeFeed,
  type Cursor,
  decodeCursor,
  encodeCursor,
  type FeedPage,
} from '../events.js';
import { ProblemError, problemOfError } from '../problem.js';
import { problemResponses } from '../schemas.js';
import { type ApiApp, keyed } from './types.js';

export function eventRoutes(app: ApiApp, ctx: ApiContext): void {
  const s = ctx.schemas;
  const tails = new Set<ServerResponse>();

  // Open tails never end on their own: end them when the server closes, so close() can finish.
  app.addHook('preClose', (done) => {
    for (const raw of tails) raw.end();
    tails.clear();
    done();
  });

  app.get(
    '/v1/events',
    {
      onRequest: ctx.auth('read'),
      schema: {
        tags: ['events'],
        summary: 'Committed events from a cursor: a page, or a live SSE tail',
        description:
          'Events in log order (exact per shard, so per SKU; shards merged by epoch and batch time). Page: `{events, next}`; pass `next` as `after` for the following page. With `Accept: text/event-stream` the answer is a live Server-Sent Events stream whose ids are cursors; reconnect with `Last-Event-ID` to resume. The cursor stays valid across restarts and shard-count changes.',
        security: keyed,
        querystring: s.EventsQuery,
        response: { 200: s.EventsPage, ...problemResponses(400, 401, 403, 410, 429, 503) },
      },
    },
    async (request, reply) => {
      ctx.ready();
      const feed = ctx.feed;
      if (feed === null) {
        throw new ProblemError(
          'UNAVAILABLE',
          'this server has no change feed: build it with the store the engine writes to (see buildServer)',
        );
      }
      const lastEventId = request.headers['last-event-id'];
      const text = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : request.query.after;
      const cursor = await cursorFrom(feed, text);
      const limit = request.query.limit ?? ctx.limits.eventsPageDefault;
      const accept = request.headers.accept;
      if (accept === undefined || !accept.includes('text/event-stream')) {
        const page = await feed.page(cursor, limit);
        return { events: page.events, next: encodeCursor(page.next) };
      }
      if (tails.size >= ctx.limits.sseClientsMax) {
        throw new ProblemError(
          'OVERLOADED',
          `at most ${ctx.limits.sseClientsMax} event streams are open at once`,
        );
      }
      // The first page is read before the stream starts, so a cursor that cannot be
      // resumed (CURSOR_EXPIRED) is still an ordinary problem response.
      const version = feed.version;
      const first = await feed.page(cursor, limit);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        // The stream ends only when the server closes (or the client goes): the connection
        // goes with it rather than idling in a keep-alive pool.
        connection: 'close',
        'x-accel-buffering': 'no',
      });
      raw.write('retry: 1000\n\n');
      tails.add(raw);
      const closed = new AbortController();
      raw.on('close', () => {
        tails.delete(raw);
        closed.abort();
      });
      void tail(
        feed,
        raw,
        { version, page: first, cursor },
        limit,
        ctx.limits.sseHeartbeatMs,
        closed.signal,
      ).catch((error: unknown) => {
        // The status line is long sent: a refusal (CURSOR_EXPIRED) travels as a final
        // `problem` event; anything else is logged and the stream cut.
        if (error instanceof ProblemError) {
          const problem = problemOfError(error);
          ctx.metrics.rejection(problem.code);
          raw.end(`event: problem\ndata: ${JSON.stringify(problem)}\n\n`);
          return;
        }
        request.log.warn({ err: error }, 'event stream ended by an error');
        raw.destroy();
      });
      return reply;
    },
  );
}

async function cursorFrom(feed: ChangeFeed, text: string | undefined): Promise<Cursor> {
  if (text === undefined || text === '') return beginning;
  if (text === 'latest') return feed.latest();
  const cursor = decodeCursor(text);
  if (cursor === null) throw new ProblemError('INVALID_REQUEST', 'the cursor is not one this server issued');
  return cursor;
}

async function tail(
  feed: ChangeFeed,
  raw: ServerResponse,
  start: { version: number; page: FeedPage; cursor: Cursor },
  limit: number,
  heartbeatMs: number,
  closed: AbortSignal,
): Promise<void> {
  let cursor = start.cursor;
  let version = start.version;
  let page: FeedPage | null = start.page;
  while (!closed.aborted) {
    if (page === null) {
      // Read the version first: an append that lands while the page is read still wakes us.
      version = feed.version;
      page = await feed.page(cursor, limit);
      if (closed.aborted) return;
    }
    if (page.events.length === 0) {
      cursor = page.next;
      page = null;
      await feed.waitForAppend(version, heartbeatMs, closed);
      if (!closed.aborted && feed.version === version) raw.write(': heartbeat\n\n');
      continue;
    }
    // Each event's id is the cursor just after it (inside its row: rows up to seq − 1 and
    // index + 1 events of this one), so a reconnect with Last-Event-ID resumes at the next.
    // A stream the id does not name yet had no event sent, so reading it from its start
    // on resume repeats nothing.
    const position = new Map(cursor);
    let chunk = '';
    for (const event of page.events) {
      position.set(event.shard, { seq: event.seq - 1, skip: event.index + 1 });
      chunk += `id: ${encodeCursor(position)}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
    }
    cursor = page.next;
    page = null;
    if (!raw.write(chunk)) await drained(raw, closed);
  }
}

function drained(raw: ServerResponse, closed: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      raw.off('drain', done);
      closed.removeEventListener('abort', done);
      resolve();
    };
    raw.on('drain', done);
    closed.addEventListener('abort', done, { once: true });
  });
}
