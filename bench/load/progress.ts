/**
 * A progress bar per run while a long suite runs (cli-progress, on stderr, only when stderr
 * is a terminal): elapsed seconds of the planned duration and commands answered so far.
 * Without a terminal (CI, tests, a pipe) it prints nothing.
 */
import cliProgress from 'cli-progress';

export interface ProgressSource {
  /** Commands answered so far. */
  readonly operations: number;
  /** Requests (operations sent) answered so far. */
  readonly answeredRequests: number;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly enabled = process.stderr.isTTY === true) {}

  /** Starts a bar for `label` over `seconds`, or over `requests` for a finite workload. */
  start(
    label: string,
    plan: { seconds: number } | { requests: number },
    source: () => ProgressSource | null,
  ): void {
    this.stop();
    if (!this.enabled) return;
    const bySeconds = 'seconds' in plan;
    const total = bySeconds ? plan.seconds : plan.requests;
    const bar = new cliProgress.SingleBar(
      {
        format: `${label.padEnd(36)} [{bar}] {value}/{total}${bySeconds ? ' s' : ''} | {operations} commands`,
        hideCursor: true,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { operations: 0 });
    const started = performance.now();
    this.timer = setInterval(() => {
      const current = source();
      const operations = current?.operations ?? 0;
      const value = bySeconds
        ? Math.min(total, Math.round((performance.now() - started) / 100) / 10)
        : (current?.answeredRequests ?? 0);
      bar.update(value, { operations });
    }, 250);
    this.timer.unref();
    this.bar = bar;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.bar?.stop();
    this.bar = null;
  }
}
