/**
 * Divergence guard: a non-finite loss, gradient or update stops the run before the step is
 * applied or checkpointed, naming epoch, step and rank (`train.onNonFinite: stop`), or is skipped
 * and counted (`skip`). The faults are injected where they arise: a huge lr (the update
 * overflows), and a reducer that returns a NaN gradient after the allreduce.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createModel } from '../../src/model/factory.ts';
import { listCheckpoints } from '../../src/worker/checkpoint.ts';
import { modelSpecFor, runTraining } from '../../src/worker/run.ts';
import { readMetrics, runPaths } from '../../src/worker/run-dir.ts';
import { DivergenceError, type Reducer, Trainer } from '../../src/worker/trainer.ts';
import { tempDir } from '../helpers/run-fixture.ts';
import { tinyConfig } from '../helpers/tiny.ts';

let backend: string;
let data: LoadedData;

before(async () => {
  backend = (await selectBackend('auto')).name;
  data = await loadData(tinyConfig().dataset);
});

/** Rank 1 of 2 of the tiny run, whose reducer poisons gradient 3 after the sum at `(epoch, step)`. */
function poisonedTrainer(
  extra: Record<string, unknown>,
  at: { epoch: number; step: number },
  rank = { rank: 1, worldSize: 2 },
) {
  // The peer (rank 0) is this rank's twin: the sum is twice this rank's share. A twin cannot fill
  // its own slots of the replica check, so the check is off.
  const cfg = tinyConfig({ ...extra, distributed: { checksumEverySteps: 0 } });
  const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
  const reduce: Reducer = async (buf, tag) => {
    for (let i = 0; i < buf.length; i++) buf[i] *= 2;
    if (tag.epoch === at.epoch && tag.step === at.step) buf[3] = Number.NaN;
  };
  return { model, trainer: new Trainer(cfg, data, model, rank, reduce) };
}

describe('divergence guard', () => {
  it('train.lr=1e308: the run stops at the first step whose update overflows, naming epoch, step and rank; no checkpoint, no metrics row', async () => {
    const dir = tempDir();
    await assert.rejects(
      runTraining(tinyConfig({ train: { lr: 1e308 } }), dir, { backend, data }),
      (err: unknown) =>
        err instanceof DivergenceError &&
        err.epoch === 1 &&
        err.step === 1 &&
        /training diverged at epoch 1 step 1 \(rank 0\): the update .* is not finite; the step was not applied/.test(
          err.message,
        ),
    );
    assert.deepEqual(listCheckpoints(runPaths(dir).checkpoints), []);
    assert.deepEqual(readMetrics(dir), []);
  });

  it('a NaN gradient after the allreduce stops before the update: the weights are those of the step before', async () => {
    const { model, trainer } = poisonedTrainer({ train: { epochs: 1 } }, { epoch: 1, step: 2 });
    try {
      const seen: number[] = [];
      let before: Float32Array | undefined;
      await assert.rejects(
        trainer.trainEpoch(1, {
          onStep: (r) => {
            seen.push(r.step);
            before = model.getParams();
          },
        }),
        /training diverged at epoch 1 step 3 \(rank 1\): a gradient is not finite/,
      );
      assert.deepEqual(seen, [1, 2]);
      assert.deepEqual(model.getParams(), before);
    } finally {
      model.dispose();
    }
  });

  it('train.onNonFinite=skip: the poisoned step is dropped and counted, the others train', async () => {
    const { model, trainer } = poisonedTrainer(
      { train: { epochs: 1, onNonFinite: 'skip' } },
      { epoch: 1, step: 2 },
    );
    try {
      const r = await trainer.trainEpoch(1);
      assert.equal(r.complete, true);
      assert.equal(r.skippedSteps, 1);
      assert.ok(Number.isFinite(r.trainLoss));
      for (const v of model.getParams()) assert.ok(Number.isFinite(v));
    } finally {
      model.dispose();
    }
  });

  it('skip with lr=1e308: every step is skipped, counted in metrics.jsonl, and the weights stay finite', async () => {
    const dir = tempDir();
    await runTraining(tinyConfig({ train: { epochs: 1, lr: 1e308, onNonFinite: 'skip' } }), dir, {
      backend,
      data,
    });
    const [row] = readMetrics(dir);
    assert.equal(row.skippedSteps, 5);
    assert.equal(listCheckpoints(runPaths(dir).checkpoints).length, 1);
  });
});
