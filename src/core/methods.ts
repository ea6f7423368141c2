/**
 * Training methods as data policy: for each method and epoch, which network variant trains, where
 * its batches come from, which class weights the loss uses and which parameters learn.
 *
 * BBN is the paper's method; the others are the baselines it is measured against (BBN-SPEC §7),
 * all on the single-branch backbone:
 * - `ce`: plain cross-entropy, instance-balanced (uniform) batches.
 * - `rw`: class re-weighting, w_c ∝ 1/N_c (paper §3), normalised so that Σ_c w_c = C.
 * - `rs`: class-balanced re-sampling: a class uniformly, then an image of it with replacement (paper §3).
 * - `drw`: deferred re-weighting (LDAM-DRW's schedule): plain CE until `drwStartEpoch`, then
 *   class-balanced weights from the effective number, w_c ∝ (1-β)/(1-β^N_c), Σ_c w_c = C.
 * - `decouple`: two stages (classifier re-training, Kang et al. 2020): the representation learns for
 *   `epochs` as `decoupleRepresentation` (ce, rw or rs; ce by default), then the backbone is
 *   frozen, the classifier re-initialised and trained for `decoupleEpochs` epochs as
 *   `decoupleClassifier` (rs by default: cRT's class-balanced batches; ce or rw for the paper's
 *   Fig. 2 grid) with a cosine lr from `lr` down to the cosine floor.
 */
import type { DecoupleStageMethod, Method, RunConfig } from './config.ts';
import { CoreValueError } from './errors.ts';

/** What one epoch of a method trains, and on what. */
export interface EpochPolicy {
  /** Network variant: BBN's two branches, or the single-branch backbone. */
  readonly variant: 'bbn' | 'single';
  /** Source of the (main) batch: the uniform permutation, or class-balanced draws. */
  readonly batchSource: 'uniform' | 'balanced';
  /** BBN only: the re-balancing branch's sampler. */
  readonly rebalance: 'reversed' | 'balanced' | 'uniform' | 'none';
  /** Per-class loss weights, or null for plain mean cross-entropy. */
  readonly classWeights: readonly number[] | null;
  /** Which parameters learn: all, or only the classifier (decoupling stage 2). */
  readonly trainable: 'all' | 'classifier';
  /** Decoupling: re-initialise the classifier at the start of this epoch. */
  readonly resetClassifier: boolean;
  /** 1 for the main stage, 2 for decoupling's classifier stage. */
  readonly stage: 1 | 2;
}

/** Network variant a method builds. */
export function variantOf(method: Method): 'bbn' | 'single' {
  return method === 'bbn' ? 'bbn' : 'single';
}

/** Total epochs a run of this config trains (decoupling adds its classifier stage). */
export function totalEpochs(cfg: Pick<RunConfig, 'method' | 'train'>): number {
  return cfg.train.epochs + (cfg.method === 'decouple' ? cfg.train.decoupleEpochs : 0);
}

/** Inverse-frequency class weights, normalised to sum to the number of classes. */
export function inverseFrequencyWeights(counts: readonly number[]): number[] {
  return normalise(counts.map((n, c) => 1 / positive(n, c)));
}

/** Effective-number class weights (Cui et al. 2019) for β in [0,1), normalised to sum to C; β = 0 gives all ones. */
export function effectiveNumberWeights(counts: readonly number[], beta: number): number[] {
  if (!(beta >= 0 && beta < 1)) throw new CoreValueError(`effective-number beta (${beta}) must be in [0, 1)`);
  return normalise(counts.map((n, c) => (1 - beta) / (1 - beta ** positive(n, c))));
}

function positive(n: number, c: number): number {
  if (!(n > 0))
    throw new CoreValueError(`class ${c} has ${n} training images; every class needs at least one`);
  return n;
}

function normalise(w: number[]): number[] {
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => (x / sum) * w.length);
}

/** The policy of `epoch` (1-based) for a run of `cfg` whose training set has `counts` images per class. */
export function epochPolicy(
  cfg: Pick<RunConfig, 'method' | 'train'>,
  epoch: number,
  counts: readonly number[],
): EpochPolicy {
  const last = totalEpochs(cfg);
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > last) {
    throw new CoreValueError(`epoch (${epoch}) must be an integer in [1, ${last}]`);
  }
  const base: EpochPolicy = {
    variant: variantOf(cfg.method),
    batchSource: 'uniform',
    rebalance: 'none',
    classWeights: null,
    trainable: 'all',
    resetClassifier: false,
    stage: 1,
  };
  switch (cfg.method) {
    case 'bbn':
      return { ...base, rebalance: cfg.train.rebalanceSampler };
    case 'ce':
      return base;
    case 'rw':
      return { ...base, classWeights: inverseFrequencyWeights(counts) };
    case 'rs':
      return { ...base, batchSource: 'balanced' };
    case 'drw':
      return epoch >= cfg.train.drwStartEpoch
        ? { ...base, classWeights: effectiveNumberWeights(counts, cfg.train.drwBeta) }
        : base;
    case 'decouple':
      return epoch <= cfg.train.epochs
        ? { ...base, ...stageLearning(cfg.train.decoupleRepresentation, counts) }
        : {
            ...base,
            ...stageLearning(cfg.train.decoupleClassifier, counts),
            trainable: 'classifier',
            resetClassifier: epoch === cfg.train.epochs + 1,
            stage: 2,
          };
  }
}

/** A decoupling stage's batches and loss weights: exactly those of the method of that name. */
function stageLearning(
  method: DecoupleStageMethod,
  counts: readonly number[],
): Pick<EpochPolicy, 'batchSource' | 'classWeights'> {
  switch (method) {
    case 'ce':
      return { batchSource: 'uniform', classWeights: null };
    case 'rw':
      return { batchSource: 'uniform', classWeights: inverseFrequencyWeights(counts) };
    case 'rs':
      return { batchSource: 'balanced', classWeights: null };
  }
}
