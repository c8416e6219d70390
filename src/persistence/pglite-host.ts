/**
 * The PGlite worker thread: PGlite runs PostgreSQL compiled to WebAssembly and blocks the
 * thread it runs on while it works, so it gets a thread of its own.
 *
 *   main thread ── control (comlink on parentPort): ready, connect(port), close
 *   main thread ── store port ──────▶ ┐
 *   shard worker ─ store port ──────▶ ├─ exposeStore(SqlWalStore) ─▶ PGlite (one session)
 *   shard worker ─ store port ──────▶ ┘
 *
 * Each port is a store bridge (remote-store.ts). Calls from all ports run one at a time
 * on PGlite's single session; an append is one autocommit INSERT, fenced by the writer
 * epoch like on PostgreSQL (sql-store.ts).
 */
import type { MessagePort } from 'node:worker_threads';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { checkSchemaCurrent, migrate } from './migrations.js';
import { exposeStore } from './remote-store.js';
import type { SqlResult, SqlSession, SqlStatement } from './sql-session.js';
import { claimWriter, SqlWalStore } from './sql-store.js';

export interface PgliteHostInit {
  /** PostgreSQL's data directory (PGDATA) inside the stockd data directory. */
  readonly pgdata: string;
  readonly schema: string;
  readonly readOnly: boolean;
  /** For messages: "pglite ./data". */
  readonly where: string;
  readonly storePort: MessagePort;
  /** Recorded in stockd_writer: the process that opened the database. */
  readonly pid: number;
  readonly host: string;
}

export type HostOpenOutcome =
  | { readonly ok: true; readonly writerEpoch: number | null }
  | { readonly ok: false; readonly message: string; readonly code?: string };

export interface PgliteHostControl {
  /** Resolves once PGlite is open and migrated (or with why it could not be). */
  ready(): Promise<HostOpenOutcome>;
  /** Serves the store on another port (a shard worker's own line to this thread). */
  connect(port: MessagePort): void;
  /** Closes PGlite cleanly (checkpoint); the thread can be terminated afterwards. */
  close(): Promise<void>;
}

/** OID of bytea. */
const byteaOid = 17;

/**
 * PGlite passes bytea as hex text; its own codec builds the string a byte at a time,
 * which caps appends near 5 MB/s. Node's hex codec is some tens of times faster.
 */
const byteaCodec = {
  serialize(value: unknown): string {
    if (!(value instanceof Uint8Array)) throw new TypeError('a bytea parameter must be a Uint8Array');
    return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  },
  /** Into a buffer of exactly the value's size, so it crosses threads without dragging neighbours. */
  parse(text: string): Uint8Array {
    const bytes = new Uint8Array((text.length - 2) / 2);
    Buffer.from(bytes.buffer).write(text.slice(2), 'hex');
    return bytes;
  },
};

class PgliteSession implements SqlSession {
  constructor(private readonly db: PGlite | Transaction) {}

  // The client-side timeout of SqlStatement has no meaning here: PGlite runs in this
  // thread, there is no network to lose, and a running statement cannot be interrupted.
  async query(statement: SqlStatement, params: readonly unknown[] = []): Promise<SqlResult> {
    const result = await this.db.query<Record<string, unknown>>(statement.text, params as unknown[]);
    return { rows: result.rows, rowCount: result.affectedRows ?? 0 };
  }

  transaction<T>(body: (tx: SqlSession) => Promise<T>): Promise<T> {
    if (!(this.db instanceof PGlite))
      return Promise.reject(new Error('nested transactions are not supported'));
    return this.db.transaction((tx) => body(new PgliteSession(tx)));
  }
}

const init = workerData as PgliteHostInit;
let db: PGlite | null = null;
let store: SqlWalStore | null = null;

async function open(): Promise<HostOpenOutcome> {
  try {
    db = await PGlite.create(init.pgdata, {
      serializers: { [byteaOid]: byteaCodec.serialize },
      parsers: { [byteaOid]: byteaCodec.parse },
    });
    const session = new PgliteSession(db);
    let writerEpoch: number | null = null;
    if (init.readOnly) {
      await checkSchemaCurrent(session, init.schema);
    } else {
      await migrate(session, init.schema);
    }
    // One session for the life of the database: the search path is set once.
    await db.exec(`SET search_path TO "${init.schema}"`);
    // The lock file already makes this process the only one on the directory; the epoch
    // keeps the same fencing as on PostgreSQL, so both modes share one write path.
    if (!init.readOnly) writerEpoch = await claimWriter(session, init.pid, init.host);
    store = new SqlWalStore(session, { writerEpoch, where: init.where });
    exposeStore(store, init.storePort);
    return { ok: true, writerEpoch };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return {
      ok: false,
      message: error instanceof Error ? error.message : String(error),
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
}

const opened = open();

const control: PgliteHostControl = {
  ready: () => opened,
  connect(port) {
    if (store === null) throw new Error('the PGlite store is not open');
    exposeStore(store, port);
  },
  async close() {
    await opened;
    await store?.close();
    await db?.close();
  },
};

Comlink.expose(control, nodeEndpoint(parentPort!));
