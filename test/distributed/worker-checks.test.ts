/** The worker's own checks that need no processes: the plan it is served and its inputs. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { launchLocal } from '../../src/cli/launcher.ts';
import { ConfigError } from '../../src/core/config.ts';
import { epochSchedule } from '../../src/core/index.ts';
import type { bbn } from '../../src/generated/bbn.js';
import { checkPlan, configDigest, paramsDigest } from '../../src/worker/process/worker.ts';
import { removeTempDirs, tempDir, tinyConfig } from './fixtures.ts';

after(removeTempDirs);

function servedPlan(epoch: number, extra: Partial<bbn.v1.IEpochPlan> = {}): bbn.v1.EpochPlan {
  const cfg = tinyConfig();
  const { alpha, lr } = epochSchedule(cfg, epoch);
  return {
    runId: 'r',
    epoch,
    alpha: alpha ?? Number.NaN,
    lr,
    steps: 5,
    globalBatch: 16,
    worldSize: 2,
    perRankBatch: 8,
    planDigest: 'd',
    generation: 1,
    ...extra,
  } as bbn.v1.EpochPlan;
}

describe('worker checks', () => {
  it('accepts the plan whose alpha and lr equal its own schedule', () => {
    checkPlan(tinyConfig(), servedPlan(2), 2, 2);
  });

  it('refuses a plan whose alpha or lr differs, naming both values', () => {
    const cfg = tinyConfig();
    const { alpha } = epochSchedule(cfg, 2);
    assert.throws(
      () => checkPlan(cfg, servedPlan(2, { alpha: 0.123 }), 2, 2),
      (err: Error) =>
        err.name === 'WorkerError' && err.message.includes('alpha 0.123') && err.message.includes(`${alpha}`),
    );
    assert.throws(() => checkPlan(cfg, servedPlan(2, { lr: 9 }), 2, 2), /lr 9 \(this rank computes/);
    assert.throws(() => checkPlan(cfg, servedPlan(2, { worldSize: 3 }), 2, 2), /world_size 3 \(joined 2\)/);
  });

  it('digests: equal weights give equal checksums, one changed bit a different one; configs likewise', () => {
    const a = new Float32Array([1, 2, 3]);
    const b = new Float32Array([1, 2, 3]);
    assert.deepEqual(paramsDigest(a), paramsDigest(b));
    b[2] = 3.0000002;
    assert.notDeepEqual(paramsDigest(a), paramsDigest(b));
    const cfg = tinyConfig();
    assert.equal(configDigest(cfg), configDigest(tinyConfig()));
    assert.notEqual(configDigest(cfg), configDigest({ ...cfg, seed: 4 }));
  });

  it('launchLocal refuses a bad worker count and a resume without a run directory', async () => {
    await assert.rejects(launchLocal({ outDir: tempDir(), workers: 0, configPath: 'x.yaml' }), ConfigError);
    await assert.rejects(launchLocal({ outDir: tempDir(), workers: 2, resume: true }), ConfigError);
  });
});
