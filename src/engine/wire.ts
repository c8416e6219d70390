/**
 * The data plane's payloads between the engine and a shard worker (same process, same
 * code version: nothing here is stored).
 *
 * Replies are msgpackr-encoded, with the hot kind — a reservation's view, the answer to
 * every reserve, commit, release and extend — written as a flat tuple instead of nested
 * records: it packs about three times faster, and packing replies was the largest single
 * cost of a shard worker. Every other reply travels as the object it is.
 *
 *   reservation reply: [1, replayed, reservationId, orderId, channel, status, createdAt,
 *                       expiresAt, finishedAt, extensions, (sku, location, qty, held, committed)…]
 */
import type { Reply, ReservationLineView, ReservationView } from '../actors/types.js';
import { decode, encode } from '../persistence/codec.js';

const RESERVATION = 1;
const HEAD = 10;
const LINE = 5;

export function encodeReplies(replies: readonly Reply[]): Uint8Array {
  const out: unknown[] = new Array(replies.length);
  for (let i = 0; i < replies.length; i++) {
    const reply = replies[i]!;
    out[i] =
      reply.ok && reply.kind === 'reservation' ? reservationTuple(reply.reservation, reply.replayed) : reply;
  }
  return encode(out);
}

export function decodeReplies(bytes: Uint8Array): Reply[] {
  const items = decode<unknown[]>(bytes);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    // biome-ignore lint/suspicious/noExplicitAny: a tuple written by reservationTuple
    if (Array.isArray(item)) items[i] = reservationReply(item as any[]);
  }
  return items as Reply[];
}

function reservationTuple(view: ReservationView, replayed: boolean): unknown[] {
  const t: unknown[] = [
    RESERVATION,
    replayed,
    view.reservationId,
    view.orderId,
    view.channel,
    view.status,
    view.createdAt,
    view.expiresAt,
    view.finishedAt,
    view.extensions,
  ];
  for (const line of view.lines) t.push(line.sku, line.location, line.qty, line.held, line.committed);
  return t;
}

// biome-ignore lint/suspicious/noExplicitAny: a tuple written by reservationTuple
function reservationReply(t: any[]): Reply {
  if (t[0] !== RESERVATION || (t.length - HEAD) % LINE !== 0)
    throw new Error(`malformed reply tuple ${t[0]}`);
  const lines: ReservationLineView[] = new Array((t.length - HEAD) / LINE);
  for (let i = 0, j = HEAD; i < lines.length; i++, j += LINE)
    lines[i] = { sku: t[j], location: t[j + 1], qty: t[j + 2], held: t[j + 3], committed: t[j + 4] };
  const reservation: ReservationView = {
    reservationId: t[2],
    orderId: t[3],
    channel: t[4],
    status: t[5],
    createdAt: t[6],
    expiresAt: t[7],
    finishedAt: t[8],
    extensions: t[9],
    lines,
  };
  return { ok: true, kind: 'reservation', reservation, replayed: t[1] };
}
