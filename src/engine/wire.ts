/**
 * The data plane's payloads between the engine and a shard worker (same process, same
 * code version: nothing here is stored), msgpackr-encoded.
 *
 * Requests: the common shapes of reserve, commit and release travel as flat tuples, which
 * pack about three times faster than records (packing them was the largest cost of the
 * main thread in a batch); anything else, or any request of an unusual shape, travels as
 * the object it is, so the decider sees exactly what it would have seen.
 *
 *   reserve: [1, reservationId, orderId, channel, ttlSeconds, strategy, bodyHash,
 *             (sku, qty, location)…]        (an absent field is undefined)
 *   commit:  [2, reservationId]             (every held line)
 *   release: [3, reservationId]
 *
 * Replies: the hot kind — a reservation's reply, the answer to every reserve,
 * commit, release and extend — comes from ShardCore.processForWire as a flat tuple
 * (reservationReplyTuple in src/actors/queries.ts): packing nested records was the largest
 * single cost of a shard worker. Every other reply travels as the object it is.
 *
 * Both encoders return bytes in a buffer of their own (`ownBytes`), ready to transfer: the
 * encoder's output is a view into a buffer shared by every encoder of the thread, and
 * transferring that would empty every other view of it the sender still holds (a msgpack
 * `/v1/batch` body not yet written, for one).
 */
import type { WireReply } from '../actors/core.js';
import { replyOfTuple } from '../actors/queries.js';
import type { LineRequest, Reply, Request, Reserve } from '../actors/types.js';
import { decode, encode, ownBytes } from '../persistence/codec.js';

export function encodeReplies(replies: readonly WireReply[]): Uint8Array {
  return ownBytes(encode(replies));
}

export function decodeReplies(bytes: Uint8Array): Reply[] {
  const items = decode<unknown[]>(bytes);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (Array.isArray(item)) items[i] = replyOfTuple(item);
  }
  return items as Reply[];
}

const RESERVE = 1;
const COMMIT = 2;
const RELEASE = 3;
const RESERVE_HEAD = 7;

export function encodeRequests(requests: readonly Request[]): Uint8Array {
  const out: unknown[] = new Array(requests.length);
  for (let i = 0; i < requests.length; i++) out[i] = requestTuple(requests[i]!) ?? requests[i];
  return ownBytes(encode(out));
}

export function decodeRequests(bytes: Uint8Array): Request[] {
  const items = decode<unknown[]>(bytes);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    // biome-ignore lint/suspicious/noExplicitAny: a tuple written by requestTuple
    if (Array.isArray(item)) items[i] = requestOfTuple(item as any[]);
  }
  return items as Request[];
}

/** The request as a tuple, or null when it travels as an object. */
function requestTuple(request: Request): unknown[] | null {
  switch (request.type) {
    case 'reserve': {
      const lines = request.lines;
      if (!Array.isArray(lines)) return null;
      const t: unknown[] = new Array(RESERVE_HEAD + 3 * lines.length);
      t[0] = RESERVE;
      t[1] = request.reservationId;
      t[2] = request.orderId;
      t[3] = request.channel;
      t[4] = request.ttlSeconds;
      t[5] = request.strategy;
      t[6] = request.bodyHash;
      let j = RESERVE_HEAD;
      for (const line of lines as unknown[]) {
        if (typeof line !== 'object' || line === null || Array.isArray(line)) return null;
        const { sku, qty, location } = line as LineRequest;
        t[j++] = sku;
        t[j++] = qty;
        t[j++] = location;
      }
      return t;
    }
    case 'commit':
      return request.lines === undefined && request.check === undefined
        ? [COMMIT, request.reservationId]
        : null;
    case 'release':
      return [RELEASE, request.reservationId];
    default:
      return null;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a tuple written by requestTuple
function requestOfTuple(t: any[]): Request {
  switch (t[0]) {
    case RESERVE: {
      const lines: LineRequest[] = new Array((t.length - RESERVE_HEAD) / 3);
      for (let i = 0, j = RESERVE_HEAD; i < lines.length; i++, j += 3)
        lines[i] =
          t[j + 2] === undefined
            ? { sku: t[j], qty: t[j + 1] }
            : { sku: t[j], qty: t[j + 1], location: t[j + 2] };
      const reserve: { -readonly [K in keyof Reserve]: Reserve[K] } = {
        type: 'reserve',
        reservationId: t[1],
        lines,
      };
      if (t[2] !== undefined) reserve.orderId = t[2];
      if (t[3] !== undefined) reserve.channel = t[3];
      if (t[4] !== undefined) reserve.ttlSeconds = t[4];
      if (t[5] !== undefined) reserve.strategy = t[5];
      if (t[6] !== undefined) reserve.bodyHash = t[6];
      return reserve;
    }
    case COMMIT:
      return { type: 'commit', reservationId: t[1] };
    case RELEASE:
      return { type: 'release', reservationId: t[1] };
    default:
      throw new Error(`malformed request tuple (kind ${t[0]})`);
  }
}
