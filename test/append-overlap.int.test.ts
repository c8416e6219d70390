/**
 * The shard worker decides group N+1 while group N's WAL append is in flight. That only
 * overlaps if N's row has left the worker before the decision starts: node-pg's pool hands
 * a query to its connection on process.nextTick, so a worker that decided straight after
 * starting the append kept the row in its thread for the whole decision, and the append
 * ran after it instead of alongside it.
 *
 * Each group here is one large batch whose decision takes tens of milliseconds but whose
 * row is one event (every command but one is refused for want of stock, which writes
 * nothing). PostgreSQL records when each row's INSERT started and when the row was
 * inserted (two extra columns in the test's copy of the WAL table). Between two rows lies
 * one decision either way, except before the last row of a burst: no group is decided
 * after it, so serialised, the last row's INSERT followed the one before by a one-event
 * commit and a round trip; overlapped, by a whole decision, like the other rows.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Request } from '../src/actors/types.js';
import { defaultLimits, type Limits } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { openStore } from '../src/persistence/open-store.js';
import { adminQuery, dropSchema, findPostgres, testDatabaseUrl, testSchemaName } from './support/services.js';

const postgres = await findPostgres();
const schema = testSchemaName();

afterAll(async () => {
  if (postgres.available) await dropSchema(schema);
});

const batchCommands = 32_768;
const batches = 4;
const bursts = 3;
// One batch per group: the second batch never fits the row's event budget with the first.
const limits: Limits = {
  ...defaultLimits,
  batchCommandsMax: batchCommands,
  inflightBatchesMax: batches,
  mailboxDepthMax: batches * batchCommands,
  walBatchEventsMax: 2 * batchCommands + defaultLimits.expiriesPerBatchMax,
};
const skus = 1_000;
const onHand = 1_000_000;

describe.runIf(postgres.available)('WAL appends overlap the next decision (PostgreSQL)', () => {
  it("sends each group's row before it decides the next group", async () => {
    const store = await openStore({ databaseUrl: testDatabaseUrl, schema });
    await adminQuery(
      `ALTER TABLE "${schema}".stockd_wal
         ADD COLUMN insert_started timestamptz DEFAULT statement_timestamp(),
         ADD COLUMN inserted timestamptz DEFAULT clock_timestamp()`,
    );
    const engine = await Engine.start({ store, shards: 1, limits });
    try {
      const setup: Request[] = [{ type: 'channel', channel: 'web', locations: ['dc-1'] }];
      for (let i = 0; i < skus; i++) {
        setup.push({ type: 'set', sku: `sku-${i}`, location: 'dc-1', onHand });
      }
      for (const reply of await engine.executeMany(setup)) expect(reply.ok).toBe(true);

      let reservation = 0;
      const burst = (): Request[] => {
        const requests: Request[] = [];
        for (let b = 0; b < batches; b++) {
          for (let i = 0; i < batchCommands; i++) {
            const held = i === batchCommands - 1;
            requests.push({
              type: 'reserve',
              reservationId: `r-${reservation++}`,
              channel: 'web',
              lines: [{ sku: `sku-${i % skus}`, qty: held ? 1 : onHand + 1 }],
            });
          }
        }
        return requests;
      };
      for (let round = 0; round < bursts; round++) {
        const before = await store.lastSeq(0);
        // The batches of a burst go out at once, one group each.
        const replies = await engine.executeMany(burst());
        for (let b = 0; b < batches; b++) {
          const batch = replies.slice(b * batchCommands, (b + 1) * batchCommands);
          expect(batch.filter((reply) => reply.ok)).toHaveLength(1);
          expect(batch.at(-1)!.ok).toBe(true);
        }
        const rows = await adminQuery<{ event_count: number; gap_ms: number }>(
          `SELECT event_count,
                  extract(epoch FROM insert_started - lag(inserted) OVER (ORDER BY seq)) * 1000 AS gap_ms
             FROM "${schema}".stockd_wal WHERE stream = 0 AND seq > $1 ORDER BY seq`,
          [before],
        );
        expect(rows.map((row) => row.event_count)).toEqual(new Array(batches).fill(1));
        // How long row N had been in the table when the INSERT of row N+1 started. The last
        // gap against the others of its burst: about as long overlapped (each spans a
        // decision), a small share of them serialised.
        const gaps = rows.slice(1).map((row) => Number(row.gap_ms));
        const last = gaps.pop()!;
        const others = gaps.reduce((sum, gap) => sum + gap, 0) / gaps.length;
        expect(last).toBeGreaterThan(others / 2);
      }
    } finally {
      await engine.stop();
      await store.close();
    }
  }, 60_000);
});
