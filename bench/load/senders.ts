/**
 * How the generators send one operation and learn its outcomes, per transport:
 *
 *   DirectSender  engine-shaped target in this process, no HTTP:
 *                   one request  ─▶ execute(request)          (each answered on its own)
 *                   a batch      ─▶ executeMany(requests)
 *                 or, with `coalesce`, every request sent in one tick goes into a single
 *                 executeMany (stockd's bulk path; each then waits for the whole call)
 *   HttpSender    undici Pool of keep-alive connections (no pipelining) to a target's
 *                 HTTP front, one call of the contract per operation (http-codec.ts)
 *
 * autocannon drives the closed loop over HTTP on its own (closed-loop.ts); both senders
 * serve the open loop and the direct closed loop.
 */
import { Pool } from 'undici';
import type { Reply, Request } from '../../src/actors/types.js';
import { httpCallOf, outcomesOf } from './http-codec.js';
import { type Operation, type Outcome, okOutcome } from './operation.js';

export interface Sender {
  send(operation: Operation): Promise<Outcome[]>;
  close(): Promise<void>;
}

/** What the direct transport needs of a target: stockd's Engine and the alternatives both have it. */
export interface EngineLike {
  execute(request: Request): Promise<Reply>;
  executeMany(requests: readonly Request[]): Promise<Reply[]>;
}

const outcomeOfReply = (reply: Reply): Outcome => (reply.ok ? okOutcome : reply.code);

export class DirectSender implements Sender {
  private queue: Array<{ request: Request; resolve: (outcome: Outcome) => void }> = [];
  private flushScheduled = false;

  constructor(
    private readonly engine: EngineLike,
    private readonly coalesce = false,
  ) {}

  async send(operation: Operation): Promise<Outcome[]> {
    if (operation.batch) return (await this.engine.executeMany(operation.requests)).map(outcomeOfReply);
    const request = operation.requests[0]!;
    if (!this.coalesce) return [outcomeOfReply(await this.engine.execute(request))];
    return [await this.enqueue(request)];
  }

  private enqueue(request: Request): Promise<Outcome> {
    return new Promise((resolve) => {
      this.queue.push({ request, resolve });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const queued = this.queue;
    this.queue = [];
    void this.engine.executeMany(queued.map((item) => item.request)).then((replies) => {
      for (let i = 0; i < queued.length; i++) queued[i]!.resolve(outcomeOfReply(replies[i]!));
    });
  }

  async close(): Promise<void> {}
}

export interface HttpSenderOptions {
  readonly connections: number;
  readonly headers: Readonly<Record<string, string>>;
  /** An answer slower than this is a TIMEOUT. */
  readonly timeoutMs: number;
}

export class HttpSender implements Sender {
  private readonly pool: Pool;

  constructor(
    origin: string,
    private readonly options: HttpSenderOptions,
  ) {
    this.pool = new Pool(origin, {
      connections: options.connections,
      pipelining: 1,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  async send(operation: Operation): Promise<Outcome[]> {
    const call = httpCallOf(operation);
    const headers =
      call.body === undefined
        ? this.options.headers
        : { ...this.options.headers, 'content-type': 'application/json' };
    try {
      const response = await this.pool.request({
        method: call.method,
        path: call.path,
        headers,
        body: call.body,
      });
      const text = await response.body.text();
      return outcomesOf(operation, response.statusCode, text);
    } catch (error) {
      const code = (error as { code?: string }).code;
      const outcome =
        code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' ? 'TIMEOUT' : 'TRANSPORT_ERROR';
      return new Array<Outcome>(operation.requests.length).fill(outcome);
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
