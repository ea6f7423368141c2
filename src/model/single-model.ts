/**
 * The single-branch network (the plain ResNet with Linear(D, C)) and its CE step, for the
 * baselines: CE, class re-weighting, re-sampling, DRW (class weights from an epoch on), and
 * decoupling's classifier retraining (`trainable: 'classifier'`).
 */
import type { Rng } from '../core/rng.ts';
import {
  type LabeledBatch,
  ModelError,
  type ModelSpec,
  type SingleModel,
  type SingleStepOptions,
  type StepResult,
} from './api.ts';
import { argmaxRows, ceTargets, countCorrect } from './combiner.ts';
import { Network } from './network.ts';

/** `SingleModel` implementation. */
export class SingleNetwork extends Network implements SingleModel {
  readonly variant = 'single' as const;

  constructor(spec: ModelSpec, rng: Rng) {
    if (spec.variant !== 'single') {
      throw new ModelError(`SingleNetwork needs ModelSpec.variant 'single', got ${spec.variant}`);
    }
    super(spec, rng);
  }

  step(batch: LabeledBatch, options: SingleStepOptions = {}): StepResult {
    const n = this.batchCount(batch.x, 'x');
    if (batch.y.length !== n) throw new ModelError(`labels (${batch.y.length}) must match the ${n} images`);
    const trainable = options.trainable ?? 'all';
    const targets = ceTargets(batch.y, this.spec.numClasses, options);
    const branch = this.arch.branches[0];
    const res = this.differentiate(
      trainable,
      targets,
      (ctx) => {
        const x = this.images(batch.x, n);
        if (trainable === 'all')
          return () => this.classifier.forward(this.store, this.branchFeature(ctx, branch, x));
        const f = this.branchFeature(ctx, branch, x);
        return () => this.classifier.forward(this.store, f);
      },
      options,
    );
    const correct = countCorrect(argmaxRows(res.logits, this.spec.numClasses), batch.y);
    return { loss: res.loss, accuracy: n ? correct / n : 0, correct, count: n, grads: res.grads };
  }

  features(x: Float32Array, batchSize = 64): Float32Array {
    return this.featuresAll(x, batchSize)[0];
  }
}
