/**
 * The progress bound of a ring's allreduce: a timer that fires once no frame went in or out for
 * `timeoutMs`. One timer per ring, re-armed lazily (a frame only stamps the time; the timer
 * re-checks when it fires), so a busy allreduce costs no timer churn per frame.
 */
import { performance } from 'node:perf_hooks';

/** Watches one allreduce at a time for progress. */
export class ProgressWatch {
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() of the last frame in or out. */
  private last = 0;

  constructor(private readonly timeoutMs: number) {}

  /** A frame went in or out. */
  touch(): void {
    this.last = performance.now();
  }

  /**
   * Starts watching: `stalled(idleMs)` runs once no progress was seen for `timeoutMs`, unless
   * `active()` says the allreduce is over by then.
   */
  arm(active: () => boolean, stalled: (idleMs: number) => void): void {
    this.stop();
    const check = (): void => {
      this.timer = null;
      if (!active()) return;
      const idle = performance.now() - this.last;
      if (idle < this.timeoutMs) {
        this.timer = setTimeout(check, this.timeoutMs - idle);
        return;
      }
      stalled(idle);
    };
    this.timer = setTimeout(check, this.timeoutMs);
  }

  /** Stops watching (idempotent). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
