/**
 * A canonical digest of a state: equal digests mean equal domain state, whatever order
 * the records were created in. "Replaying the WAL reproduces the live state exactly" is
 * checked by comparing digests (simulation, recovery tests, `stockd replay --verify`).
 */
import { hash53 } from './hash.js';
import { combineOutcomes, type ReservationMachineState } from './reservation-machine.js';
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
      // One header per reservation part and one line per reservation line, so the parts of a
      // cross-shard reservation combine (mergeCanonicalLines) whatever the shard count.
      lines.push(
        `R ${r.id} ${r.status} ${r.finishedAt} ${r.extensions} ${r.expiresAt} ${r.bodyHash} ${r.orderId} ${r.channel}`,
      );
      for (const l of r.lines)
        lines.push(`L ${r.id} ${l.sku} ${l.location} ${l.qty} ${l.held} ${l.committed}`);
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

/**
 * Canonical lines of several shards as one state: channels (replicated on every shard)
 * once, and the headers of one reservation's parts merged the way the router merges their
 * views — the status and expiry one shard holding every line would have (combineOutcomes). The result does not depend on how many shards the state was spread over.
 * (One shard's own lines, `stateDigest`, keep finishedAt: replaying its WAL must reproduce it.)
 */
export function mergeCanonicalLines(lines: readonly string[]): string[] {
  const out = new Set<string>();
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    if (!line.startsWith('R ')) {
      out.add(line);
      continue;
    }
    const fields = line.split(' ');
    const id = fields[1]!;
    const seen = headers.get(id);
    if (seen === undefined) {
      headers.set(id, fields);
      continue;
    }
    // R id status finishedAt extensions expiresAt bodyHash orderId channel
    const part = (f: string[]) => ({
      fields: f,
      status: f[2] as ReservationMachineState,
      finishedAt: Number(f[3]),
      extensions: Number(f[4]),
      expiresAt: Number(f[5]),
    });
    headers.set(id, combineOutcomes(part(seen), part(fields)).fields);
  }
  // The merged header leaves finishedAt and extensions out: they only order the parts (and
  // say when a finished reservation is forgotten), and a replay on another clock (shadow
  // traffic) expires at other moments.
  for (const fields of headers.values()) out.add([...fields.slice(0, 3), ...fields.slice(5)].join(' '));
  return [...out];
}
