/**
 * Why a rank computes on a thread: its main event loop must stay free for gRPC (ring streams,
 * heartbeats) while a step runs. Measured, not assumed: a 20 ms interval timer runs on the test's
 * main thread and the largest gap between its ticks is taken over the steps of an epoch whose steps
 * last about half a second. The same measurement of `runTraining` (compute on the main thread) is
 * the contrast that shows the timer would notice a blocked loop, so the check is relative to this
 * machine's speed and load.
 */
import assert from 'node:assert/strict';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createCoordinatorDeps } from '../../src/orchestration/coordinator.ts';
import { createLocalDeps } from '../../src/orchestration/local.ts';
import { runTraining } from '../../src/worker/run.ts';
import type { StepReport } from '../../src/worker/trainer.ts';
import { tinyRun } from '../helpers/tiny.ts';
import { removeTempDirs, tempDir } from './fixtures.ts';

after(removeTempDirs);

/**
 * Four steps of 0.6-2 s on this loaded 2-core machine (32x32x3 images, ResNet-20 of width 16, batch
 * 64, one TensorFlow thread): long enough that the machine's own scheduling stalls (up to 250 ms
 * seen, with the loop idle) stay far below the 40% bound.
 */
const HEAVY = parseRunConfig(
  tinyRun({
    name: 'event-loop',
    dataset: { imageSize: 32, channels: 3, perClass: 160 },
    model: { depth: 20, baseWidth: 16 },
    train: { epochs: 1, batchSize: 64 },
    distributed: { workers: 1 },
    compute: { threads: 1 },
  }),
);
const TICK_MS = 20;

/** Ticks of an interval timer on this thread, and the steps seen meanwhile. */
class LoopMeter {
  private readonly ticks: number[] = [];
  private readonly stepAt: number[] = [];
  readonly reports: StepReport[] = [];
  private readonly timer = setInterval(() => this.ticks.push(performance.now()), TICK_MS);

  /** Event-loop utilisation at the first step's end, and from there to the last step's end. */
  private eluFrom?: EventLoopUtilization;
  private eluOver?: EventLoopUtilization;

  /** The `onStep` hook: when each step ended, on this thread. */
  readonly onStep = (r: StepReport): void => {
    this.stepAt.push(performance.now());
    this.reports.push(r);
    if (this.eluFrom) this.eluOver = performance.eventLoopUtilization(this.eluFrom);
    else this.eluFrom = performance.eventLoopUtilization();
  };

  /**
   * Share of the steps' time this thread's loop spent running callbacks. Unlike a timer gap it is
   * blind to the machine not scheduling the thread at all (seen here: 50-250 ms under load).
   */
  utilization(): number {
    assert.ok(this.eluOver, 'no steps measured');
    return this.eluOver.utilization;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Longest time without a tick between the first and the last step's end (the first step warms up). */
  maxGapMs(): number {
    assert.ok(this.stepAt.length >= 3, `only ${this.stepAt.length} steps`);
    const from = this.stepAt[0];
    const to = this.stepAt[this.stepAt.length - 1];
    const points = [from, ...this.ticks.filter((t) => t > from && t < to), to];
    let gap = 0;
    for (let i = 1; i < points.length; i++) gap = Math.max(gap, points[i] - points[i - 1]);
    return gap;
  }

  /** Median compute time of the steps after the first, in ms. */
  stepMs(): number {
    const ms = this.reports
      .slice(1)
      .map((r) => 1000 * r.computeSeconds)
      .sort((a, b) => a - b);
    return ms[Math.floor(ms.length / 2)];
  }
}

describe('event loop of a rank', () => {
  it('stays free while the compute thread steps (largest timer gap < 40% of a step); compute on the main thread blocks it for a whole step', async (t) => {
    const data = await loadData(HEAVY.dataset);

    // A rank of a world of one, as a durable run drives it: the rank runtime on its compute thread.
    const threaded = new LoopMeter();
    const deps = createLocalDeps({ onStep: threaded.onStep });
    try {
      const ref = { runId: HEAVY.name, outDir: tempDir(), config: HEAVY, generation: 0 };
      await deps.prepareRun({ ...ref, resume: false });
      const plan = await createCoordinatorDeps().planEpoch({ ...ref, epoch: 1, workers: 1 });
      const ctl = {
        previous: undefined,
        heartbeat: () => {},
        signal: new AbortController().signal,
        shouldStop: () => false,
      };
      const r = await deps.trainEpochOnRank({ ...ref, epoch: 1, rank: 0, worldSize: 1, plan }, ctl);
      assert.equal(r.steps, plan.steps);
    } finally {
      threaded.stop();
      await deps.dispose();
    }

    // The same epoch with the model on this thread.
    const backend = (await selectBackend('auto')).name;
    const inline = new LoopMeter();
    try {
      await runTraining(HEAVY, tempDir(), { backend, data, hooks: { onStep: inline.onStep } });
    } finally {
      inline.stop();
    }

    const thread = { gap: threaded.maxGapMs(), step: threaded.stepMs(), busy: threaded.utilization() };
    const main = { gap: inline.maxGapMs(), step: inline.stepMs(), busy: inline.utilization() };
    const line = (m: typeof thread) =>
      `largest gap ${m.gap.toFixed(0)} ms, step ${m.step.toFixed(0)} ms, loop busy ${(100 * m.busy).toFixed(0)}%`;
    t.diagnostic(`compute thread: ${line(thread)}; main thread: ${line(main)}`);
    // The contrast: a step on this thread stops the timer for at least (most of) a step.
    assert.ok(main.gap >= 0.8 * main.step, `in-thread compute left gaps of only ${main.gap} ms`);
    assert.ok(main.busy > 0.75, `in-thread compute kept the loop busy only ${main.busy}`);
    assert.ok(thread.busy < 0.25, `with the compute thread the loop was busy ${thread.busy} of the time`);
    assert.ok(thread.step >= 250, `steps of ${thread.step} ms are too short to measure a blocked loop`);
    assert.ok(
      thread.gap < 0.4 * thread.step,
      `the main loop stalled ${thread.gap.toFixed(0)} ms during ${thread.step.toFixed(0)} ms steps`,
    );
  });
});
