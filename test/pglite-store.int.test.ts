/**
 * PgliteWalStore: the WalStore contract on embedded PGlite (in its own worker thread),
 * one process per data directory, and durability across a crash of the process.
 *
 * One data directory serves the whole file (creating one costs seconds); every test
 * works in a schema of its own.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { schemaVersionCurrent } from '../src/persistence/migrations.js';
import { PgliteWalStore } from '../src/persistence/pglite-store.js';
import { storeFromLink } from '../src/persistence/store-link.js';
import type { WalRow, WalStore } from '../src/persistence/wal.js';
import { testSchemaName } from './support/services.js';
import { walStoreContract } from './support/wal-store-contract.js';

let dataDir = '';
const opened: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'stockd-pglite-'));
});

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((store) => store.close()));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function open(schema = testSchemaName(), readOnly = false): Promise<PgliteWalStore> {
  const store = await PgliteWalStore.open({ dataDir, schema, readOnly });
  opened.push(store);
  return store;
}

function row(stream: number, seq: number): WalRow {
  return { stream, seq, epoch: 1, at: 1_000 + seq, eventCount: 1, payload: Uint8Array.of(seq % 256, 7) };
}

walStoreContract('PGlite', async () => {
  const store = await open();
  return { store, close: () => store.close() };
});

describe('PGlite store', () => {
  it('serves shard workers on ports of their own, straight to the PGlite thread', async () => {
    const host = await open();
    const links = await Promise.all([host.linkForWorker(), host.linkForWorker()]);
    const [a, b] = links.map(({ link }) => storeFromLink(link)) as [WalStore, WalStore];
    await Promise.all([a.append(row(0, 1)), b.append(row(1, 1))]);
    await expect(b.append(row(1, 3))).rejects.toMatchObject({ code: 'WAL_SEQUENCE' });
    expect(await host.lastSeq(0)).toBe(1);
    expect((await a.read(1, 0, 10)).map((r) => r.seq)).toEqual([1]);
    // A worker that goes away closes only its own line.
    await a.close();
    await b.append(row(1, 2));
    expect(await host.lastSeq(1)).toBe(2);
    // When the PGlite thread goes away, calls reject instead of waiting forever.
    await host.close();
    await expect(b.append(row(1, 3))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('describes itself for logs and records the writer epoch', async () => {
    const schema = testSchemaName();
    const first = await open(schema);
    expect(first.describe()).toBe(`pglite ${dataDir} schema ${schema}`);
    expect(first.writerEpoch).toBe(1);
    await first.close();
    expect((await open(schema)).writerEpoch).toBe(2);
  });

  it('refuses a second open of the directory in the same process', async () => {
    await open();
    await expect(PgliteWalStore.open({ dataDir, schema: testSchemaName() })).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      message: expect.stringContaining('open twice'),
    });
  });

  it('opens read-only without writing, and refuses a schema it does not know', async () => {
    const schema = testSchemaName();
    const writer = await open(schema);
    await writer.append(row(0, 1));
    await writer.close();
    const reader = await open(schema, true);
    expect(reader.writerEpoch).toBeNull();
    expect(await reader.lastSeq(0)).toBe(1);
    await expect(reader.append(row(0, 2))).rejects.toMatchObject({ code: 'STORE_READ_ONLY' });
    await reader.close();
    await expect(open(testSchemaName(), true)).rejects.toMatchObject({ code: 'SCHEMA_NOT_CURRENT' });
  });

  it('refuses to open a schema newer than the code', async () => {
    const schema = testSchemaName();
    await (await open(schema)).close();
    // Pretend a newer stockd migrated this schema.
    const db = await PGlite.create(join(dataDir, 'pgdata'));
    await db.query(`INSERT INTO "${schema}".stockd_schema (version) VALUES ($1)`, [schemaVersionCurrent + 1]);
    await db.close();
    await expect(open(schema)).rejects.toMatchObject({ code: 'SCHEMA_TOO_NEW' });
    // The refusal freed the directory again.
    await open();
  });

  it('takes over a lock file left by a dead process, and refuses one of a live process', async () => {
    const locks = join(dataDir, 'locks');
    const dead = { pid: 2 ** 22 + 17, host: (await import('node:os')).hostname(), since: 'then' };
    await writeFile(join(locks, `${dead.host}-${dead.pid}.json`), JSON.stringify(dead));
    await (await open()).close();
    expect(await readdir(locks)).toEqual([]);
    // A live process: our parent (the test runner's) pid stands in for another stockd.
    const live = { pid: process.ppid, host: dead.host, since: '2026-01-01T00:00:00.000Z' };
    await writeFile(join(locks, `${live.host}-${live.pid}.json`), JSON.stringify(live));
    try {
      await expect(open()).rejects.toMatchObject({
        code: 'STORE_LOCKED',
        message: expect.stringContaining(`another stockd process (pid ${live.pid}, host ${live.host}`),
      });
    } finally {
      await rm(join(locks, `${live.host}-${live.pid}.json`));
    }
  });

  it('keeps every acknowledged append when the process is killed, and refuses others while it lives', async () => {
    const schema = testSchemaName();
    const child = spawnAppender(schema);
    try {
      await child.waitForAcks(30);
      await expect(open(schema)).rejects.toMatchObject({
        code: 'STORE_LOCKED',
        message: expect.stringContaining(`pid ${child.pid}`),
      });
      child.kill();
      await child.exited;
      const store = await open(schema);
      const last = await store.lastSeq(0);
      // Every seq the child printed was acknowledged before the kill (its output is read to the end).
      expect(last).toBeGreaterThanOrEqual(Math.max(...child.acked));
      const rows = await store.read(0, 0, 10_000);
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      expect(rows.every((r) => r.payload.length === 1024)).toBe(true);
      // The next writer carries on where the dead one stopped.
      await store.append({ ...row(0, last + 1) });
    } finally {
      child.kill();
    }
  });
});

/**
 * A child process that opens the store from the built code and appends to stream 0 as
 * fast as it can, printing each acknowledged seq.
 */
function spawnAppender(schema: string) {
  const storeModule = fileURLToPath(new URL('../dist/src/persistence/pglite-store.js', import.meta.url));
  const script = `
    const { PgliteWalStore } = await import(${JSON.stringify(storeModule)});
    const store = await PgliteWalStore.open({ dataDir: ${JSON.stringify(dataDir)}, schema: ${JSON.stringify(schema)} });
    for (let seq = 1; ; seq++) {
      await store.append({ stream: 0, seq, epoch: 1, at: Date.now(), eventCount: 1, payload: new Uint8Array(1024).fill(seq % 256) });
      process.stdout.write('ack ' + seq + '\\n');
    }`;
  const scriptPath = join(dataDir, `appender-${schema}.mjs`);
  writeFileSync(scriptPath, script);
  const child = spawn(process.execPath, [scriptPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const acked: number[] = [];
  let stderr = '';
  let waiter: (() => void) | null = null;
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) if (line.startsWith('ack ')) acked.push(Number(line.slice(4)));
    waiter?.();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close' comes after the last output: every ack printed before death has been read.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    pid: child.pid,
    acked,
    exited,
    kill: () => child.kill('SIGKILL'),
    async waitForAcks(count: number): Promise<void> {
      const deadline = Date.now() + 60_000;
      while (acked.length < count) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`appender stopped after ${acked.length} acks: ${stderr}`);
        }
        await new Promise<void>((resolve) => {
          waiter = resolve;
          setTimeout(resolve, 100);
        });
      }
    },
  };
}
