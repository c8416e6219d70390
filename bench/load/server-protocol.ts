/** How targets.ts and its child process target-server.ts talk (see target-server.ts). */
import type { BackendConfig, TargetName } from './backends.js';

/** Passed as JSON in the STOCKD_BENCH_TARGET environment variable. */
export interface TargetServerSpec {
  readonly name: TargetName;
  readonly config: BackendConfig;
  /** The API key the load generator sends. */
  readonly key: string;
}

export const targetEnvironmentVariable = 'STOCKD_BENCH_TARGET';

/** The child prints this, then a ReadyLine as JSON, once it listens. */
export const readyPrefix = 'READY ';

export interface ReadyLine {
  readonly port: number;
  readonly durable: boolean;
  readonly durability: string;
  readonly server: string;
}
