/**
 * The shard worker's own lifecycle, an xstate machine (run as an actor in the worker).
 *
 *   recovering ──RECOVERED──▶ ready ──WAL_FAILED──▶ degraded ──RETRY──▶ recovering
 *        │                      │                      │
 *        └───────────STOP───────┴─────────STOP─────────┴──▶ stopping ──STOPPED──▶ stopped
 *
 *   recovering | ready | degraded ──FENCED──▶ fenced ──STOP──▶ stopping
 *
 * Only `ready` accepts commands. In `degraded` the in-memory state may include a batch
 * whose append failed (its outcome is unknown), so the shard serves nothing until it has
 * re-read its WAL: every request is answered UNAVAILABLE, which is safe to retry.
 *
 * `fenced` is for good: another process has become the writer of the database (its writer
 * epoch moved past ours), so nothing this process could append would ever land. Retrying
 * would spin forever; the shard answers UNAVAILABLE until it is stopped, and the engine
 * tells its owner (`stockd serve` exits 1 so a supervisor notices).
 */
import { setup } from 'xstate';

export type ShardLifecycleEvent =
  | { type: 'RECOVERED' }
  | { type: 'WAL_FAILED'; error: string }
  | { type: 'RETRY' }
  | { type: 'FENCED'; error: string }
  | { type: 'STOP' }
  | { type: 'STOPPED' };

export const shardLifecycleMachine = setup({
  types: {} as { events: ShardLifecycleEvent; context: { failures: number; lastError: string | null } },
}).createMachine({
  id: 'shard',
  initial: 'recovering',
  context: { failures: 0, lastError: null },
  states: {
    recovering: { on: { RECOVERED: 'ready', WAL_FAILED: 'degraded', FENCED: 'fenced', STOP: 'stopping' } },
    ready: { on: { WAL_FAILED: 'degraded', FENCED: 'fenced', STOP: 'stopping' } },
    degraded: {
      entry: ({ context, event }) => {
        context.failures++;
        if (event.type === 'WAL_FAILED') context.lastError = event.error;
      },
      on: { RETRY: 'recovering', FENCED: 'fenced', STOP: 'stopping' },
    },
    fenced: {
      entry: ({ context, event }) => {
        if (event.type === 'FENCED') context.lastError = event.error;
      },
      on: { STOP: 'stopping' },
    },
    stopping: { on: { STOPPED: 'stopped' } },
    stopped: { type: 'final' },
  },
});

export type ShardLifecycleState = 'recovering' | 'ready' | 'degraded' | 'fenced' | 'stopping' | 'stopped';
