/**
 * The shard worker's own lifecycle, an xstate machine (run as an actor in the worker).
 *
 *   recovering ──RECOVERED──▶ ready ──WAL_FAILED──▶ degraded ──RETRY──▶ recovering
 *        │                      │                      │
 *        └───────────STOP───────┴─────────STOP─────────┴──▶ stopping ──STOPPED──▶ stopped
 *
 * Only `ready` accepts commands. In `degraded` the in-memory state may include a batch
 * whose append failed (its outcome is unknown), so the shard serves nothing until it has
 * re-read its WAL: every request is answered UNAVAILABLE, which is safe to retry.
 */
import { setup } from 'xstate';

export type ShardLifecycleEvent =
  | { type: 'RECOVERED' }
  | { type: 'WAL_FAILED'; error: string }
  | { type: 'RETRY' }
  | { type: 'STOP' }
  | { type: 'STOPPED' };

export const shardLifecycleMachine = setup({
  types: {} as { events: ShardLifecycleEvent; context: { failures: number; lastError: string | null } },
}).createMachine({
  id: 'shard',
  initial: 'recovering',
  context: { failures: 0, lastError: null },
  states: {
    recovering: { on: { RECOVERED: 'ready', WAL_FAILED: 'degraded', STOP: 'stopping' } },
    ready: { on: { WAL_FAILED: 'degraded', STOP: 'stopping' } },
    degraded: {
      entry: ({ context, event }) => {
        context.failures++;
        if (event.type === 'WAL_FAILED') context.lastError = event.error;
      },
      on: { RETRY: 'recovering', STOP: 'stopping' },
    },
    stopping: { on: { STOPPED: 'stopped' } },
    stopped: { type: 'final' },
  },
});

export type ShardLifecycleState = 'recovering' | 'ready' | 'degraded' | 'stopping' | 'stopped';
