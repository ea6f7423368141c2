/**
 * The bilateral-branch network and its training step (BBN-SPEC §2, `Combiner.bbn_mix`).
 *
 * One step, in the official order: the uniform batch goes through trunk + cb_block and the
 * reversed batch through trunk + rb_block in a SEPARATE forward pass (train-mode BN, so the trunk's
 * running statistics are updated twice, uniform first; cb's only by the uniform batch, rb's only
 * by the reversed one), then GAP, `mixed = 2·concat(α·f_u, (1−α)·f_r)`, `z = mixed·W + b`,
 * `loss = α·CE(z, y_u) + (1−α)·CE(z, y_r)`. Gradients come from one tape and are returned flat; the
 * update is not applied.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../core/rng.ts';
import {
  type BbnBatch,
  type BbnModel,
  type BbnStepOptions,
  ModelError,
  type ModelSpec,
  type StepResult,
} from './api.ts';
import { argmaxRows, bbnTargets, checkAlpha, countCorrect, mixFeatures } from './combiner.ts';
import { Network } from './network.ts';

/** `BbnModel` implementation. */
export class BbnNetwork extends Network implements BbnModel {
  readonly variant = 'bbn' as const;

  constructor(spec: ModelSpec, rng: Rng) {
    if (spec.variant !== 'bbn')
      throw new ModelError(`BbnNetwork needs ModelSpec.variant 'bbn', got ${spec.variant}`);
    super(spec, rng);
  }

  step(batch: BbnBatch, alpha: number, options: BbnStepOptions = {}): StepResult {
    checkAlpha(alpha);
    const n = this.batchCount(batch.xu, 'xu');
    const nr = this.batchCount(batch.xr, 'xr');
    if (nr !== n || batch.yu.length !== n || batch.yr.length !== n) {
      throw new ModelError(
        `BBN batch sizes differ: xu ${n}, yu ${batch.yu.length}, xr ${nr}, yr ${batch.yr.length} (pairs need equal sizes)`,
      );
    }
    const trainable = options.trainable ?? 'all';
    const targets = bbnTargets(batch.yu, batch.yr, alpha, this.spec.numClasses, options);
    const [cb, rb] = this.arch.branches;
    const res = this.differentiate(
      trainable,
      targets,
      (ctx) => {
        const xu = this.images(batch.xu, n);
        const xr = this.images(batch.xr, n);
        const logits = (fu: tf.Tensor2D, fr: tf.Tensor2D) =>
          this.classifier.forward(this.store, mixFeatures(fu, fr, alpha));
        if (trainable === 'all') {
          // Two passes, uniform first: the order of the BN running-statistic updates.
          return () => logits(this.branchFeature(ctx, cb, xu), this.branchFeature(ctx, rb, xr));
        }
        // Frozen backbone (eval-mode BN), computed before the tape starts.
        const fu = this.branchFeature(ctx, cb, xu);
        const fr = this.branchFeature(ctx, rb, xr);
        return () => logits(fu, fr);
      },
      options,
    );
    const pred = argmaxRows(res.logits, this.spec.numClasses);
    const correct = alpha * countCorrect(pred, batch.yu) + (1 - alpha) * countCorrect(pred, batch.yr);
    return { loss: res.loss, accuracy: n ? correct / n : 0, correct, count: n, grads: res.grads };
  }

  features(x: Float32Array, batchSize = 64): { cb: Float32Array; rb: Float32Array } {
    const [cb, rb] = this.featuresAll(x, batchSize);
    return { cb, rb };
  }
}
