/**
 * Byte encodings: WAL payloads, snapshots and the engine ⇄ worker batches, all msgpackr.
 *
 * `useRecords` makes msgpackr write each object shape once per message and then only
 * values, which is both smaller and faster for the thousands of same-shaped commands in a
 * batch. Structures are never shared between messages, so every payload decodes on its
 * own, years later, with no side table.
 */
import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import type { DomainEvent } from '../actors/types.js';

const packr = new Packr({ useRecords: true, moreTypes: false, bundleStrings: false });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function decode<T>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

export function encodeEvents(events: readonly DomainEvent[]): Uint8Array {
  return packr.pack(events);
}

export function decodeEvents(bytes: Uint8Array): DomainEvent[] {
  return packr.unpack(bytes) as DomainEvent[];
}

export function checksumOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
