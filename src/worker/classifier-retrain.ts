/**
 * Decoupling's second stage on a representation learnt elsewhere: the classifier of a model that
 * already holds stage-1 weights (a finished ce, rw or rs run, or its checkpoint) is re-initialised
 * and retrained with the run's `decoupleClassifier` method, the backbone frozen.
 *
 * Why it exists: the paper's Fig. 2 grid crosses three representations with three classifier
 * learners; retraining nine classifiers from three saved representations costs three
 * representation runs instead of nine. It is exact, not an approximation: a `decouple` run's
 * stage 1 is the representation method's own policy epoch by epoch (`epochPolicy`), its lr the
 * same, and its plans and crops derive from (seed, epoch) alone, so the stage-1 weights of
 * `method=decouple decoupleRepresentation=X` are those of `method=X`; stage 2 then starts from
 * them exactly as in one run (fresh classifier, fresh classifier-only optimizer).
 */
import { ConfigError, type RunConfig } from '../core/config.ts';
import { totalEpochs } from '../core/methods.ts';
import type { AccuracyReport } from '../core/metrics.ts';
import type { LoadedData } from '../data/api.ts';
import type { Model } from '../model/api.ts';
import { type EpochResult, Trainer } from './trainer.ts';

/** What the retraining produced: each stage-2 epoch and the test accuracy at its end. */
export interface RetrainResult {
  readonly epochs: EpochResult[];
  readonly report: AccuracyReport & { predictions: Int32Array };
}

/**
 * Retrains `model`'s classifier for `cfg.train.decoupleEpochs` epochs (epochs E+1..E+K of the
 * `decouple` run `cfg`, E = `cfg.train.epochs`), in place, and evaluates it. `model` must hold
 * the representation learnt by `cfg.train.decoupleRepresentation` for E epochs with `cfg`'s seed.
 */
export async function retrainClassifier(
  cfg: RunConfig,
  data: LoadedData,
  model: Model,
  opts: { onEpoch?: (r: EpochResult) => void } = {},
): Promise<RetrainResult> {
  if (cfg.method !== 'decouple') {
    throw new ConfigError(`retraining a classifier needs method=decouple (got method=${cfg.method})`);
  }
  if (model.variant !== 'single') {
    throw new ConfigError(
      'retraining a classifier needs a single-branch model (decoupling has no BBN variant)',
    );
  }
  const trainer = new Trainer(cfg, data, model);
  const epochs: EpochResult[] = [];
  for (let epoch = cfg.train.epochs + 1; epoch <= totalEpochs(cfg); epoch++) {
    const r = await trainer.trainEpoch(epoch);
    epochs.push(r);
    opts.onEpoch?.(r);
  }
  return { epochs, report: await trainer.evaluate() };
}
