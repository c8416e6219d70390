/** The crash test's operations, shared by the child that runs them and the driver that checks them. */
import type { Reply, Request } from '../../src/actors/types.js';

export const crashSkus: readonly string[] = Array.from({ length: 24 }, (_, i) => `crash-${i}`);
export const initialOnHand = 1_000_000;

export type CrashOp =
  | {
      readonly op: 'reserve';
      readonly id: string;
      readonly lines: ReadonlyArray<{ sku: string; qty: number }>;
    }
  | { readonly op: 'commit'; readonly id: string }
  | { readonly op: 'release'; readonly id: string }
  | { readonly op: 'adjust'; readonly key: string; readonly sku: string; readonly delta: number };

export interface Outcome {
  readonly ok: boolean;
  readonly code?: string;
}

export function opToRequest(op: CrashOp): Request {
  switch (op.op) {
    case 'reserve':
      return { type: 'reserve', reservationId: op.id, lines: op.lines, ttlSeconds: 3_600 };
    case 'commit':
      return { type: 'commit', reservationId: op.id };
    case 'release':
      return { type: 'release', reservationId: op.id };
    case 'adjust':
      return {
        type: 'adjust',
        sku: op.sku,
        location: 'dc-1',
        delta: op.delta,
        reason: 'crash-test',
        key: op.key,
      };
  }
}

export function outcomeOf(reply: Reply): Outcome {
  return reply.ok ? { ok: true } : { ok: false, code: reply.code };
}
