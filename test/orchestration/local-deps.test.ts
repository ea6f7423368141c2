/**
 * The rank deps across a crash that Temporal never heard of: rank 0 recorded epoch 1 (metrics row,
 * then checkpoint) and died before `evaluateAndCheckpoint` completed. A new process must answer
 * the retried calls from that record, neither failing nor training the epoch twice, and the run
 * must end with the uninterrupted run's weights.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import type { RankControl } from '../../src/orchestration/activities.ts';
import { createCoordinatorDeps } from '../../src/orchestration/coordinator.ts';
import { createLocalDeps } from '../../src/orchestration/local.ts';
import { listCheckpoints } from '../../src/worker/checkpoint.ts';
import { runTraining } from '../../src/worker/run.ts';
import { readMetrics, runPaths } from '../../src/worker/run-dir.ts';
import { finalParams, tempDir, tinyConfig } from './fixtures.ts';

/** The coordinator's plans (what the workflow hands every rank). */
const plans = createCoordinatorDeps();
let backend: string;
let data: LoadedData;

before(async () => {
  backend = (await selectBackend('auto')).name;
  data = await loadData(tinyConfig().dataset);
});

function control(): RankControl & { steps: number } {
  const ctl = {
    steps: 0,
    previous: undefined,
    heartbeat: () => {
      ctl.steps++;
    },
    signal: new AbortController().signal,
    shouldStop: () => false,
  };
  return ctl;
}

describe('local rank deps', () => {
  it('a process that died after recording epoch 1 but before reporting it: the retries answer from the record', async () => {
    const reference = tempDir();
    await runTraining(tinyConfig(2), reference, { backend, data });

    const config = tinyConfig(2);
    const outDir = tempDir();
    const ref = { runId: 'crash-after-record', outDir, config, generation: 0 };
    const first = createLocalDeps();
    await first.prepareRun({ ...ref, resume: false });
    const plan = await plans.planEpoch({ ...ref, epoch: 1, workers: 1 });
    const train = await first.trainEpochOnRank({ ...ref, epoch: 1, rank: 0, worldSize: 1, plan }, control());
    const recorded = await first.evaluateAndCheckpoint({ ...ref, epoch: 1, train, plan });
    await first.dispose(); // the process dies here; the workflow still waits for epoch 1's record

    const second = createLocalDeps();
    try {
      // The activity's retry reaches a process that never trained epoch 1.
      assert.deepEqual(await second.evaluateAndCheckpoint({ ...ref, epoch: 1, train, plan }), recorded);
      // Or the workflow restarts epoch 1 as a new generation: it is reported, not trained again.
      const ctl = control();
      const again = await second.trainEpochOnRank(
        { ...ref, generation: 1, epoch: 1, rank: 0, worldSize: 1, plan },
        ctl,
      );
      assert.equal(ctl.steps, 0, 'no step trained');
      assert.equal(again.trainLoss, train.trainLoss);
      assert.equal(again.paramsDigest, train.paramsDigest);

      const next = { ...ref, generation: 1 };
      const plan2 = await plans.planEpoch({ ...next, epoch: 2, workers: 1 });
      const train2 = await second.trainEpochOnRank(
        { ...next, epoch: 2, rank: 0, worldSize: 1, plan: plan2 },
        control(),
      );
      await second.evaluateAndCheckpoint({ ...next, epoch: 2, train: train2, plan: plan2 });
      assert.deepEqual(
        readMetrics(outDir).map((m) => m.epoch),
        [1, 2],
      );
      assert.deepEqual(finalParams(outDir), finalParams(reference), 'bit-identical to the uninterrupted run');
    } finally {
      await second.dispose();
    }
  });

  it('checkpoint.everySteps writes mid-epoch checkpoints; a process lost after one resumes from it, bit-identical', async () => {
    const base = tinyConfig(2);
    const config = { ...base, checkpoint: { ...base.checkpoint, everySteps: 2 } };
    const reference = tempDir();
    await runTraining(base, reference, { backend, data });

    const outDir = tempDir();
    const ref = { runId: 'every-steps', outDir, config, generation: 0 };
    const first = createLocalDeps();
    await first.prepareRun({ ...ref, resume: false });
    const plan = await plans.planEpoch({ ...ref, epoch: 1, workers: 1 });
    await first.trainEpochOnRank({ ...ref, epoch: 1, rank: 0, worldSize: 1, plan }, control());
    await first.dispose(); // the process dies before epoch 1 is evaluated: only step checkpoints exist
    const ckpts = listCheckpoints(runPaths(outDir).checkpoints);
    assert.deepEqual(ckpts, ['ckpt-e000000-s0000002.bbnckpt', 'ckpt-e000000-s0000004.bbnckpt']);

    const second = createLocalDeps();
    try {
      const again = { ...ref, generation: 1 };
      const prepared = await second.prepareRun({ ...again, resume: true });
      assert.equal(prepared.startEpoch, 1);
      const ctl = control();
      for (const epoch of [1, 2]) {
        const p = await plans.planEpoch({ ...again, epoch, workers: 1 });
        const train = await second.trainEpochOnRank({ ...again, epoch, rank: 0, worldSize: 1, plan: p }, ctl);
        await second.evaluateAndCheckpoint({ ...again, epoch, train, plan: p });
      }
      assert.equal(
        ctl.steps,
        1 + plan.steps,
        'epoch 1 resumed at step 4 of 5: one step, then all of epoch 2',
      );
      assert.deepEqual(finalParams(outDir), finalParams(reference), 'bit-identical to the uninterrupted run');
    } finally {
      await second.dispose();
    }
  });
});
