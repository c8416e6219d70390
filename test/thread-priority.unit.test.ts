import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { currentThreadId, lowerThreadPriority } from '../src/engine/thread-priority.js';

/** The nice value of the calling thread, from its /proc stat line (field 19). */
function niceOfThisThread(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

const linux = currentThreadId() !== null;
if (!linux)
  console.warn('thread-priority: no /proc/thread-self here (not Linux): the thread tests are skipped');

describe.skipIf(!linux)('background thread priority (Linux)', () => {
  it('lowers the calling worker thread alone, not the process', async () => {
    const before = niceOfThisThread();
    const module = pathToFileURL(`${process.cwd()}/dist/src/engine/thread-priority.js`).href;
    const code = `
      const { parentPort } = require('node:worker_threads');
      const { readFileSync } = require('node:fs');
      import(${JSON.stringify(module)}).then((m) => {
        const stat = () => { const s = readFileSync('/proc/thread-self/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[16]); };
        const lowered = m.lowerThreadPriority();
        parentPort.postMessage({ lowered, now: stat(), tid: m.currentThreadId(), pid: process.pid });
      });`;
    const worker = new Worker(code, { eval: true });
    const seen = await new Promise<{ lowered: boolean; now: number; tid: number; pid: number }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      },
    );
    await worker.terminate();
    expect(seen.lowered).toBe(true);
    expect(seen.tid).not.toBe(seen.pid);
    expect(seen.now).toBe(19);
    // The thread that asked nothing keeps its priority.
    expect(niceOfThisThread()).toBe(before);
  });

  it('refuses to lower the main thread, which would lower the process', () => {
    expect(currentThreadId()).toBe(process.pid);
    const before = niceOfThisThread();
    expect(lowerThreadPriority()).toBe(false);
    expect(niceOfThisThread()).toBe(before);
  });
});
