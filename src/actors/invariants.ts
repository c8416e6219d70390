/**
 * Full invariant check over a shard's state. O(state): run by tests, the simulation after
 * every step, recovery after replay and `stockd replay --verify` — never per command (the
 * hot path asserts the cheap, local forms in evolve and decide instead).
 */
import { availableOf, type ShardState, type StockRecord } from './state.js';

export function invariantViolations(state: ShardState): string[] {
  const problems: string[] = [];
  const heldByRecord = new Map<StockRecord, number>();
  let held = 0;
  for (const reservation of state.reservations.values()) {
    if (reservation.status === 'held') held++;
    for (const line of reservation.lines) {
      if (line.held < 0 || line.committed < 0 || line.held + line.committed > line.qty) {
        problems.push(
          `reservation ${reservation.id} line ${line.sku}@${line.location} has impossible counts`,
        );
      }
      if (reservation.status !== 'held' && line.held !== 0) {
        problems.push(`reservation ${reservation.id} is ${reservation.status} but still holds ${line.sku}`);
      }
      if (line.held === 0) continue;
      const record = state.record(line.sku, line.location);
      if (record === undefined) {
        problems.push(`reservation ${reservation.id} holds ${line.sku}@${line.location} which has no record`);
        continue;
      }
      if (line.record !== record) {
        problems.push(
          `reservation ${reservation.id} line ${line.sku}@${line.location} points at another record`,
        );
      }
      heldByRecord.set(record, (heldByRecord.get(record) ?? 0) + line.held);
    }
  }
  if (held !== state.heldCount) problems.push(`heldCount ${state.heldCount} but ${held} held reservations`);
  const scheduled = state.reservations.scheduledExpiries;
  if (scheduled !== held) problems.push(`${scheduled} reservations on the expiry timer but ${held} held`);
  let records = 0;
  const ordinals = new Uint8Array(state.recordCount);
  for (const [sku, first] of state.stock) {
    for (let r: StockRecord | null = first; r; r = r.next) {
      records++;
      if (!(r.ordinal >= 0 && r.ordinal < ordinals.length) || ordinals[r.ordinal]!++ !== 0)
        problems.push(`${sku}@${r.location} ordinal ${r.ordinal} is out of range or taken twice`);
      if (r.onHand < 0) problems.push(`${sku}@${r.location} onHand ${r.onHand} < 0`);
      if (r.reserved < 0) problems.push(`${sku}@${r.location} reserved ${r.reserved} < 0`);
      const sum = heldByRecord.get(r) ?? 0;
      if (r.reserved !== sum)
        problems.push(`${sku}@${r.location} reserved ${r.reserved} != held lines ${sum}`);
      if (availableOf(r) < 0) problems.push(`${sku}@${r.location} available < 0`);
    }
  }
  if (records !== state.recordCount) problems.push(`recordCount ${state.recordCount} but ${records} records`);
  return problems;
}
