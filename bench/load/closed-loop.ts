/**
 * Closed loop: `connections` clients, each sending its next operation as soon as the
 * previous one is answered. It finds the maximum rate; its latencies are those of a
 * saturated target (a closed loop slows down with the target, so it cannot show queueing
 * delay the way the open loop does — see open-loop.ts).
 *
 *   over HTTP  autocannon, `requests: [{ setupRequest, onResponse }]`: setupRequest asks the
 *              scenario for the next operation and renders it (http-codec.ts); onResponse
 *              hands the outcomes back to the scenario; latency from autocannon's
 *              per-response time into our own HDR histogram
 *   direct     `connections` async lanes over a Sender
 *
 * A finite scenario (the resync) runs until its last operation is answered (autocannon's
 * `amount`); the others run for `seconds`.
 */
import autocannon from 'autocannon';
import { httpCallOf, outcomesOf } from './http-codec.js';
import type { Operation, Scenario } from './operation.js';
import type { Recorder } from './recorder.js';
import type { Sender } from './senders.js';

export interface ClosedLoopOptions {
  readonly scenario: Scenario;
  readonly recorder: Recorder;
  readonly connections: number;
  readonly seconds: number;
  /** Stops the run early (Ctrl-C). */
  readonly signal?: AbortSignal;
}

export interface HttpClosedLoopOptions extends ClosedLoopOptions {
  readonly origin: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
}

interface Context {
  operation?: Operation | null;
}

/** Returns the elapsed seconds. */
export async function closedLoopHttp(options: HttpClosedLoopOptions): Promise<number> {
  const { scenario, recorder } = options;
  const finite = scenario.finiteOperations;
  const connections =
    finite === null ? options.connections : Math.max(1, Math.min(options.connections, finite));
  const jsonHeaders = { ...options.headers, 'content-type': 'application/json' };
  const started = performance.now();
  let instance: autocannon.Instance | undefined;
  const done = new Promise<void>((resolve, reject) => {
    instance = autocannon(
      {
        url: options.origin,
        connections,
        pipelining: 1,
        timeout: options.timeoutSeconds,
        ...(finite === null ? { duration: options.seconds } : { amount: finite }),
        // Replies are fed back to the scenario by onResponse; autocannon's own report is not used.
        requests: [
          {
            method: 'GET',
            path: '/healthz',
            setupRequest: (request, context: Context) => {
              const operation = scenario.next();
              context.operation = operation;
              // A finite scenario asked past its end (autocannon stops by `amount`, so only
              // defensively): a harmless probe that is not recorded.
              if (operation === null)
                return { ...request, method: 'GET', path: '/healthz', headers: options.headers };
              const call = httpCallOf(operation);
              return call.body === undefined
                ? {
                    ...request,
                    method: call.method,
                    path: call.path,
                    headers: options.headers,
                    body: undefined,
                  }
                : { ...request, method: call.method, path: call.path, headers: jsonHeaders, body: call.body };
            },
            onResponse: (status, body, context: Context) => {
              const operation = context.operation;
              if (operation === null || operation === undefined) return;
              const outcomes = outcomesOf(operation, status, body);
              recorder.outcomes(operation, outcomes);
              scenario.observe(operation, outcomes);
            },
          },
        ],
      },
      (error) => (error ? reject(error) : resolve()),
    );
  });
  instance!.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => {
    recorder.latency(responseTimeMs);
  });
  // Connection errors and timeouts come without their operation; they still count as failures.
  instance!.on('reqError', (error: Error) => {
    recorder.lost(error.message.includes('timed out') ? 'TIMEOUT' : 'TRANSPORT_ERROR');
  });
  const abort = () => instance?.stop();
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    await done;
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
  return (performance.now() - started) / 1000;
}

/** Returns the elapsed seconds. */
export async function closedLoopDirect(
  options: ClosedLoopOptions & { readonly sender: Sender },
): Promise<number> {
  const { scenario, recorder, sender } = options;
  const started = performance.now();
  const deadline =
    scenario.finiteOperations === null ? started + options.seconds * 1000 : Number.POSITIVE_INFINITY;
  const lane = async (): Promise<void> => {
    while (performance.now() < deadline && options.signal?.aborted !== true) {
      const operation = scenario.next();
      if (operation === null) return;
      const sent = performance.now();
      const outcomes = await sender.send(operation);
      recorder.record(operation, performance.now() - sent, outcomes);
      scenario.observe(operation, outcomes);
    }
  };
  await Promise.all(Array.from({ length: options.connections }, lane));
  return (performance.now() - started) / 1000;
}
