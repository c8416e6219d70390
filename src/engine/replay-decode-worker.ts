/**
 * A piscina task for `stockd replay --verify`: decodes pages of WAL rows on another
 * thread and reports, per row, how many events it holds or why it does not decode.
 * Stateless, so any worker of the pool can take any page.
 */
import { decodeEvents } from '../persistence/codec.js';

export interface DecodeTask {
  readonly seqs: number[];
  readonly payloads: Uint8Array[];
}

export interface DecodeResult {
  readonly seq: number;
  readonly events: number;
  readonly error: string | null;
}

export default function decodePage(task: DecodeTask): DecodeResult[] {
  return task.payloads.map((payload, i) => {
    const seq = task.seqs[i]!;
    try {
      return { seq, events: decodeEvents(payload).length, error: null };
    } catch (error) {
      return { seq, events: 0, error: String(error) };
    }
  });
}
