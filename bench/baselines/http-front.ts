/**
 * The HTTP front of an alternative: stockd's own server (buildServer from src/api) with the
 * alternative in the engine's place. Same routes, TypeBox schemas and validation, the same
 * compiled serializers and problem+json codes, the same per-route hooks — so the benchmark
 * compares what sits behind the front, and nothing else.
 */
import type { ApiKey } from '../../src/api/auth.js';
import { type ApiServer, buildServer } from '../../src/api/server.js';
import type { Baseline } from './baseline.js';

export function buildBaselineServer(baseline: Baseline, keys: readonly ApiKey[] = []): Promise<ApiServer> {
  return buildServer({ engine: baseline, keys, docs: false });
}
