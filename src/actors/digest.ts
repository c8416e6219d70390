/**
 * A canonical digest of a state: equal digests mean equal domain state, whatever order
 * the records were created in. "Replaying the WAL reproduces the live state exactly" is
 * checked by comparing digests (simulation, recovery tests, `stockd replay --verify`).
 */
import { hash53 } from './hash.js';
import type { ShardState, StockRecord } from './state.js';

export function canonicalLines(states: readonly ShardState[]): string[] {
  const lines: string[] = [];
  for (const state of states) {
    for (const [sku, first] of state.stock) {
      for (let r: StockRecord | null = first; r; r = r.next) {
        lines.push(
          `S ${sku} ${r.location} ${r.onHand} ${r.reserved} ${r.safetyStock} ${r.version} ${r.sourceTs}`,
        );
      }
    }
    for (const r of state.reservations.values()) {
      const parts = r.lines.map((l) => `${l.sku}/${l.location}/${l.qty}/${l.held}/${l.committed}`).sort();
      lines.push(
        `R ${r.id} ${r.status} ${r.expiresAt} ${r.bodyHash} ${r.orderId} ${r.channel} ${parts.join(',')}`,
      );
    }
    for (const [compound, entry] of state.adjustmentKeys)
      lines.push(`K ${compound} ${entry.bodyHash} ${entry.at}`);
  }
  // Channels are replicated on every shard; count them once.
  const first = states[0];
  if (first !== undefined) {
    for (const c of first.channels.values())
      lines.push(`C ${c.channel} ${c.locations.join(',')} ${c.buffer}`);
  }
  return lines.sort();
}

export function stateDigest(states: readonly ShardState[]): string {
  return digestOfLines(canonicalLines(states));
}

export function digestOfLines(unsorted: readonly string[]): string {
  const lines = [...unsorted].sort();
  let h1 = 0;
  let h2 = 0;
  for (const line of lines) {
    h1 = hash53(line, h1 >>> 0);
    h2 = hash53(line, (h2 ^ 0x9e3779b9) >>> 0);
  }
  return `${lines.length}:${h1.toString(16)}:${h2.toString(16)}`;
}
