/**
 * Open loop: operations leave on a fixed schedule — operation i at start + i / rate —
 * whatever the target does, the way independent shoppers arrive. Each latency is measured
 * from the operation's *scheduled* send time, not from when it actually left, so a stall
 * anywhere (target, network, this generator) shows up in full: coordinated omission is
 * corrected by construction.
 *
 *   timer tick (≈1 ms) ─▶ send every operation whose time has come, each stamped with its
 *                         own scheduled time ─▶ Sender (undici pool or direct)
 *                                                 └─▶ answer: latency = now − scheduled
 *
 * Bounded: at most `maxInFlight` operations may be outstanding. Beyond that the target is
 * not keeping up; the run stops sending and is marked `saturated` (a step of the step mode
 * then fails). After the schedule ends, outstanding operations get `drainSeconds` to answer;
 * those that do not are recorded as TIMEOUT at the drain deadline.
 */
import type { Operation, Scenario } from './operation.js';
import type { Recorder } from './recorder.js';
import type { Sender } from './senders.js';

export interface OpenLoopOptions {
  readonly scenario: Scenario;
  readonly recorder: Recorder;
  readonly sender: Sender;
  /** Operations per second offered. */
  readonly rate: number;
  readonly seconds: number;
  readonly maxInFlight: number;
  readonly drainSeconds: number;
  readonly signal?: AbortSignal;
}

export interface OpenLoopStats {
  readonly offeredRate: number;
  /** Operations scheduled and sent. */
  readonly sent: number;
  /** Operations answered per second, over the time from the first scheduled send to the last answer. */
  readonly achievedRate: number;
  readonly elapsedSeconds: number;
  /** The target fell `maxInFlight` operations behind and sending stopped. */
  readonly saturated: boolean;
  /** Operations still unanswered at the drain deadline. */
  readonly timedOut: number;
}

export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopStats> {
  const { scenario, recorder, sender, rate } = options;
  if (!(rate > 0)) throw new Error(`the open loop needs a rate > 0, got ${rate}`);
  const intervalMs = 1000 / rate;
  const finite = scenario.finiteOperations;
  const planned = Math.max(1, Math.floor(rate * options.seconds));
  const total = finite === null ? planned : Math.min(finite, planned);
  const outstanding = new Map<number, { operation: Operation; scheduled: number }>();
  const start = performance.now();
  let sent = 0;
  let answered = 0;
  let lastAnswer = start;
  let saturated = false;
  let closed = false;
  let onEmpty: (() => void) | null = null;

  const dispatch = (operation: Operation, scheduled: number, id: number): void => {
    outstanding.set(id, { operation, scheduled });
    void sender.send(operation).then((outcomes) => {
      // Answers after the drain deadline were already recorded as timeouts.
      if (closed || !outstanding.delete(id)) return;
      const now = performance.now();
      recorder.record(operation, now - scheduled, outcomes);
      scenario.observe(operation, outcomes);
      answered++;
      lastAnswer = now;
      if (outstanding.size === 0) onEmpty?.();
    });
  };

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      while (sent < total && start + sent * intervalMs <= now) {
        if (outstanding.size >= options.maxInFlight) {
          saturated = true;
          break;
        }
        const operation = scenario.next();
        if (operation === null) {
          sent = total;
          break;
        }
        dispatch(operation, start + sent * intervalMs, sent);
        sent++;
      }
      if (sent >= total || saturated || options.signal?.aborted === true) {
        resolve();
        return;
      }
      // Timers fire after ≥ 1 ms; whatever fell due meanwhile leaves on the next tick,
      // still stamped with its own scheduled time.
      setTimeout(tick, Math.max(0, Math.min(start + sent * intervalMs - now, 50)));
    };
    tick();
  });

  const drainDeadline = performance.now() + options.drainSeconds * 1000;
  if (outstanding.size > 0) {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      onEmpty = resolve;
      timer = setTimeout(resolve, options.drainSeconds * 1000);
    });
    clearTimeout(timer);
  }
  closed = true;
  const timedOut = outstanding.size;
  for (const { operation, scheduled } of outstanding.values()) {
    recorder.record(
      operation,
      drainDeadline - scheduled,
      new Array(operation.requests.length).fill('TIMEOUT'),
    );
  }
  outstanding.clear();
  const elapsedSeconds = Math.max(lastAnswer - start, 1e-9) / 1000;
  return {
    offeredRate: rate,
    sent,
    achievedRate: Math.round((answered / elapsedSeconds) * 10) / 10,
    elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
    saturated,
    timedOut,
  };
}
