import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { RunConfig } from '../../src/core/config.ts';
import { Rng } from '../../src/core/rng.ts';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import type { Model } from '../../src/model/api.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createModel } from '../../src/model/factory.ts';
import { retrainClassifier } from '../../src/worker/classifier-retrain.ts';
import { modelSpecFor } from '../../src/worker/run.ts';
import { Trainer } from '../../src/worker/trainer.ts';
import { tinyConfig } from '../helpers/tiny.ts';

let data: LoadedData;
before(async () => {
  await selectBackend('auto');
  data = await loadData(tinyConfig().dataset);
});

const modelOf = (cfg: RunConfig): Model =>
  createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));

async function train(cfg: RunConfig, model: Model, from: number, to: number): Promise<void> {
  const trainer = new Trainer(cfg, data, model);
  for (let e = from; e <= to; e++) await trainer.trainEpoch(e);
}

describe('retraining the classifier of a saved representation', () => {
  it('gives the weights of one decouple run, changes only the classifier, and uses the chosen learner', async () => {
    const train2 = { epochs: 2, decoupleEpochs: 2, decoupleRepresentation: 'rw' };
    const whole = tinyConfig({ method: 'decouple', train: { ...train2, decoupleClassifier: 'rs' } });
    const one = modelOf(whole);
    const rep = modelOf(tinyConfig({ method: 'rw', train: { epochs: 2 } }));
    const other = modelOf(whole);
    try {
      await train(whole, one, 1, 4);
      // The representation alone (method=rw), then its classifier retrained by rs, and by ce.
      await train(tinyConfig({ method: 'rw', train: { epochs: 2 } }), rep, 1, 2);
      const repParams = rep.getParams().slice();
      const repBuffers = rep.getBuffers().slice();
      other.setParams(repParams);
      other.setBuffers(repBuffers);
      const res = await retrainClassifier(whole, data, rep);
      assert.deepEqual(
        res.epochs.map((r) => [r.epoch, r.stage]),
        [
          [3, 2],
          [4, 2],
        ],
      );
      assert.ok(res.report.top1 >= 0 && res.report.top1 <= 1);
      assert.deepEqual(rep.getParams(), one.getParams(), 'the same weights as one decouple run');
      assert.deepEqual(rep.getBuffers(), repBuffers, 'BN statistics frozen');
      const { offset, length } = rep.classifierRange();
      assert.deepEqual(rep.getParams().subarray(0, offset), repParams.subarray(0, offset), 'backbone frozen');
      const ce = tinyConfig({ method: 'decouple', train: { ...train2, decoupleClassifier: 'ce' } });
      await retrainClassifier(ce, data, other);
      assert.deepEqual(other.getParams().subarray(0, offset), repParams.subarray(0, offset));
      const clsRs = rep.getParams().subarray(offset, offset + length);
      const clsCe = other.getParams().subarray(offset, offset + length);
      assert.notDeepEqual(clsCe, clsRs, 'uniform batches train another classifier than balanced ones');
      assert.notDeepEqual(clsRs, repParams.subarray(offset, offset + length), 'the classifier learnt');
    } finally {
      for (const m of [one, rep, other]) m.dispose();
    }
  });

  it('refuses a config that is not a decoupling run', async () => {
    const cfg = tinyConfig({ method: 'ce' });
    const model = modelOf(cfg);
    try {
      await assert.rejects(retrainClassifier(cfg, data, model), /needs method=decouple \(got method=ce\)/);
    } finally {
      model.dispose();
    }
  });
});
