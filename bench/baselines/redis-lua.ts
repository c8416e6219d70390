/**
 * The Redis Lua alternative: the usual flash-sale answer. Each reserve, commit, release,
 * extend and stock set is one Lua script (redis-lua-scripts.ts) that checks and changes the
 * counts atomically inside Redis.
 *
 *   client ─▶ ioredis (one connection, auto-pipelining) ─▶ EVALSHA <sha> (EVAL on NOSCRIPT)
 *                                                          └─ Redis runs the script alone
 *
 * NOT DURABLE. Redis answers as soon as the script has run in memory: nothing is on disk
 * when the reply leaves. The Redis used by the benchmark runs without AOF and without RDB
 * snapshots, so a crash loses every acknowledged reservation; even with `appendonly yes`
 * and the default `appendfsync everysec` up to a second of acknowledged writes is lost.
 * `durability` below is computed from the server's own configuration and goes into every
 * results file beside the figures.
 *
 * Fair by construction: scripts loaded once (SCRIPT LOAD) and run by hash, auto-pipelining
 * (commands issued in one tick share a write), the same validation and idempotency rules as
 * stockd (baseline.ts), expiry by a sorted set swept every expiryTickMs. Its keys live under
 * their own hash tag `{namespace}` (default `stockd-bench`), never anyone else's.
 */
import { Redis } from 'ioredis';
import type {
  Commit,
  Extend,
  GetAtp,
  Release,
  Reply,
  Request,
  ReservationStatus,
  Reserve,
  SetStock,
  Shortage,
  StockView,
} from '../../src/actors/types.js';
import { defaultLimits, type Limits } from '../../src/config.js';
import { reject } from '../../src/errors.js';
import {
  atpReply,
  BaselineBase,
  checkAtp,
  checkExtend,
  checkReservationId,
  checkReserve,
  notImplemented,
  reservationReply,
  type StoredLine,
  type StoredReservation,
  stockListReply,
  stockView,
  validateSet,
} from './baseline.js';
import { luaScripts, type ScriptName } from './redis-lua-scripts.js';

export interface RedisLuaOptions {
  /** redis://host:port[/db] */
  readonly url: string;
  /** Hash tag of its keys; default `stockd-bench`. */
  readonly namespace?: string;
  /** Delete the namespace's keys first: a benchmark starts from nothing. Default false. */
  readonly reset?: boolean;
  readonly limits?: Limits;
  /** How often due reservations are expired; default stockd's expiryTickMs. */
  readonly expiryTickMs?: number;
}

export const redisLuaDefaults = {
  namespace: 'stockd-bench',
  /** Reservations expired by one sweep, like stockd's expiriesPerBatchMax. */
  expiriesPerSweepMax: 4_096,
} as const;

type ScriptReply = Array<string | number>;

function fieldsToObject(flat: readonly (string | number)[], from: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = from; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

function storedOf(id: string, hash: Record<string, string>): StoredReservation {
  return {
    id,
    bodyHash: Number(hash.bodyHash),
    orderId: hash.orderId === '' || hash.orderId === undefined ? null : hash.orderId,
    channel: null,
    status: hash.status as ReservationStatus,
    createdAt: Number(hash.createdAt),
    expiresAt: Number(hash.expiresAt),
    lines: JSON.parse(hash.lines ?? '[]') as StoredLine[],
  };
}

export class RedisLuaBaseline extends BaselineBase {
  readonly name = 'redis-lua';
  durable = false;
  durability =
    'a reply is sent once the script ran in memory; nothing is on disk when it leaves (a crash loses acknowledged reservations)';
  private readonly prefix: string;
  private readonly shas = new Map<ScriptName, string>();
  private readonly sweeper: NodeJS.Timeout;
  private sweeping: Promise<void> | null = null;
  private closed = false;
  sweepFailures = 0;
  /** Scripts re-sent with EVAL after a NOSCRIPT (the server lost its script cache). */
  noscriptFallbacks = 0;

  private constructor(
    private readonly redis: Redis,
    readonly namespace: string,
    options: RedisLuaOptions,
  ) {
    super(options.limits ?? defaultLimits);
    this.prefix = `{${namespace}}:`;
    this.sweeper = setInterval(() => this.sweep(), options.expiryTickMs ?? this.limits.expiryTickMs);
    this.sweeper.unref();
  }

  static async open(options: RedisLuaOptions): Promise<RedisLuaBaseline> {
    const namespace = options.namespace ?? redisLuaDefaults.namespace;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(namespace))
      throw new Error(`invalid namespace ${JSON.stringify(namespace)}`);
    const redis = new Redis(options.url, {
      enableAutoPipelining: true,
      lazyConnect: true,
      connectTimeout: 5_000,
      maxRetriesPerRequest: 2,
    });
    redis.on('error', () => {});
    let baseline: RedisLuaBaseline | undefined;
    try {
      await redis.connect();
      baseline = new RedisLuaBaseline(redis, namespace, options);
      if (options.reset === true) await baseline.deleteNamespace();
      await baseline.loadScripts();
      await baseline.describeDurability();
      return baseline;
    } catch (error) {
      // Stops the sweeper too, when the baseline was already made.
      if (baseline === undefined) redis.disconnect();
      else await baseline.close().catch(() => redis.disconnect());
      throw error;
    }
  }

  /** Loads every script once; later calls name it by hash. */
  private async loadScripts(): Promise<void> {
    for (const [name, lua] of Object.entries(luaScripts) as Array<[ScriptName, string]>) {
      this.shas.set(name, String(await this.redis.script('LOAD', lua)));
    }
  }

  /** What the server's persistence settings mean for an acknowledged write. */
  private async describeDurability(): Promise<void> {
    try {
      const read = async (name: string) => ((await this.redis.config('GET', name)) as string[])[1] ?? '';
      const appendonly = await read('appendonly');
      const appendfsync = await read('appendfsync');
      const save = await read('save');
      const settings = `appendonly=${appendonly} appendfsync=${appendfsync} save="${save}"`;
      if (appendonly === 'yes' && appendfsync === 'always') {
        this.durable = true;
        this.durability = `the AOF is fsynced before each reply (${settings})`;
      } else {
        this.durability = `a reply is sent once the script ran in memory, before anything is on disk (${settings}); a crash loses acknowledged reservations`;
      }
    } catch {
      // CONFIG may be disabled (managed Redis): keep the conservative statement.
    }
  }

  private async deleteNamespace(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await this.redis.unlink(...keys);
    } while (cursor !== '0');
  }

  /** EVALSHA; if the server no longer has the script (restart, SCRIPT FLUSH), EVAL sends and caches it again. */
  private async run(
    name: ScriptName,
    keys: readonly string[],
    args: ReadonlyArray<string | number>,
  ): Promise<ScriptReply> {
    try {
      return (await this.redis.evalsha(
        this.shas.get(name)!,
        keys.length,
        ...keys,
        this.prefix,
        ...args,
      )) as ScriptReply;
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      this.noscriptFallbacks++;
      return (await this.redis.eval(
        luaScripts[name],
        keys.length,
        ...keys,
        this.prefix,
        ...args,
      )) as ScriptReply;
    }
  }

  async serverVersion(): Promise<string> {
    const info = await this.redis.info('server');
    return `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    await this.sweeping;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /* ---------------------------------------------------------------------- keys */

  private stockKey(sku: string, location: string): string {
    // Byte length, as Lua's # counts it.
    return `${this.prefix}s:${Buffer.byteLength(sku)}:${sku}:${location}`;
  }
  private locationsKey(sku: string): string {
    return `${this.prefix}l:${sku}`;
  }
  private reservationKey(id: string): string {
    return `${this.prefix}r:${id}`;
  }

  /* ------------------------------------------------------------------ dispatch */

  execute(request: Request): Promise<Reply> {
    this.commands++;
    return this.dispatch(request).catch((error: unknown) =>
      reject('UNAVAILABLE', `Redis: ${error instanceof Error ? error.message : String(error)}`),
    );
  }

  private dispatch(request: Request): Promise<Reply> {
    switch (request.type) {
      case 'set':
        return this.set(request);
      case 'reserve':
        return this.reserve(request);
      case 'commit':
      case 'release':
      case 'extend':
        return this.settle(request);
      case 'get':
        return this.get(request.reservationId);
      case 'atp':
        return this.atp(request);
      case 'stock':
        return this.stockOf(request.sku).then((views) => stockListReply(request.sku, views));
      case 'channels':
        return Promise.resolve({ ok: true, kind: 'channels', channels: [] });
      default:
        return Promise.resolve(notImplemented(this.name, `the ${request.type} command`));
    }
  }

  private async set(cmd: SetStock): Promise<Reply> {
    const invalid = validateSet(cmd, this.limits);
    if (invalid !== null) return invalid;
    const result = await this.run(
      'setStock',
      [this.stockKey(cmd.sku, cmd.location), this.locationsKey(cmd.sku)],
      [cmd.location, cmd.onHand, cmd.safetyStock ?? '', cmd.ifVersion ?? '', cmd.sourceTs ?? ''],
    );
    switch (result[0]) {
      case 'conflict':
        return reject('VERSION_CONFLICT', `expected version ${cmd.ifVersion}, record is at ${result[1]}`, {
          currentVersion: Number(result[1]),
        });
      case 'stale':
        return reject(
          'STALE_UPDATE',
          `sourceTs ${cmd.sourceTs} is older than the record's last update ${result[1]}`,
        );
      default: {
        const [, onHand, reserved, safetyStock, version, sourceTs] = result.map(Number);
        return {
          ok: true,
          kind: 'stock',
          record: stockView(cmd.sku, cmd.location, onHand!, reserved!, safetyStock!, version!, sourceTs!),
        };
      }
    }
  }

  private async stockOf(sku: string): Promise<StockView[]> {
    const flat = await this.run('stockOfSku', [this.locationsKey(sku)], [sku]);
    const views: StockView[] = [];
    for (let i = 0; i + 5 < flat.length; i += 6) {
      const [onHand, reserved, safetyStock, version, sourceTs] = flat.slice(i + 1, i + 6).map(Number);
      views.push(stockView(sku, String(flat[i]), onHand!, reserved!, safetyStock!, version!, sourceTs!));
    }
    return views;
  }

  private async atp(query: GetAtp): Promise<Reply> {
    const invalid = checkAtp(query, this.limits);
    if (invalid !== null) return invalid;
    return atpReply(query.sku, await this.stockOf(query.sku), query.location);
  }

  private async reserve(cmd: Reserve): Promise<Reply> {
    const checked = checkReserve(this.name, cmd, this.limits);
    if ('ok' in checked) return checked;
    const now = Date.now();
    const expiresAt = now + (cmd.ttlSeconds ?? this.limits.ttlSecondsDefault) * 1000;
    const lines: StoredLine[] = checked.allocations.map((a) => ({ ...a, held: a.qty, committed: 0 }));
    const result = await this.run(
      'reserve',
      [
        this.reservationKey(cmd.reservationId),
        ...checked.allocations.map((a) => this.stockKey(a.sku, a.location)),
      ],
      [cmd.reservationId, String(checked.bodyHash), now, expiresAt, cmd.orderId ?? '', JSON.stringify(lines)],
    );
    switch (result[0]) {
      case 'held':
        return reservationReply(
          {
            id: cmd.reservationId,
            bodyHash: checked.bodyHash,
            orderId: cmd.orderId ?? null,
            channel: null,
            status: 'held',
            createdAt: now,
            expiresAt,
            lines,
          },
          false,
        );
      case 'replayed':
        return reservationReply(storedOf(cmd.reservationId, fieldsToObject(result, 1)), true);
      case 'reused':
        return reject(
          'IDEMPOTENCY_KEY_REUSED',
          `reservation ${cmd.reservationId} exists with a different body`,
        );
      default: {
        const shortages = JSON.parse(String(result[1])) as Shortage[];
        return reject(
          'INSUFFICIENT_STOCK',
          `not enough available stock for ${shortages.map((s) => s.sku).join(', ')}`,
          {
            shortages,
          },
        );
      }
    }
  }

  private async get(id: string): Promise<Reply> {
    const invalid = checkReservationId(id, this.limits);
    if (invalid !== null) return invalid;
    const hash = await this.redis.hgetall(this.reservationKey(id));
    if (hash.status === undefined) return reject('RESERVATION_NOT_FOUND', `no reservation ${id}`);
    return reservationReply(storedOf(id, hash), false);
  }

  private async settle(cmd: Commit | Release | Extend): Promise<Reply> {
    const invalid =
      cmd.type === 'extend'
        ? checkExtend(cmd, this.limits)
        : checkReservationId(cmd.reservationId, this.limits);
    if (invalid !== null) return invalid;
    if (cmd.type === 'commit' && cmd.lines !== undefined)
      return notImplemented(this.name, 'a partial commit');
    const now = Date.now();
    const expiresAt = cmd.type === 'extend' ? now + cmd.ttlSeconds * 1000 : 0;
    const id = cmd.reservationId;
    const result = await this.run(
      'settleReservation',
      [this.reservationKey(id)],
      [id, cmd.type, now, expiresAt],
    );
    switch (result[0]) {
      case 'ok':
      case 'replayed':
        return reservationReply(storedOf(id, fieldsToObject(result, 1)), result[0] === 'replayed');
      case 'notfound':
        return reject('RESERVATION_NOT_FOUND', `no reservation ${id}`);
      case 'expired':
        return reject('RESERVATION_NOT_HELD', `reservation ${id} has expired`);
      default:
        return reject('RESERVATION_NOT_HELD', `reservation ${id} is ${result[1]}`);
    }
  }

  private sweep(): void {
    if (this.sweeping !== null || this.closed) return;
    this.sweeping = this.run(
      'expireDue',
      [`${this.prefix}expiries`],
      [Date.now(), redisLuaDefaults.expiriesPerSweepMax],
    )
      .then(
        () => undefined,
        (error: unknown) => {
          if (this.sweepFailures++ === 0 && !this.closed) {
            console.warn(
              `redis-lua: expiry sweep failed (${error instanceof Error ? error.message : error})`,
            );
          }
        },
      )
      .finally(() => {
        this.sweeping = null;
      });
  }
}
