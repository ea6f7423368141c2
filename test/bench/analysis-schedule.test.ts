import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EPOCHS, job, overridesOf, SIZE, scheduleOf, sizeOf } from '../../bench/analysis/jobs.ts';
import { jobsOf } from '../../bench/analysis/studies.ts';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import { epochSchedule } from '../../src/core/epoch-schedule.ts';
import { epochPolicy } from '../../src/core/methods.ts';

/** The lr and α the trainer uses at each epoch of a BBN job, and whether a DRW job re-weights then. */
function trajectory(epochs: number) {
  const bbn = loadRunConfig('configs/mnist-lt.yaml', overridesOf(job(100, 'bbn', 0, { epochs })));
  const drw = loadRunConfig('configs/mnist-lt.yaml', overridesOf(job(100, 'drw', 0, { epochs })));
  const at = (e: number) => {
    const { lr, alpha } = epochSchedule(bbn, e);
    return { lr, alpha: alpha!, drw: epochPolicy(drw, e, [600, 6]).classWeights !== null };
  };
  return { cfg: bbn, at };
}

describe('analysis bench schedule, scaled to the run length', () => {
  it('at 12 epochs it is the original size, exactly as the run files record it', () => {
    assert.deepEqual(SIZE, [
      'model.depth=8',
      'model.baseWidth=4',
      'train.epochs=12',
      'train.lrSchedule.milestones=[7,10]',
      'train.drwStartEpoch=11',
      'train.decoupleEpochs=3',
      'train.alpha.separateEpoch=7',
      'compute.threads=1',
    ]);
    assert.equal(scheduleOf(12).alphaHalfEpoch, 10);
    assert.equal(job(100, 'bbn', 3).id, 'ir100-bbn-s3');
    const { at } = trajectory(EPOCHS);
    assert.equal(at(7).lr, 0.05);
    assert.ok(Math.abs(at(8).lr - 0.005) < 1e-12);
    assert.ok(at(9).alpha > 0.5 && at(10).alpha <= 0.5);
    assert.ok(!at(10).drw && at(11).drw);
  });

  it('at 200 epochs it is the paper schedule: warm-up 5, decays after 120 and 160, alpha 0.5 at 143, DRW from 161', () => {
    const s = scheduleOf(200);
    assert.deepEqual(
      { ...s },
      {
        epochs: 200,
        warmupEpochs: 5,
        milestones: [120, 160],
        drwStartEpoch: 161,
        separateEpoch: 120,
        alphaDiv: 200,
        alphaHalfEpoch: 143,
        decoupleEpochs: 10,
      },
    );
    const { cfg, at } = trajectory(200);
    assert.equal(cfg.train.epochs, 200);
    assert.equal(cfg.train.decoupleEpochs, 10);
    assert.ok(at(1).lr < at(5).lr && at(5).lr < at(6).lr, 'linear warm-up over epochs 1-5');
    assert.equal(at(120).lr, 0.05);
    assert.ok(Math.abs(at(121).lr - 0.005) < 1e-12);
    assert.ok(Math.abs(at(160).lr - 0.005) < 1e-12);
    assert.ok(Math.abs(at(161).lr - 0.0005) < 1e-12);
    assert.equal(at(1).alpha, 1);
    assert.ok(Math.abs(at(121).alpha - 0.64) < 1e-12, 'α = 1 − (120/200)² at the first decay');
    assert.ok(at(142).alpha > 0.5 && at(143).alpha <= 0.5);
    assert.ok(Math.abs(at(200).alpha - (1 - (199 / 200) ** 2)) < 1e-12);
    assert.ok(!at(160).drw && at(161).drw);
  });

  it('other lengths keep the shape (alpha first <= 0.5 at ~71 %) and get their own job names', () => {
    for (const e of [100, 120, 160, 180]) {
      const s = scheduleOf(e);
      const { at } = trajectory(e);
      assert.ok(at(s.alphaHalfEpoch - 1).alpha > 0.5 && at(s.alphaHalfEpoch).alpha <= 0.5, `${e}`);
      assert.ok(Math.abs(s.alphaHalfEpoch / e - 0.71) < 0.02, `${e}: ${s.alphaHalfEpoch}`);
      assert.ok(!at(s.drwStartEpoch - 1).drw && at(s.drwStartEpoch).drw);
    }
    // 180 epochs: the official `auto` divisor would be 200; the bench sets the divisor to the epochs.
    assert.ok(sizeOf(180).includes('train.alpha.divEpoch=180'));
    assert.deepEqual(scheduleOf(100).milestones, [60, 80]);
    const ids = jobsOf('regime', 1, 200).map((j) => j.id);
    assert.deepEqual(ids.slice(0, 5), [
      'e200-ir100-bbn-s1',
      'e200-ir100-ce-s1',
      'e200-ir100-rs-s1',
      'e200-ir100-rw-s1',
      'e200-ir100-drw-s1',
    ]);
    assert.ok(ids.every((id) => !jobsOf('regime', 1).some((j) => j.id === id)));
    assert.throws(() => scheduleOf(4), /epochs 4/);
  });
});
