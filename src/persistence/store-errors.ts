/**
 * Errors of the durable stores. Each carries a stable `code` so that callers (the engine,
 * the CLI, the replay tool) decide on the code, never on the wording.
 *
 * These are operational failures of the store, not business rejections: they never reach
 * a client as a domain outcome. A failed append makes the shard answer UNAVAILABLE and
 * rebuild from the WAL; a failed open stops the process with the message below.
 */

export const storeErrorCodes = [
  /** Another live process is the writer of this database (advisory lock or lock file held). */
  'STORE_LOCKED',
  /** This process was the writer, but another one has since taken over (writer epoch moved on). */
  'STORE_FENCED',
  /** The store was opened for reading only (replay tool) and was asked to write. */
  'STORE_READ_ONLY',
  /** The store was closed and was asked to do something. */
  'STORE_CLOSED',
  /** The thread or connection that hosts the store went away mid-call; the outcome is unknown. */
  'STORE_UNAVAILABLE',
  /** The database holds a schema newer than this code understands. */
  'SCHEMA_TOO_NEW',
  /** A read-only open found no schema, or an older one that only a writer may migrate. */
  'SCHEMA_NOT_CURRENT',
  /** An option (schema name, data directory, URL) is malformed. */
  'STORE_CONFIG',
] as const;

export type StoreErrorCode = (typeof storeErrorCodes)[number];

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/** Who holds (or last held) the writer role, as recorded in stockd_writer or the lock file. */
export interface WriterIdentity {
  readonly pid: number | null;
  readonly host: string | null;
  /** ISO time the writer opened the database. */
  readonly since: string | null;
}

export function storeLockedError(where: string, holder: WriterIdentity | null, hint = ''): StoreError {
  const who =
    holder === null || holder.pid === null
      ? 'another stockd process'
      : `another stockd process (pid ${holder.pid}, host ${holder.host ?? 'unknown'}, since ${holder.since ?? 'unknown'})`;
  return new StoreError('STORE_LOCKED', `${who} is the writer of ${where}${hint}`);
}

/** The `code` of any error, or undefined: errors cross threads and libraries as plain objects. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code = (error as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
