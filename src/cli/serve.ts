/**
 * `stockd serve`: the HTTP API and the engine in one process.
 *
 *   keys ─▶ bind check ─▶ open the store ─▶ listen (503 until recovered) ─▶ Engine.start
 *                                                  │ /healthz 200 at once, /readyz 503
 *   SIGTERM/SIGINT ─▶ stop accepting, finish in-flight requests, end event streams
 *                  ─▶ engine.stop() (drains every shard: all acknowledged work is in the WAL)
 *                  ─▶ store.close() ─▶ exit 0
 *
 * The port is bound before recovery so orchestrators see a live process with /readyz
 * saying "not yet", rather than a port that is not there.
 */
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { Command, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { type ApiKey, ApiKeyError, assertSafeBind, loadApiKeys } from '../api/auth.js';
import { NotifyingStore } from '../api/events.js';
import { buildServer } from '../api/server.js';
import { defaultShardCount } from '../config.js';
import { Engine } from '../engine/engine.js';
import { assertGcProfile, type GcProfile, gcProfileFlags, gcProfiles } from '../engine/gc-profile.js';
import { openStore } from '../persistence/open-store.js';
import type { WalStore } from '../persistence/wal.js';

export interface ServeOptions {
  readonly port: number;
  readonly host: string;
  readonly shards?: number;
  readonly dataDir?: string;
  readonly databaseUrl?: string;
  readonly databaseSchema?: string;
  readonly apiKeys?: string;
  readonly apiKeysFile?: string;
  /** Requests per second per key; 0: no limit (a key's own limit still applies). */
  readonly rateLimit?: number;
  readonly logLevel?: string;
  /** Garbage-collector profile of the process (src/engine/gc-profile.ts); default latency. */
  readonly gc?: GcProfile;
}

/** Longest a graceful shutdown may take before the process gives up and exits 1. */
const shutdownTimeoutMs = 20_000;

export interface RunningServer {
  /** The address it listens on, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** Resolves when the engine has recovered and the API serves. */
  readonly ready: Promise<void>;
  /** The graceful shutdown the signals trigger. */
  stop(): Promise<void>;
  /**
   * Resolves (with the reason) when this process can no longer do its job and should stop:
   * another process has become the writer of the database (a shard is fenced).
   */
  readonly fatal: Promise<Error>;
}

/** The one place the durable store is opened (PostgreSQL with a URL, else embedded PGlite). */
function openWal(options: ServeOptions): Promise<WalStore & { describe(): string }> {
  return openStore({
    ...(options.databaseUrl === undefined || options.databaseUrl === ''
      ? {}
      : { databaseUrl: options.databaseUrl }),
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.databaseSchema === undefined ? {} : { schema: options.databaseSchema }),
  });
}

export async function serve(
  options: ServeOptions,
  log: Logger = pino({ level: options.logLevel ?? 'info' }),
): Promise<RunningServer> {
  // 1. Options, keys and the bind check come first: a refusal must not leave a store opened.
  const gc = options.gc ?? 'latency';
  assertGcProfile(gc);
  const keys: ApiKey[] = await loadApiKeys({
    ...(options.apiKeys === undefined ? {} : { spec: options.apiKeys }),
    ...(options.apiKeysFile === undefined ? {} : { file: options.apiKeysFile }),
  });
  assertSafeBind(options.host, keys.length > 0);
  if (keys.length === 0) {
    log.warn(
      `no API keys configured: every request is allowed, so stockd listens on loopback only (${options.host}). ` +
        'Set STOCKD_API_KEYS or STOCKD_API_KEYS_FILE to serve other hosts.',
    );
  }

  // 2. The store; the engine's shard workers append through it.
  const durable = await openWal(options);
  const store = new NotifyingStore(durable);
  log.info({ store: durable.describe() }, 'store opened');

  // 3. Listen at once; the API answers 503 (and /readyz "not ready") until recovery is done.
  const shards = options.shards ?? defaultShardCount(availableParallelism());
  let fail!: (reason: Error) => void;
  const fatal = new Promise<Error>((resolve) => {
    fail = resolve;
  });
  log.info({ gc, flags: gcProfileFlags[gc] }, 'garbage-collector profile');
  const starting = Engine.start({
    store,
    shards,
    gc,
    onShardFenced: (shard, detail) => {
      log.fatal({ shard }, `shard ${shard} is fenced, this process no longer writes: ${detail}`);
      fail(new Error(`fenced: ${detail}`));
    },
  });
  const rateLimit = options.rateLimit ?? 0;
  const app = await buildServer({
    engine: starting,
    store,
    keys,
    logger: log,
    rateLimit:
      rateLimit > 0 || keys.some((key) => key.rateLimitMax !== undefined)
        ? { max: rateLimit > 0 ? rateLimit : Number.MAX_SAFE_INTEGER, timeWindowMs: 1_000 }
        : false,
  });
  let engine: Engine | null = null;
  const ready = starting.then((started) => {
    engine = started;
    log.info({ shards, recovery: started.recovery }, 'engine recovered; serving');
  });
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await ready.catch(() => undefined);
    await (engine as Engine | null)?.stop();
    await durable.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}`;
  log.info({ url, docs: `${url}/docs`, keys: keys.length, shards }, `listening on ${url}`);

  // Connections that never sent a request are neither idle nor active to Node, so
  // close() would wait for them (clients open spare ones); the shutdown sweeps them too.
  const connections = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info('shutting down: finishing in-flight requests');
      // close() drops the idle keep-alive connections once, at its start; a connection whose
      // request was in flight then would linger for its keep-alive timeout after answering.
      // Sweep until close() is done, so each goes as soon as it has answered.
      const sweeper = setInterval(() => {
        app.server.closeIdleConnections();
        for (const socket of connections) if (socket.bytesRead === 0) socket.destroy();
      }, 20);
      try {
        await app.close();
      } finally {
        clearInterval(sweeper);
      }
      log.debug('HTTP closed; draining the shards');
      await ready.catch(() => undefined);
      await (engine as Engine | null)?.stop();
      log.debug('engine stopped; closing the store');
      await durable.close();
      log.info('stopped; every acknowledged change is in the log');
    })();
    return stopping;
  };
  return { url, ready, stop, fatal };
}

/** Runs serve until SIGTERM/SIGINT; exit code 0 after a clean shutdown. */
async function runUntilSignalled(options: ServeOptions): Promise<void> {
  const log = pino({ level: options.logLevel ?? 'info' });
  let server: RunningServer;
  try {
    server = await serve(options, log);
  } catch (error) {
    const message = error instanceof ApiKeyError ? error.message : String((error as Error)?.stack ?? error);
    log.fatal(message);
    process.exitCode = error instanceof ApiKeyError ? 2 : 1;
    return;
  }
  server.ready.catch((error: unknown) => {
    log.fatal({ err: error }, 'the engine failed to start');
    void server.stop().finally(() => process.exit(1));
  });
  // Fenced: another stockd is the writer now. Finish what is in flight (answered
  // UNAVAILABLE), then exit 1 so a supervisor sees this process is done.
  void server.fatal.then(() => {
    void server.stop().finally(() => process.exit(1));
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'signal received');
    const timer = setTimeout(() => {
      log.error(`shutdown took longer than ${shutdownTimeoutMs} ms; exiting`);
      process.exit(1);
    }, shutdownTimeoutMs);
    timer.unref();
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

function integer(name: string, min: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < min)
      throw new Error(`${name} must be a whole number >= ${min}`);
    return parsed;
  };
}

/** The commander definition; every option is a flag and an environment variable. */
export function serveCommand(): Command {
  return new Command('serve')
    .description(
      'run the HTTP API and the engine (embedded PGlite by default, PostgreSQL with a database URL)',
    )
    .addOption(
      new Option('--port <port>', 'TCP port').env('PORT').default(8080).argParser(integer('port', 0)),
    )
    .addOption(
      new Option('--host <host>', 'address to bind; without API keys only loopback is allowed')
        .env('HOST')
        .default('127.0.0.1'),
    )
    .addOption(
      new Option('--shards <n>', 'shard worker threads (default: cores − 1, at least 1)')
        .env('STOCKD_SHARDS')
        .argParser(integer('shards', 1)),
    )
    .addOption(
      new Option('--data-dir <dir>', 'PGlite data directory (default ./data)').env('STOCKD_DATA_DIR'),
    )
    .addOption(
      new Option('--database-url <url>', 'PostgreSQL URL (postgres://…); overrides --data-dir').env(
        'DATABASE_URL',
      ),
    )
    .addOption(
      new Option(
        '--database-schema <schema>',
        'PostgreSQL/PGlite schema for stockd’s tables (default public)',
      ).env('STOCKD_DATABASE_SCHEMA'),
    )
    .addOption(
      new Option(
        '--api-keys <keys>',
        'API keys: key:scope[,scope][:max] separated by ";" (scopes: read, write, admin)',
      ).env('STOCKD_API_KEYS'),
    )
    .addOption(
      new Option('--api-keys-file <file>', 'file of API keys, one key:scopes[:max] per line').env(
        'STOCKD_API_KEYS_FILE',
      ),
    )
    .addOption(
      new Option('--rate-limit <n>', 'requests per second per API key (0: none); a key’s own :max wins')
        .env('STOCKD_RATE_LIMIT')
        .default(0)
        .argParser(integer('rate limit', 0)),
    )
    .addOption(
      new Option(
        '--gc <profile>',
        'garbage-collector profile: latency (rare full collections, heap up to 4× its live size) or v8 (the process’s own V8 flags)',
      )
        .env('STOCKD_GC')
        .choices(gcProfiles)
        .default('latency'),
    )
    .addOption(
      new Option('--log-level <level>', 'pino log level')
        .env('STOCKD_LOG_LEVEL')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
        .default('info'),
    )
    .action(async (options: ServeOptions) => {
      await runUntilSignalled(options);
    });
}

/** Shown under `stockd --help`: the serve options and their environment variables. */
export const serveHelp = `
stockd serve options (each also an environment variable):
  --port <port>              PORT                  TCP port (default 8080)
  --host <host>              HOST                  bind address (default 127.0.0.1; loopback only without keys)
  --shards <n>               STOCKD_SHARDS         shard worker threads (default cores − 1)
  --data-dir <dir>           STOCKD_DATA_DIR       embedded PGlite directory (default ./data)
  --database-url <url>       DATABASE_URL          PostgreSQL instead of PGlite
  --database-schema <name>   STOCKD_DATABASE_SCHEMA  schema for stockd's tables (default public)
  --api-keys <keys>          STOCKD_API_KEYS       key:scope[,scope][:max];… (scopes read, write, admin)
  --api-keys-file <file>     STOCKD_API_KEYS_FILE  the same, one key per line
  --rate-limit <n>           STOCKD_RATE_LIMIT     requests/s per key (default 0: none)
  --gc <profile>             STOCKD_GC             latency (default) or v8: the process's own V8 garbage-collector flags
  --log-level <level>        STOCKD_LOG_LEVEL      pino level (default info)
`;
