/**
 * The model layer's public API: bilateral (BBN) and single-branch ResNets on tfjs, the BBN
 * training step (gradients returned flat, not applied), inference, flat parameter/state buffers,
 * the flat-buffer SGD, and classifier weight norms. Backend selection lives in `backend.ts`.
 */
export type {
  BackboneKind,
  BbnBatch,
  BbnModel,
  BbnStepOptions,
  BnGammaInit,
  EvalResult,
  LabeledBatch,
  LayoutEntry,
  Model,
  ModelBase,
  ModelSpec,
  ModelState,
  ModelVariant,
  ParamRange,
  SingleModel,
  SingleStepOptions,
  StepOptionsBase,
  StepResult,
  Trainable,
} from './api.ts';
export { ModelError } from './api.ts';
export {
  argmaxRows,
  bbnTargets,
  ceNormalizer,
  ceTargets,
  mixFeatures,
  softTargetCrossEntropy,
} from './combiner.ts';
export { createModel } from './factory.ts';
export { describeModel } from './network.ts';
export { type ClassifierNorms, classifierNorms, classifierWeightNorms, type NormStats } from './norms.ts';
export { type FlatRange, OptimizerError, Sgd, type SgdOptions, type SgdState } from './optimizer.ts';
