/**
 * CPU priority of one thread. A background snapshot replays a shard's WAL on a thread of
 * its own; on a small machine that thread competes for the same cores as the shard
 * workers and the API thread, and every time slice it takes can delay a round trip that
 * was ready to run. Linux schedules threads individually, and `setpriority` on a thread
 * id sets that thread's nice value alone, so the snapshot thread yields to the serving
 * threads whenever they are runnable and still uses the time they leave idle.
 *
 * Elsewhere (no /proc/thread-self) this does nothing: `setpriority` there would lower the
 * whole process.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The nice value of background threads: they run on the time the serving threads leave. */
export const backgroundNice = 19;

/** The calling thread's own id (Linux; `/proc/thread-self` links to `<pid>/task/<tid>`), or null. */
export function currentThreadId(): number | null {
  try {
    const link = readlinkSync('/proc/thread-self');
    const tid = Number(link.slice(link.lastIndexOf('/') + 1));
    return Number.isSafeInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/**
 * Lowers the calling worker thread's priority to `nice` (Linux only; never the process's
 * main thread, whose id is the process id). Returns whether it did.
 */
export function lowerThreadPriority(nice: number = backgroundNice): boolean {
  const tid = currentThreadId();
  if (tid === null || tid === process.pid) return false;
  try {
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}
