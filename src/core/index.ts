/**
 * `core`: pure BBN math and data policy (no tfjs, no I/O, no clock, no Math.random).
 *
 * Seeded RNG, run config, training-method policies, long-tail class-count profiles, samplers, α and
 * lr schedules, epoch plans and sharding, and metrics. Every other layer imports core through this file.
 */
export { type AlphaOptions, alphaAt, divEpoch, isPerBatchAlpha } from './alpha.ts';
export {
  ALPHA_SCHEDULES,
  type AlphaScheduleName,
  applyOverrides,
  BACKENDS,
  ConfigError,
  LR_SCHEDULES,
  type LrScheduleName,
  METHODS,
  type Method,
  parseRunConfig,
  type RunConfig,
  type RunConfigInput,
  runConfigSchema,
} from './config.ts';
export {
  type EpochPlan,
  type EpochPlanInput,
  planDigest,
  planEpoch,
  type Shard,
  shardOf,
  shardRange,
} from './epoch-plan.ts';
export { epochSchedule, planFor } from './epoch-schedule.ts';
export { CoreValueError } from './errors.ts';
export { powCorrectlyRounded } from './exact-pow.ts';
export { type LrOptions, lrAt } from './lr.ts';
export {
  type EpochPolicy,
  effectiveNumberWeights,
  epochPolicy,
  inverseFrequencyWeights,
  totalEpochs,
  variantOf,
} from './methods.ts';
export { type AccuracyReport, accuracyReport, argmax, confusionMatrix, topK } from './metrics.ts';
export {
  classCounts,
  exponentialCounts,
  imbalanceRatioOf,
  type ShotGroup,
  shotGroups,
  stepCounts,
  subsampleLongTail,
} from './profiles.ts';
export { Rng, type RngState } from './rng.ts';
export {
  ClassIndex,
  classProbabilities,
  createRebalanceSampler,
  cumulativeWeights,
  type IndexSampler,
  inverseCdfPick,
  REBALANCE_KINDS,
  type RebalanceKind,
  reversedWeights,
  uniformEpochOrder,
} from './samplers.ts';
