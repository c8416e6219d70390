/**
 * A target as the suite sees it: a backend (backends.ts) reached over one transport.
 *
 *   <name>:direct  the backend in this process; operations go to execute / executeMany
 *   <name>:http    the backend behind stockd's HTTP server in a child process
 *                  (target-server.ts); operations go over keep-alive connections
 *
 * Either way the suite can seed it (absolute sets in bulk: executeMany, or POST /v1/batch),
 * read stock back for checks, and get a Sender for the load generators.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { Request } from '../../src/actors/types.js';
import { serverNodeArgs } from '../machine.js';
import { type Backend, type BackendConfig, openBackend, type TargetName, targetNames } from './backends.js';
import { httpCallOf, outcomesOf } from './http-codec.js';
import { type Outcome, okOutcome, type StockLevel } from './operation.js';
import { DirectSender, HttpSender, type Sender } from './senders.js';
import {
  type ReadyLine,
  readyPrefix,
  type TargetServerSpec,
  targetEnvironmentVariable,
} from './server-protocol.js';

export const transports = ['direct', 'http'] as const;
export type Transport = (typeof transports)[number];

export interface TargetSpec {
  readonly name: TargetName;
  readonly transport: Transport;
}

export function targetLabel(spec: TargetSpec): string {
  return `${spec.name}:${spec.transport}`;
}

/** `stockd:direct,pg-row:http` → specs; a bare name means its HTTP form. */
export function parseTargets(list: string): TargetSpec[] {
  return list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item) => {
      const [name, transport = 'http'] = item.split(':');
      if (!targetNames.includes(name as TargetName)) {
        throw new Error(`unknown target ${JSON.stringify(name)}; one of ${targetNames.join(', ')}`);
      }
      if (!transports.includes(transport as Transport)) {
        throw new Error(`unknown transport ${JSON.stringify(transport)}; one of ${transports.join(', ')}`);
      }
      return { name: name as TargetName, transport: transport as Transport };
    });
}

export interface TargetOptions {
  readonly backend: BackendConfig;
  /** Direct transport: put the requests of one tick into one executeMany (see senders.ts). */
  readonly coalesce: boolean;
  /** An HTTP answer slower than this is a TIMEOUT. */
  readonly timeoutMs: number;
}

/** What results.json records of a target. */
export interface TargetInfo {
  readonly label: string;
  readonly name: TargetName;
  readonly transport: Transport;
  readonly durable: boolean;
  readonly durability: string;
  readonly server: string;
}

export interface RunningTarget {
  readonly info: TargetInfo;
  /** The HTTP origin of an http target (null: direct). */
  readonly origin: string | null;
  /** Headers every HTTP request carries (the API key). */
  readonly headers: Readonly<Record<string, string>>;
  sender(connections: number): Sender;
  /** Applies requests in bulk, not measured (seeding); one outcome each. */
  load(requests: readonly Request[]): Promise<Outcome[]>;
  stockOf(sku: string): Promise<StockLevel[]>;
  close(): Promise<void>;
}

/** Commands per bulk call while seeding (below the API's batchCommandsMax of 10,000). */
const loadChunk = 5_000;
/** Bulk calls in flight while seeding. */
const loadParallel = 4;

async function inChunks(
  requests: readonly Request[],
  apply: (chunk: readonly Request[]) => Promise<Outcome[]>,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(requests.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests.length) {
      const from = next;
      next += loadChunk;
      const chunk = requests.slice(from, from + loadChunk);
      const result = await apply(chunk);
      for (let i = 0; i < result.length; i++) outcomes[from + i] = result[i]!;
    }
  };
  await Promise.all(Array.from({ length: loadParallel }, worker));
  return outcomes;
}

export async function startTarget(spec: TargetSpec, options: TargetOptions): Promise<RunningTarget> {
  return spec.transport === 'direct' ? startDirect(spec, options) : startHttp(spec, options);
}

async function startDirect(spec: TargetSpec, options: TargetOptions): Promise<RunningTarget> {
  const backend: Backend = await openBackend(spec.name, options.backend);
  const engine = backend.engine;
  return {
    info: {
      label: targetLabel(spec),
      name: spec.name,
      transport: spec.transport,
      durable: backend.durable,
      durability: backend.durability,
      server: backend.server,
    },
    origin: null,
    headers: {},
    sender: () => new DirectSender(engine, options.coalesce),
    load: (requests) =>
      inChunks(requests, async (chunk) =>
        (await engine.executeMany(chunk)).map((reply) => (reply.ok ? okOutcome : reply.code)),
      ),
    stockOf: async (sku) => {
      const reply = await engine.execute({ type: 'stock', sku });
      if (!reply.ok || reply.kind !== 'stockList') return [];
      return reply.locations.map(({ location, onHand, reserved }) => ({ location, onHand, reserved }));
    },
    close: () => backend.close(),
  };
}

/** target-server.js from the build: tests run these sources, the child always runs dist/. */
function targetServerPath(): string {
  const url = import.meta.url.endsWith('.ts')
    ? new URL('../../dist/bench/load/target-server.js', import.meta.url)
    : new URL('./target-server.js', import.meta.url);
  return fileURLToPath(url);
}

function spawnServer(spec: TargetServerSpec): Promise<{ child: ChildProcess; ready: ReadyLine }> {
  const child = spawn(process.execPath, [...serverNodeArgs(), targetServerPath()], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, [targetEnvironmentVariable]: JSON.stringify(spec) },
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const line = output.split('\n').find((text) => text.startsWith(readyPrefix));
      if (line === undefined) return;
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      // Keep draining stdout so the child never blocks on a full pipe.
      child.stdout!.resume();
      resolve({ child, ready: JSON.parse(line.slice(readyPrefix.length)) as ReadyLine });
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`the ${spec.name} server exited with ${code} before it was ready`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function startHttp(spec: TargetSpec, options: TargetOptions): Promise<RunningTarget> {
  const key = randomBytes(16).toString('hex');
  const { child, ready } = await spawnServer({ name: spec.name, config: options.backend, key });
  const origin = `http://127.0.0.1:${ready.port}`;
  const headers = { authorization: `Bearer ${key}` };
  const call = async (method: 'GET' | 'POST', path: string, body?: string) => {
    const response = await request(`${origin}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body,
    });
    return { status: response.statusCode, text: await response.body.text() };
  };
  return {
    info: {
      label: targetLabel(spec),
      name: spec.name,
      transport: spec.transport,
      durable: ready.durable,
      durability: ready.durability,
      server: ready.server,
    },
    origin,
    headers,
    sender: (connections) => new HttpSender(origin, { connections, headers, timeoutMs: options.timeoutMs }),
    load: (requests) =>
      inChunks(requests, async (chunk) => {
        const operation = { requests: chunk, batch: true };
        const http = httpCallOf(operation);
        const { status, text } = await call('POST', http.path, http.body);
        return outcomesOf(operation, status, text);
      }),
    stockOf: async (sku) => {
      const { status, text } = await call('GET', `/v1/stock/${encodeURIComponent(sku)}`);
      if (status !== 200) return [];
      const body = JSON.parse(text) as { locations: StockLevel[] };
      return body.locations.map(({ location, onHand, reserved }) => ({ location, onHand, reserved }));
    },
    close: () => stopServer(child),
  };
}
