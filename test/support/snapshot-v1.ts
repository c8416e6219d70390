/**
 * The snapshot image writer of format 1 (one array per reservation), as stockd wrote it
 * before format 2. Kept only to prove that images already in a database still load.
 */
import type { StateImageV1 } from '../../src/actors/snapshot.js';
import type { ShardState, StockRecord } from '../../src/actors/state.js';

export function imageV1Of(state: ShardState): StateImageV1 {
  const image = {
    formatVersion: 1 as const,
    skus: [] as string[],
    locations: [] as string[],
    onHand: [] as number[],
    reserved: [] as number[],
    safetyStock: [] as number[],
    version: [] as number[],
    sourceTs: [] as number[],
    reservations: [] as unknown[][],
    extensions: [] as number[],
    channels: [] as Array<[string, string[], number]>,
    adjustmentKeys: [] as Array<[string, string, string, number, number]>,
    finished: [] as Array<[string, number]>,
  };
  for (const [sku, first] of state.stock) {
    for (let r: StockRecord | null = first; r; r = r.next) {
      image.skus.push(sku);
      image.locations.push(r.location);
      image.onHand.push(r.onHand);
      image.reserved.push(r.reserved);
      image.safetyStock.push(r.safetyStock);
      image.version.push(r.version);
      image.sourceTs.push(r.sourceTs);
    }
  }
  for (const r of state.reservations.values()) {
    const row: unknown[] = [
      r.id,
      r.orderId,
      r.channel,
      r.bodyHash,
      r.createdAt,
      r.expiresAt,
      r.status,
      r.finishedAt,
    ];
    for (const line of r.lines) row.push(line.sku, line.location, line.qty, line.held, line.committed);
    image.reservations.push(row);
    image.extensions.push(r.extensions);
  }
  for (const c of state.channels.values()) image.channels.push([c.channel, [...c.locations], c.buffer]);
  for (const [compound, entry] of state.adjustmentKeys) {
    const key = compound.slice(entry.sku.length + 1);
    image.adjustmentKeys.push([entry.sku, key, entry.location, entry.bodyHash, entry.at]);
  }
  state.finished.forEach((slot, generation, at) => {
    if (state.reservations.holdsFinished(slot, generation, at))
      image.finished.push([state.reservations.idAt(slot), at]);
  });
  return image;
}
