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
import { firstValueDifference } from '../collective/ring-data.ts';
import { finalParams, launch, removeTempDirs, tempDir, writeTinyConfig } from './fixtures.ts';

let configPath = '';
before(() => {
  configPath = writeTinyConfig();
});
after(removeTempDirs);

/** A finished run's final weights and per-epoch metrics, and its ranks' log lines. */
async function trainRun(workers: number, overrides: string[]) {
  const dir = tempDir();
  const run = await launch({ configPath, outDir: dir, workers, overrides: ['train.epochs=1', ...overrides] });
  assert.equal(run.outcome.kind, 'finished', `${overrides.join(' ')}: ${run.lines.slice(-5).join('\n')}`);
  const metrics = readMetrics(dir).map(({ epoch, trainLoss, trainAccuracy, testTop1, perClass }) => ({
    epoch,
    trainLoss,
    trainAccuracy,
    testTop1,
    perClass,
  }));
  return { params: finalParams(dir), metrics, seconds: run.outcome.seconds, lines: run.lines };
}

describe('overlap with backward (real worker processes, tcp ring)', () => {
  it('W=3: reducing the gradient by segments during the backward pass gives the same run, bit for bit', async (t) => {
    // 2 KiB segments: the tiny model's gradient goes in several pieces per step.
    const whole = await trainRun(3, ['distributed.overlapSegmentBytes=0']);
    const overlap = await trainRun(3, ['distributed.overlapSegmentBytes=2048']);
    assert.equal(whole.metrics.length, 1);
    assert.deepEqual(overlap.metrics, whole.metrics);
    const first = firstValueDifference(overlap.params, whole.params);
    assert.equal(
      first,
      -1,
      `weight ${first}: ${overlap.params[first]} with overlap, ${whole.params[first]} without`,
    );
    t.diagnostic(
      `${whole.params.length} weights identical; wall ${whole.seconds.toFixed(1)} s whole, ${overlap.seconds.toFixed(1)} s overlap`,
    );
  });

  it('W=3 with bf16 on the wire: the native and the JavaScript plane, whole and by segments, give the same run bit for bit, and not float32`s', async (t) => {
    const bf16 = ['distributed.compressBf16=true'];
    const runs = {
      nativeWhole: await trainRun(3, [...bf16, 'distributed.dataPlane=native']),
      nativeOverlap: await trainRun(3, [
        ...bf16,
        'distributed.dataPlane=native',
        'distributed.overlapSegmentBytes=2048',
      ]),
      jsOverlap: await trainRun(3, [
        ...bf16,
        'distributed.dataPlane=js',
        'distributed.overlapSegmentBytes=2048',
      ]),
      float32: await trainRun(3, ['distributed.dataPlane=native']),
    };
    // Each run's ranks moved their chunks on the plane it asked for.
    for (const [name, plane] of [
      ['nativeWhole', 'native'],
      ['nativeOverlap', 'native'],
      ['jsOverlap', 'js'],
    ] as const) {
      const formed = runs[name].lines.filter((l) => /ring of generation \d+ \(3 ranks\) formed/.test(l));
      assert.equal(formed.length, 3, `${name}: ${formed.join('\n')}`);
      for (const line of formed) assert.match(line, new RegExp(`chunks on the ${plane} data plane`), name);
    }
    for (const name of ['nativeOverlap', 'jsOverlap'] as const) {
      assert.deepEqual(runs[name].metrics, runs.nativeWhole.metrics, name);
      const first = firstValueDifference(runs[name].params, runs.nativeWhole.params);
      assert.equal(
        first,
        -1,
        `${name}, weight ${first}: ${runs[name].params[first]} against ${runs.nativeWhole.params[first]}`,
      );
    }
    // bf16 did travel: the gradients were rounded, so float32's run ends elsewhere.
    assert.notEqual(firstValueDifference(runs.float32.params, runs.nativeWhole.params), -1);
    t.diagnostic(
      `${runs.nativeWhole.params.length} weights identical in 3 bf16 runs; wall ${Object.entries(runs)
        .map(([k, r]) => `${k} ${r.seconds.toFixed(1)} s`)
        .join(', ')}`,
    );
  });
});
