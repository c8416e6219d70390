/**
 * A target behind HTTP, in its own process (started by targets.ts; run from dist/):
 *
 *   parent (load generator) ──HTTP, keep-alive, 127.0.0.1──▶ this process
 *                                                              buildServer() (src/api) + backend
 *
 * The server is stockd's own for every target (the alternatives take the engine's place),
 * with one API key, no rate limit, no OpenAPI pages. Its own process keeps the generator's
 * CPU out of the server's event loop, as in production.
 *
 * Protocol (server-protocol.ts): the parent passes {name, config, key} as JSON in STOCKD_BENCH_TARGET; this
 * process prints `READY {"port", "durable", "durability", "server"}` on stdout once it
 * listens, and on SIGTERM closes the server (finishing requests in flight), stops the
 * backend and exits 0.
 */
import { buildServer } from '../../src/api/server.js';
import { openBackend } from './backends.js';
import {
  type ReadyLine,
  readyPrefix,
  type TargetServerSpec,
  targetEnvironmentVariable,
} from './server-protocol.js';

async function serve(spec: TargetServerSpec): Promise<void> {
  const backend = await openBackend(spec.name, spec.config);
  const app = await buildServer({
    engine: backend.engine,
    keys: [{ key: spec.key, scopes: ['read', 'write'] }],
    docs: false,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address');
  const ready: ReadyLine = {
    port: address.port,
    durable: backend.durable,
    durability: backend.durability,
    server: backend.server,
  };
  process.stdout.write(`${readyPrefix}${JSON.stringify(ready)}\n`);
  process.once('SIGTERM', () => {
    void app
      .close()
      .then(() => backend.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
  });
}

const raw = process.env[targetEnvironmentVariable];
if (raw === undefined) {
  console.error(
    `target-server: ${targetEnvironmentVariable} is not set (this process is started by the benchmark)`,
  );
  process.exit(2);
}
await serve(JSON.parse(raw) as TargetServerSpec);
