/**
 * What every route module gets from buildServer: the engine (once it has recovered), the
 * limits, the schemas, the key ring, metrics, the change feed, and the one way to answer
 * a rejection. Routes import nothing else from the server.
 */
import type { FastifyReply } from 'fastify';
import type { Reply, Request } from '../actors/types.js';
import type { Limits } from '../config.js';
import type { ShardStats } from '../engine/protocol.js';
import type { Rejection } from '../errors.js';
import type { Layout, WalStore } from '../persistence/wal.js';
import { type KeyRing, requireScope, type Scope } from './auth.js';
import type { ChangeFeed } from './events.js';
import type { ApiLimits } from './limits.js';
import type { ApiMetrics } from './metrics.js';
import { type Problem, ProblemError, problemOfRejection, sendProblem } from './problem.js';
import type { Schemas } from './schemas.js';

/** What the API needs of the engine. `Engine` satisfies it; nothing else is assumed. */
export interface ApiEngine {
  readonly limits: Limits;
  readonly layout: Layout;
  readonly shards: readonly { readonly depth: number; readonly phase: string }[];
  execute(request: Request): Promise<Reply>;
  executeMany(requests: readonly Request[]): Promise<Reply[]>;
  /** executeMany without its promise (Engine.submitMany): for large batches. */
  submitMany(requests: readonly Request[], done: (replies: Reply[]) => void): void;
  stats(): Promise<ShardStats[]>;
  /** Durable-append notices (Engine.onDurable): the change feed's tails wake on them. */
  onDurable?(listener: (stream: number, seq: number) => void): () => void;
}

export class ApiContext {
  /** Null until the engine has recovered (Engine.start resolved). */
  engine: ApiEngine | null = null;
  private readonly scopeHooks = new Map<Scope, ReturnType<typeof requireScope>>();

  constructor(
    readonly engineLimits: Limits,
    readonly limits: ApiLimits,
    readonly schemas: Schemas,
    readonly keys: KeyRing,
    readonly metrics: ApiMetrics,
  ) {}

  /** The change feed, once the engine it follows is up; null without a NotifyingStore. */
  feed: ChangeFeed | null = null;
  /** The engine's store, when the server was given it: /readyz checks it answers. */
  store: WalStore | null = null;

  /** The engine, or a 503 UNAVAILABLE while it is still recovering. */
  ready(): ApiEngine {
    const engine = this.engine;
    if (engine === null)
      throw new ProblemError('UNAVAILABLE', 'the engine is recovering from its log; retry shortly');
    return engine;
  }

  /** onRequest hook admitting keys with `scope` (one hook per scope, shared by its routes). */
  auth(scope: Scope): ReturnType<typeof requireScope> {
    let hook = this.scopeHooks.get(scope);
    if (hook === undefined) {
      hook = requireScope(this.keys, scope);
      this.scopeHooks.set(scope, hook);
    }
    return hook;
  }

  /** Answers an engine rejection as problem+json (the common refusal path: no exception). */
  reject(reply: FastifyReply, rejection: Rejection): FastifyReply {
    return this.problem(reply, problemOfRejection(rejection));
  }

  problem(reply: FastifyReply, problem: Problem): FastifyReply {
    this.metrics.rejection(problem.code);
    return sendProblem(reply, problem);
  }
}
