/**
 * One process per PGlite data directory. PGlite is PostgreSQL in single-user mode inside
 * WebAssembly: two processes on one directory would each write its files and corrupt it.
 *
 * Protocol, safe without any atomic "test and replace" (Node has no flock):
 *
 *   1. create  <dir>/locks/<host>-<pid>.json   exclusively (our identity)
 *   2. list    <dir>/locks/
 *        a file of a live process ──▶ remove ours, refuse (STORE_LOCKED)
 *        a file of a dead process ──▶ remove it (left by a crash), carry on
 *   3. hold the directory until release() removes our file
 *
 * Two processes starting at once each see the other's file (each created its own before
 * listing), so at worst both refuse — never both proceed. A file of another host cannot be
 * checked for liveness and always refuses; the message names the file to delete.
 */
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StoreError, storeLockedError, type WriterIdentity } from './store-errors.js';

const locksFolder = 'locks';

export interface DirectoryLock {
  readonly path: string;
  release(): Promise<void>;
}

interface LockRecord extends WriterIdentity {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

export async function lockDirectory(dir: string, what: string): Promise<DirectoryLock> {
  const folder = join(dir, locksFolder);
  await mkdir(folder, { recursive: true });
  const me: LockRecord = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const name = fileNameOf(me);
  const path = join(folder, name);
  await createExclusive(path, me);
  try {
    for (const other of await readdir(folder)) {
      if (other === name || !other.endsWith('.json')) continue;
      const otherPath = join(folder, other);
      const record = await readRecord(otherPath);
      if (record === null) continue; // Removed meanwhile by its owner or another starter.
      if (isAlive(record)) {
        throw storeLockedError(
          what,
          record,
          record.host === me.host
            ? ''
            : ` (on another host; if it no longer runs stockd, delete ${otherPath})`,
        );
      }
      await rm(otherPath, { force: true });
    }
  } catch (error) {
    await rm(path, { force: true });
    throw error;
  }
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      await rm(path, { force: true });
    },
  };
}

function fileNameOf(record: LockRecord): string {
  return `${record.host.replace(/[^A-Za-z0-9.-]/g, '_')}-${record.pid}.json`;
}

async function createExclusive(path: string, record: LockRecord): Promise<void> {
  for (;;) {
    try {
      const file = await open(path, 'wx');
      try {
        await file.writeFile(JSON.stringify(record));
        await file.sync();
      } finally {
        await file.close();
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Our own name is taken: by this process (the store is open twice, perhaps from
      // another thread), or by a crashed earlier process that had our pid (pids are
      // reused). A file written after this process started is ours.
      const existing = await readRecord(path);
      if (existing !== null && Date.parse(existing.since) >= processStartedMs) {
        throw new StoreError('STORE_LOCKED', `this process already holds ${path}: the store is open twice`);
      }
      await rm(path, { force: true });
    }
  }
}

/** When this process started (ms), give or take the clock's resolution. */
const processStartedMs = Date.now() - process.uptime() * 1_000 - 1_000;

async function readRecord(path: string): Promise<LockRecord | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockRecord>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') {
      return { pid: parsed.pid, host: parsed.host, since: String(parsed.since ?? 'unknown') };
    }
  } catch {
    // A process that crashed while writing its file leaves it empty or torn: treat as dead.
  }
  return { pid: -1, host: hostname(), since: 'unknown' };
}

function isAlive(record: LockRecord): boolean {
  if (record.host !== hostname()) return true;
  if (record.pid <= 0) return false;
  try {
    process.kill(record.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
