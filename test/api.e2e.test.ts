/**
 * End to end over real sockets (undici):
 *   - `stockd serve` started as the README says, as a newcomer would (embedded PGlite in
 *     a fresh directory), reserving stock with plain HTTP, stopped with SIGTERM → exit 0;
 *   - the server on the real PostgreSQL: MessagePack batches, the SSE tail and its resume
 *     from Last-Event-ID, and a graceful stop that finishes in-flight work;
 *   - the refusal to listen beyond loopback without API keys.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningServer, serve } from '../src/cli/serve.js';
import { adminQuery, dropSchema, findPostgres, testDatabaseUrl, testSchemaName } from './support/services.js';

const cli = fileURLToPath(new URL('../dist/src/cli/stockd.js', import.meta.url));
const wire = new Packr({ useRecords: false });
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function call(
  base: string,
  method: 'GET' | 'PUT' | 'POST',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }> {
  const response = await request(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    headers: response.headers,
    json: text === '' ? null : JSON.parse(text),
  };
}

/** Starts the CLI and resolves with its URL once it logs that it listens. */
function startCli(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(process.execPath, [cli, 'serve', ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      const match = /"url":"(http:\/\/[^"]+)"/.exec(output);
      if (match) {
        clearInterval(poll);
        resolve({ child, url: match[1]!, log: () => output });
      }
    }, 50);
    child.once('exit', (code) => {
      clearInterval(poll);
      reject(new Error(`stockd serve exited with ${code}:\n${output}`));
    });
  });
}

function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function waitReady(base: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await call(base, 'GET', '/readyz')).status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('never ready');
}

describe('stockd serve, as a newcomer runs it', () => {
  it('starts with the defaults (embedded PGlite), serves /docs, reserves stock, stops cleanly on SIGTERM', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'stockd-newcomer-'));
    cleanups.push(() => rm(cwd, { recursive: true, force: true }));
    const { child, url, log } = await startCli([], cwd, { PORT: '0' });
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(log()).toContain('no API keys configured');
    await waitReady(url);
    expect((await call(url, 'GET', '/docs/json')).json.openapi).toMatch(/^3\./);
    expect((await call(url, 'PUT', '/v1/channels/web', { locations: ['WH1'] })).status).toBe(200);
    expect((await call(url, 'PUT', '/v1/stock/TSHIRT-M/WH1', { onHand: 10 })).status).toBe(200);
    const held = await call(
      url,
      'POST',
      '/v1/reservations',
      { channel: 'web', lines: [{ sku: 'TSHIRT-M', qty: 2 }] },
      {
        'idempotency-key': 'order-1001',
      },
    );
    expect(held.status).toBe(201);
    expect(held.json).toMatchObject({
      reservationId: 'order-1001',
      status: 'held',
      lines: [{ sku: 'TSHIRT-M', location: 'WH1', qty: 2 }],
    });
    expect((await call(url, 'GET', '/v1/atp/TSHIRT-M?channel=web')).json.available).toBe(8);
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
    expect(log()).toContain('every acknowledged change is in the log');

    // The data directory keeps it: a second start finds the reservation.
    const again = await startCli([], cwd, { PORT: '0' });
    await waitReady(again.url);
    expect((await call(again.url, 'GET', '/v1/reservations/order-1001')).json.status).toBe('held');
    again.child.kill('SIGTERM');
    expect(await exitCode(again.child)).toBe(0);
  });

  it('refuses to listen beyond loopback without API keys, and says why', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'stockd-refuse-'));
    cleanups.push(() => rm(cwd, { recursive: true, force: true }));
    const child = spawn(process.execPath, [cli, 'serve', '--host', '0.0.0.0', '--port', '0'], {
      cwd,
      env: { ...process.env, STOCKD_API_KEYS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    expect(await exitCode(child)).toBe(2);
    expect(output).toContain('refusing to listen on 0.0.0.0 without API keys');
  });
});

const postgres = await findPostgres();

describe.runIf(postgres.available)('the API on PostgreSQL over a socket', () => {
  const key = 'e2e-admin-key-0123456789';
  const auth = { authorization: `Bearer ${key}` };
  let server: RunningServer;
  let base: string;

  it('starts on PostgreSQL with keys', async () => {
    const schema = testSchemaName();
    cleanups.push(() => dropSchema(schema));
    server = await serve({
      port: 0,
      host: '127.0.0.1',
      shards: 2,
      databaseUrl: testDatabaseUrl,
      databaseSchema: schema,
      apiKeys: `${key}:admin`,
      logLevel: 'warn',
    });
    cleanups.push(() => server.stop());
    base = server.url;
    await server.ready;
    expect((await call(base, 'GET', '/readyz')).status).toBe(200);
    expect((await call(base, 'GET', '/v1/channels')).status).toBe(401);
  });

  it('takes a MessagePack batch and answers in MessagePack', async () => {
    await call(base, 'PUT', '/v1/stock/e2e-a/WH1', { onHand: 100 }, auth);
    const commands = Array.from({ length: 50 }, (_, i) => ({
      op: 'reserve',
      reservationId: `e2e-mp-${i}`,
      lines: [{ sku: 'e2e-a', qty: 1 }],
    }));
    const response = await request(`${base}/v1/batch`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/msgpack', accept: 'application/msgpack' },
      body: wire.pack({ commands: [...commands, { op: 'atp', sku: 'e2e-a' }] }),
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/msgpack');
    const { results } = wire.unpack(Buffer.from(await response.body.arrayBuffer())) as {
      results: Array<{ status: number; body: Record<string, unknown> }>;
    };
    expect(results.slice(0, 50).every((r) => r.status === 201)).toBe(true);
    expect(results[50]).toMatchObject({ status: 200, body: { sku: 'e2e-a', available: 50 } });
  });

  it('streams committed events over SSE and resumes exactly after Last-Event-ID', async () => {
    const start = (await call(base, 'GET', '/v1/events?after=latest', undefined, auth)).json.next as string;
    const first = await readSse(base, { ...auth, 'last-event-id': start }, 3, async () => {
      for (let i = 0; i < 5; i++) await call(base, 'PUT', `/v1/stock/sse-${i}/WH1`, { onHand: i + 1 }, auth);
    });
    expect(first.map((e) => e.data.sku)).toEqual(['sse-0', 'sse-1', 'sse-2']);
    expect(first.every((e) => e.event === 'StockSet')).toBe(true);
    // Reconnect with the id of the last event seen: the next one is the fourth write, nothing repeated.
    const rest = await readSse(base, { ...auth, 'last-event-id': first.at(-1)!.id }, 2);
    expect(rest.map((e) => e.data.sku)).toEqual(['sse-3', 'sse-4']);
  });

  it('a stop waits for requests in flight, then closes', async () => {
    const inFlight = call(
      base,
      'POST',
      '/v1/batch',
      {
        commands: Array.from({ length: 500 }, (_, i) => ({
          op: 'reserve',
          reservationId: `stop-${i}`,
          lines: [{ sku: 'e2e-a', qty: 0 + 1 }],
        })),
      },
      auth,
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const stopped = server.stop();
    const answered = await inFlight;
    expect(answered.status).toBe(200);
    await stopped;
    await expect(request(`${base}/healthz`)).rejects.toThrow();
  });
});

describe.runIf(postgres.available)('a stale writer on PostgreSQL', () => {
  it('once another process has taken over, refuses writes with 503, is not ready, and reports it must stop', async () => {
    const schema = testSchemaName();
    cleanups.push(() => dropSchema(schema));
    const server = await serve({
      port: 0,
      host: '127.0.0.1',
      shards: 1,
      databaseUrl: testDatabaseUrl,
      databaseSchema: schema,
      logLevel: 'silent',
    });
    cleanups.push(() => server.stop());
    await server.ready;
    let fatal: Error | null = null;
    void server.fatal.then((reason) => {
      fatal = reason;
    });
    expect((await call(server.url, 'PUT', '/v1/stock/fence-a/WH1', { onHand: 7 })).status).toBe(200);
    // Another process claims the database behind this one's back, as a successor does after
    // this writer's lock session died while the process kept running.
    await adminQuery(`UPDATE "${schema}".stockd_writer SET epoch = epoch + 1, pid = 1, host = 'elsewhere'`);
    const refused = await call(server.url, 'PUT', '/v1/stock/fence-a/WH1', { onHand: 9 });
    expect(refused.status).toBe(503);
    expect(refused.json).toMatchObject({ code: 'UNAVAILABLE' });
    for (let i = 0; i < 100 && fatal === null; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(String(fatal)).toContain('fenced');
    const ready = await call(server.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ detail: expect.stringContaining('fenced') });
    // Nothing of the refused write is in the log: the successor sees onHand 7.
    const rows = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".stockd_wal`);
    expect(Number(rows[0]!.n)).toBe(1);
    await server.stop();
  });
});

interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

/** Reads `count` SSE events (running `meanwhile` once connected), then disconnects. */
async function readSse(
  base: string,
  headers: Record<string, string>,
  count: number,
  meanwhile?: () => Promise<void>,
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const response = await request(`${base}/v1/events`, {
    headers: { ...headers, accept: 'text/event-stream' },
    signal: abort.signal,
  });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toContain('text/event-stream');
  const work = meanwhile?.();
  const events: SseEvent[] = [];
  let buffer = '';
  try {
    for await (const chunk of response.body) {
      buffer += chunk.toString();
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => line !== '' && !line.startsWith(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
        );
        if (fields.data !== undefined)
          events.push({ id: fields.id!, event: fields.event!, data: JSON.parse(fields.data) });
        if (events.length === count) break;
        end = buffer.indexOf('\n\n');
      }
      if (events.length === count) break;
    }
  } finally {
    abort.abort();
    await work;
  }
  return events;
}
