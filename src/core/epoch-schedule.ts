/**
 * The per-epoch schedule and plan of a run, as every rank, the single-process trainer and the
 * coordinator compute them: α and lr of an epoch (decoupling's classifier stage uses a cosine lr
 * over its own epochs) and the epoch's global plan under the method's policy.
 */
import { alphaAt, isPerBatchAlpha } from './alpha.ts';
import type { RunConfig } from './config.ts';
import { planEpoch } from './epoch-plan.ts';
import { lrAt } from './lr.ts';
import type { EpochPolicy } from './methods.ts';

/** A per-epoch α and lr, as every rank and the coordinator compute them. */
export function epochSchedule(cfg: RunConfig, epoch: number): { alpha: number | null; lr: number } {
  const stage2 = cfg.method === 'decouple' && epoch > cfg.train.epochs;
  const lr = stage2
    ? lrAt(epoch - cfg.train.epochs, {
        ...cfg.train.lrSchedule,
        name: 'cosine',
        baseLr: cfg.train.lr,
        maxEpoch: cfg.train.decoupleEpochs,
      })
    : lrAt(epoch, { ...cfg.train.lrSchedule, baseLr: cfg.train.lr, maxEpoch: cfg.train.epochs });
  if (cfg.method !== 'bbn') return { alpha: null, lr };
  const a = cfg.train.alpha;
  // The Beta schedule draws per batch; the epoch's nominal value is its mean, 0.5.
  if (isPerBatchAlpha(a.schedule)) return { alpha: 0.5, lr };
  return {
    alpha: alphaAt(epoch, {
      schedule: a.schedule,
      maxEpoch: cfg.train.epochs,
      divEpoch: a.divEpoch,
      separateEpoch: a.separateEpoch,
      betaShape: a.betaShape,
    }),
    lr,
  };
}

/** The global plan of an epoch under `policy` (balanced main batches draw from the plan's second stream). */
export function planFor(
  cfg: RunConfig,
  policy: EpochPolicy,
  epoch: number,
  labels: Int32Array,
  numClasses: number,
) {
  return planEpoch({
    seed: cfg.seed,
    epoch,
    labels,
    numClasses,
    globalBatch: cfg.train.batchSize,
    rebalance:
      policy.variant === 'bbn' ? policy.rebalance : policy.batchSource === 'balanced' ? 'balanced' : 'none',
  });
}
