/**
 * The data plane's reply payloads, from a shard worker to the engine (same process, same
 * code version: nothing here is stored).
 *
 * msgpackr-encoded. The hot kind — a reservation's reply, the answer to every reserve,
 * commit, release and extend — comes from ShardCore.processForWire as a flat tuple
 * (reservationReplyTuple in src/actors/queries.ts): packing nested records was the largest
 * single cost of a shard worker. Every other reply travels as the object it is.
 */
import type { WireReply } from '../actors/core.js';
import { replyOfTuple } from '../actors/queries.js';
import type { Reply } from '../actors/types.js';
import { decode, encode } from '../persistence/codec.js';

export function encodeReplies(replies: readonly WireReply[]): Uint8Array {
  return encode(replies);
}

export function decodeReplies(bytes: Uint8Array): Reply[] {
  const items = decode<unknown[]>(bytes);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (Array.isArray(item)) items[i] = replyOfTuple(item);
  }
  return items as Reply[];
}
