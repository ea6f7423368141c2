/**
 * Overlap of the allreduce with the backward pass (`distributed.overlapSegmentBytes`) through
 * what ships: real rank processes, their compute threads handing gradient segments to the ring
 * while the backward pass goes on, the real tcp ring. At W = 3 the order of the float32 sums
 * matters (W = 2 is one addition per element, the same either way), so a segment cut by its own
 * ring partition would change the run's bits; the run with overlap must end with the same weights
 * and metrics, bit for bit, as the run that reduces the whole gradient after each step.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readMetrics } from '../../src/worker/run-dir.ts';
import { finalParams, launch, removeTempDirs, tempDir, writeTinyConfig } from './fixtures.ts';

let configPath = '';
before(() => {
  configPath = writeTinyConfig();
});
after(removeTempDirs);

describe('overlap with backward (real worker processes, tcp ring)', () => {
  it('W=3: reducing the gradient by segments during the backward pass gives the same run, bit for bit', async (t) => {
    const runs: Record<string, { params: Float32Array; metrics: unknown[]; seconds: number }> = {};
    // 2 KiB segments: the tiny model's gradient goes in several pieces per step.
    for (const [name, bytes] of [
      ['whole', 0],
      ['overlap', 2048],
    ] as const) {
      const dir = tempDir();
      const run = await launch({
        configPath,
        outDir: dir,
        workers: 3,
        overrides: ['train.epochs=1', `distributed.overlapSegmentBytes=${bytes}`],
      });
      assert.equal(run.outcome.kind, 'finished', `${name}: ${run.lines.slice(-5).join('\n')}`);
      const metrics = readMetrics(dir).map(({ epoch, trainLoss, trainAccuracy, testTop1, perClass }) => ({
        epoch,
        trainLoss,
        trainAccuracy,
        testTop1,
        perClass,
      }));
      runs[name] = { params: finalParams(dir), metrics, seconds: run.outcome.seconds };
    }
    assert.equal(runs.whole.metrics.length, 1);
    assert.deepEqual(runs.overlap.metrics, runs.whole.metrics);
    const a = runs.overlap.params;
    const b = runs.whole.params;
    assert.equal(a.length, b.length);
    let first = -1;
    for (let i = 0; i < a.length && first < 0; i++) if (!Object.is(a[i], b[i])) first = i;
    assert.equal(first, -1, `weight ${first}: ${a[first]} with overlap, ${b[first]} without`);
    t.diagnostic(
      `${a.length} weights identical; wall ${runs.whole.seconds.toFixed(1)} s whole, ${runs.overlap.seconds.toFixed(1)} s overlap`,
    );
  });
});
