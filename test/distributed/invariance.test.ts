/**
 * World-size invariance where BatchNorm cannot break it: decoupling's classifier stage. The
 * backbone is frozen in eval mode (running statistics, no per-rank batch statistics), so the
 * gradient is a plain sum over the global batch's rows and W ranks compute the same step as one,
 * up to the order of the fp32 sums. Stage 1 is trained once; every world size resumes from the
 * same epoch-1 checkpoint and trains the two classifier epochs; W=1 is the uninterrupted run.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createModel } from '../../src/model/factory.ts';
import { readCheckpoint } from '../../src/worker/checkpoint.ts';
import { modelSpecFor } from '../../src/worker/run.ts';
import { readMetrics, runPaths } from '../../src/worker/run-dir.ts';
import { finalParams, launch, removeTempDirs, tempDir, tinyConfig, writeTinyConfig } from './fixtures.ts';

const OVERRIDES = ['method=decouple', 'train.epochs=1', 'train.decoupleEpochs=2'];
const STAGE1 = 'ckpt-e000001-s0000000.bbnckpt';
/** Tolerance on the classifier: max |diff| relative to max |w| (fp32 sums in another order). */
const TOLERANCE = 1e-5;

let configPath = '';
before(() => {
  configPath = writeTinyConfig();
});
after(removeTempDirs);

/** A copy of `source` cut back to the end of stage 1 (the resume then trusts only that checkpoint). */
function cutToStage1(source: string): string {
  const dir = join(tempDir(), 'run');
  cpSync(source, dir, { recursive: true });
  const ckpts = runPaths(dir).checkpoints;
  for (const name of readdirSync(ckpts)) if (name !== STAGE1) rmSync(join(ckpts, name), { force: true });
  return dir;
}

/** Max |a − b| over [from, to), and max |b| there. */
function maxDiff(
  a: Float32Array,
  b: Float32Array,
  from: number,
  to: number,
): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = from; i < to; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

describe('world-size invariance of the BN-free classifier stage (real worker processes)', () => {
  it('W=2 and W=3 resumed from the W=1 stage-1 checkpoint reach the W=1 classifier; the backbone stays bitwise frozen', async (t) => {
    await selectBackend('auto');
    const cfg = tinyConfig();
    const data = await loadData(cfg.dataset);
    const probe = createModel(
      modelSpecFor({ ...cfg, method: 'decouple' }, data),
      Rng.fromSeed(cfg.seed).split('init'),
    );
    const { offset, length } = probe.classifierRange();
    const numParams = probe.numParams;
    probe.dispose();

    const full = tempDir();
    const base = await launch({ configPath, outDir: full, workers: 1, overrides: OVERRIDES });
    assert.equal(base.outcome.kind, 'finished');
    const stage1 = readCheckpoint(join(runPaths(full).checkpoints, STAGE1));
    assert.equal(stage1.sections.params.length, numParams);

    // The uninterrupted W=1 run is the reference; W=2 and W=3 continue its stage-1 checkpoint.
    const reference = finalParams(full);
    const frozen = (params: Float32Array, what: string) => {
      // Frozen means frozen: every backbone weight is the stage-1 checkpoint's, bit for bit.
      const want = stage1.sections.params;
      assert.deepEqual(params.subarray(0, offset), want.subarray(0, offset), what);
      assert.deepEqual(params.subarray(offset + length), want.subarray(offset + length), what);
    };
    frozen(reference, 'W=1');
    // The classifier did learn (otherwise equality would be vacuous).
    const moved = maxDiff(reference, stage1.sections.params, offset, offset + length);
    assert.ok(moved.diff > 1e-3, `the classifier moved only ${moved.diff}`);
    const report: string[] = [];
    const timings = [`W=1 ${base.outcome.seconds.toFixed(1)} s (both stages)`];
    for (const workers of [2, 3]) {
      const dir = cutToStage1(full);
      const run = await launch({ outDir: dir, workers, resume: true });
      assert.equal(run.outcome.kind, 'finished', `W=${workers}`);
      assert.ok(
        run.lines.some((l) => l.includes('resuming from') && l.includes(STAGE1)),
        `W=${workers} resumed from stage 1`,
      );
      // The shipped path: every rank's ring moves its chunks on the native data plane.
      assert.equal(
        run.lines.filter((l) =>
          /ring of generation \d+ \(\d+ ranks\) formed, chunks on the native data plane/.test(l),
        ).length >= workers,
        true,
        `W=${workers}: ${run.lines.filter((l) => l.includes('data plane')).join(' | ') || 'no ring line'}`,
      );
      assert.deepEqual(
        readMetrics(dir).map((m) => m.epoch),
        [1, 2, 3],
      );
      timings.push(`W=${workers} ${run.outcome.seconds.toFixed(1)} s (stage 2)`);
      const params = finalParams(dir);
      frozen(params, `W=${workers}`);
      const { diff, scale } = maxDiff(params, reference, offset, offset + length);
      const rel = diff / scale;
      report.push(
        `W=${workers}: max |diff| ${diff.toExponential(3)} = ${rel.toExponential(3)} of max |w| ${scale.toFixed(4)}`,
      );
      // Measured: 5.96e-8 absolute (1 ulp at 0.5), 1.17e-7 relative, for both W=2 and W=3.
      assert.ok(
        rel < TOLERANCE,
        `W=${workers} classifier differs from W=1 by max |diff| ${diff} = ${rel} of max |w| ${scale} (tolerance ${TOLERANCE})`,
      );
    }
    t.diagnostic(
      `classifier vs W=1 (${length} weights): ${report.join('; ')}; launches ${timings.join(', ')}`,
    );
  });
});
