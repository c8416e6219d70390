/**
 * API keys with scopes.
 *
 *   STOCKD_API_KEYS="k3y-for-the-shop:read,write;k3y-for-ops:admin:200"
 *                     └ key ────────┘ └ scopes ┘  (optional third field: rate limit per window)
 *
 * The same syntax, one key per line and `#` comments, in a keys file. Scopes: `read`
 * (queries, the event feed, metrics), `write` (stock changes and reservations), `admin`
 * (channel configuration; implies read and write). A client sends its key as
 * `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 *
 * Keys are compared in constant time: the presented key and every configured key are
 * hashed (SHA-256, fixed length) and compared with `timingSafeEqual`, against every
 * configured key without stopping at a match, so neither a key's content nor its position
 * leaks through timing. Only a short hash prefix of a key (its `id`) is ever logged or
 * used as the rate limiter's bucket.
 *
 * Without keys every request is allowed, and the listen path refuses any address but
 * loopback (`assertSafeBind`).
 */
import * as crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { ProblemError } from './problem.js';

export type Scope = 'read' | 'write' | 'admin';
export const scopes: readonly Scope[] = ['read', 'write', 'admin'];

export interface ApiKey {
  readonly key: string;
  readonly scopes: readonly Scope[];
  /** Requests per rate-limit window for this key; the server's default when absent. */
  readonly rateLimitMax?: number;
}

/** Who is calling: a configured key, or everyone when no keys are configured. */
export interface Principal {
  /** First 12 hex digits of the key's SHA-256: safe to log, the rate limiter's bucket. */
  readonly id: string;
  readonly scopes: ReadonlySet<Scope>;
  readonly rateLimitMax: number | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export class ApiKeyError extends Error {
  readonly code = 'API_KEYS_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ApiKeyError';
  }
}

/** Parses `key:scope,scope[:max]` entries separated by `;` or new lines; `#` starts a comment line. */
export function parseApiKeys(spec: string, source = 'STOCKD_API_KEYS'): ApiKey[] {
  const keys: ApiKey[] = [];
  const seen = new Set<string>();
  const entries = spec
    .split(/[;\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '' && !entry.startsWith('#'));
  for (const entry of entries) {
    const parts = entry.split(':');
    const [key, scopeList, max] = parts;
    // Errors name the entry's position, never the key itself.
    const where = `${source}, entry ${keys.length + 1}`;
    if (parts.length < 2 || parts.length > 3 || key === undefined || key === '' || /\s|,/.test(key)) {
      throw new ApiKeyError(`${where}: expected key:scope[,scope…][:max]`);
    }
    const granted = (scopeList ?? '').split(',').map((scope) => scope.trim());
    for (const scope of granted) {
      if (!scopes.includes(scope as Scope)) {
        throw new ApiKeyError(`${where}: unknown scope ${JSON.stringify(scope)} (read, write or admin)`);
      }
    }
    let rateLimitMax: number | undefined;
    if (max !== undefined) {
      rateLimitMax = Number(max);
      if (!Number.isSafeInteger(rateLimitMax) || rateLimitMax <= 0) {
        throw new ApiKeyError(`${where}: the rate limit must be a positive whole number`);
      }
    }
    if (seen.has(key)) throw new ApiKeyError(`${where}: the same key is listed twice`);
    seen.add(key);
    keys.push({ key, scopes: granted as Scope[], ...(rateLimitMax === undefined ? {} : { rateLimitMax }) });
  }
  return keys;
}

/** Keys from the environment's spec and/or a keys file (both may be given; they are merged). */
export async function loadApiKeys(options: { spec?: string; file?: string }): Promise<ApiKey[]> {
  const keys: ApiKey[] = [];
  if (options.spec !== undefined && options.spec.trim() !== '') keys.push(...parseApiKeys(options.spec));
  if (options.file !== undefined && options.file !== '') {
    const text = await readFile(options.file, 'utf8');
    keys.push(...parseApiKeys(text, `keys file ${options.file}`));
  }
  const distinct = new Set(keys.map((k) => k.key));
  if (distinct.size !== keys.length)
    throw new ApiKeyError('a key is listed in both the environment and the file');
  return keys;
}

// crypto.hash (Node ≥ 20.12) hashes in one call without a Hash object; it runs per request.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'buffer') => Buffer }).hash;

function sha256(text: string): Buffer {
  return oneShot !== undefined
    ? oneShot('sha256', text, 'buffer')
    : crypto.createHash('sha256').update(text, 'utf8').digest();
}

interface StoredKey {
  readonly hash: Buffer;
  readonly principal: Principal;
}

/** The configured keys, hashed; answers who a presented key belongs to. */
export class KeyRing {
  private readonly stored: readonly StoredKey[];

  constructor(keys: readonly ApiKey[]) {
    this.stored = keys.map((key) => {
      const hash = sha256(key.key);
      const granted = new Set<Scope>(key.scopes);
      if (granted.has('admin')) {
        granted.add('read');
        granted.add('write');
      }
      return {
        hash,
        principal: { id: hash.toString('hex').slice(0, 12), scopes: granted, rateLimitMax: key.rateLimitMax },
      };
    });
  }

  get enabled(): boolean {
    return this.stored.length > 0;
  }

  /** Some key carries its own rate limit (the limiter then asks per request). */
  get hasCustomRateLimits(): boolean {
    return this.stored.some((stored) => stored.principal.rateLimitMax !== undefined);
  }

  /** The principal of a presented key, or null. Constant time in the key's content. */
  authenticate(presented: string): Principal | null {
    const hash = sha256(presented);
    let found: Principal | null = null;
    for (const candidate of this.stored) {
      // No early exit: every stored key is compared whatever matched before.
      if (crypto.timingSafeEqual(hash, candidate.hash)) found = candidate.principal;
    }
    return found;
  }
}

const everyone: Principal = {
  id: 'anonymous',
  scopes: new Set<Scope>(scopes),
  rateLimitMax: undefined,
};

function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string' && authorization.length > 7) {
    if (authorization.slice(0, 7).toLowerCase() === 'bearer ') return authorization.slice(7).trim();
  }
  const header = request.headers['x-api-key'];
  return typeof header === 'string' && header !== '' ? header : undefined;
}

/**
 * An onRequest hook that admits a request only with a key holding `scope`. It runs before
 * the body is read, so an unauthenticated client cannot make the server parse anything.
 */
export function requireScope(ring: KeyRing, scope: Scope) {
  return function authenticate(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    if (!ring.enabled) {
      request.principal = everyone;
      done();
      return;
    }
    const presented = presentedKey(request);
    const principal = presented === undefined ? null : ring.authenticate(presented);
    if (principal === null) {
      reply.header('www-authenticate', 'Bearer realm="stockd"');
      done(
        new ProblemError(
          'UNAUTHORIZED',
          presented === undefined
            ? 'an API key is required: Authorization: Bearer <key> or X-API-Key: <key>'
            : 'the API key is not valid',
        ),
      );
      return;
    }
    request.principal = principal;
    if (!principal.scopes.has(scope)) {
      done(new ProblemError('FORBIDDEN', `this route needs the ${scope} scope`));
      return;
    }
    done();
  };
}

/** True when `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare.toLowerCase().startsWith('::ffff:127.');
  return false;
}

/**
 * Refuses to serve an unauthenticated API beyond this machine. Called by the listen path
 * (stockd serve) before binding; buildServer itself never listens.
 */
export function assertSafeBind(host: string, keysConfigured: boolean): void {
  if (keysConfigured || isLoopbackHost(host)) return;
  throw new ApiKeyError(
    `refusing to listen on ${host} without API keys: anyone who can reach it could change stock. ` +
      'Configure keys (--api-keys / STOCKD_API_KEYS or --api-keys-file / STOCKD_API_KEYS_FILE) or listen on 127.0.0.1.',
  );
}
